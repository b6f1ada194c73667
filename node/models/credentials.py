"""Tables of `node/credentials/`: printed transcripts, kept so their QR link can be checked."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models.types import BigId

__all__ = ["IssuedTranscript"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class IssuedTranscript(SQLModel, table=True):
    """A transcript PDF (成绩证明) handed to a learner: its signed presentation, found by the random token its QR
    code and short URL carry (`GET /verify/{token}` re-verifies it: signatures, and revocation *now*)."""

    __tablename__ = "issued_transcript"
    token: str = Field(max_length=32, primary_key=True)
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    document: dict[str, Any] = Field(sa_type=sa.JSON)
    document_hash: str = Field(max_length=64)
    created_at: dt.datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))
