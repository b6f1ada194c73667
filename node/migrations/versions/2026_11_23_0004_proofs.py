"""proofs: signed ledger checkpoints and reviewed revocation requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "checkpoint",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoint")),
        sa.UniqueConstraint("size", name=op.f("uq_checkpoint_size")),
    )
    op.create_table(
        "revocation_request",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("achievement_id", _ID, nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requested_by", _ID, nullable=False),
        sa.Column("decided_by", _ID, nullable=True),
        sa.Column("decision_reason", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["achievement_id"], ["achievement.id"],
                                name=op.f("fk_revocation_request_achievement_id_achievement")),
        sa.ForeignKeyConstraint(["requested_by"], ["staff_account.id"],
                                name=op.f("fk_revocation_request_requested_by_staff_account")),
        sa.ForeignKeyConstraint(["decided_by"], ["staff_account.id"],
                                name=op.f("fk_revocation_request_decided_by_staff_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revocation_request")),
    )
    op.create_index(op.f("ix_revocation_request_achievement_id"), "revocation_request", ["achievement_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_revocation_request_achievement_id"), table_name="revocation_request")
    op.drop_table("revocation_request")
    op.drop_table("checkpoint")
