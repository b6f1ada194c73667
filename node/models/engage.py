"""Tables of the learner-engagement area (issue 16, items 5–8; migration 0024; docs/engage.md).

- `points_entry`: the learner's incentive-points ledger, append-only (earned: +, redeemed or expired: −); the
  balance is their sum. An earned entry names the ledger event and the rule that earned it, once
  (`uq (learner_id, source_seq, rule_id)`), so the consumer of ledger events may run twice.
- `points_cursor`: how far `engage.award_points` has read the ledger (one row per consumer, locked while read).
- `notice`: an in-portal notice to a learner (a decision, a deadline); `dedupe_key` makes a deadline notice once.
- `notice_delivery`: the e-mail / SMS queue of notices, claimed like the federation outbox (lease, backoff, dead).
- `notice_preference`: what the learner receives and where (address and phone encrypted like names).
- `correction_request`: a learner's request to correct a record; staff handle it with the existing correction.
- `counselling_consent` / `counselling_session`: the code a learner gives an outlet for a what-if, and the
  what-if run with it (kept for the print and the audit).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models import _id, _ts
from node.models.types import BigId, LogString, UtcDateTime

__all__ = ["CorrectionRequest", "CounsellingConsent", "CounsellingSession", "Notice", "NoticeDelivery",
           "NoticePreference", "PointsCursor", "PointsEntry"]


class PointsEntry(SQLModel, table=True):
    __tablename__ = "points_entry"
    __table_args__ = (sa.UniqueConstraint("learner_id", "source_seq", "rule_id"),)
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    points: int  # + earned, − redeemed or expired
    kind: str = Field(max_length=20)  # earned | redeemed | expired
    rule_id: str = Field(max_length=64)  # the earning rule, or the benefit redeemed
    source_seq: int | None = Field(default=None, sa_type=sa.BigInteger)  # the ledger event that earned it
    achievement_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    note: str = Field(default="", max_length=200)
    expires_on: dt.date | None = None  # earned points lapse after the configured validity
    actor: str | None = Field(default=None, max_length=100)
    created_at: dt.datetime = _ts()


class PointsCursor(SQLModel, table=True):
    __tablename__ = "points_cursor"
    name: str = Field(primary_key=True, max_length=40)
    seq: int = Field(default=0, sa_type=sa.BigInteger)  # the last ledger seq read
    updated_at: dt.datetime = _ts()


class Notice(SQLModel, table=True):
    __tablename__ = "notice"
    __table_args__ = (sa.Index("ix_notice_learner_id_id", "learner_id", "id"),)
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId)
    kind: str = Field(max_length=40)  # review_decided | appeal_answered | conversion_decided | transfer_completed
    #                                   | certificate_expiring | correction_answered | points_earned
    params: dict = Field(default_factory=dict, sa_type=sa.JSON)  # values of the message (ids, dates, states)
    link: str | None = Field(default=None, max_length=200)  # a portal path
    dedupe_key: str | None = Field(default=None, max_length=120, unique=True)
    read_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    created_at: dt.datetime = _ts()


class NoticeDelivery(SQLModel, table=True):
    __tablename__ = "notice_delivery"
    __table_args__ = (sa.UniqueConstraint("notice_id", "channel"),
                      sa.Index("ix_notice_delivery_state_next_attempt_at", "state", "next_attempt_at"))
    id: int | None = _id()
    notice_id: int = Field(foreign_key="notice.id", sa_type=BigId)
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    channel: str = Field(max_length=10)  # email | sms
    state: str = Field(default="pending", max_length=10)  # pending | sent | dead
    attempts: int = 0
    next_attempt_at: dt.datetime = _ts()  # while claimed: the end of the claim's lease
    claimed_by: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, sa_type=LogString(300))
    created_at: dt.datetime = _ts()
    sent_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())


class NoticePreference(SQLModel, table=True):
    __tablename__ = "notice_preference"
    learner_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("learner.id"), primary_key=True,
                                                autoincrement=False))
    muted_kinds: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # not shown and not sent
    email_kinds: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # also sent by e-mail
    sms_kinds: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # also sent by SMS
    email_cipher: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    phone_cipher: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    key_id: str | None = Field(default=None, max_length=16)
    updated_at: dt.datetime = _ts()


class CorrectionRequest(SQLModel, table=True):
    __tablename__ = "correction_request"
    __table_args__ = (sa.Index("ix_correction_request_state_id", "state", "id"),)
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    achievement_id: int = Field(foreign_key="achievement.id", sa_type=BigId)
    message: str = Field(max_length=1000)
    state: str = Field(default="open", max_length=12)  # open | corrected | declined
    handled_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    answer: str | None = Field(default=None, max_length=1000)
    ledger_seq: int | None = Field(default=None, sa_type=sa.BigInteger)  # the achievement.corrected event
    created_at: dt.datetime = _ts()
    handled_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())


class CounsellingConsent(SQLModel, table=True):
    __tablename__ = "counselling_consent"
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    code_hash: str = Field(max_length=64, unique=True)  # HMAC of the code the learner gives the outlet
    created_at: dt.datetime = _ts()
    expires_at: dt.datetime = Field(sa_type=UtcDateTime())
    used_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    used_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())


class CounsellingSession(SQLModel, table=True):
    __tablename__ = "counselling_session"
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    consent_id: int = Field(foreign_key="counselling_consent.id", sa_type=BigId)
    staff_id: int = Field(foreign_key="staff_account.id", sa_type=BigId, index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", sa_type=BigId)
    programme_code: str = Field(max_length=64)
    on_date: dt.date
    result: dict = Field(default_factory=dict, sa_type=sa.JSON)  # the what-if as evaluated
    created_at: dt.datetime = _ts()


class ErasureRequest(SQLModel, table=True):
    """The centre's erasure of a person (docs/privacy.md): one administrator asks, with the basis, a second one
    confirms (maker-checker), and the node shreds the personal data in that transaction. requested → done |
    cancelled."""

    __tablename__ = "erasure_request"
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    basis: str = Field(max_length=30)  # learner_request | legal_obligation | retention_expired
    legal_reference: str | None = Field(default=None, max_length=300)  # the document the basis rests on
    reason: str = Field(max_length=1000)
    state: str = Field(default="requested", max_length=12)
    requested_by: int = Field(foreign_key="staff_account.id", sa_type=BigId)
    confirmed_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    result: dict = Field(default_factory=dict, sa_type=sa.JSON)  # what was shredded (counts only)
    version: int = Field(default=1)
    created_at: dt.datetime = _ts()
    decided_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
