"""Learning incentive points (学分/积分兑换): earned from ledger events by rules kept as data, exchanged for the
centre's benefits (docs/engage.md).

* Rules and benefits: `config/engage_points.toml` (or `engage.points_file`), read once per file version.
* Earning: `award_from_ledger` reads ledger events after its cursor (a locked row of `points_cursor`) up to the
  committed ledger head, and appends one `points_entry` per (event, matching rule), at most once
  (unique learner + event + rule; the insert skips a row that exists), within each rule's yearly cap.
* The points ledger is append-only: a redemption or a lapse is a negative entry, the balance is the sum.
  Earned points lapse `validity_days` after they were earned; redemptions and lapses use the oldest points first.
* A redemption is also a ledger event (`points.redeemed`), so it is proven like any other act on the archive.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from node.db import is_sqlite, session_scope
from node.errors import BadRequest, Conflict, NotFound
from node.ledger.service import EventSpec, append_events
from node.models import Achievement, Learner, LedgerEvent, LedgerHead, utcnow
from node.models.engage import PointsCursor, PointsEntry

__all__ = ["Benefit", "PointsConfig", "PointsSummary", "Rule", "award_from_ledger", "expire_points",
           "load_config", "points_config", "points_summary", "redeem"]

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "config" / "engage_points.toml"
CURSOR = "points"
BATCH = 5000


@dataclass(frozen=True)
class Rule:
    id: str
    event: str
    points: int
    name_zh: str
    name_en: str
    types: frozenset[str] = frozenset()  # empty: any (or the event carries no outcome)
    max_per_year: int | None = None

    def matches(self, kind: str, achievement_type: str | None) -> bool:
        return kind == self.event and (not self.types or achievement_type in self.types)


@dataclass(frozen=True)
class Benefit:
    id: str
    cost: int
    name_zh: str
    name_en: str
    per_learner: int | None = None
    stock: int | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    def open_on(self, day: dt.date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True)
class PointsConfig:
    rules: tuple[Rule, ...]
    benefits: tuple[Benefit, ...]
    validity_days: int = 0

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(rule.event for rule in self.rules)

    def benefit(self, benefit_id: str) -> Benefit:
        for benefit in self.benefits:
            if benefit.id == benefit_id:
                return benefit
        raise NotFound(f"no benefit {benefit_id!r}")


def _text(doc: dict, key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{where}: {key} must be a text of 1..200 characters")
    return value


def _count(doc: dict, key: str, where: str, *, required: bool = False) -> int | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 1_000_000:
        raise ValueError(f"{where}: {key} must be a whole number 1..1000000")
    return value


def load_config(data: dict[str, Any]) -> PointsConfig:
    """Rules and benefits from the file's data; a malformed file is refused with the place named."""
    rules, benefits, seen = [], [], set()
    for i, doc in enumerate(data.get("rule", [])):
        where = f"rule #{i + 1}"
        rule_id = _text(doc, "id", where)[:64]
        if rule_id in seen:
            raise ValueError(f"{where}: id {rule_id!r} used twice")
        seen.add(rule_id)
        types = doc.get("types", [])
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ValueError(f"{where}: types must be a list of outcome types")
        rules.append(Rule(id=rule_id, event=_text(doc, "event", where), points=_count(doc, "points", where,
                                                                                      required=True) or 0,
                          name_zh=_text(doc, "name_zh", where), name_en=_text(doc, "name_en", where),
                          types=frozenset(types), max_per_year=_count(doc, "max_per_year", where)))
    for i, doc in enumerate(data.get("benefit", [])):
        where = f"benefit #{i + 1}"
        benefit_id = _text(doc, "id", where)[:64]
        if benefit_id in seen:
            raise ValueError(f"{where}: id {benefit_id!r} used twice")
        seen.add(benefit_id)
        dates = [doc.get(k) for k in ("valid_from", "valid_to")]
        if any(d is not None and not isinstance(d, dt.date) for d in dates):
            raise ValueError(f"{where}: valid_from and valid_to are dates (YYYY-MM-DD)")
        benefits.append(Benefit(id=benefit_id, cost=_count(doc, "cost", where, required=True) or 0,
                                name_zh=_text(doc, "name_zh", where), name_en=_text(doc, "name_en", where),
                                per_learner=_count(doc, "per_learner", where), stock=_count(doc, "stock", where),
                                valid_from=dates[0], valid_to=dates[1]))
    validity = data.get("validity_days", 0)
    if not isinstance(validity, int) or validity < 0:
        raise ValueError("validity_days must be a whole number ≥ 0")
    return PointsConfig(tuple(rules), tuple(benefits), validity)


@lru_cache(maxsize=8)
def _read(path: str, mtime: float) -> PointsConfig:
    with open(path, "rb") as f:
        return load_config(tomllib.load(f))


def points_config(ctx: Any) -> PointsConfig:
    path = Path(ctx.settings.engage.points_file or DEFAULT_FILE)
    return _read(str(path), path.stat().st_mtime)


# -- earning ---------------------------------------------------------------------------------------------


def _insert(session: Session):
    if is_sqlite(session.get_bind()):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


def _lock_cursor(session: Session, name: str) -> PointsCursor:
    session.execute(_insert(session)(PointsCursor.__table__).values(name=name, seq=0, updated_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["name"]))
    query = select(PointsCursor).where(PointsCursor.name == name)
    if not is_sqlite(session.get_bind()):
        query = query.with_for_update()
    return session.exec(query).one()


def award_from_ledger(ctx: Any, *, batch: int = BATCH) -> dict:
    """Read the ledger after the cursor (one batch) and append the points its events earn. Safe to run in two
    processes at once: the cursor row is locked for the batch, and an entry is inserted at most once."""
    config = points_config(ctx)
    awarded = 0
    with session_scope(ctx.engine) as session:
        cursor = _lock_cursor(session, CURSOR)
        head = session.exec(select(LedgerHead.size).where(LedgerHead.id == 1)).first() or 0
        if head <= cursor.seq or not config.rules:
            cursor.seq = max(cursor.seq, head)
            return {"awarded": 0, "cursor": cursor.seq}
        rows = session.execute(
            select(LedgerEvent.seq, LedgerEvent.kind, LedgerEvent.learner_id, LedgerEvent.achievement_id,
                   LedgerEvent.created_at, Achievement.type)
            .outerjoin(Achievement, Achievement.id == LedgerEvent.achievement_id)
            .where(LedgerEvent.seq > cursor.seq, LedgerEvent.seq <= head, LedgerEvent.kind.in_(config.kinds),
                   LedgerEvent.learner_id.is_not(None))
            .order_by(LedgerEvent.seq).limit(batch)).all()
        new_cursor = rows[-1].seq if len(rows) == batch else head
        year_totals: dict[tuple[int, str, int], int] = {}
        values = []
        for row in rows:
            for rule in config.rules:
                if not rule.matches(row.kind, row.type):
                    continue
                points = rule.points
                earned = row.created_at.date() if row.created_at else dt.date.today()
                if rule.max_per_year is not None:
                    key = (row.learner_id, rule.id, earned.year)
                    if key not in year_totals:
                        year_totals[key] = _earned_in_year(session, row.learner_id, rule.id, earned.year)
                    points = min(points, rule.max_per_year - year_totals[key])
                    if points <= 0:
                        continue
                    year_totals[key] += points
                values.append(dict(
                    learner_id=row.learner_id, points=points, kind="earned", rule_id=rule.id, source_seq=row.seq,
                    achievement_id=row.achievement_id, note="",
                    expires_on=earned + dt.timedelta(days=config.validity_days) if config.validity_days else None,
                    actor="engage.award_points", created_at=utcnow()))
        if values:
            table = PointsEntry.__table__
            inserted = session.execute(_insert(session)(table).values(values)
                                       .on_conflict_do_nothing(index_elements=["learner_id", "source_seq", "rule_id"])
                                       .returning(table.c.id)).all()  # only the rows inserted
            awarded = len(inserted)
        cursor.seq, cursor.updated_at = new_cursor, utcnow()
        session.add(cursor)
        return {"awarded": awarded, "cursor": new_cursor}


def _earned_in_year(session: Session, learner_id: int, rule_id: str, year: int) -> int:
    start, end = dt.datetime(year, 1, 1, tzinfo=dt.UTC), dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    return session.exec(select(sa.func.coalesce(sa.func.sum(PointsEntry.points), 0)).where(
        PointsEntry.learner_id == learner_id, PointsEntry.rule_id == rule_id, PointsEntry.kind == "earned",
        PointsEntry.created_at >= start, PointsEntry.created_at < end)).one()


# -- the balance ------------------------------------------------------------------------------------------


@dataclass
class PointsSummary:
    balance: int  # what may be spent today (lapsed points already taken off)
    earned: int
    spent: int
    lapsing: int  # points not yet lapsed but lapsing on the next date below
    lapsing_on: dt.date | None
    entries: list[PointsEntry] = field(default_factory=list)
    lapsed_unrecorded: int = 0  # lapsed points with no `expired` entry yet (the job writes it)


def _summary(entries: list[PointsEntry], today: dt.date) -> PointsSummary:
    """Oldest points are used first: consumption (redeemed + expired entries) eats earned entries in date order;
    what remains of an entry past its date has lapsed."""
    earned = sorted((e for e in entries if e.points > 0), key=lambda e: (e.expires_on or dt.date.max, e.id or 0))
    consumed = -sum(e.points for e in entries if e.points < 0)
    spent = -sum(e.points for e in entries if e.kind == "redeemed")
    lapsed, upcoming = 0, {}
    for entry in earned:
        use = min(consumed, entry.points)
        consumed -= use
        left = entry.points - use
        if left and entry.expires_on is not None:
            if entry.expires_on < today:
                lapsed += left
            else:
                upcoming[entry.expires_on] = upcoming.get(entry.expires_on, 0) + left
    total = sum(e.points for e in entries)
    first = min(upcoming) if upcoming else None
    return PointsSummary(balance=total - lapsed, earned=sum(e.points for e in earned), spent=spent,
                         lapsing=upcoming.get(first, 0) if first else 0, lapsing_on=first,
                         entries=sorted(entries, key=lambda e: e.id or 0, reverse=True), lapsed_unrecorded=lapsed)


def _entries(session: Session, learner_id: int) -> list[PointsEntry]:
    return list(session.exec(select(PointsEntry).where(PointsEntry.learner_id == learner_id)).all())


def points_summary(session: Session, learner_id: int, *, today: dt.date | None = None) -> PointsSummary:
    return _summary(_entries(session, learner_id), today or dt.date.today())


def expire_points(ctx: Any, *, today: dt.date | None = None) -> dict:
    """Write an `expired` entry for each learner's lapsed points (the balance already leaves them out)."""
    today = today or dt.date.today()
    written = 0
    with session_scope(ctx.engine) as session:
        learners = session.exec(select(PointsEntry.learner_id).where(
            PointsEntry.kind == "earned", PointsEntry.expires_on < today).distinct()).all()
        for learner_id in learners:
            _lock_learner(session, learner_id)
            summary = points_summary(session, learner_id, today=today)
            if summary.lapsed_unrecorded > 0:
                session.add(PointsEntry(learner_id=learner_id, points=-summary.lapsed_unrecorded, kind="expired",
                                        rule_id="validity", note=f"lapsed before {today.isoformat()}",
                                        actor="engage.expire_points"))
                written += 1
    return {"expired_entries": written}


def _lock_learner(session: Session, learner_id: int) -> None:
    """Serialise balance changes of one learner (PostgreSQL row lock; SQLite writers are serial)."""
    if not is_sqlite(session.get_bind()):
        session.execute(select(Learner.id).where(Learner.id == learner_id).with_for_update())


# -- redeeming --------------------------------------------------------------------------------------------


def redeem(session: Session, ctx: Any, *, learner_id: int, benefit_id: str, actor: str,
           today: dt.date | None = None) -> PointsEntry:
    """Exchange points for a benefit: open on `today`, within its per-learner limit and its stock, paid from
    the balance. Appends a negative entry and a `points.redeemed` ledger event (in the caller's transaction)."""
    today = today or dt.date.today()
    config = points_config(ctx)
    benefit = config.benefit(benefit_id)
    if not benefit.open_on(today):
        raise Conflict("the benefit is not offered on this date", code="benefit_closed",
                       detail={"valid_from": str(benefit.valid_from), "valid_to": str(benefit.valid_to)})
    if benefit.stock is not None:  # one redemption of this benefit at a time, across learners
        _lock_cursor(session, f"benefit:{benefit.id}"[:40])
        taken = session.exec(select(sa.func.count()).select_from(PointsEntry).where(
            PointsEntry.kind == "redeemed", PointsEntry.rule_id == benefit.id)).one()
        if taken >= benefit.stock:
            raise Conflict("the benefit is no longer available", code="benefit_unavailable")
    _lock_learner(session, learner_id)
    entries = _entries(session, learner_id)
    if benefit.per_learner is not None:
        mine = sum(1 for e in entries if e.kind == "redeemed" and e.rule_id == benefit.id)
        if mine >= benefit.per_learner:
            raise Conflict("the learner has taken this benefit as often as allowed", code="benefit_limit",
                           detail={"per_learner": benefit.per_learner})
    summary = _summary(entries, today)
    if summary.balance < benefit.cost:
        raise Conflict("not enough points", code="insufficient_points",
                       detail={"balance": summary.balance, "cost": benefit.cost})
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise BadRequest("no such learner")
    if summary.lapsed_unrecorded:
        session.add(PointsEntry(learner_id=learner_id, points=-summary.lapsed_unrecorded, kind="expired",
                                rule_id="validity", note=f"lapsed before {today.isoformat()}", actor=actor[:100]))
    entry = PointsEntry(learner_id=learner_id, points=-benefit.cost, kind="redeemed", rule_id=benefit.id,
                        note=benefit.name_zh[:200], actor=actor[:100])
    session.add(entry)
    session.flush()
    append_events(session, [EventSpec(kind="points.redeemed", learner_id=learner_id, pseudonym=learner.pseudonym,
                                      data={"benefit": benefit.id, "points": benefit.cost, "entry": entry.id})])
    return entry
