"""Tables for learner consents and cross-region transfers (migration 0008; design in docs/agreements.md).

Origin side: `consent` (a learner's signed consent to release records to one destination) and
`transfer_receipt` (what a destination reported it did with them). Destination side: `transfer_intent` (the
opaque holder binding handed to a learner), `transfer` and its `transfer_item`s (one per released credential).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models import _id, _ts
from node.models.types import BigId, UtcDateTime

__all__ = ["Consent", "Transfer", "TransferIntent", "TransferItem", "TransferReceipt"]

_TS = UtcDateTime()


class Consent(SQLModel, table=True):
    """A learner's consent (PIPL art. 23) to release records to one destination node; `document` is the
    signed artefact, bound to the learner's pseudonym and to the destination's holder binding."""

    __tablename__ = "consent"
    id: int | None = _id()
    consent_id: str = Field(max_length=64, unique=True)
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    destination: str = Field(max_length=64)
    holder_binding: str = Field(max_length=128)
    purpose: str = Field(max_length=500)
    achievement_ids: list = Field(default_factory=list, sa_type=sa.JSON)
    categories: list = Field(default_factory=list, sa_type=sa.JSON)
    document: dict = Field(sa_type=sa.JSON)
    document_hash: str = Field(max_length=64)
    state: str = Field(default="active", max_length=10)  # active | revoked
    expires_at: dt.datetime = Field(sa_type=_TS)
    created_at: dt.datetime = _ts()
    revoked_at: dt.datetime | None = Field(default=None, sa_type=_TS)


class TransferReceipt(SQLModel, table=True):
    """A destination's signed receipt for records released under a consent (recorded in the ledger too)."""

    __tablename__ = "transfer_receipt"
    id: int | None = _id()
    receipt_id: str = Field(max_length=64, unique=True)
    consent_id: str = Field(max_length=64, index=True)
    destination: str = Field(max_length=64)
    document: dict = Field(sa_type=sa.JSON)
    ledger_seq: int | None = Field(default=None, sa_type=sa.BigInteger)
    received_at: dt.datetime = _ts()


class TransferIntent(SQLModel, table=True):
    """A holder binding issued by the destination to one of its learners for a transfer from `origin`."""

    __tablename__ = "transfer_intent"
    id: int | None = _id()
    binding: str = Field(max_length=128, unique=True)
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    origin: str = Field(max_length=64)
    created_at: dt.datetime = _ts()


class Transfer(SQLModel, table=True):
    """A learner's cross-region transfer at the destination: one per (origin, consent)."""

    __tablename__ = "transfer"
    __table_args__ = (sa.UniqueConstraint("origin", "consent_id"), sa.Index("ix_transfer_state_id", "state", "id"))
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    origin: str = Field(max_length=64)
    consent_id: str = Field(max_length=64)
    consent: dict = Field(sa_type=sa.JSON)
    state: str = Field(max_length=20)  # awaiting_review | completed
    requested_by_staff_id: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    agreement_id: str | None = Field(default=None, max_length=200)
    agreement_hash: str | None = Field(default=None, max_length=64)
    checkpoint: str = Field(sa_type=sa.Text)
    verification: dict = Field(default_factory=dict, sa_type=sa.JSON)
    release_receipt: dict = Field(default_factory=dict, sa_type=sa.JSON)  # the origin's signed HTTP response
    receipt: dict | None = Field(default=None, sa_type=sa.JSON)  # our signed receipt, sent to the origin
    created_at: dt.datetime = _ts()
    completed_at: dt.datetime | None = Field(default=None, sa_type=_TS)


class TransferItem(SQLModel, table=True):
    """One released credential of a transfer and what became of it."""

    __tablename__ = "transfer_item"
    __table_args__ = (sa.UniqueConstraint("transfer_id", "credential_id"),
                      sa.Index("ix_transfer_item_state_id", "state", "id"))  # the review queue (keyset)
    id: int | None = _id()
    transfer_id: int = Field(foreign_key="transfer.id", sa_type=BigId, index=True)
    credential_id: str = Field(max_length=300)
    credential_hash: str = Field(max_length=64)
    credential: dict = Field(sa_type=sa.JSON)
    # recognised | awaiting_review | rejected | not_recognised | credential_invalid | credential_revoked
    state: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=1000)
    checks: list = Field(default_factory=list, sa_type=sa.JSON)
    recognition: dict | None = Field(default=None, sa_type=sa.JSON)
    achievement_id: int | None = Field(default=None, foreign_key="achievement.id", sa_type=BigId)
    decided_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    decided_at: dt.datetime | None = Field(default=None, sa_type=_TS)
