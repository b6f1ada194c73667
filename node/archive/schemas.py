from __future__ import annotations

from pydantic import BaseModel

from node.deposits.schemas import AchievementPublic, ExactDec
from node.learners.schemas import LearnerPublic

__all__ = ["ArchiveGroup", "ArchivePublic", "Totals"]


class Totals(BaseModel):
    count: int
    credits: ExactDec
    hours: ExactDec


class ArchiveGroup(BaseModel):
    key: str
    name_zh: str
    name_en: str
    types: list[str]
    totals: Totals
    items: list[AchievementPublic]


class ArchivePublic(BaseModel):
    learner: LearnerPublic  # the ID number appears masked only
    groups: list[ArchiveGroup]
    totals: Totals
