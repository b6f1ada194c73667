"""Achievements and deposit applications as the API reads and writes them.

Credits, hours and numeric scores are exact decimals: accepted as strings (or integers), at most three decimal
places, and always written back as strings.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, WithJsonSchema, model_validator

from node.evidence.schemas import EvidencePublic
from node.models.types import Int32, Int64

__all__ = [
    "ACHIEVEMENT_TYPES",
    "CERTIFICATE_LEVELS",
    "EARLIEST_EARNED_ON",
    "GRADE_WORDS",
    "AchievementCorrection",
    "AchievementCreate",
    "AchievementPublic",
    "AppealCreate",
    "ApplicationCreate",
    "ApplicationPublic",
    "ApplicationRoute",
    "ApplicationStaffCreate",
    "ApplicationStaffView",
    "CorrectionPublic",
    "ExactDec",
    "ReviewDecision",
    "SubmitRequest",
    "dec_str",
]

AchievementType = Literal[
    "degree_course", "self_study_course", "vocational_qualification", "skill_level", "training", "community",
    "informal", "university_course_certificate", "cultural_leisure",
]
ACHIEVEMENT_TYPES: tuple[str, ...] = AchievementType.__args__  # type: ignore[attr-defined]
CERTIFICATE_TYPES = frozenset({"vocational_qualification", "skill_level"})
COURSE_TYPES = frozenset({"degree_course", "self_study_course"})
# 五级 (entry) … 一级 (highest), as on vocational qualification and skill-level certificates, and the names older
# certificates print instead (初级 = 五级 … 高级技师 = 一级); a level is stored as printed and mapped to the
# framework through the level map (node.rules.levels, docs/projects.md "Catalogue completeness").
CERTIFICATE_LEVELS: tuple[str, ...] = ("五级", "四级", "三级", "二级", "一级", "初级", "中级", "高级", "技师", "高级技师")
GRADE_WORDS: tuple[str, ...] = ("优", "良", "中", "及格", "合格")
_MAX_DECIMAL = Decimal(9999999)
# The earliest date an outcome can carry, for individual deposits and bulk imports alike (one rule).
EARLIEST_EARNED_ON = dt.date(1950, 1, 1)


def dec_str(value: Decimal | None) -> str | None:
    """A decimal as the API writes it: plain notation, no exponent, no trailing zeros ("3", "2.5")."""
    return None if value is None else format(value.normalize(), "f")


def _exact(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("give decimals as strings (e.g. \"2.5\"), not binary floating-point numbers")
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("not a decimal number") from None
    if not d.is_finite():
        raise ValueError("not a finite decimal number")
    if d < 0:
        raise ValueError("must not be negative")
    if d > _MAX_DECIMAL:
        raise ValueError("too large")
    if d != d.quantize(Decimal("0.001")):
        raise ValueError("at most three decimal places")
    return d if d else Decimal(0)  # "-0" and "0.000" are 0


_DECIMAL_TEXT = {"type": "string", "pattern": r"^\d{1,7}(\.\d{1,3})?$"}
ExactDec = Annotated[
    Decimal | None,
    BeforeValidator(_exact),
    PlainSerializer(dec_str, return_type=str | None, when_used="always"),
    # documented as what it is: a decimal string (or, in requests, an integer), or null
    WithJsonSchema({"anyOf": [_DECIMAL_TEXT, {"type": "integer", "minimum": 0, "maximum": int(_MAX_DECIMAL)},
                              {"type": "null"}]}, mode="validation"),
    WithJsonSchema({"anyOf": [_DECIMAL_TEXT, {"type": "null"}]}, mode="serialization"),
]


def score_value(score: str | None) -> Decimal | None:
    """The numeric value of a score, or None for a grade word."""
    if score is None or score in GRADE_WORDS:
        return None
    return _exact(score)


class AchievementClaim(BaseModel):
    """The fields of a proposed achievement (as stored in an application), without the per-type rules."""

    type: AchievementType
    issuer_code: str = Field(min_length=1, max_length=32)
    issuer_name: str = Field(default="", max_length=200)
    code: str = Field(default="", max_length=64,
                      description="catalogue code: the course code, or the certificate's code in the catalogue "
                                  "(e.g. VQ.CNC_MILLING) — what conversion rules match")
    certificate_no: str | None = Field(default=None, max_length=64,
                                       description="a certificate's own serial number (certificates only)")
    title: str = Field(min_length=1, max_length=200)
    credits: ExactDec = None
    hours: ExactDec = None
    score: str | None = Field(default=None, max_length=20, description="a number or 优/良/中/及格/合格")
    level: str | None = Field(default=None, max_length=20)
    earned_on: dt.date | None = None
    expires_on: dt.date | None = None


def _check_rules(m: AchievementClaim) -> None:
    """The per-type rules of an achievement (shared by new deposits and corrections)."""
    if m.score is not None:
        m.score = m.score.strip()
        if m.score not in GRADE_WORDS:
            try:
                value = _exact(m.score)
            except ValueError as exc:
                raise ValueError(f"score must be a number or one of {'/'.join(GRADE_WORDS)}: {exc}") from None
            if value is None or value > 100:
                raise ValueError("a numeric score is on the 100-point scale (0–100)")
            m.score = dec_str(value)
    if m.type in COURSE_TYPES:
        if m.credits is None:
            raise ValueError(f"a {m.type} needs credits")
        if m.score is None:
            raise ValueError(f"a {m.type} needs a score")
    if m.type in CERTIFICATE_TYPES and m.level not in CERTIFICATE_LEVELS:
        raise ValueError(f"a certificate needs a level, one of {', '.join(CERTIFICATE_LEVELS)}")
    if m.certificate_no is not None:
        m.certificate_no = m.certificate_no.strip() or None
        if m.certificate_no is not None and m.type not in CERTIFICATE_TYPES:
            raise ValueError("only a certificate has a certificate number")
    if m.type == "training" and not m.hours:
        raise ValueError("a training outcome needs its hours")
    if m.type in ("community", "cultural_leisure") and m.hours is None and m.credits is None:
        raise ValueError(f"a {m.type} outcome needs hours or credits")
    if m.type == "university_course_certificate" and m.credits is None:
        raise ValueError("a university course certificate (大学课程证书) needs its credits")
    if m.earned_on is not None:
        if m.earned_on > dt.date.today():
            raise ValueError("earned_on lies in the future")
        if m.earned_on < EARLIEST_EARNED_ON:
            raise ValueError(f"earned_on must lie between {EARLIEST_EARNED_ON} and today")
        if m.expires_on is not None and m.expires_on < m.earned_on:
            raise ValueError("expires_on is before earned_on")


class AchievementCreate(AchievementClaim):
    """A learning outcome as proposed for deposit, validated per type."""

    earned_on: dt.date

    @model_validator(mode="after")
    def _per_type(self) -> AchievementCreate:
        _check_rules(self)
        return self


class AchievementRecord(AchievementClaim):
    """A deposited achievement's fields after a correction, validated per type (bulk rows may lack a date)."""

    @model_validator(mode="after")
    def _per_type(self) -> AchievementRecord:
        _check_rules(self)
        return self


class AchievementPublic(BaseModel):
    id: int
    type: str
    issuer_code: str
    issuer_name: str
    code: str
    title: str
    credits: ExactDec = None
    hours: ExactDec = None
    score: str | None = None
    level: str | None = None
    certificate_no: str | None = None
    earned_on: dt.date | None = None
    term: str | None = None
    expires_on: dt.date | None = None
    source: str
    status: str
    application_id: int | None = None
    created_at: dt.datetime


class AchievementCorrection(BaseModel):
    """Fields to correct on a deposited achievement; those left out keep their value."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    code: str | None = Field(default=None, max_length=64)
    credits: ExactDec = None
    hours: ExactDec = None
    score: str | None = Field(default=None, max_length=20)
    level: str | None = Field(default=None, max_length=20)
    earned_on: dt.date | None = None
    expires_on: dt.date | None = None
    reason: str | None = Field(default=None, max_length=1000)


class CorrectionPublic(BaseModel):
    achievement: AchievementPublic
    old: dict
    new: dict
    ledger_seq: int


class ApplicationCreate(BaseModel):
    achievement: AchievementCreate
    branch_code: str | None = Field(
        default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$",
        description="the branch (区县分部) to review it (GET /api/v1/service-points); default: the branch of the "
                    "outlet applying for the learner, else the learner's home branch, else the centre",
    )


class ApplicationStaffCreate(ApplicationCreate):
    learner_id: Int64


class ApplicationRoute(BaseModel):
    branch_code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$",
                             description="an active branch, or the centre's code for its own queue")
    version: Int32


class SubmitRequest(BaseModel):
    version: Int32


class ReviewDecision(BaseModel):
    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=1000)
    version: Int32


class AppealCreate(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)
    version: Int32


class ApplicationPublic(BaseModel):
    """What the learner sees of their own application: state, decisions and reasons (not who decided)."""

    id: int
    state: str
    version: int
    branch_code: str | None = Field(default=None, description="the branch reviewing it; null: the centre")
    achievement: AchievementClaim
    evidence: list[EvidencePublic]
    submitted_on_behalf: bool
    first_decision: str | None = None
    first_reason: str | None = None
    second_decision: str | None = None
    second_reason: str | None = None
    appeal_reason: str | None = None
    appealed_at: dt.datetime | None = None
    appeal_stage: str | None = None
    appeal_decision: str | None = None
    appeal_decision_reason: str | None = None
    achievement_id: int | None = None
    created_at: dt.datetime
    submitted_at: dt.datetime | None = None
    updated_at: dt.datetime


class ApplicationStaffView(ApplicationPublic):
    learner_id: int
    learner_account_no: str
    learner_id_number_masked: str
    submitted_by_staff_id: int | None = None
    first_reviewer_id: int | None = None
    second_reviewer_id: int | None = None
    appeal_reviewer_id: int | None = None


__all__ += ["AchievementClaim", "AchievementRecord", "AchievementType", "score_value"]
