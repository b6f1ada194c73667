"""Tables for catalogue, rule lifecycle, conversion requests, exemption statements (migration 0006).

Layout (docs/conversion.md §1): the catalogue is one versioned table of typed JSON entries (a new version of an
entry supersedes the old one, which stays readable); rules are stored as their JSON body plus lifecycle columns;
a conversion request has items (one per proposed target); approved items mark their sources as used for their
target in `conversion_usage`, which feeds the engine's `PriorUsage`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models import _id, _ts
from node.models.types import BigId, ExactDecimal, UtcDateTime

__all__ = [
    "CatalogueEntry",
    "ConversionItem",
    "ConversionRequest",
    "ConversionUsage",
    "ExemptionStatement",
    "StandardRule",
]


class CatalogueEntry(SQLModel, table=True):
    """One version of a catalogue entry: institution, programme (with its courses), certificate, reference level,
    level map or code list. `data` has the shape of the standards bundle's item (node/rules/standards.schema.json).
    Rows are never updated except to close `effective_to` when a newer version takes over."""

    __tablename__ = "catalogue_entry"
    __table_args__ = (sa.UniqueConstraint("kind", "code", "version"),)
    id: int | None = _id()
    kind: str = Field(max_length=20)
    code: str = Field(max_length=64, index=True)
    version: int
    effective_from: dt.date
    effective_to: dt.date | None = None
    data: dict = Field(default_factory=dict, sa_type=sa.JSON)
    source: str = Field(default="api", max_length=64)  # the bundle id it was loaded from, or api
    created_by: str = Field(max_length=64)  # staff:<id> or system:<what>
    created_at: dt.datetime = _ts()


class StandardRule(SQLModel, table=True):
    """One version of a conversion rule (its JSON body) and where it is in its lifecycle:
    draft → approved (by a second standards admin) → retired; or draft → rejected."""

    __tablename__ = "standard_rule"
    __table_args__ = (sa.UniqueConstraint("rule_id", "version"),)
    id: int | None = _id()
    rule_id: str = Field(max_length=80, index=True)
    version: int
    kind: str = Field(max_length=20)
    title: str = Field(max_length=300)
    status: str = Field(max_length=20, index=True)
    body: dict = Field(default_factory=dict, sa_type=sa.JSON)
    effective_from: dt.date
    effective_to: dt.date | None = None
    source: str = Field(default="api", max_length=64)
    created_by: str = Field(max_length=64)
    approved_by: str | None = Field(default=None, max_length=64)
    approved_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    retired_by: str | None = Field(default=None, max_length=64)
    retired_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    decision_reason: str | None = Field(default=None, max_length=1000)
    created_at: dt.datetime = _ts()


class ConversionRequest(SQLModel, table=True):
    """A learner's request to convert outcomes into a programme: proposed → confirmed → decided
    (→ appealed → closed); withdrawn by the learner before the decision. `evaluation` keeps the engine's full
    answer at request time."""

    __tablename__ = "conversion_request"
    __table_args__ = (sa.Index("ix_conversion_request_state_id", "state", "id"),)  # the queue by state (keyset)
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    programme_code: str = Field(max_length=64)
    on_date: dt.date
    state: str = Field(max_length=20)
    requested_by: str = Field(max_length=64)
    confirmed_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    confirmed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    reviewed_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    reviewed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    appeal_reason: str | None = Field(default=None, max_length=1000)
    appealed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    appeal_reviewed_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    evaluation: dict = Field(default_factory=dict, sa_type=sa.JSON)
    version: int = 1
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()


class ConversionItem(SQLModel, table=True):
    """One proposed target of a request: proposed → confirmed | dropped → approved | rejected (reason)."""

    __tablename__ = "conversion_item"
    id: int | None = _id()
    request_id: int = Field(foreign_key="conversion_request.id", sa_type=BigId, index=True)
    target_key: str = Field(max_length=200)
    target: dict = Field(default_factory=dict, sa_type=sa.JSON)
    rule_id: str = Field(max_length=80)
    rule_version: int
    sources: list = Field(default_factory=list, sa_type=sa.JSON)  # source achievement ids
    proposed_credits: Decimal = Field(sa_type=ExactDecimal)
    credits: Decimal = Field(sa_type=ExactDecimal)
    recorded_grade: str = Field(max_length=20)
    explanation: dict = Field(default_factory=dict, sa_type=sa.JSON)
    explanation_zh: str = Field(default="", sa_type=sa.Text)
    status: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=1000)
    decided_stage: str | None = Field(default=None, max_length=10)  # review | appeal
    ledger_seq: int | None = Field(default=None, sa_type=sa.BigInteger)
    achievement_id: int | None = Field(default=None, foreign_key="achievement.id", sa_type=BigId)


class ConversionUsage(SQLModel, table=True):
    """A source outcome used for a target (course or exemption) by an approved item: never twice."""

    __tablename__ = "conversion_usage"
    __table_args__ = (sa.UniqueConstraint("learner_id", "target_key", "achievement_id"),)
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    programme_code: str = Field(max_length=64)
    target_key: str = Field(max_length=200)
    achievement_id: int = Field(foreign_key="achievement.id", sa_type=BigId)
    item_id: int = Field(foreign_key="conversion_item.id", sa_type=BigId)
    credits: Decimal = Field(sa_type=ExactDecimal)  # the item's credits (charged to each source)
    year: int
    created_at: dt.datetime = _ts()


class ExemptionStatement(SQLModel, table=True):
    """The signed exemption statement (学分认可型) issued for an approved exemption item, kept as issued."""

    __tablename__ = "exemption_statement"
    id: int | None = _id()
    item_id: int = Field(foreign_key="conversion_item.id", sa_type=BigId, unique=True)
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    document: dict = Field(default_factory=dict, sa_type=sa.JSON)
    # its bit in the node's revocation status list (shared with achievements); set when its item is voided
    status_index: int | None = Field(default=None, sa_type=sa.BigInteger)  # from the status_index counter
    revoked: bool = Field(default=False)
    created_at: dt.datetime = _ts()
