"""One workflow step, one event (node.decisions): a review decision is counted once and noticed once; a
re-routing moves the application between the branches' queues; the figures are rebuilt alike from the audit
log. Expectations are hand-computed from the steps taken here, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from tests.deposits.helpers import decide, draft, ok, register_learner, submitted, upload


def _today() -> str:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()


def _reviews(client, headers) -> dict:
    today = _today()
    rep = ok(client.get(f"/api/v1/admin/statistics?from={today}&to={today}", headers=headers))
    table = next(t for t in rep["tables"] if t["key"] == "reviews")
    cols = table["columns"][3:]
    return {(r[0], r[2]): dict(zip(cols, r[3:], strict=True)) for r in table["rows"]}


def _counter_sum(engine, metric: str, grain: str = "d") -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT COALESCE(SUM(count), 0) FROM stats_counter WHERE metric = :m "
                                    "AND grain = :g"), {"m": metric, "g": grain}).scalar()


def _notices(engine, learner_id: int) -> list[tuple[str, dict]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, params FROM notice WHERE learner_id = :l ORDER BY id"),
                            {"l": learner_id}).all()
    return [(r.kind, r.params if isinstance(r.params, dict) else __import__("json").loads(r.params)) for r in rows]


def test_one_decision_is_counted_once_and_noticed_once(client, staff_headers, engine) -> None:
    branch = staff_headers("branch_reviewer", org="B01")
    learner = register_learner(client)
    app = submitted(client, learner, branch="B01")
    assert _counter_sum(engine, "reviews.entered") == 1 and _notices(engine, learner.id) == []
    ok(decide(client, branch, app, "reject", reason="证书模糊"))
    assert _counter_sum(engine, "reviews.decided") == 1
    assert _counter_sum(engine, "reviews.decided", grain="m") == 1
    assert _notices(engine, learner.id) == [("review_decided", {"id": app["id"], "application": app["id"],
                                                                "outcome": "rejected"})]
    rows = _reviews(client, staff_headers("auditor"))
    assert rows[("B01", "first")]["rejected"] == 1 and rows[("B01", "first")]["open_at_end"] == 0
    # a refused decision (stale version) neither counts nor notifies
    r = decide(client, branch, app, "approve")
    assert r.status_code == 409
    assert _counter_sum(engine, "reviews.decided") == 1 and len(_notices(engine, learner.id)) == 1


def test_a_row_changed_outside_the_workflow_is_no_decision(client, engine) -> None:
    """Notices come from published decisions only: a conversion request written to `decided` by hand (a
    repair, a migration) is not guessed to be one, as the former flush listener did."""
    import datetime as dt

    from sqlmodel import Session

    from node.models.standards import ConversionRequest

    learner = register_learner(client)
    with Session(engine) as s:
        req = ConversionRequest(learner_id=learner.id, programme_code="X", on_date=dt.date(2026, 1, 5),
                                state="confirmed", requested_by="learner:1")
        s.add(req)
        s.commit()
        req.state = "decided"
        s.add(req)
        s.commit()
    assert _notices(engine, learner.id) == []


def test_rerouting_moves_an_application_between_the_branches_queues(app, client, staff_headers, engine) -> None:
    from node.stats.counting import backfill

    auditor = staff_headers("auditor")
    b01 = staff_headers("branch_reviewer", org="B01")
    b02 = staff_headers("branch_reviewer", org="B02")
    centre = staff_headers("centre_reviewer")  # the centre sees every queue and re-routes
    learner = register_learner(client)
    # app 1: submitted to B01, moved to B02 while waiting, approved there → the centre's second review
    a1 = submitted(client, learner, branch="B01")
    a1 = ok(client.post(f"/api/v1/deposit-applications/{a1['id']}/route",
                        json={"branch_code": "B02", "version": a1["version"]}, headers=centre))
    ok(decide(client, b02, a1, "approve"))
    # app 2: a draft moved before it waits anywhere (no queue move), then submitted: it enters B02
    a2 = draft(client, learner, branch="B01", code="PHY101", title="大学物理")
    assert upload(client, a2["id"], learner.headers).status_code == 201
    a2 = ok(client.get(f"/api/v1/deposit-applications/{a2['id']}", headers=centre))
    a2 = ok(client.post(f"/api/v1/deposit-applications/{a2['id']}/route",
                        json={"branch_code": "B02", "version": a2["version"]}, headers=centre))
    a2 = ok(client.get(f"/api/v1/me/deposit-applications/{a2['id']}", headers=learner.headers))
    ok(client.post(f"/api/v1/me/deposit-applications/{a2['id']}/submit", json={"version": a2["version"]},
                   headers=learner.headers))
    # app 3: waits at B01, moved to B02 and back to B01, then rejected at B01
    a3 = submitted(client, learner, branch="B01", code="CHEM101", title="化学")
    for target in ("B02", "B01"):
        a3 = ok(client.post(f"/api/v1/deposit-applications/{a3['id']}/route",
                            json={"branch_code": target, "version": a3["version"]}, headers=centre))
    ok(decide(client, b01, a3, "reject", reason="不符"))

    rows = _reviews(client, auditor)
    # B01: entered a1 and a3 (2); moved out a1 and a3 (2), moved in a3 (1); rejected a3; open 2 + 1 - 2 - 1 = 0
    assert {k: rows[("B01", "first")][k] for k in ("entered", "approved", "rejected", "open_at_end", "moved_in",
                                                   "moved_out")} == {
        "entered": 2, "approved": 0, "rejected": 1, "open_at_end": 0, "moved_in": 1, "moved_out": 2}
    # B02: entered a2 (1); moved in a1 and a3 (2), moved out a3 (1); approved a1; open 1 + 2 - 1 - 1 = 1 (a2)
    assert {k: rows[("B02", "first")][k] for k in ("entered", "approved", "rejected", "open_at_end", "moved_in",
                                                   "moved_out")} == {
        "entered": 1, "approved": 1, "rejected": 0, "open_at_end": 1, "moved_in": 2, "moved_out": 1}
    assert rows[("centre", "second")]["entered"] == 1 and rows[("centre", "second")]["open_at_end"] == 1
    # B02's time to decision runs from the move (seconds ago), not from the submission to B01
    assert Decimal(rows[("B02", "first")]["mean_days"]) < 1 and rows[("B02", "first")]["median_within"] == "1d"

    with engine.connect() as conn:
        live = sorted(tuple(r) for r in conn.execute(sa.text(
            "SELECT metric, grain, day, dim1, dim2, dim3, count, amount FROM stats_counter "
            "WHERE metric LIKE 'reviews.%'")))
        clocks = sorted(tuple(r) for r in conn.execute(sa.text("SELECT application_id, queue, stage "
                                                                "FROM stats_review_clock")))
    assert clocks == [(a1["id"], "centre", "second"), (a2["id"], "B02", "first")]
    backfill(app.state.ctx.engine, chunk=50)
    with engine.connect() as conn:
        rebuilt = sorted(tuple(r) for r in conn.execute(sa.text(
            "SELECT metric, grain, day, dim1, dim2, dim3, count, amount FROM stats_counter "
            "WHERE metric LIKE 'reviews.%'")))
    assert rebuilt == live
