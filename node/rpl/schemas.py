"""Request and response shapes of the RPL API."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from node.deposits.schemas import EARLIEST_EARNED_ON, ExactDec
from node.models.types import Int32

__all__ = ["Assessment", "Decision", "RplCreate", "RplPublic", "VersionOnly"]


class RplCreate(BaseModel):
    kind: Literal["informal", "work_based"]
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=10000)
    employer: str | None = Field(default=None, max_length=200)
    hours: ExactDec = None
    started_on: dt.date | None = None
    ended_on: dt.date | None = None

    @model_validator(mode="after")
    def _dates(self) -> RplCreate:
        for day in (self.started_on, self.ended_on):
            if day is not None and not (EARLIEST_EARNED_ON <= day <= dt.date.today()):
                raise ValueError(f"dates lie between {EARLIEST_EARNED_ON} and today")
        if self.started_on and self.ended_on and self.ended_on < self.started_on:
            raise ValueError("ended_on is before started_on")
        if self.kind == "work_based" and not (self.employer or "").strip():
            raise ValueError("work-based learning names the workplace (employer)")
        return self


class VersionOnly(BaseModel):
    version: Int32


class Assessment(BaseModel):
    programme: str = Field(min_length=1, max_length=64)
    course: str = Field(min_length=1, max_length=64)
    credits: ExactDec
    comment: str = Field(min_length=1, max_length=2000)
    version: Int32


class Decision(BaseModel):
    decision: Literal["confirm", "reject", "reassess"]
    reason: str | None = Field(default=None, max_length=1000)
    version: Int32


class EvidenceView(BaseModel):
    sha256: str
    size: int
    content_type: str
    original_name: str


class RplPublic(BaseModel):
    id: int
    learner_id: int
    kind: str
    title: str
    description: str
    employer: str | None
    hours: ExactDec
    started_on: dt.date | None
    ended_on: dt.date | None
    state: str
    programme: str | None
    course: str | None
    proposed_credits: ExactDec
    assessment: str | None
    decision_reason: str | None
    achievement_id: int | None
    ledger_seq: int | None
    evidence: list[EvidenceView]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
