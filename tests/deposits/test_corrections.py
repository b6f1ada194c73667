"""Corrections of deposited achievements: a ledger event with old and new values, audited, centre only."""

from __future__ import annotations

import json

import sqlalchemy as sa

from node.ledger.service import event_data
from tests.deposits.helpers import decide, ok, refused, register_learner, submitted


def _deposited(client, staff_headers, learner, **over) -> int:
    app = submitted(client, learner, **over)
    first = ok(decide(client, staff_headers("branch_reviewer"), app, "approve"))
    return ok(decide(client, staff_headers("centre_reviewer"), first, "approve"))["achievement_id"]


def test_correction_is_a_ledger_event_with_old_and_new_values(client, staff_headers, engine) -> None:
    learner = register_learner(client)
    achievement_id = _deposited(client, staff_headers, learner)
    centre = staff_headers("centre_reviewer")
    body = ok(client.post(f"/api/v1/achievements/{achievement_id}/corrections",
                          json={"credits": "3", "score": "良", "reason": "学校更正成绩单"}, headers=centre), 201)
    assert body["old"] == {"credits": "2.5", "score": "85"} and body["new"] == {"credits": "3", "score": "良"}
    assert body["achievement"]["credits"] == "3" and body["achievement"]["score"] == "良"
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT leaf, opening FROM ledger_event WHERE seq = :s"),
                           {"s": body["ledger_seq"]}).one()
        score_value = conn.execute(sa.text("SELECT score_value FROM achievement WHERE id = :i"),
                                   {"i": achievement_id}).scalar_one()
    event = {**json.loads(row.leaf), "data": event_data(row)}
    assert event["kind"] == "achievement.corrected"
    assert event["data"]["old"] == {"credits": "2.5", "score": "85"}
    assert event["data"]["reason"] == "学校更正成绩单"
    assert score_value is None  # a grade word has no numeric value
    archive = ok(client.get("/api/v1/me/archive", headers=learner.headers))
    assert archive["totals"]["credits"] == "3"
    refused(client.post(f"/api/v1/achievements/{achievement_id}/corrections",
                        json={"credits": "3", "reason": "again"}, headers=centre), 400, "nothing_to_correct")


def test_correction_refusals(client, staff_headers, engine) -> None:
    learner = register_learner(client)
    achievement_id = _deposited(client, staff_headers, learner, type="skill_level", level="四级", credits="1",
                                score=None)
    centre = staff_headers("centre_reviewer")
    url = f"/api/v1/achievements/{achievement_id}/corrections"
    refused(client.post(url, json={"level": "三级"}, headers=centre), 400, "reason_required")
    body = refused(client.post(url, json={"level": "六级", "reason": "typo"}, headers=centre), 400,
                   "invalid_achievement")
    assert body["detail"]["errors"]
    for headers in (staff_headers("branch_reviewer"), staff_headers("outlet_staff"), learner.headers):
        refused(client.post(url, json={"level": "三级", "reason": "x"}, headers=headers), 403, "forbidden")
    refused(client.post("/api/v1/achievements/999999/corrections", json={"level": "三级", "reason": "x"},
                        headers=centre), 404, "not_found")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE achievement SET status = 'revoked' WHERE id = :i"), {"i": achievement_id})
    refused(client.post(url, json={"level": "三级", "reason": "x"}, headers=centre), 409, "illegal_transition")
    with engine.connect() as conn:
        kinds = [k for (k,) in conn.execute(sa.text("SELECT kind FROM ledger_event ORDER BY seq"))]
        denied = conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'achievement.correct' "
                                      "AND outcome <> 'ok'")).scalar_one()
    assert "achievement.corrected" not in kinds
    assert denied == 4  # reason, invalid, missing, revoked (role refusals are recorded as http.post ...)
