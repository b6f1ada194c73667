"""outbox workers: outbox_message.claimed_by and the outbox_worker heartbeat table (claims of a process that is
gone are taken back at once, not after the lease; docs/federation.md §4)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 00:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox_worker",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("heartbeat_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_worker")),
    )
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.create_index("ix_outbox_message_claimed_by", ["claimed_by"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_index("ix_outbox_message_claimed_by")
        batch.drop_column("claimed_by")
    op.drop_table("outbox_worker")
