"""Tables for checkpoint witnessing (cosignatures of peers' checkpoints) (migration 0009). See docs/ledger.md.

* `witness_peer`: per peer, the last checkpoint this node verified and cosigned (the base of the next
  consistency check). Witness workers claim a peer's row (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
* `witness_cosignature`: every peer checkpoint this node cosigned, with the peer's note as fetched.
* `checkpoint_cosignature`: cosignatures peers sent for this node's own checkpoints (served appended).
* `witness_alert`: a peer checkpoint inconsistent with what this node witnessed before, with the evidence.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models import _id, _ts
from node.models.types import UtcDateTime

__all__ = ["CheckpointCosignature", "WitnessAlert", "WitnessCosignature", "WitnessPeer"]


class WitnessPeer(SQLModel, table=True):
    __tablename__ = "witness_peer"
    peer_id: str = Field(primary_key=True, max_length=64)
    size: int | None = Field(default=None, sa_type=sa.BigInteger)
    root_hash: bytes | None = Field(default=None, sa_type=sa.LargeBinary(32))
    note: str | None = Field(default=None, sa_type=sa.Text)
    checked_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    last_result: str | None = Field(default=None, max_length=40)


class WitnessCosignature(SQLModel, table=True):
    __tablename__ = "witness_cosignature"
    __table_args__ = (sa.UniqueConstraint("peer_id", "size"),)
    id: int | None = _id()
    peer_id: str = Field(max_length=64)
    size: int = Field(sa_type=sa.BigInteger)
    root_hash: bytes = Field(sa_type=sa.LargeBinary(32))
    note: str = Field(sa_type=sa.Text)
    cosignature: str = Field(sa_type=sa.Text)
    created_at: dt.datetime = _ts()


class CheckpointCosignature(SQLModel, table=True):
    __tablename__ = "checkpoint_cosignature"
    __table_args__ = (sa.UniqueConstraint("checkpoint_size", "witness_id"),)
    id: int | None = _id()
    checkpoint_size: int = Field(sa_type=sa.BigInteger)
    root_hash: bytes = Field(sa_type=sa.LargeBinary(32))
    witness_id: str = Field(max_length=64)
    witness_name: str = Field(max_length=255)
    line: str = Field(sa_type=sa.Text)
    received_at: dt.datetime = _ts()


class WitnessAlert(SQLModel, table=True):
    __tablename__ = "witness_alert"
    __table_args__ = (sa.UniqueConstraint("peer_id", "seen_size", "seen_root_hash"),)
    id: int | None = _id()
    peer_id: str = Field(max_length=64, index=True)
    reason: str = Field(max_length=40)
    known_size: int | None = Field(default=None, sa_type=sa.BigInteger)
    known_root_hash: bytes | None = Field(default=None, sa_type=sa.LargeBinary(32))
    seen_size: int = Field(sa_type=sa.BigInteger)
    seen_root_hash: bytes = Field(sa_type=sa.LargeBinary(32))
    evidence: dict = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: dt.datetime = _ts()
