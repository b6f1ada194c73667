from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

__all__ = ["LearnerCreate", "LearnerPublic", "LearnerRegister"]


class LearnerCreate(BaseModel):
    id_type: str = Field(default="resident_id", examples=["resident_id"])
    id_number: str = Field(min_length=1, max_length=40, repr=False)
    name: str = Field(min_length=1, max_length=100)
    password: str | None = Field(default=None, min_length=8, max_length=200, repr=False)


class LearnerRegister(LearnerCreate):
    password: str = Field(min_length=8, max_length=200, repr=False)


class LearnerPublic(BaseModel):
    id: int
    account_no: str
    id_type: str
    id_number_masked: str
    name: str
    pseudonym: str
    created_at: dt.datetime
