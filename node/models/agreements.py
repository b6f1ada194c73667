"""Tables for mutual-recognition agreements (migration 0007).

One row per agreement version, keyed by its hash (sha256 of the JCS of the document without `proof`). The stored
`document` carries the proof set collected so far; `complete` is set once every party's proof is present and verifies.
Counter-proposals and amendments are new rows chained by `previous`; the whole history stays.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models import _ts

__all__ = ["AgreementVersion"]


class AgreementVersion(SQLModel, table=True):
    __tablename__ = "agreement_version"
    hash: str = Field(primary_key=True, max_length=64)
    agreement: str = Field(max_length=200, index=True)
    version: int = Field(sa_type=sa.BigInteger)
    previous: str | None = Field(default=None, max_length=64)
    proposer: str = Field(max_length=64)
    status: str = Field(max_length=20)  # the intended state of this version: active | suspended | terminated
    complete: bool = Field(default=False)  # every party's proof present and verified
    document: dict = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()
