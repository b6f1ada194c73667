"""The centre's figures against the hand-computed expectation of the generated data set (tests/stats/conftest.py),
on SQLite and PostgreSQL; backfill equals live counting; ranges and their errors."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import sqlalchemy as sa

from tests.deposits.helpers import refused


def _table(report: dict, key: str) -> dict:
    return next(t for t in report["tables"] if t["key"] == key)


def _rows(report: dict, key: str) -> dict:
    t = _table(report, key)
    return {tuple(r[: t["labels"]]): r[t["labels"]:] for r in t["rows"]}


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()


def test_todays_figures_match_the_hand_computed_expectation(client, staff_headers, dataset) -> None:
    auditor = staff_headers("auditor")
    today = _today().isoformat()
    r = client.get(f"/api/v1/admin/statistics?from={today}&to={today}", headers=auditor)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["counted_to"] == rep["ledger_size"]
    # 12 + 3 bulk learners and the one opened at the outlet
    assert _rows(rep, "accounts") == {("resident_id",): [16]}
    assert _table(rep, "accounts")["total"] == ["total", 16]
    # 24 + 3 bulk rows and one individual deposit (2.5 credits)
    assert _rows(rep, "by_type") == {("degree_course",): [28, "107.5", 0]}
    assert _rows(rep, "by_source") == {("bulk",): [27, "105", 0], ("individual",): [1, "2.5", 0]}
    inst = _rows(rep, "by_institution")
    assert inst[("U10001", "上海示范大学")] == [24, "96", 0]
    assert inst[("U20002", "另一所大学")] == [3, "9", 0]
    assert inst[("10280", "")] == [1, "2.5", 0]
    # reviews: B01 took three, decided two (one approved, one rejected), one waits; the centre approved one
    reviews = _rows(rep, "reviews")
    b01 = reviews[("B01", "B01", "first")]
    assert b01[:4] == [3, 1, 1, 1]
    assert Decimal(b01[4]) < 1 and b01[5] == "1d"
    assert reviews[("centre", "", "second")][:4] == [1, 1, 0, 0]
    # every learner with an event today is active this month (16 accounts opened)
    month = _today().strftime("%Y-%m")
    assert dict((r[0], r[1]) for r in _table(rep, "active")["rows"])[month] == 16


def test_dated_ranges_match_the_generated_events(client, staff_headers, dataset) -> None:
    admin = staff_headers("node_admin")
    for start, end in [("2025-01-01", "2025-03-31"), ("2025-01-10", "2025-02-14"), ("2025-02-01", "2025-02-01"),
                       ("2024-12-15", "2025-03-03"), ("2025-02-15", "2025-12-31")]:
        lo, hi = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
        expected_type: Counter = Counter()
        expected_credits: Counter = Counter()
        expected_month: Counter = Counter()
        for day, kind, _source, _issuer, credits in dataset.deposits:
            if lo <= day <= hi:
                expected_type[kind] += 1
                expected_credits[kind] += credits
                expected_month[day.strftime("%Y-%m")] += 1
        rep = client.get(f"/api/v1/admin/statistics?from={start}&to={end}", headers=admin).json()
        got = _rows(rep, "by_type")
        assert {k[0]: v[0] for k, v in got.items()} == dict(expected_type), (start, end)
        assert {k[0]: Decimal(v[1]) for k, v in got.items()} == {
            k: Decimal(v) / 1000 for k, v in expected_credits.items()}, (start, end)
        months = {r[0]: r[1] for r in _table(rep, "deposits_by_month")["rows"] if r[1]}
        assert months == dict(expected_month), (start, end)
    rep = client.get("/api/v1/admin/statistics?from=2025-01-01&to=2025-03-31", headers=admin).json()
    active = {r[0]: r[1] for r in _table(rep, "active")["rows"]}
    assert active == {m.strftime("%Y-%m"): n for m, n in sorted(dataset.active.items())}
    # hand-computed: January 12 deposits (learners 0-3), February 3 + 11 + 2, March 11
    assert active == {"2025-01": 4, "2025-02": 3, "2025-03": 2}
    assert {r[0]: r[1] for r in _table(rep, "deposits_by_month")["rows"]} == {
        "2025-01": 12, "2025-02": 16, "2025-03": 11}


def test_backfill_equals_live_counting(app, dataset) -> None:
    from node.models import StatsCounter, StatsReviewClock
    from node.stats.counting import backfill

    engine = app.state.ctx.engine

    def snapshot() -> tuple[list, list]:
        with engine.connect() as conn:
            counters = sorted(tuple(r) for r in conn.execute(sa.select(StatsCounter.__table__)))
            clocks = sorted(tuple(r) for r in conn.execute(sa.select(StatsReviewClock.__table__)))
        return counters, clocks

    live = snapshot()
    assert len(live[0]) > 20 and len(live[1]) == 1
    result = backfill(engine, chunk=11)
    assert result["reviews"] == {"steps": 6, "waiting": 1}  # 3 submissions, 3 decisions
    assert snapshot() == live


def test_the_job_counts_each_event_once(app, client, staff_headers, dataset) -> None:
    from node.stats.counting import refresh

    engine = app.state.ctx.engine
    assert refresh(engine)["counted"] == 0  # nothing new
    admin = staff_headers("node_admin")
    before = client.get("/api/v1/admin/statistics?from=2025-01-01&to=2025-03-31", headers=admin).json()
    assert client.post("/api/v1/admin/statistics/refresh", headers=admin).json()["counted"] == 0
    assert client.get("/api/v1/admin/statistics?from=2025-01-01&to=2025-03-31", headers=admin).json()["tables"] \
        == before["tables"]


def test_bad_ranges_are_refused_with_a_documented_code(client, staff_headers) -> None:
    auditor = staff_headers("auditor")
    refused(client.get("/api/v1/admin/statistics?from=2025-03-01&to=2025-01-01", headers=auditor), 400,
            "invalid_range")
    refused(client.get("/api/v1/admin/statistics?from=1999-12-31", headers=auditor), 400, "invalid_range")
    refused(client.get("/api/v1/admin/statistics?from=2000-01-01&to=2099-12-31", headers=auditor), 400,
            "invalid_range")
    refused(client.get("/api/v1/statistics?from=2025-03-01&to=2025-01-01"), 400, "invalid_range")
    for bad in ("2025-13-01", "x" * 5000, "2025-01-01%00", "-1"):
        r = client.get(f"/api/v1/admin/statistics?from={bad}", headers=auditor)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    refused(client.get("/api/v1/admin/statistics/export.pdf", headers=auditor), 422, "validation_error")


def test_roles_and_audit(client, staff_headers, app) -> None:
    from node.models import AuditEntry

    refused(client.get("/api/v1/admin/statistics"), 401, "not_authenticated")
    refused(client.get("/api/v1/admin/statistics", headers=staff_headers("branch_reviewer", org="B01")), 403,
            "forbidden")
    refused(client.post("/api/v1/admin/statistics/refresh", headers=staff_headers("auditor")), 403, "forbidden")
    assert client.get("/api/v1/admin/statistics", headers=staff_headers("auditor")).status_code == 200
    assert client.get("/api/v1/admin/statistics/export.csv", headers=staff_headers("node_admin")).status_code == 200
    assert client.get("/api/v1/statistics").status_code == 200  # public
    with app.state.ctx.engine.connect() as conn:
        actions = set(conn.execute(sa.select(AuditEntry.action).where(AuditEntry.action.like("stats.%"))).scalars())
    assert actions == {"stats.read", "stats.export"}


def test_the_scheduled_job_is_registered_and_a_second_worker_skips(app) -> None:
    import pytest

    from federation.jobs import JOBS, run_job
    from node.db import session_scope
    from node.stats import repository as repo
    from node.stats.counting import STATE, refresh

    ctx = app.state.ctx
    assert "stats.refresh" in JOBS
    assert run_job("stats.refresh", ctx)["counted"] >= 0
    if ctx.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: one process serves a SQLite node")
    with session_scope(ctx.engine) as held:  # another worker is counting: it holds the state row
        assert repo.claim_state(held, STATE, wait=False) is not None
        assert refresh(ctx.engine)["skipped"]
