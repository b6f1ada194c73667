"""Tables for 双证融通 projects and recognition of prior learning (migration 0023, docs/projects.md).

A project (`dc_project`) is an institution's application for a dual-certificate project: the programme, the
certificate and level, the mode, the proposed rule bodies and evidence files. The centre assigns an expert panel
(`dc_project_panel`), each panel member votes once with a comment (`dc_project_vote`); publishing turns the proposed
rules into rule versions of the existing maker-checker (`standard_rule`), whose ids and versions the project keeps in
`rule_refs`. Signed lists of the exemptions granted under a project, as handed to the skills appraisal centre, are
kept as issued (`dc_exemption_report`).

An RPL application (`rpl_application`) is a learner's portfolio for informal or work-based learning (evidence files in
`rpl_evidence`), assessed by an assessor against a catalogue course, confirmed by the centre; the confirmed outcome is
an `achievement` (source `rpl`) whose ledger event names the application.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models import _id, _ts
from node.models.types import BigId, ExactDecimal, UtcDateTime

__all__ = [
    "DcExemptionReport",
    "DcProject",
    "DcProjectEvidence",
    "DcProjectPanel",
    "DcProjectVote",
    "RplApplication",
    "RplEvidence",
]


class DcProject(SQLModel, table=True):
    """draft → submitted → in_review (panel assigned) → recommended | not_recommended → activating (rule drafts
    made) → published ⇄ suspended (→ activating again on reinstatement) → ended; or rejected by the centre."""

    __tablename__ = "dc_project"
    __table_args__ = (sa.Index("ix_dc_project_state_id", "state", "id"),)
    id: int | None = _id()
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", sa_type=BigId, index=True)
    institution_code: str = Field(max_length=64)
    title: str = Field(max_length=300)
    programme_code: str = Field(max_length=64)
    certificate_code: str = Field(max_length=64)
    certificate_level: str = Field(max_length=20)
    mode: str = Field(max_length=30)
    discipline: str = Field(max_length=100)
    description: str = Field(default="", sa_type=sa.Text)
    proposed_rules: list = Field(default_factory=list, sa_type=sa.JSON)
    rule_refs: list = Field(default_factory=list, sa_type=sa.JSON)  # [{"id", "version"}] once published
    state: str = Field(max_length=20)
    applied_by: str = Field(max_length=64)
    published_by: str | None = Field(default=None, max_length=64)
    published_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    decision_reason: str | None = Field(default=None, max_length=1000)
    version: int = 1
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()


class DcProjectEvidence(SQLModel, table=True):
    __tablename__ = "dc_project_evidence"
    project_id: int = Field(foreign_key="dc_project.id", primary_key=True, sa_type=BigId)
    sha256: str = Field(foreign_key="evidence_file.sha256", primary_key=True, max_length=64)


class DcProjectPanel(SQLModel, table=True):
    """A member of a project's expert panel (a staff account holding the `expert` role)."""

    __tablename__ = "dc_project_panel"
    __table_args__ = (sa.UniqueConstraint("project_id", "staff_id"),)
    id: int | None = _id()
    project_id: int = Field(foreign_key="dc_project.id", sa_type=BigId, index=True)
    staff_id: int = Field(foreign_key="staff_account.id", sa_type=BigId, index=True)
    assigned_by: str = Field(max_length=64)
    created_at: dt.datetime = _ts()


class DcProjectVote(SQLModel, table=True):
    """A panel member's one vote on a project, with a comment."""

    __tablename__ = "dc_project_vote"
    __table_args__ = (sa.UniqueConstraint("project_id", "staff_id"),)
    id: int | None = _id()
    project_id: int = Field(foreign_key="dc_project.id", sa_type=BigId, index=True)
    staff_id: int = Field(foreign_key="staff_account.id", sa_type=BigId)
    vote: str = Field(max_length=10)  # approve | reject
    comment: str = Field(max_length=2000)
    created_at: dt.datetime = _ts()


class DcExemptionReport(SQLModel, table=True):
    """A signed list of the exemptions granted under a project, as handed to the skills appraisal centre."""

    __tablename__ = "dc_exemption_report"
    # a scheduled report is issued once per project and period (node.projects.schedule); on request: no period
    __table_args__ = (sa.UniqueConstraint("project_id", "period", name="uq_dc_exemption_report_project_id_period"),)
    id: int | None = _id()
    period: str | None = Field(default=None, max_length=16)  # e.g. "2026-11" (month), "2026-Q4", "2026-W49"
    project_id: int = Field(foreign_key="dc_project.id", sa_type=BigId, index=True)
    count: int
    document: dict = Field(default_factory=dict, sa_type=sa.JSON)
    created_by: str = Field(max_length=64)
    ledger_seq: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: dt.datetime = _ts()


class RplApplication(SQLModel, table=True):
    """draft → submitted → assessed → confirmed | rejected (the centre may also send it back: assessed →
    submitted)."""

    __tablename__ = "rpl_application"
    __table_args__ = (sa.Index("ix_rpl_application_state_id", "state", "id"),)
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    kind: str = Field(max_length=20)  # informal | work_based
    title: str = Field(max_length=200)
    description: str = Field(default="", sa_type=sa.Text)
    employer: str | None = Field(default=None, max_length=200)
    hours: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    started_on: dt.date | None = None
    ended_on: dt.date | None = None
    state: str = Field(max_length=20)
    programme_code: str | None = Field(default=None, max_length=64)  # the standard assessed against
    course_code: str | None = Field(default=None, max_length=64)
    assessor_id: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    assessed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    proposed_credits: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    assessment: str | None = Field(default=None, max_length=2000)
    decided_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    decided_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    decision_reason: str | None = Field(default=None, max_length=1000)
    achievement_id: int | None = Field(default=None, foreign_key="achievement.id", sa_type=BigId)
    ledger_seq: int | None = Field(default=None, sa_type=sa.BigInteger)
    version: int = 1
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()


class RplEvidence(SQLModel, table=True):
    __tablename__ = "rpl_evidence"
    application_id: int = Field(foreign_key="rpl_application.id", primary_key=True, sa_type=BigId)
    sha256: str = Field(foreign_key="evidence_file.sha256", primary_key=True, max_length=64)
