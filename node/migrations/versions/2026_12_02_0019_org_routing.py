"""organisation.active, deposit_application.branch_id (routing to a branch's queue), learner.home_org_id

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 00:19:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from node.models.types import BigId

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisation") as batch:
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table("learner") as batch:
        batch.add_column(sa.Column("home_org_id", BigId, nullable=True))
        batch.create_foreign_key(op.f("fk_learner_home_org_id_organisation"), "organisation", ["home_org_id"], ["id"])
    with op.batch_alter_table("deposit_application") as batch:
        batch.add_column(sa.Column("branch_id", BigId, nullable=True))
        batch.create_foreign_key(op.f("fk_deposit_application_branch_id_organisation"), "organisation",
                                 ["branch_id"], ["id"])
        batch.create_index("ix_deposit_application_branch_id_id", ["branch_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("deposit_application") as batch:
        batch.drop_index("ix_deposit_application_branch_id_id")
        batch.drop_constraint(op.f("fk_deposit_application_branch_id_organisation"), type_="foreignkey")
        batch.drop_column("branch_id")
    with op.batch_alter_table("learner") as batch:
        batch.drop_constraint(op.f("fk_learner_home_org_id_organisation"), type_="foreignkey")
        batch.drop_column("home_org_id")
    with op.batch_alter_table("organisation") as batch:
        batch.drop_column("active")
