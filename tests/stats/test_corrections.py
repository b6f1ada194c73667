"""A correction of a deposited achievement moves the counted credits, in the cell where the achievement was
counted (its deposit's day and dimensions): hand-computed, live and after a backfill, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from tests.deposits.helpers import decide, ok, register_learner, submitted


def _today() -> str:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()


def _table(client, headers, start: str, end: str, key: str) -> dict:
    rep = ok(client.get(f"/api/v1/admin/statistics?from={start}&to={end}", headers=headers))
    assert rep["counted_to"] == rep["ledger_size"]
    t = next(t for t in rep["tables"] if t["key"] == key)
    return {tuple(r[: t["labels"]]): r[t["labels"]:] for r in t["rows"]}


def _correct(client, headers, achievement_id: int, **fields) -> dict:
    return ok(client.post(f"/api/v1/achievements/{achievement_id}/corrections",
                          json={**fields, "reason": "成绩单核对有误"}, headers=headers), 201)


def test_corrections_move_the_counted_credits_where_the_record_was_counted(app, client, staff_headers) -> None:
    from node.db import session_scope
    from node.ledger.service import EventSpec, append_events
    from node.models import Achievement, Learner
    from node.stats.counting import backfill, refresh

    engine = app.state.ctx.engine
    branch = staff_headers("branch_reviewer", org="B01")
    centre = staff_headers("centre_reviewer")
    auditor = staff_headers("auditor")
    learner = register_learner(client)
    # today: an individual deposit of 2.5 credits through both reviews
    a1 = ok(decide(client, branch, submitted(client, learner, branch="B01"), "approve"))
    today_id = ok(decide(client, centre, a1, "approve"))["achievement_id"]
    # 2025-01-10 (local): an individual deposit of 3 credits, appended with its date
    with session_scope(engine) as s:
        who = s.get(Learner, learner.id)
        old = Achievement(learner_id=who.id, type="degree_course", issuer_code="10280", issuer_name="上海大学",
                          code="PHY101", title="大学物理", credits=Decimal(3), score_text="80", earned_on=dt.date(2024, 6, 1),
                          source="individual", status="deposited")
        s.add(old)
        s.flush()
        dated_id = old.id
        append_events(s, [EventSpec(kind="achievement.deposited", learner_id=who.id, pseudonym=who.pseudonym,
                                    achievement_id=old.id, at=dt.datetime(2025, 1, 10, 2, 0, tzinfo=dt.UTC),
                                    data={"achievement": old.id, "type": "degree_course", "source": "individual",
                                          "issuer": "10280", "credits": "3"})])
    refresh(engine)
    today = _today()
    assert _table(client, auditor, today, today, "by_source") == {("individual",): [1, "2.5", 0]}
    assert _table(client, auditor, "2025-01-01", "2025-01-31", "by_source") == {("individual",): [1, "3", 0]}

    # the dated record 3 → 5 credits; today's 2.5 → 1 and, in a second correction, its score only
    _correct(client, centre, dated_id, credits="5")
    _correct(client, centre, today_id, credits="1")
    _correct(client, centre, today_id, score="90")
    refresh(engine)
    # the count stays where it was; the credits follow the corrections, on the record's deposit day
    assert _table(client, auditor, today, today, "by_source") == {("individual",): [1, "1", 0]}
    assert _table(client, auditor, today, today, "by_type") == {("degree_course",): [1, "1", 0]}
    assert _table(client, auditor, "2025-01-01", "2025-01-31", "by_source") == {("individual",): [1, "5", 0]}
    months = _table(client, auditor, "2025-01-01", "2025-01-31", "deposits_by_month")
    assert months == {("2025-01",): [1, "5"]}
    # over both: 1 + 5
    both = _table(client, auditor, "2025-01-01", today, "by_institution")
    assert both[("10280", "")] == [2, "6", 0]

    with engine.connect() as conn:
        live = sorted(tuple(r) for r in conn.execute(sa.text(
            "SELECT metric, grain, day, dim1, dim2, dim3, count, amount FROM stats_counter "
            "WHERE metric = 'achievements.deposited'")))
    backfill(engine, chunk=2)
    with engine.connect() as conn:
        rebuilt = sorted(tuple(r) for r in conn.execute(sa.text(
            "SELECT metric, grain, day, dim1, dim2, dim3, count, amount FROM stats_counter "
            "WHERE metric = 'achievements.deposited'")))
    assert rebuilt == live
