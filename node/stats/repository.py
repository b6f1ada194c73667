"""All SQL of the statistics: adding deltas to the counters, the job's high-water mark, active learners per month,
review clocks, and the range reads. Every read is bounded by the range's days and the dimensions' cardinality,
never by the ledger's size."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from node.models import StatsCounter, StatsLearnerMonth, StatsReviewClock, StatsState

__all__ = [
    "Key",
    "add_deltas",
    "claim_state",
    "clock_of",
    "delete_clock",
    "delete_metrics",
    "new_learner_months",
    "range_rows",
    "reset_learner_months",
    "set_clock",
    "set_next_seq",
]

_c = StatsCounter.__table__
_state = StatsState.__table__
_lm = StatsLearnerMonth.__table__
_clock = StatsReviewClock.__table__

# (metric, day, dim1, dim2, dim3): day is the local calendar day; the month row is derived from it
Key = tuple[str, dt.date, str, str, str]
_CHUNK = 500


def _insert(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def add_deltas(session: Session, deltas: Mapping[Key, list[int]]) -> int:
    """Add each (count, amount) to its day row and its month row (one upsert each). Returns rows touched."""
    merged: dict[tuple[str, str, dt.date, str, str, str], list[int]] = {}
    for (metric, day, d1, d2, d3), (count, amount) in deltas.items():
        if not count and not amount:
            continue
        for grain, start in (("d", day), ("m", day.replace(day=1))):
            row = merged.setdefault((metric, grain, start, d1[:64], d2[:64], d3[:64]), [0, 0])
            row[0] += count
            row[1] += amount
    if not merged:
        return 0
    insert = _insert(session)
    stmt = insert(_c)
    stmt = stmt.on_conflict_do_update(
        index_elements=["metric", "grain", "day", "dim1", "dim2", "dim3"],
        set_={"count": _c.c.count + stmt.excluded.count, "amount": _c.c.amount + stmt.excluded.amount},
    )
    rows = [{"metric": k[0], "grain": k[1], "day": k[2], "dim1": k[3], "dim2": k[4], "dim3": k[5],
             "count": v[0], "amount": v[1]} for k, v in sorted(merged.items())]  # sorted: one lock order
    for i in range(0, len(rows), _CHUNK):
        session.execute(stmt, rows[i : i + _CHUNK])
    return len(rows)


def delete_metrics(session: Session, metrics: Iterable[str]) -> None:
    session.execute(sa.delete(_c).where(_c.c.metric.in_(list(metrics))))


def claim_state(session: Session, name: str, *, wait: bool) -> int | None:
    """Lock the job's state row for this transaction and return its next seq; None when another process holds
    it and `wait` is False (PostgreSQL `SKIP LOCKED`; SQLite transactions that write are serial anyway)."""
    insert = _insert(session)
    session.execute(insert(_state).values(name=name, next_seq=0).on_conflict_do_nothing(index_elements=["name"]))
    stmt = sa.select(_state.c.next_seq).where(_state.c.name == name).with_for_update(skip_locked=not wait)
    return session.execute(stmt).scalar()


def set_next_seq(session: Session, name: str, next_seq: int, now: dt.datetime) -> None:
    session.execute(sa.update(_state).where(_state.c.name == name).values(next_seq=next_seq, updated_at=now))


def state_of(session: Session, name: str) -> tuple[int, dt.datetime | None]:
    row = session.execute(sa.select(_state.c.next_seq, _state.c.updated_at).where(_state.c.name == name)).first()
    return (row.next_seq, row.updated_at) if row else (0, None)


def new_learner_months(session: Session, pairs: set[tuple[int, dt.date]]) -> list[tuple[int, dt.date]]:
    """Insert the (learner, month) pairs not yet seen and return them (the caller holds the job's lock, so no
    one else inserts meanwhile)."""
    by_month: dict[dt.date, list[int]] = {}
    for learner_id, month in pairs:
        by_month.setdefault(month, []).append(learner_id)
    fresh: list[tuple[int, dt.date]] = []
    for month, ids in sorted(by_month.items()):
        ids.sort()
        for i in range(0, len(ids), _CHUNK):
            part = ids[i : i + _CHUNK]
            seen = set(session.execute(sa.select(_lm.c.learner_id).where(
                _lm.c.month == month, _lm.c.learner_id.in_(part))).scalars())
            fresh.extend((lid, month) for lid in part if lid not in seen)
    for i in range(0, len(fresh), _CHUNK):
        session.execute(sa.insert(_lm), [{"learner_id": lid, "month": m} for lid, m in fresh[i : i + _CHUNK]])
    return fresh


def reset_learner_months(session: Session) -> None:
    session.execute(sa.delete(_lm))


def clock_of(session: Session, application_id: int) -> Any:
    return session.execute(sa.select(_clock).where(_clock.c.application_id == application_id)).first()


def set_clock(session: Session, application_id: int, *, queue: str, stage: str, entered_at: dt.datetime) -> None:
    insert = _insert(session)
    stmt = insert(_clock).values(application_id=application_id, queue=queue, stage=stage, entered_at=entered_at)
    session.execute(stmt.on_conflict_do_update(index_elements=["application_id"],
                                               set_={"queue": queue, "stage": stage, "entered_at": entered_at}))


def delete_clock(session: Session, application_id: int) -> None:
    session.execute(sa.delete(_clock).where(_clock.c.application_id == application_id))


def range_rows(session: Session, metrics: Iterable[str], start: dt.date, end: dt.date) -> list[Any]:
    """Counter rows covering [start, end] exactly: whole months inside the range from the month rows, the
    partial months at its edges from the day rows (so a year costs ~12 + ≤ 62 rows per group, not 365)."""
    metrics = list(metrics)
    first_full = start if start.day == 1 else _next_month(start)
    after_end = end + dt.timedelta(days=1)
    last_full_end = after_end.replace(day=1)  # months [first_full, last_full_end) are whole inside the range
    cols = (_c.c.metric, _c.c.day, _c.c.dim1, _c.c.dim2, _c.c.dim3, _c.c.count, _c.c.amount)
    parts = []
    if first_full < last_full_end:
        parts.append(sa.select(*cols).where(_c.c.metric.in_(metrics), _c.c.grain == "m",
                                            _c.c.day >= first_full, _c.c.day < last_full_end))
        day_spans = [(start, first_full), (last_full_end, after_end)]
    else:
        day_spans = [(start, after_end)]
    for lo, hi in day_spans:
        if lo < hi:
            parts.append(sa.select(*cols).where(_c.c.metric.in_(metrics), _c.c.grain == "d",
                                                _c.c.day >= lo, _c.c.day < hi))
    rows: list[Any] = []
    for stmt in parts:
        rows.extend(session.execute(stmt).all())
    return rows


def month_rows(session: Session, metrics: Iterable[str], first_month: dt.date, last_month: dt.date) -> list[Any]:
    """The month rows of the months [first_month, last_month] (both the first day of a month)."""
    return list(session.execute(sa.select(_c.c.metric, _c.c.day, _c.c.dim1, _c.c.dim2, _c.c.dim3, _c.c.count,
                                          _c.c.amount).where(_c.c.metric.in_(list(metrics)), _c.c.grain == "m",
                                                             _c.c.day >= first_month, _c.c.day <= last_month)).all())


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
