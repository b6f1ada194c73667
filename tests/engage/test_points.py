"""Incentive points: earned from ledger events by the rules in the configuration, capped per year, once per
event; exchanged for benefits within their validity, limits and the balance; lapsed points leave the balance."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from node.engage import points
from node.models.engage import PointsEntry
from tests.deposits.helpers import ok, refused, register_learner


def _award(ctx) -> dict:
    return points.award_from_ledger(ctx)


def test_a_deposit_earns_the_points_of_its_rule_once(client, ctx, deposited, engine) -> None:
    learner = register_learner(client)
    other = register_learner(client, serial="102", name="李四")
    deposited(learner)  # a degree course: "course-completed", 5 points
    deposited(learner, type="community", title="社区书法班", credits=None, score=None, hours="12",
              code="", issuer_code="C001")
    first = _award(ctx)
    assert first["awarded"] == 2
    again = _award(ctx)  # the cursor moved on: nothing twice
    assert again["awarded"] == 0
    with engine.begin() as conn:  # even when the cursor is reset, the unique key keeps one entry per event+rule
        conn.execute(sa.text("UPDATE points_cursor SET seq = 0"))
    assert _award(ctx)["awarded"] == 0
    mine = ok(client.get("/api/v1/me/points", headers=learner.headers))
    assert mine["balance"] == 25 and mine["earned"] == 25
    assert sorted(e["rule_id"] for e in mine["entries"]) == ["community-outcome", "course-completed"]
    assert ok(client.get("/api/v1/me/points", headers=other.headers))["balance"] == 0


def test_the_yearly_cap_of_a_rule_is_kept(ctx, client, deposited, tmp_path, monkeypatch) -> None:
    rules = tmp_path / "points.toml"
    rules.write_text('[[rule]]\nid = "c"\nevent = "achievement.deposited"\ntypes = ["degree_course"]\n'
                     'points = 4\nmax_per_year = 6\nname_zh = "课程"\nname_en = "course"\n', encoding="utf-8")
    monkeypatch.setattr(ctx.settings.engage, "points_file", rules)
    learner = register_learner(client)
    for code in ("A1", "A2", "A3"):
        deposited(learner, code=code)
    _award(ctx)
    body = ok(client.get("/api/v1/me/points", headers=learner.headers))
    assert body["balance"] == 6  # 4 + 2 (capped) + 0
    assert sorted(e["points"] for e in body["entries"]) == [2, 4]


def _give(engine, learner_id: int, pts: int, *, expires: dt.date | None = None) -> None:
    from sqlmodel import Session

    with Session(engine) as s:
        s.add(PointsEntry(learner_id=learner_id, points=pts, kind="earned", rule_id="test", expires_on=expires))
        s.commit()


def test_redeem_a_benefit_within_balance_and_limits(client, engine) -> None:
    learner = register_learner(client)
    refused(client.post("/api/v1/me/points/redemptions", json={"benefit": "library-card"}, headers=learner.headers),
            409, "insufficient_points")
    _give(engine, learner.id, 150)
    entry = ok(client.post("/api/v1/me/points/redemptions", json={"benefit": "library-card"},
                           headers=learner.headers), 201)
    assert entry["points"] == -100 and entry["kind"] == "redeemed"
    assert ok(client.get("/api/v1/me/points", headers=learner.headers))["balance"] == 50
    _give(engine, learner.id, 100)
    refused(client.post("/api/v1/me/points/redemptions", json={"benefit": "library-card"}, headers=learner.headers),
            409, "benefit_limit")  # once per learner
    refused(client.post("/api/v1/me/points/redemptions", json={"benefit": "nope"}, headers=learner.headers),
            404, "not_found")
    refused(client.post("/api/v1/me/points/redemptions", json={"benefit": "x" * 65}, headers=learner.headers),
            422, "validation_error")
    with engine.connect() as conn:  # the redemption is a ledger event, and audited
        kinds = conn.execute(sa.text("SELECT kind FROM ledger_event WHERE learner_id = :l"),
                             {"l": learner.id}).scalars().all()
        audit = conn.execute(sa.text("SELECT outcome FROM audit_log WHERE action = 'points.redeem'")).scalars().all()
    assert "points.redeemed" in kinds
    assert sorted(audit) == ["denied", "failed", "failed", "ok"]  # 404, two 409s, the redemption


def test_a_closed_benefit_cannot_be_taken(client, ctx, engine) -> None:
    learner = register_learner(client)
    _give(engine, learner.id, 500)
    from sqlmodel import Session

    with Session(engine) as s:
        with pytest.raises(Exception) as exc:
            points.redeem(s, ctx, learner_id=learner.id, benefit_id="library-card", actor="t",
                          today=dt.date(2030, 1, 1))
    assert getattr(exc.value, "code", "") == "benefit_closed"


def test_lapsed_points_leave_the_balance_oldest_first(client, ctx, engine) -> None:
    learner = register_learner(client)
    today = dt.date.today()
    _give(engine, learner.id, 30, expires=today - dt.timedelta(days=1))
    _give(engine, learner.id, 120, expires=today + dt.timedelta(days=10))
    body = ok(client.get("/api/v1/me/points", headers=learner.headers))
    assert body["balance"] == 120 and body["lapsing"] == 120
    assert points.expire_points(ctx)["expired_entries"] == 1
    assert points.expire_points(ctx)["expired_entries"] == 0  # written once
    assert ok(client.get("/api/v1/me/points", headers=learner.headers))["balance"] == 120
    ok(client.post("/api/v1/me/points/redemptions", json={"benefit": "library-card"}, headers=learner.headers), 201)
    assert ok(client.get("/api/v1/me/points", headers=learner.headers))["balance"] == 20


def test_a_malformed_rules_file_is_refused_with_its_place() -> None:
    with pytest.raises(ValueError, match="rule #1: points"):
        points.load_config({"rule": [{"id": "a", "event": "x", "points": -1, "name_zh": "a", "name_en": "a"}]})
    with pytest.raises(ValueError, match="used twice"):
        doc = {"id": "a", "event": "x", "points": 1, "name_zh": "a", "name_en": "a"}
        points.load_config({"rule": [doc, doc]})
