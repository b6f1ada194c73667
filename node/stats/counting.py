"""The claimed incremental job over the ledger: counts every event once, in seq order, into the summary
counters (docs/statistics.md).

Why it is exact: appenders hold the `ledger_head` row lock until they commit, so sequence numbers become visible
in order and without gaps — once the job has read seq n, no event below n can appear later. The job locks its
`stats_state` row (`FOR UPDATE SKIP LOCKED`: a second worker skips the tick) and advances the high-water mark in
the same transaction as the counters it adds, so a crash loses nothing and counts nothing twice. Bulk import and
every other writer need no change: whatever appends ledger events is counted.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from node.db import session_scope
from node.models import Achievement, ConversionRequest, LedgerEvent, StandardRule, utcnow
from node.stats import repository as repo
from node.stats.metrics import DUAL_CERT_MODES, LEDGER_METRICS, REPORT_TZ

__all__ = ["STATE", "backfill", "count_events", "refresh"]

STATE = "ledger"
CHUNK = 20_000
_events = LedgerEvent.__table__
_ach = Achievement.__table__

# kinds whose data the job reads (the opening is parsed only for these)
_DATA_KINDS = frozenset({
    "learner.opened", "achievement.deposited", "achievement.recognised", "achievement.revoked",
    "conversion.approved", "conversion.revoked", "transfer.verified", "transfer.rejected", "consent.released",
    "transfer.receipt", "achievement.corrected",
})
# the events that count an achievement in `achievements.deposited` (its first such event is where it was counted)
_DEPOSITING_KINDS = ("achievement.deposited", "achievement.recognised", "conversion.approved")


@functools.lru_cache(maxsize=4096)
def _thousandths(value: Any) -> int:
    if value in (None, ""):
        return 0
    try:
        return int(Decimal(str(value)) * 1000)
    except (InvalidOperation, ValueError):
        return 0


def _leaf_at(leaf_text: str) -> tuple[str, dict | None]:
    """The leaf's `at`, and the parsed leaf when it had to be parsed."""
    # a v2 leaf is RFC 8785 JSON: "at" is its first key, so the time is read without parsing the leaf
    if leaf_text.startswith('{"at":"') and leaf_text[27:29] == '",':
        return leaf_text[7:27], None
    leaf = orjson.loads(leaf_text)
    return leaf.get("at") or "", leaf


def _local_day(at: str) -> dt.date:
    when = dt.datetime.fromisoformat(at) if at else utcnow()
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(REPORT_TZ).date()


def _event_data(leaf_text: str, opening: str | None) -> dict:
    if opening is not None:
        return orjson.loads(opening)["data"]
    return orjson.loads(leaf_text).get("data") or {}


class _Counts:
    def __init__(self) -> None:
        self.deltas: dict[repo.Key, list[int]] = defaultdict(lambda: [0, 0])
        self.active: set[tuple[int, dt.date]] = set()

    def add(self, metric: str, day: dt.date, d1: Any = "", d2: Any = "", d3: Any = "", *, count: int = 1,
            amount: int = 0) -> None:
        row = self.deltas[(metric, day, str(d1 or ""), str(d2 or ""), str(d3 or ""))]
        row[0] += count
        row[1] += amount


def count_events(session: Session, rows: list[Any]) -> _Counts:
    """The counter deltas and active (learner, month) pairs of ledger event rows (seq, kind, learner_id,
    achievement_id, leaf, opening)."""
    counts = _Counts()
    days: dict[str, tuple[dt.date, dt.date]] = {}  # the leaf's `at` -> (local day, its month)
    parsed: list[tuple[Any, dt.date, dict]] = []
    active = counts.active
    deltas = counts.deltas
    loads = orjson.loads
    for row in rows:
        seq, kind, learner_id, _achievement_id, leaf_text, opening = row
        at, leaf = _leaf_at(leaf_text)
        cached = days.get(at)
        if cached is None:
            day = _local_day(at)
            cached = days[at] = (day, day.replace(day=1))
        day, month = cached
        if learner_id is not None:
            active.add((learner_id, month))
        if kind not in _DATA_KINDS:
            continue
        if opening is not None:
            data = loads(opening)["data"]
        else:
            data = (leaf if leaf is not None else loads(leaf_text)).get("data") or {}
        if kind == "achievement.deposited":  # the bulk of the ledger: counted here, without a second pass
            key = ("achievements.deposited", day, str(data.get("type") or ""), str(data.get("source") or ""),
                   str(data.get("issuer") or ""))
            cell = deltas[key]
            cell[0] += 1
            credits = data.get("credits")
            if credits:
                cell[1] += _thousandths(credits)
            continue
        parsed.append((row, day, data))
    wanted = {d.get("achievement") for r, _, d in parsed
              if r.kind in ("achievement.recognised", "achievement.revoked", "conversion.approved")}
    wanted.discard(None)
    achievements = {a.id: a for a in session.execute(
        sa.select(_ach.c.id, _ach.c.type, _ach.c.source, _ach.c.issuer_code, _ach.c.credits)
        .where(_ach.c.id.in_(sorted(wanted))))} if wanted else {}
    requests = {d.get("request") for r, _, d in parsed if r.kind == "conversion.revoked"}
    requests.discard(None)
    programmes = dict(session.execute(sa.select(ConversionRequest.id, ConversionRequest.programme_code)
                                      .where(ConversionRequest.id.in_(sorted(requests)))).all()) if requests else {}
    modes: dict[tuple[str, int], str | None] = {}

    def mode_of(rule: dict) -> str | None:
        key = (str(rule.get("id")), int(rule.get("version") or 0))
        if key not in modes:
            body = session.execute(sa.select(StandardRule.body).where(
                StandardRule.rule_id == key[0], StandardRule.version == key[1])).scalar()
            modes[key] = (body or {}).get("mode") if isinstance(body, dict) else None
        return modes[key]

    counted_as = _counted_as(session, {d.get("achievement") for r, _, d in parsed
                                       if r.kind == "achievement.corrected" and _credit_change(d)})

    for row, day, data in parsed:
        kind = row.kind
        if kind == "achievement.corrected":
            change = _credit_change(data)
            where = counted_as.get(data.get("achievement"))
            if change and where is not None:  # moves the credits where the achievement was counted
                counts.add("achievements.deposited", where[0], *where[1:], count=0, amount=change)
        elif kind == "learner.opened":
            counts.add("accounts.opened", day, data.get("id_type"))
        elif kind == "achievement.recognised":
            a = achievements.get(data.get("achievement"))
            credits = _thousandths(data.get("credits"))
            counts.add("transfers.in.recognised", day, data.get("origin"), amount=credits)
            if a is not None:  # the credits recognised, not the row's now (a correction counts on its own)
                counts.add("achievements.deposited", day, a.type, a.source, a.issuer_code, amount=credits)
        elif kind == "achievement.revoked":
            a = achievements.get(data.get("achievement"))
            if a is not None:
                counts.add("achievements.revoked", day, a.type, a.source, a.issuer_code,
                           amount=int((a.credits or 0) * 1000))
        elif kind == "conversion.approved":
            rule = data.get("rule") or {}
            target_kind = str(data.get("target") or "").split(":", 1)[0]
            credits = _thousandths(data.get("credits"))
            counts.add("conversions.approved", day, data.get("programme"), rule.get("id"), target_kind,
                       amount=credits)
            mode = mode_of(rule)
            if mode in DUAL_CERT_MODES:
                counts.add("dualcert.approved", day, mode, rule.get("id"), target_kind, amount=credits)
            a = achievements.get(data.get("achievement"))
            if a is not None:
                counts.add("achievements.deposited", day, a.type, a.source, a.issuer_code, amount=credits)
        elif kind == "conversion.revoked":
            rule = data.get("rule") or {}
            counts.add("conversions.revoked", day, programmes.get(data.get("request"), ""), rule.get("id"),
                       str(data.get("target") or "").split(":", 1)[0])
        elif kind == "transfer.verified":
            origin = data.get("origin")
            counts.add("transfers.in.requested", day, origin)
            refused = sum(1 for c in data.get("credentials") or []
                          if c.get("state") not in ("recognised", "awaiting_review"))
            if refused:
                counts.add("transfers.in.not_recognised", day, origin, count=refused)
        elif kind == "transfer.rejected":
            counts.add("transfers.in.rejected", day, data.get("origin"))
        elif kind == "consent.released":
            n = len(data.get("credentials") or [])
            if n:
                counts.add("transfers.out.released", day, data.get("destination"), count=n)
        elif kind == "transfer.receipt":
            n = len(data.get("recognised") or [])
            if n:
                counts.add("transfers.out.recognised", day, data.get("destination"), count=n)
    return counts


def _credit_change(data: dict) -> int:
    """Thousandths of credits a correction adds (negative: removes); 0 when it leaves the credits alone."""
    old, new = data.get("old") or {}, data.get("new") or {}
    if "credits" not in new:
        return 0
    return _thousandths(new.get("credits")) - _thousandths(old.get("credits"))


def _counted_as(session: Session, ids: set[Any]) -> dict[int, tuple[dt.date, str, str, str]]:
    """Where each achievement was counted in `achievements.deposited`: the local day of its first depositing
    event and the cell's dimensions (type, source, issuer) as that event counted them."""
    wanted = sorted(i for i in ids if isinstance(i, int))
    if not wanted:
        return {}
    first = (sa.select(sa.func.min(_events.c.seq)).where(_events.c.achievement_id.in_(wanted),
                                                         _events.c.kind.in_(_DEPOSITING_KINDS))
             .group_by(_events.c.achievement_id))
    rows = session.execute(sa.select(_events.c.achievement_id, _events.c.kind, _events.c.leaf, _events.c.opening)
                           .where(_events.c.seq.in_(first))).all()
    rows_of = {a.id: a for a in session.execute(
        sa.select(_ach.c.id, _ach.c.type, _ach.c.source, _ach.c.issuer_code).where(_ach.c.id.in_(wanted)))}
    out: dict[int, tuple[dt.date, str, str, str]] = {}
    for r in rows:
        day = _local_day(_leaf_at(r.leaf)[0])
        if r.kind == "achievement.deposited":
            data = _event_data(r.leaf, r.opening)
            out[r.achievement_id] = (day, str(data.get("type") or ""), str(data.get("source") or ""),
                                     str(data.get("issuer") or ""))
        elif r.achievement_id in rows_of:
            a = rows_of[r.achievement_id]
            out[r.achievement_id] = (day, str(a.type or ""), str(a.source or ""), str(a.issuer_code or ""))
    return out


def _apply(session: Session, counts: _Counts) -> None:
    for learner_id, month in repo.new_learner_months(session, counts.active):
        counts.add("learners.active", month)
    # learners.active is a per-month distinct count: only its month row means anything (day = the month's 1st)
    repo.add_deltas(session, counts.deltas)


def refresh(engine: Engine, *, chunk: int = CHUNK, max_chunks: int | None = None, wait: bool = False) -> dict:
    """Count the ledger events not yet counted, `chunk` events per transaction. Returns what it did."""
    counted = chunks = 0
    while max_chunks is None or chunks < max_chunks:
        with session_scope(engine) as session:
            start = repo.claim_state(session, STATE, wait=wait)
            if start is None:
                return {"skipped": "another process is counting", "counted": counted}
            rows = session.execute(
                sa.select(_events.c.seq, _events.c.kind, _events.c.learner_id, _events.c.achievement_id,
                          _events.c.leaf, _events.c.opening)
                .where(_events.c.seq >= start).order_by(_events.c.seq).limit(chunk)).all()
            if not rows:
                return {"counted": counted, "next_seq": start}
            _apply(session, count_events(session, rows))
            repo.set_next_seq(session, STATE, rows[-1].seq + 1, utcnow())
        counted += len(rows)
        chunks += 1
        if len(rows) < chunk:
            return {"counted": counted, "next_seq": rows[-1].seq + 1}
    return {"counted": counted, "more": True}


def backfill(engine: Engine, *, chunk: int = CHUNK) -> dict:
    """Rebuild every counter from the ledger (and the review figures from the audit log): for an existing
    database, or to check the live counters. Resets, then counts from seq 0 in chunks (each committed)."""
    from node.stats.reviews import rebuild_from_audit

    with session_scope(engine) as session:
        repo.claim_state(session, STATE, wait=True)
        repo.delete_metrics(session, LEDGER_METRICS)
        repo.reset_learner_months(session)
        repo.set_next_seq(session, STATE, 0, utcnow())
    result = refresh(engine, chunk=chunk, wait=True)
    with session_scope(engine) as session:
        result["reviews"] = rebuild_from_audit(session)
    return result
