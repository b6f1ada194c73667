"""witness: checkpoint witnessing (cosignatures of peers' checkpoints)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "witness_peer",
        sa.Column("peer_id", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_result", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("peer_id", name=op.f("pk_witness_peer")),
    )
    op.create_table(
        "witness_cosignature",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("peer_id", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("cosignature", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_witness_cosignature")),
        sa.UniqueConstraint("peer_id", "size", name=op.f("uq_witness_cosignature_peer_id_size")),
    )
    op.create_table(
        "checkpoint_cosignature",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("witness_id", sa.String(length=64), nullable=False),
        sa.Column("witness_name", sa.String(length=255), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoint_cosignature")),
        sa.UniqueConstraint("checkpoint_size", "witness_id",
                            name=op.f("uq_checkpoint_cosignature_checkpoint_size_witness_id")),
    )
    op.create_table(
        "witness_alert",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("peer_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("known_size", sa.BigInteger(), nullable=True),
        sa.Column("known_root_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("seen_size", sa.BigInteger(), nullable=False),
        sa.Column("seen_root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_witness_alert")),
        sa.UniqueConstraint("peer_id", "seen_size", "seen_root_hash",
                            name=op.f("uq_witness_alert_peer_id_seen_size_seen_root_hash")),
    )
    op.create_index(op.f("ix_witness_alert_peer_id"), "witness_alert", ["peer_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_witness_alert_peer_id"), table_name="witness_alert")
    op.drop_table("witness_alert")
    op.drop_table("checkpoint_cosignature")
    op.drop_table("witness_cosignature")
    op.drop_table("witness_peer")
