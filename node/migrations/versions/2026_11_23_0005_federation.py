"""federation: membership versions and proposals, peer DID documents, replay cache, outbox, inbox, streams

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "membership_version",
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("accepted_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_membership_version")),
        sa.UniqueConstraint("hash", name=op.f("uq_membership_version_hash")),
    )
    op.create_table(
        "membership_proposal",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_membership_proposal")),
    )
    op.create_table(
        "peer_did_document",
        sa.Column("did", sa.String(length=255), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("fetched_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("did", name=op.f("pk_peer_did_document")),
    )
    op.create_index(op.f("ix_peer_did_document_node_id"), "peer_did_document", ["node_id"], unique=False)
    op.create_table(
        "seen_nonce",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=255), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seen_nonce")),
        sa.UniqueConstraint("key_id", "nonce", name=op.f("uq_seen_nonce_key_id_nonce")),
    )
    op.create_index(op.f("ix_seen_nonce_expires_at"), "seen_nonce", ["expires_at"], unique=False)
    op.create_table(
        "outbox_message",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_message_id")),
        sa.UniqueConstraint("peer", "seq", name=op.f("uq_outbox_message_peer_seq")),
    )
    op.create_index("ix_outbox_message_state_next_attempt_at", "outbox_message", ["state", "next_attempt_at"],
                    unique=False)
    op.create_table(
        "inbox_message",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_message")),
        sa.UniqueConstraint("origin", "message_id", name=op.f("uq_inbox_message_origin_message_id")),
    )
    op.create_table(
        "peer_stream",
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("next_out_seq", sa.BigInteger(), nullable=False),
        sa.Column("next_in_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("peer", name=op.f("pk_peer_stream")),
    )


def downgrade() -> None:
    op.drop_table("peer_stream")
    op.drop_table("inbox_message")
    op.drop_index("ix_outbox_message_state_next_attempt_at", table_name="outbox_message")
    op.drop_table("outbox_message")
    op.drop_index(op.f("ix_seen_nonce_expires_at"), table_name="seen_nonce")
    op.drop_table("seen_nonce")
    op.drop_index(op.f("ix_peer_did_document_node_id"), table_name="peer_did_document")
    op.drop_table("peer_did_document")
    op.drop_table("membership_proposal")
    op.drop_table("membership_version")
