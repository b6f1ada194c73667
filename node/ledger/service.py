"""Appending ledger events, and reading what they say.

An event's published form (its *leaf*, `crypto.leaf`) is canonical JSON (RFC 8785) chained to the previous
event's hash; its hash is the RFC 9162 Merkle leaf hash of those bytes, so the hash chain and the Merkle log are
one structure (docs/ledger.md). Leaf version 2: an event is *private by default* — the leaf publishes only
its kind, time and a commitment to `{"data", "subject": the learner's pseudonym}` under a fresh random salt per
event; the salt and the committed body stay in the node's database (`ledger_event.salt`, `.opening`). Only an
event declared `public` (it concerns no person, e.g. an agreement in force) publishes its data.

Appenders lock the single `ledger_head` row (`FOR UPDATE` on PostgreSQL; SQLite transactions start
IMMEDIATE), so sequence numbers are gapless and the chain is linear even with several worker processes.
Events are inserted with one driver-level call (executemany / COPY), never through the ORM unit of work.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import urandom
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Session

from crypto.leaf import COMMITMENT_TAG, LEAF_VERSION, SALT_BYTES, opening_body, public_leaf
from crypto.merkle import CompactRange, node_hash
from node.models import Learner, LedgerEvent, LedgerHead, utcnow
from node.models.types import sqlite_datetime
from node.pgcopy import CHUNK, NULL, copy_statement, escape

__all__ = [
    "LEAF_VERSION",
    "EventRow",
    "EventSpec",
    "LedgerTip",
    "append_event_rows",
    "append_events",
    "event_data",
    "event_opening",
    "opened_view",
    "public_view",
]

_events = LedgerEvent.__table__
_head = LedgerHead.__table__


@dataclass(slots=True)
class EventSpec:
    """One event to append. `pseudonym`: the learner the event is about (required with `learner_id`); it is
    committed, never published. `public=True` publishes `data` in the leaf: only for events about no person.

    Treated as immutable, but not `frozen`: a frozen dataclass sets each field through `object.__setattr__`,
    three times the cost of building one — and bulk import builds one per deposited row."""

    kind: str
    data: dict[str, Any]
    learner_id: int | None = None
    pseudonym: str | None = None
    achievement_id: int | None = None
    at: dt.datetime | None = None
    public: bool = False

    def __post_init__(self) -> None:
        if self.learner_id is not None and self.pseudonym is None:
            raise ValueError(f"{self.kind}: an event about a learner needs their pseudonym (for its opening)")
        if self.public and (self.learner_id is not None or self.pseudonym is not None):
            raise ValueError(f"{self.kind}: an event about a learner is never public")


def event_data(event: Any) -> dict[str, Any]:
    """What an event says (`data`), from its private opening (v2) or from its leaf (v1, public v2): for the
    node's own use. `event` is a `LedgerEvent` or a row with `leaf` and `opening`."""
    if event.opening is not None:
        return json.loads(event.opening)["data"]
    return json.loads(event.leaf).get("data") or {}


def event_opening(event: Any, learner: Learner | None = None) -> dict[str, Any] | None:
    """The opening of `event` for a party entitled to it (`crypto.leaf.open_leaf` checks it): for a v2
    committed event its salt, pseudonym and data; for a v1 event about `learner`, the learner's own salt (which
    opens *every* v1 event of that learner: only for the learner themselves and staff) and pseudonym. None when
    there is nothing to open (a public event, an erased salt, or a v1 event without its learner)."""
    if event.salt is not None and event.opening is not None:
        return {"salt": bytes(event.salt).hex(), **json.loads(event.opening)}
    if learner is not None and event.learner_id == learner.id and json.loads(event.leaf).get("v") == 1:
        return {"salt": bytes(learner.leaf_salt).hex(), "subject": learner.pseudonym}
    return None


V1_WITHHELD = ("a version-1 leaf names the learner by one hash shared by all their v1 events: it is shown only "
               "to the learner (GET /api/v1/me/ledger/events/{seq}) and to staff; its hash still proves inclusion")


def public_view(event: LedgerEvent) -> dict[str, Any]:
    """What anyone may see of an event: its leaf (v2: nothing that identifies or links a person) and leaf hash.
    A v1 leaf about a learner is withheld (docs/ledger.md, "Nodes that ran version 1")."""
    leaf = json.loads(event.leaf)
    view: dict[str, Any] = {"seq": event.seq, "v": leaf.get("v"), "kind": event.kind, "leaf": event.leaf,
                            "leaf_hash": bytes(event.hash).hex()}
    if leaf.get("v") == 1 and ("subject" in leaf or event.learner_id is not None):
        view["leaf"] = None
        view["withheld"] = V1_WITHHELD
    return view


def opened_view(event: LedgerEvent, learner: Learner | None) -> dict[str, Any]:
    """An event with its leaf and its opening (`crypto.leaf.open_leaf(view["leaf"], view["opening"])` checks
    it): for the learner it is about, and for staff."""
    leaf = json.loads(event.leaf)
    return {"seq": event.seq, "v": leaf.get("v"), "kind": event.kind, "leaf": event.leaf,
            "leaf_hash": bytes(event.hash).hex(), "opening": event_opening(event, learner)}


@dataclass
class LedgerTip:
    size: int
    last_hash: bytes
    frontier: CompactRange = field(repr=False)

    @property
    def root(self) -> bytes:
        return self.frontier.root()


def lock_tip(session: Session) -> LedgerTip:
    # FOR UPDATE: PostgreSQL locks the row; SQLite ignores the clause, but it tells node.db that this read decides a
    # write, so a read-mode transaction takes the write lock before it (node/db.py)
    stmt = sa.select(_head.c.size, _head.c.last_hash, _head.c.frontier).where(_head.c.id == 1).with_for_update()
    row = session.execute(stmt).one()
    frontier = CompactRange.from_list([bytes.fromhex(h) for h in row.frontier], size=row.size)
    return LedgerTip(size=row.size, last_hash=bytes(row.last_hash), frontier=frontier)


_EVENT_COLUMNS = ("seq", "kind", "learner_id", "achievement_id", "leaf", "hash", "salt", "opening", "created_at")
_COPY_THRESHOLD = 64  # below this a plain INSERT beats setting up COPY


_PLAIN = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
# A v2 committed leaf, byte for byte what `crypto.leaf.committed_leaf` gives (RFC 8785: keys in code-unit order,
# no blanks): its values are an int and strings, and `at`, `kind` come JSON-encoded (orjson escapes strings as
# RFC 8785 does, `crypto.jcs`). tests/ledger checks the two agree.
_LEAF = b'{"at":%s,"commitment":"%s","kind":%s,"prev":"%s","seq":%d,"v":' + str(LEAF_VERSION).encode() + b"}"


def _plain_body(subject: str | None, data: dict[str, Any]) -> bytes:
    """`crypto.leaf.opening_body` for data the caller guarantees plain: str keys in ASCII, values str, int,
    bool, None, or dicts and lists of those — no float. For such values orjson's sorted output *is* RFC 8785,
    so the checks `crypto.jcs.canonicalize` makes on arbitrary values (float scans, astral keys: several times
    the cost of the encoding) are skipped. An int beyond 2**53 still raises (OPT_STRICT_INTEGER)."""
    return orjson.dumps({"data": data} if subject is None else {"data": data, "subject": subject}, option=_PLAIN)


def append_events(session: Session, specs: Sequence[EventSpec], *, plain_data: bool = False) -> list[int]:
    """Append events in order, in the caller's transaction; returns their sequence numbers.

    Leaves, hashes and the new frontier are computed in Python first; the rows then go to the database in one
    driver-level call (sqlite3 `executemany`; psycopg `COPY ... FROM STDIN` for large batches, `executemany`
    otherwise), because SQLAlchemy's per-row parameter processing cost more than the insert (bulk import
    appends one event per deposited row). Values are converted here as the column types would convert them;
    for COPY each row is written straight as one line of COPY text (`node.pgcopy`: ints, the leaf and the
    opening with their backslashes doubled, the hash and salt as bytea hex `\\x…`, the timestamp in ISO 8601),
    not through `write_row`. A committed event costs one more SHA-256 than a public one; the salts of a call are
    drawn from `os.urandom` at once. `plain_data=True`: every spec's data is plain (`_plain_body`), as bulk
    import's are — its openings skip the canonicalisation checks."""
    return append_event_rows(
        session, [(s.kind, s.data, s.learner_id, s.pseudonym, s.achievement_id, s.at, s.public) for s in specs],
        plain_data=plain_data,
    )


EventRow = tuple[str, dict[str, Any], "int | None", "str | None", "int | None", "dt.datetime | None", bool]
"""An event as a plain tuple, EventSpec's fields in order: (kind, data, learner_id, pseudonym, achievement_id, at,
public). Bulk import builds one per deposited row: a tuple costs a tenth of an `EventSpec`."""


def append_event_rows(session: Session, rows: Sequence[EventRow], *, plain_data: bool = False) -> list[int]:
    """`append_events` for events given as `EventRow` tuples, checked as `EventSpec` checks its fields."""
    if not rows:
        return []
    tip = lock_tip(session)
    now = utcnow()
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    created: Any = sqlite_datetime(now) if sqlite else now
    created_text = now.isoformat()
    default_at = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out: list[tuple[Any, ...]] = []
    lines: list[str] = []
    kinds: dict[str, str] = {}
    prev = tip.last_hash
    first = seq = tip.size
    frontier = tip.frontier.to_list()  # the Merkle frontier, carried below as crypto.merkle.CompactRange does
    salts = urandom(SALT_BYTES * len(rows))  # one draw from the OS for the call (a fresh salt per event)
    body_of = _plain_body if plain_data else opening_body
    sha256 = hashlib.sha256
    default_at_json = orjson.dumps(default_at)
    at_json: dict[str, bytes] = {}
    kind_json: dict[str, bytes] = {}
    with contextlib.ExitStack() as stack:
        copy = None
        if not sqlite and len(rows) >= _COPY_THRESHOLD:  # opened first: the server parses chunks as they come
            cursor = stack.enter_context(contextlib.closing(
                connection.connection.driver_connection.cursor()))  # type: ignore[union-attr]
            copy = stack.enter_context(cursor.copy(copy_statement("ledger_event", _EVENT_COLUMNS)))
        for k, (kind, data, learner_id, pseudonym, achievement_id, at, public) in enumerate(rows):
            if public:
                if learner_id is not None or pseudonym is not None:
                    raise ValueError(f"{kind}: an event about a learner is never public")
                salt = opening = None
                at = default_at if at is None else at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                leaf_bytes = public_leaf(seq=seq, prev=prev.hex(), at=at, kind=kind, data=data)
            else:  # a fresh salt per event: nothing in two leaves of one learner can be compared
                if learner_id is not None and pseudonym is None:
                    raise ValueError(f"{kind}: an event about a learner needs their pseudonym (for its opening)")
                salt = salts[k * SALT_BYTES : (k + 1) * SALT_BYTES]
                body = body_of(pseudonym, data)
                if at is None:
                    at_text = default_at_json
                else:
                    at = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    if (at_text := at_json.get(at)) is None:
                        at_text = at_json[at] = orjson.dumps(at)
                if (kind_text := kind_json.get(kind)) is None:
                    kind_text = kind_json[kind] = orjson.dumps(kind)
                # crypto.leaf.commitment: SHA-256(COMMITMENT_TAG || salt || body) (the salt is SALT_BYTES long)
                leaf_bytes = _LEAF % (at_text, sha256(COMMITMENT_TAG + salt + body).hexdigest().encode(), kind_text,
                                      prev.hex().encode(), seq)
                opening = body.decode("utf-8")
            digest = sha256(b"\x00" + leaf_bytes).digest()  # crypto.merkle.leaf_hash
            leaf_text = leaf_bytes.decode("utf-8")
            if copy is not None:  # COPY text; canonical JSON has no raw tab, newline or CR: double its backslashes
                if "\\" in leaf_text:
                    leaf_text = leaf_text.replace("\\", "\\\\")
                if opening is None:
                    opening_text, salt_text = NULL, NULL
                else:
                    opening_text = opening.replace("\\", "\\\\") if "\\" in opening else opening
                    salt_text = f"\\\\x{salt.hex()}"  # type: ignore[union-attr]
                if (kind_copy := kinds.get(kind)) is None:
                    kind_copy = kinds[kind] = escape(kind)
                learner = NULL if learner_id is None else int(learner_id)
                achievement = NULL if achievement_id is None else int(achievement_id)
                lines.append(f"{seq}\t{kind_copy}\t{learner}\t{achievement}\t{leaf_text}\t\\\\x{digest.hex()}\t"
                             f"{salt_text}\t{opening_text}\t{created_text}\n")
                if len(lines) >= CHUNK:
                    _write_lines(copy, lines)
            else:
                out.append((seq, kind, learner_id, achievement_id, leaf_text, digest, salt, opening, created))
            # CompactRange.append, inline (its checks and copies cost as much as the hashing): each trailing 1-bit
            # of the size before this leaf is a subtree of the same height as the carry, merged into it
            carry, size = digest, seq
            while size & 1:
                carry = node_hash(frontier.pop(), carry)
                size >>= 1
            frontier.append(carry)
            prev = digest
            seq += 1
        if copy is not None:
            _write_lines(copy, lines)
    if copy is None:
        _insert_rows(connection, out, sqlite=sqlite)
    session.execute(
        sa.update(_head)
        .where(_head.c.id == 1)
        .values(size=seq, last_hash=prev,
                frontier=[h.hex() for h in CompactRange.from_list(frontier, seq).to_list()])  # from_list checks it
    )
    return list(range(first, seq))


def _write_lines(copy: Any, lines: list[str]) -> None:
    text = "".join(lines)
    tabs = len(_EVENT_COLUMNS) - 1
    if text.count("\n") != len(lines) or text.count("\t") != tabs * len(lines):  # JSON guarantees it; cheap
        raise AssertionError("a ledger leaf holds a raw newline or tab")
    copy.write(text)
    lines.clear()


def _insert_rows(connection: sa.Connection, rows: list[tuple[Any, ...]], *, sqlite: bool) -> None:
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        markers = ", ".join(["?" if sqlite else "%s"] * len(_EVENT_COLUMNS))
        cursor.executemany(f"INSERT INTO ledger_event ({', '.join(_EVENT_COLUMNS)}) VALUES ({markers})", rows)
    finally:
        cursor.close()
