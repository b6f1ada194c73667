"""achievement.certificate_no: a certificate's own number, apart from its catalogue code

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("achievement", sa.Column("certificate_no", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("achievement") as batch:
        batch.drop_column("certificate_no")
