"""Request and response shapes of the project API."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from node.models.types import Int32, Int64

__all__ = ["MODES", "PROJECT_STATES", "PanelAssign", "ProjectCreate", "ProjectPublic", "Reason", "VersionOnly", "VoteCreate"]

# The four 双证融通 modes the rule language expresses (docs/rules.md §1)
MODES = ("credit_recognition", "certificate_recognition", "course_restructuring", "through_train")
PROJECT_STATES = ("draft", "submitted", "in_review", "recommended", "not_recommended", "activating", "published",
                  "suspended", "ended", "rejected")
Mode = Literal["credit_recognition", "certificate_recognition", "course_restructuring", "through_train"]


class ProjectCreate(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    programme: str = Field(min_length=1, max_length=64)
    certificate: str = Field(min_length=1, max_length=64)
    level: str = Field(min_length=1, max_length=20)
    mode: Mode
    discipline: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=10000)
    rules: list[dict[str, Any]] = Field(min_length=1, max_length=20)


class VersionOnly(BaseModel):
    version: Int32


class PanelAssign(BaseModel):
    experts: list[Int64] = Field(min_length=1, max_length=15)
    version: Int32


class VoteCreate(BaseModel):
    vote: Literal["approve", "reject"]
    comment: str = Field(min_length=1, max_length=2000)


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)
    version: Int32


class EvidenceView(BaseModel):
    sha256: str
    size: int
    content_type: str
    original_name: str


class VoteView(BaseModel):
    expert: int
    vote: str
    comment: str
    at: dt.datetime


class ProjectPublic(BaseModel):
    id: int
    institution_code: str
    title: str
    programme: str
    certificate: str
    level: str
    mode: str
    discipline: str
    description: str
    rules: list[dict[str, Any]]
    rule_refs: list[dict[str, Any]]
    state: str
    decision_reason: str | None
    panel: list[int]
    votes: list[VoteView]
    evidence: list[EvidenceView]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    published_at: dt.datetime | None
