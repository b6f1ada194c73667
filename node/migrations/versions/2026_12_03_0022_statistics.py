"""statistics: summary counters (per day and per month × dimensions), the ledger job's high-water mark, active
learners per month, review clocks (docs/statistics.md)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stats_counter",
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dim1", sa.String(length=64), nullable=False),
        sa.Column("dim2", sa.String(length=64), nullable=False),
        sa.Column("dim3", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "grain", "day", "dim1", "dim2", "dim3", name=op.f("pk_stats_counter")),
    )
    op.create_table(
        "stats_state",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("next_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_stats_state")),
    )
    op.create_table(
        "stats_learner_month",
        sa.Column("learner_id", _BIGID, nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("learner_id", "month", name=op.f("pk_stats_learner_month")),
    )
    op.create_table(
        "stats_review_clock",
        sa.Column("application_id", _BIGID, nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=10), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_stats_review_clock")),
    )


def downgrade() -> None:
    op.drop_table("stats_review_clock")
    op.drop_table("stats_learner_month")
    op.drop_table("stats_state")
    op.drop_table("stats_counter")
