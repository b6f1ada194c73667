"""rate_limit_counter: per-client rate-limit counters shared by several worker processes

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 00:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counter",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_counter")),
    )
    op.create_index(op.f("ix_rate_limit_counter_expires_at"), "rate_limit_counter", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_limit_counter_expires_at"), table_name="rate_limit_counter")
    op.drop_table("rate_limit_counter")
