"""import_job.total_rows and .learners_created: import progress with a total, a percentage and learners opened

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_job") as batch:
        batch.add_column(sa.Column("total_rows", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("learners_created", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("import_job") as batch:
        batch.drop_column("learners_created")
        batch.drop_column("total_rows")
