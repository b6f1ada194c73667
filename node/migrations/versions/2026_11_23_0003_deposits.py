"""deposits: appeal decisions kept apart from the original review, submission time, achievement link index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deposit_application", schema=None) as batch_op:
        batch_op.add_column(sa.Column("appeal_stage", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("appeal_reviewer_id", _ID, nullable=True))
        batch_op.add_column(sa.Column("appeal_decision", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("appeal_decision_reason", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_deposit_application_appeal_reviewer_id_staff_account"),
            "staff_account", ["appeal_reviewer_id"], ["id"],
        )
        batch_op.create_index(batch_op.f("ix_deposit_application_achievement_id"), ["achievement_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deposit_application", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deposit_application_achievement_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_deposit_application_appeal_reviewer_id_staff_account"), type_="foreignkey"
        )
        batch_op.drop_column("submitted_at")
        batch_op.drop_column("appeal_decision_reason")
        batch_op.drop_column("appeal_decision")
        batch_op.drop_column("appeal_reviewer_id")
        batch_op.drop_column("appeal_stage")
