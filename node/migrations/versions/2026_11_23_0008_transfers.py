"""transfers: learner consents and cross-region transfers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("learner_id", _ID, nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("holder_binding", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("achievement_ids", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("document_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["learner_id"], ["learner.id"], name=op.f("fk_consent_learner_id_learner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
        sa.UniqueConstraint("consent_id", name=op.f("uq_consent_consent_id")),
    )
    op.create_index(op.f("ix_consent_learner_id"), "consent", ["learner_id"], unique=False)
    op.create_table(
        "transfer_receipt",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("receipt_id", sa.String(length=64), nullable=False),
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_receipt")),
        sa.UniqueConstraint("receipt_id", name=op.f("uq_transfer_receipt_receipt_id")),
    )
    op.create_index(op.f("ix_transfer_receipt_consent_id"), "transfer_receipt", ["consent_id"], unique=False)
    op.create_table(
        "transfer_intent",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("binding", sa.String(length=128), nullable=False),
        sa.Column("learner_id", _ID, nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["learner_id"], ["learner.id"], name=op.f("fk_transfer_intent_learner_id_learner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_intent")),
        sa.UniqueConstraint("binding", name=op.f("uq_transfer_intent_binding")),
    )
    op.create_index(op.f("ix_transfer_intent_learner_id"), "transfer_intent", ["learner_id"], unique=False)
    op.create_table(
        "transfer",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("learner_id", _ID, nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("consent", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requested_by_staff_id", _ID, nullable=True),
        sa.Column("agreement_id", sa.String(length=200), nullable=True),
        sa.Column("agreement_hash", sa.String(length=64), nullable=True),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("verification", sa.JSON(), nullable=False),
        sa.Column("release_receipt", sa.JSON(), nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("completed_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["learner_id"], ["learner.id"], name=op.f("fk_transfer_learner_id_learner")),
        sa.ForeignKeyConstraint(["requested_by_staff_id"], ["staff_account.id"],
                                name=op.f("fk_transfer_requested_by_staff_id_staff_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer")),
        sa.UniqueConstraint("origin", "consent_id", name=op.f("uq_transfer_origin_consent_id")),
    )
    op.create_index(op.f("ix_transfer_learner_id"), "transfer", ["learner_id"], unique=False)
    op.create_table(
        "transfer_item",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("transfer_id", _ID, nullable=False),
        sa.Column("credential_id", sa.String(length=300), nullable=False),
        sa.Column("credential_hash", sa.String(length=64), nullable=False),
        sa.Column("credential", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("recognition", sa.JSON(), nullable=True),
        sa.Column("achievement_id", _ID, nullable=True),
        sa.Column("decided_by", _ID, nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfer.id"], name=op.f("fk_transfer_item_transfer_id_transfer")),
        sa.ForeignKeyConstraint(["achievement_id"], ["achievement.id"],
                                name=op.f("fk_transfer_item_achievement_id_achievement")),
        sa.ForeignKeyConstraint(["decided_by"], ["staff_account.id"],
                                name=op.f("fk_transfer_item_decided_by_staff_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_item")),
        sa.UniqueConstraint("transfer_id", "credential_id", name=op.f("uq_transfer_item_transfer_id_credential_id")),
    )
    op.create_index(op.f("ix_transfer_item_transfer_id"), "transfer_item", ["transfer_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_transfer_item_transfer_id"), table_name="transfer_item")
    op.drop_table("transfer_item")
    op.drop_index(op.f("ix_transfer_learner_id"), table_name="transfer")
    op.drop_table("transfer")
    op.drop_index(op.f("ix_transfer_intent_learner_id"), table_name="transfer_intent")
    op.drop_table("transfer_intent")
    op.drop_index(op.f("ix_transfer_receipt_consent_id"), table_name="transfer_receipt")
    op.drop_table("transfer_receipt")
    op.drop_index(op.f("ix_consent_learner_id"), table_name="consent")
    op.drop_table("consent")
