"""Appending ledger events.

An event's published form (its *leaf*) is canonical JSON (RFC 8785) with personal data replaced by a salted
hash of the learner's pseudonym, and carries the previous event's hash; its hash is the RFC 9162 Merkle leaf
hash of those bytes. So the hash chain and the Merkle log are one structure (docs/ledger.md).

Appenders lock the single `ledger_head` row (`FOR UPDATE` on PostgreSQL; SQLite transactions start
IMMEDIATE), so sequence numbers are gapless and the chain is linear even with several worker processes.
Events are inserted with one driver-level call (executemany / COPY), never through the ORM unit of work.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from crypto.jcs import canonicalize
from crypto.merkle import CompactRange, leaf_hash
from node.models import LedgerEvent, LedgerHead, utcnow
from node.models.types import sqlite_datetime
from node.pgcopy import CHUNK, NULL, copy_statement, escape

__all__ = ["LEAF_VERSION", "EventSpec", "LedgerTip", "append_events", "subject_hash"]

LEAF_VERSION = 1
_events = LedgerEvent.__table__
_head = LedgerHead.__table__


def subject_hash(leaf_salt: bytes, pseudonym: str) -> str:
    """The learner as a ledger leaf shows them: unlinkable without the node's per-learner salt."""
    return hashlib.sha256(leaf_salt + pseudonym.encode()).hexdigest()


@dataclass(frozen=True)
class EventSpec:
    kind: str
    data: dict[str, Any]
    learner_id: int | None = None
    subject: str | None = None  # subject_hash(...) of the learner, when the event concerns one
    achievement_id: int | None = None
    at: dt.datetime | None = None


@dataclass
class LedgerTip:
    size: int
    last_hash: bytes
    frontier: CompactRange = field(repr=False)

    @property
    def root(self) -> bytes:
        return self.frontier.root()


def lock_tip(session: Session) -> LedgerTip:
    stmt = sa.select(_head.c.size, _head.c.last_hash, _head.c.frontier).where(_head.c.id == 1)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = session.execute(stmt).one()
    frontier = CompactRange.from_list([bytes.fromhex(h) for h in row.frontier], size=row.size)
    return LedgerTip(size=row.size, last_hash=bytes(row.last_hash), frontier=frontier)


_EVENT_COLUMNS = ("seq", "kind", "learner_id", "achievement_id", "leaf", "hash", "created_at")
_COPY_THRESHOLD = 64  # below this a plain INSERT beats setting up COPY


def append_events(session: Session, specs: Sequence[EventSpec]) -> list[int]:
    """Append events in order, in the caller's transaction; returns their sequence numbers.

    Leaves, hashes and the new frontier are computed in Python first; the rows then go to the database in one
    driver-level call (sqlite3 `executemany`; psycopg `COPY ... FROM STDIN` for large batches, `executemany`
    otherwise), because SQLAlchemy's per-row parameter processing cost more than the insert (bulk import
    appends one event per deposited row). Values are converted here as the column types would convert them;
    for COPY each row is written straight as one line of COPY text (`node.pgcopy`: ints, the leaf with its
    backslashes doubled, the hash as bytea hex `\\x…`, the timestamp in ISO 8601), not through `write_row`."""
    if not specs:
        return []
    tip = lock_tip(session)
    now = utcnow()
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    created: Any = sqlite_datetime(now) if sqlite else now
    created_text = now.isoformat()
    default_at = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows: list[tuple[Any, ...]] = []
    lines: list[str] = []
    kinds: dict[str, str] = {}
    prev = tip.last_hash
    first = seq = tip.size
    append = tip.frontier.append
    with contextlib.ExitStack() as stack:
        copy = None
        if not sqlite and len(specs) >= _COPY_THRESHOLD:  # opened first: the server parses chunks as they come
            cursor = stack.enter_context(contextlib.closing(
                connection.connection.driver_connection.cursor()))  # type: ignore[union-attr]
            copy = stack.enter_context(cursor.copy(copy_statement("ledger_event", _EVENT_COLUMNS)))
        for spec in specs:
            at = default_at if spec.at is None else spec.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            leaf = {"v": LEAF_VERSION, "seq": seq, "prev": prev.hex(), "at": at, "kind": spec.kind,
                    "data": spec.data}
            if spec.subject is not None:
                leaf["subject"] = spec.subject
            leaf_bytes = canonicalize(leaf)
            digest = leaf_hash(leaf_bytes)
            leaf_text = leaf_bytes.decode("utf-8")
            if copy is not None:  # COPY text; canonical JSON has no raw tab, newline or CR: double its backslashes
                if "\\" in leaf_text:
                    leaf_text = leaf_text.replace("\\", "\\\\")
                kind = kinds.get(spec.kind)
                if kind is None:
                    kind = kinds[spec.kind] = escape(spec.kind)
                learner = NULL if spec.learner_id is None else int(spec.learner_id)
                achievement = NULL if spec.achievement_id is None else int(spec.achievement_id)
                lines.append(f"{seq}\t{kind}\t{learner}\t{achievement}\t{leaf_text}\t\\\\x{digest.hex()}\t"
                             f"{created_text}\n")
                if len(lines) >= CHUNK:
                    _write_lines(copy, lines)
            else:
                rows.append((seq, spec.kind, spec.learner_id, spec.achievement_id, leaf_text, digest, created))
            append(digest)
            prev = digest
            seq += 1
        if copy is not None:
            _write_lines(copy, lines)
    if copy is None:
        _insert_rows(connection, rows, sqlite=sqlite)
    session.execute(
        sa.update(_head)
        .where(_head.c.id == 1)
        .values(size=seq, last_hash=prev, frontier=[h.hex() for h in tip.frontier.to_list()])
    )
    return list(range(first, seq))


def _write_lines(copy: Any, lines: list[str]) -> None:
    text = "".join(lines)
    if text.count("\n") != len(lines) or text.count("\t") != 6 * len(lines):  # JSON guarantees it; cheap
        raise AssertionError("a ledger leaf holds a raw newline or tab")
    copy.write(text)
    lines.clear()


def _insert_rows(connection: sa.Connection, rows: list[tuple[Any, ...]], *, sqlite: bool) -> None:
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        marker = "?" if sqlite else "%s"
        cursor.executemany(
            f"INSERT INTO ledger_event ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join([marker] * 7)})", rows
        )
    finally:
        cursor.close()
