"""exemption_statement.status_index and .revoked: a statement's bit in the revocation status list

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exemption_statement") as batch:
        batch.add_column(sa.Column("status_index", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("exemption_statement") as batch:
        batch.drop_column("revoked")
        batch.drop_column("status_index")
