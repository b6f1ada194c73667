"""Conversion requests end to end through the API: seeds → deposits → request → confirm → review → ledger."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from node.ledger.service import event_data
from tests.deposits.helpers import ok

SUES = "SUES-CE-MECHATRONICS"
DHVC = "DHVC-MECHATRONICS"
ZTC01 = "SOU-AUTO-SVC"


def _events(engine, kind: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT leaf, opening, achievement_id FROM ledger_event WHERE kind = :k "
                                    "ORDER BY seq"), {"k": kind}).all()
    return [dict(json.loads(r.leaf), data=event_data(r), achievement_id=r.achievement_id) for r in rows]


def _count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def _confirm(client, headers, req, keep=None):
    body = {"version": req["version"]}
    if keep is not None:
        body["keep"] = keep
    return client.post(f"/api/v1/conversions/{req['id']}/confirm", json=body, headers=headers)


def _review(client, headers, req, decisions):
    return client.post(f"/api/v1/conversions/{req['id']}/review",
                       json={"version": req["version"], "decisions": decisions}, headers=headers)


def _approve_all(req):
    return [{"item_id": i["id"], "decision": "approve"} for i in req["items"] if i["status"] == "confirmed"]


def test_cnc_milling_certificate_converts_to_manufacturing_process(client, engine, seeded, learner, deposit_via_api,
                                                                  crew) -> None:
    """证书认可型: 数控铣工（三级）→ 机械制造工艺 (4 credits, 免考) under the SUES institution rule."""
    me = learner()
    cert = deposit_via_api(me, type="vocational_qualification", issuer_code="SH-OSTA", issuer_name="上海市职业技能鉴定中心",
                           code="VQ.CNC_MILLING", title="数控铣工（三级）", level="三级", score="合格",
                           credits=None, earned_on="2024-05-01")
    req = ok(client.post("/api/v1/me/conversions", json={"programme": SUES}, headers=me.headers), 201)
    assert req["state"] == "proposed"
    [item] = req["items"]
    assert item["target_key"] == f"course:{SUES}:SUES-MFG-PROC"
    assert (item["rule_id"], item["rule_version"]) == ("SUES-CR-2016-CNCMILL-3", 1)
    assert item["credits"] == "4" and item["recorded_grade"] == "免考" and item["sources"] == [cert]
    assert "SUES-CR-2016-CNCMILL-3" in item["explanation_zh"]

    confirmed = ok(_confirm(client, crew["outlet"], req))
    assert confirmed["state"] == "confirmed"
    done = ok(_review(client, crew["branch"], confirmed, _approve_all(confirmed)))
    assert done["state"] == "decided"
    [approved] = done["items"]
    assert approved["status"] == "approved" and approved["ledger_seq"] is not None

    [event] = _events(engine, "conversion.approved")
    assert event["data"]["credits"] == "4" and event["data"]["grade"] == "免考"
    assert event["data"]["rule"] == {"id": "SUES-CR-2016-CNCMILL-3", "version": 1}
    assert event["data"]["sources"] == [cert]
    assert event["achievement_id"] == approved["achievement_id"]
    assert me.id_number not in json.dumps(event)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT source, credits, code, score_text FROM achievement WHERE id = :i"),
                           {"i": approved["achievement_id"]}).one()
    assert tuple(row) == ("conversion", 4000, "SUES-MFG-PROC", "免考")

    # the learner sees the rule applied, and the same target is not proposed again
    mine = ok(client.get(f"/api/v1/me/conversions/{req['id']}", headers=me.headers))
    assert mine["items"][0]["rule_id"] == "SUES-CR-2016-CNCMILL-3" and "confirmed_by" not in mine
    again = client.post("/api/v1/me/conversions", json={"programme": SUES}, headers=me.headers)
    assert again.status_code == 409 and again.json()["code"] == "conversion_nothing_proposed"


def test_electrician_exemption_statement_is_signed_and_verifies(client, engine, seeded, learner, deposit_via_api,
                                                               crew, staff) -> None:
    """学分认可型: 电子技术 + three courses → exemption from the 电工（三级）theory exam, with a signed statement."""
    me = learner()
    courses = [("DHVC-ELECTRONICS", "电子技术", "78"), ("DHVC-CIRCUITS", "电工基础", "及格"),
               ("DHVC-MOTOR-CTRL", "电机与电气控制", "82"), ("DHVC-PLC", "可编程控制器应用", "良")]
    ids = [deposit_via_api(me, type="degree_course", issuer_code="DHVC", issuer_name="上海东海职业技术学院",
                           code=code, title=title, score=score, credits="4", earned_on="2025-01-10")
           for code, title, score in courses]
    req = ok(client.post("/api/v1/conversions", json={"programme": DHVC, "learner_id": me.id},
                         headers=crew["outlet"]), 201)
    [item] = req["items"]
    assert item["target_key"] == "exemption:VQ.ELECTRICIAN:三级:theory"
    assert item["credits"] == "0" and item["recorded_grade"] == "免考"
    assert sorted(item["sources"]) == sorted(ids)
    done = ok(_review(client, crew["centre"], ok(_confirm(client, crew["outlet"], req)),
                      [{"item_id": item["id"], "decision": "approve"}]))
    assert done["items"][0]["has_statement"]

    statement = ok(client.get(f"/api/v1/me/conversions/{req['id']}/items/{item['id']}/statement",
                              headers=me.headers))
    subject = statement["credentialSubject"]
    assert subject["rule"] == {"ruleId": "SH-GS-CRED-2016-ELECTRICIAN-3", "version": 1}
    assert sorted(c["achievementId"] for c in subject["coursesUsed"]) == sorted(ids)
    assert subject["exemption"]["title"] == "电工（三级）理论考核"
    assert statement["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    text = json.dumps(statement, ensure_ascii=False)
    assert me.id_number not in text and subject["id"] != me.account_no
    report = ok(client.post("/api/v1/verify", json=statement))
    assert report["valid"] is True, report
    statement["credentialSubject"]["exemption"]["level"] = "二级"
    assert ok(client.post("/api/v1/verify", json=statement))["valid"] is False
    # another learner cannot fetch it
    other = learner()
    r = client.get(f"/api/v1/me/conversions/{req['id']}/items/{item['id']}/statement", headers=other.headers)
    assert r.status_code == 404
    # one of the courses is revoked: the exemption is void, its statement no longer handed out, and the copy the
    # learner already holds fails verification by its status entry
    issued = ok(client.get(f"/api/v1/me/conversions/{req['id']}/items/{item['id']}/statement", headers=me.headers))
    assert issued["credentialStatus"]["type"] == "BitstringStatusListEntry"
    assert any(c["check"] == "status" and c["ok"] for c in ok(client.post("/api/v1/verify", json=issued))["checks"])
    maker, checker = staff("centre_reviewer", org="C01"), staff("centre_reviewer", org="C01")
    asked = ok(client.post(f"/api/v1/achievements/{ids[0]}/revocations", json={"reason": "成绩作废"},
                           headers=maker), 201)
    ok(client.post(f"/api/v1/revocations/{asked['id']}/decision", json={"approve": True}, headers=checker))
    r = client.get(f"/api/v1/me/conversions/{req['id']}/items/{item['id']}/statement", headers=me.headers)
    assert r.status_code == 409 and r.json()["code"] == "exemption_revoked"
    [voided] = ok(client.get(f"/api/v1/me/conversions/{req['id']}", headers=me.headers))["items"]
    assert voided["status"] == "revoked" and not voided["has_statement"]
    [event] = _events(engine, "conversion.revoked")
    assert event["achievement_id"] is None and event["data"]["target"] == "exemption:VQ.ELECTRICIAN:三级:theory"
    assert event["data"]["statement_status_index"] == int(issued["credentialStatus"]["statusListIndex"])
    verdict = ok(client.post("/api/v1/verify", json=issued))
    assert not verdict["valid"] and any(c["check"] == "status" and c["ok"] is False for c in verdict["checks"])


def _ztc_learner(learner, outcome):
    me = learner()
    cert = outcome(me.id, type="vocational_qualification", code="VQ.AUTO_REPAIR", title="汽车维修工（三级）",
                   issuer_code="SH-OSTA", level="三级", score="合格")
    return me, cert


def test_narrowing_never_exceeds_the_proposal(client, engine, seeded, learner, outcome, crew) -> None:
    me, _ = _ztc_learner(learner, outcome)
    req = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    assert len(req["items"]) == 5 and all(i["credits"] == "6" for i in req["items"])
    first, second = req["items"][0]["id"], req["items"][1]["id"]
    for keep in ([{"item_id": first, "credits": "6.5"}], [{"item_id": 999999}],
                 [{"item_id": first}, {"item_id": first}]):
        r = _confirm(client, crew["outlet"], req, keep)
        assert r.status_code == 409 and r.json()["code"] == "conversion_exceeds_proposal", keep
    r = _confirm(client, crew["outlet"], req, [])
    assert r.status_code == 400 and r.json()["code"] == "conversion_empty"
    r = _confirm(client, crew["outlet"], req, [{"item_id": first, "credits": "1.0001"}])
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    narrowed = ok(_confirm(client, crew["outlet"], req, [{"item_id": first, "credits": "4"}, {"item_id": second}]))
    status = {i["id"]: (i["status"], i["credits"]) for i in narrowed["items"]}
    assert status[first] == ("confirmed", "4") and status[second] == ("confirmed", "6")
    assert sum(1 for s, _ in status.values() if s == "dropped") == 3
    # a second confirmation is an illegal transition
    r = _confirm(client, crew["outlet"], narrowed)
    assert r.status_code == 409 and r.json()["code"] == "conversion_illegal_transition"
    done = ok(_review(client, crew["branch"], narrowed, _approve_all(narrowed)))
    credits = sorted(e["data"]["credits"] for e in _events(engine, "conversion.approved"))
    assert credits == ["4", "6"] and done["state"] == "decided"


def test_learner_withdraws_before_the_decision_only(client, engine, seeded, learner, outcome, crew) -> None:
    me, _ = _ztc_learner(learner, outcome)
    req = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    confirmed = ok(_confirm(client, crew["outlet"], req))
    url = f"/api/v1/me/conversions/{req['id']}/withdraw"
    stale = client.post(url, json={"version": req["version"]}, headers=me.headers)
    assert stale.status_code == 409 and stale.json()["code"] == "stale_version"
    other, _ = _ztc_learner(learner, outcome)
    assert client.post(url, json={"version": confirmed["version"]}, headers=other.headers).status_code == 404
    gone = ok(client.post(url, json={"version": confirmed["version"]}, headers=me.headers))
    assert gone["state"] == "withdrawn" and {i["status"] for i in gone["items"]} == {"withdrawn"}
    r = _review(client, crew["branch"], gone, _approve_all(gone))
    assert r.status_code == 409 and r.json()["code"] == "conversion_illegal_transition"
    assert _events(engine, "conversion.approved") == []
    # the sources are free: a new request proposes the same items, and once decided it cannot be withdrawn
    again = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    assert len(again["items"]) == 5
    confirmed_again = ok(_confirm(client, crew["outlet"], again))
    done = ok(_review(client, crew["branch"], confirmed_again, _approve_all(confirmed_again)))
    r = client.post(f"/api/v1/me/conversions/{again['id']}/withdraw", json={"version": done["version"]},
                    headers=me.headers)
    assert r.status_code == 409 and r.json()["code"] == "conversion_illegal_transition"


def test_reviewer_is_not_the_confirmer_and_decides_every_item(client, seeded, learner, outcome, staff) -> None:
    me, _ = _ztc_learner(learner, outcome)
    both = staff("outlet_staff", "branch_reviewer", org="B01")
    req = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    confirmed = ok(_confirm(client, both, req))
    r = _review(client, both, confirmed, _approve_all(confirmed))
    assert r.status_code == 403 and r.json()["code"] == "conversion_same_person"
    other = staff("centre_reviewer", org="C01")
    r = _review(client, other, confirmed, _approve_all(confirmed)[:2])
    assert r.status_code == 400 and r.json()["code"] == "conversion_decision_missing"
    decisions = _approve_all(confirmed)
    decisions[0] = {"item_id": decisions[0]["item_id"], "decision": "reject"}
    r = _review(client, other, confirmed, decisions)
    assert r.status_code == 400 and r.json()["code"] == "reason_required"
    # the learner cannot confirm or review; outlet staff cannot review
    assert _confirm(client, me.headers, req).status_code == 403
    assert _review(client, staff("outlet_staff", org="O02"), confirmed, []).status_code == 403


def test_appeal_once_with_the_rule_shown(client, engine, seeded, learner, outcome, crew) -> None:
    me, _ = _ztc_learner(learner, outcome)
    req = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    confirmed = ok(_confirm(client, crew["outlet"], req))
    decisions = _approve_all(confirmed)
    rejected_id = decisions[0]["item_id"]
    decisions[0] = {"item_id": rejected_id, "decision": "reject", "reason": "课程内容与证书不对应"}
    decided = ok(_review(client, crew["branch"], confirmed, decisions))
    mine = ok(client.get(f"/api/v1/me/conversions/{req['id']}", headers=me.headers))
    rejected = next(i for i in mine["items"] if i["id"] == rejected_id)
    assert rejected["status"] == "rejected" and rejected["reason"] == "课程内容与证书不对应"
    assert rejected["rule_id"] == "SH-GS-ZTC-2016-01" and rejected["rule_version"] == 1
    assert rejected["explanation_zh"] and rejected["explanation"]["rule_id"] == "SH-GS-ZTC-2016-01"

    appealed = ok(client.post(f"/api/v1/me/conversions/{req['id']}/appeal",
                              json={"version": decided["version"], "reason": "请复核"}, headers=me.headers))
    assert appealed["state"] == "appealed"
    again = client.post(f"/api/v1/me/conversions/{req['id']}/appeal",
                        json={"version": appealed["version"], "reason": "再次"}, headers=me.headers)
    assert again.status_code == 409 and again.json()["code"] == "already_appealed"
    # the first reviewer may not decide the appeal; another one may
    r = _review(client, crew["branch"], appealed, [{"item_id": rejected_id, "decision": "approve"}])
    assert r.status_code == 403 and r.json()["code"] == "conversion_same_person"
    closed = ok(_review(client, crew["centre"], appealed, [{"item_id": rejected_id, "decision": "approve"}]))
    assert closed["state"] == "closed"
    assert len(_events(engine, "conversion.approved")) == 5
    r = client.post(f"/api/v1/me/conversions/{req['id']}/appeal",
                    json={"version": closed["version"], "reason": "三次"}, headers=me.headers)
    assert r.status_code == 409 and r.json()["code"] == "already_appealed"


def test_nothing_to_appeal_when_all_approved(client, seeded, learner, outcome, crew) -> None:
    me, _ = _ztc_learner(learner, outcome)
    req = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    confirmed = ok(_confirm(client, crew["outlet"], req))
    decided = ok(_review(client, crew["branch"], confirmed, _approve_all(confirmed)))
    r = client.post(f"/api/v1/me/conversions/{req['id']}/appeal", json={"version": decided["version"], "reason": "x"},
                    headers=me.headers)
    assert r.status_code == 409 and r.json()["code"] == "conversion_nothing_to_appeal"


def test_what_if_has_no_side_effects(client, engine, seeded, learner, outcome) -> None:
    me = learner()
    outcome(me.id, type="vocational_qualification", code="VQ.CNC_MILLING", title="数控铣工（三级）",
            issuer_code="SH-OSTA", level="三级", score="合格", earned_on=dt.date(2023, 3, 1))
    before = {t: _count(engine, t) for t in ("conversion_request", "conversion_item", "conversion_usage",
                                             "ledger_event", "achievement")}
    r = ok(client.get("/api/v1/me/conversions/what-if", params={"programme": SUES}, headers=me.headers))
    [proposal] = r["proposals"]
    assert proposal["rule_id"] == "SUES-CR-2016-CNCMILL-3" and proposal["credits"] == "4"
    # within 5 years of 2023-03-01: convertible until the day before 2028-03-01's anniversary window closes
    [expiring] = r["expiring"]
    assert expiring["cause"] == "within_years" and expiring["convertible_until"].startswith("2028-0")
    assert {t: _count(engine, t) for t in before} == before
    # later than the window: nothing
    late = ok(client.get("/api/v1/me/conversions/what-if", params={"programme": SUES, "on": "2029-01-01"},
                         headers=me.headers))
    assert late["proposals"] == []


def test_used_once_per_target_across_two_requests(client, engine, seeded, learner, outcome, crew) -> None:
    me, cert = _ztc_learner(learner, outcome)
    first = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    second = ok(client.post("/api/v1/conversions", json={"programme": ZTC01, "learner_id": me.id},
                            headers=crew["outlet2"]), 201)
    assert [i["target_key"] for i in first["items"]] == [i["target_key"] for i in second["items"]]
    c1 = ok(_confirm(client, crew["outlet"], first))
    c2 = ok(_confirm(client, crew["outlet"], second))
    ok(_review(client, crew["branch"], c1, _approve_all(c1)))
    r = _review(client, crew["centre"], c2, _approve_all(c2))
    assert r.status_code == 409 and r.json()["code"] == "conversion_stale"
    assert r.json()["detail"]["reason"] == "already_converted"
    with engine.connect() as conn:
        used = conn.execute(sa.text("SELECT target_key, achievement_id FROM conversion_usage")).all()
    assert len(used) == 5 and {a for _, a in used} == {cert}
    assert len(_events(engine, "conversion.approved")) == 5
    # and the engine, fed the usage, proposes nothing more
    what = ok(client.get("/api/v1/me/conversions/what-if", params={"programme": ZTC01}, headers=me.headers))
    assert what["proposals"] == []
    assert {n["reason"] for n in what["not_applicable"] if n["target_key"]} == {"already_converted"}


def test_learners_see_only_their_own_and_routes_deny_by_default(client, seeded, learner, outcome, crew) -> None:
    me, _ = _ztc_learner(learner, outcome)
    other = learner()
    req = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    assert client.get(f"/api/v1/me/conversions/{req['id']}", headers=other.headers).status_code == 404
    assert client.get("/api/v1/me/conversions", headers=other.headers).json() == []
    assert client.get("/api/v1/conversions", headers=me.headers).status_code == 403
    assert client.post("/api/v1/conversions", json={"programme": ZTC01, "learner_id": me.id},
                       headers=me.headers).status_code == 403
    assert client.get("/api/v1/me/conversions").status_code == 401
    assert client.get("/api/v1/me/conversions/what-if", params={"programme": ZTC01}).status_code == 401
    r = client.get(f"/api/v1/conversions/{req['id']}", headers=crew["branch"])
    assert r.status_code == 200 and r.json()["evaluation"]["proposals"]


def test_staff_reads_of_conversions_are_audited(client, engine, seeded, learner, outcome, crew) -> None:
    """Conversion requests hold a learner's outcomes and the engine's evaluation: reading them is a personal-data
    read like the archive's, audited with who read which learner's requests (a refused read too)."""
    me, _ = _ztc_learner(learner, outcome)
    req = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    listed = ok(client.get("/api/v1/conversions", params={"learner_id": me.id}, headers=crew["outlet"]))
    assert [r["id"] for r in listed] == [req["id"]]
    ok(client.get("/api/v1/conversions", params={"state": "proposed"}, headers=crew["centre"]))
    ok(client.get(f"/api/v1/conversions/{req['id']}", headers=crew["branch"]))
    assert client.get("/api/v1/conversions/999999", headers=crew["branch"]).status_code == 404
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT action, outcome, actor_kind, target_type, target_id, detail FROM audit_log "
            "WHERE action IN ('conversion.list', 'conversion.read') ORDER BY id")).all()
    assert [(r.action, r.outcome, r.actor_kind, r.target_type, r.target_id) for r in rows] == [
        ("conversion.list", "ok", "staff", "learner", str(me.id)),
        ("conversion.list", "ok", "staff", None, None),
        ("conversion.read", "ok", "staff", "conversion_request", str(req["id"])),
        ("conversion.read", "denied", "staff", "conversion_request", "999999"),
    ]
    detail = [r.detail if isinstance(r.detail, dict) else json.loads(r.detail) for r in rows]
    assert detail[0]["requests"] == [req["id"]] and detail[0]["learners"] == [me.id]
    assert me.id in detail[1]["learners"] and detail[2]["learner_id"] == me.id


def test_staff_list_pages_by_cursor_with_each_requests_items(client, seeded, learner, outcome, crew) -> None:
    """Keyset pages, newest first: `cursor` is the last id shown; each request comes with its own items."""
    made = []
    for _ in range(3):
        me, _ = _ztc_learner(learner, outcome)
        made.append(ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201))
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor is not None else {})}
        page = ok(client.get("/api/v1/conversions", params=params, headers=crew["centre"]))
        if not page:
            break
        assert len(page) <= 2
        seen += page
        cursor = page[-1]["id"]
    assert [r["id"] for r in seen] == sorted((r["id"] for r in made), reverse=True)
    by_id = {r["id"]: r for r in made}
    assert all([i["id"] for i in r["items"]] == [i["id"] for i in by_id[r["id"]]["items"]] and r["items"]
               for r in seen)


def test_expired_certificate_does_not_convert(client, seeded, learner, outcome) -> None:
    me = learner()
    outcome(me.id, type="vocational_qualification", code="VQ.AUTO_REPAIR", title="汽车维修工（三级）",
            issuer_code="SH-OSTA", level="三级", score="合格", earned_on=dt.date(2015, 1, 1),
            expires_on=dt.date(2020, 1, 1))
    r = client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers)
    assert r.status_code == 409 and r.json()["code"] == "conversion_nothing_proposed"


def test_retiring_a_rule_takes_effect_at_once_and_stales_open_requests(client, seeded, learner, outcome, crew,
                                                                      staff) -> None:
    me, _ = _ztc_learner(learner, outcome)
    what = ok(client.get("/api/v1/me/conversions/what-if", params={"programme": ZTC01}, headers=me.headers))
    assert len(what["proposals"]) == 5
    req = ok(client.post("/api/v1/me/conversions", json={"programme": ZTC01}, headers=me.headers), 201)
    confirmed = ok(_confirm(client, crew["outlet"], req))
    ok(client.post("/api/v1/standards/rules/SH-GS-ZTC-2016-01/versions/1/retire", json={"reason": "停止试点"},
                   headers=staff("standards_admin")))
    what = ok(client.get("/api/v1/me/conversions/what-if", params={"programme": ZTC01}, headers=me.headers))
    assert what["proposals"] == []
    r = _review(client, crew["branch"], confirmed, _approve_all(confirmed))
    assert r.status_code == 409 and r.json()["code"] == "conversion_stale"


def _cap_rule(rule_id: str, course_code: str, target: str) -> dict:
    return {"id": rule_id, "version": 1, "kind": "guidance", "title": f"测试上限 {rule_id}",
            "effective_from": "2020-01-01", "effective_to": None, "applies_to": {"programmes": [SUES]},
            "condition": {"outcome": {"type": "degree_course", "catalogue_code": course_code}},
            "targets": [{"course": target}], "credits": {"from": "course"}, "grade": {"record": "合格"},
            "caps": {"max_percent_of_graduation_credits": "5"}}


def test_caps_hold_across_requests(client, seeded, learner, outcome, crew, staff) -> None:
    """A 5 % cap (4 of 80 credits) filled by one request refuses the next request's item (PriorUsage credits)."""
    maker, checker = staff("standards_admin"), staff("standards_admin")
    for rule in (_cap_rule("TEST-CAP-A", "X-DRAW", "SUES-DRAWING"), _cap_rule("TEST-CAP-B", "X-ELEC", "SUES-ELEC")):
        ok(client.post("/api/v1/standards/rules", json={"body": rule}, headers=maker), 201)
        ok(client.post(f"/api/v1/standards/rules/{rule['id']}/versions/1/approve", headers=checker))
    me = learner()
    outcome(me.id, type="degree_course", code="X-DRAW", title="制图", issuer_code="U1", credits="4")
    req = ok(client.post("/api/v1/me/conversions", json={"programme": SUES}, headers=me.headers), 201)
    assert [(i["rule_id"], i["credits"]) for i in req["items"]] == [("TEST-CAP-A", "4")]
    confirmed = ok(_confirm(client, crew["outlet"], req))
    ok(_review(client, crew["branch"], confirmed, _approve_all(confirmed)))
    outcome(me.id, type="degree_course", code="X-ELEC", title="电工", issuer_code="U1", credits="3")
    what = ok(client.get("/api/v1/me/conversions/what-if", params={"programme": SUES}, headers=me.headers))
    assert what["proposals"] == []
    refused = [n for n in what["not_applicable"] if n["rule_id"] == "TEST-CAP-B"]
    assert [n["reason"] for n in refused] == ["cap_exceeded"]
    r = client.post("/api/v1/me/conversions", json={"programme": SUES}, headers=me.headers)
    assert r.status_code == 409 and r.json()["code"] == "conversion_nothing_proposed"


def test_revoking_a_source_voids_what_was_converted_from_it(client, engine, seeded, learner, deposit_via_api, crew,
                                                             staff) -> None:
    """A certificate found forged after it was converted: revoking it (maker-checker) revokes the course credits
    converted from it (status bit: their credential no longer verifies), marks the item revoked with the reason
    the learner sees, appends conversion.revoked citing the rule, and frees the item's source usage."""
    me = learner()
    cert = deposit_via_api(me, type="vocational_qualification", issuer_code="SH-OSTA", issuer_name="上海市职业技能鉴定中心",
                           code="VQ.CNC_MILLING", title="数控铣工（三级）", level="三级", score="合格",
                           credits=None, earned_on="2024-05-01")
    req = ok(client.post("/api/v1/me/conversions", json={"programme": SUES}, headers=me.headers), 201)
    confirmed = ok(_confirm(client, crew["outlet"], req))
    [approved] = ok(_review(client, crew["branch"], confirmed, _approve_all(confirmed)))["items"]
    converted = approved["achievement_id"]
    credential = ok(client.get(f"/api/v1/me/credentials/{converted}", headers=me.headers))
    assert client.post("/api/v1/verify", json=credential).json()["valid"]
    assert _count(engine, "conversion_usage") == 1

    maker, checker = staff("centre_reviewer", org="C01"), staff("centre_reviewer", org="C01")
    asked = ok(client.post(f"/api/v1/achievements/{cert}/revocations", json={"reason": "证书造假"}, headers=maker), 201)
    ok(client.post(f"/api/v1/revocations/{asked['id']}/decision", json={"approve": True}, headers=checker))

    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT id, status FROM achievement WHERE id IN (:a, :b)"),
                                     {"a": cert, "b": converted}).all())
    assert statuses == {cert: "revoked", converted: "revoked"}
    verdict = client.post("/api/v1/verify", json=credential).json()
    assert not verdict["valid"] and any(c["check"] == "status" and not c["ok"] for c in verdict["checks"])
    [item] = ok(client.get(f"/api/v1/me/conversions/{req['id']}", headers=me.headers))["items"]
    assert item["status"] == "revoked" and f"source outcome {cert} revoked" in item["reason"]
    [event] = _events(engine, "conversion.revoked")
    assert event["achievement_id"] == converted
    assert event["data"]["item"] == item["id"] and event["data"]["source"] == cert
    assert event["data"]["rule"] == {"id": "SUES-CR-2016-CNCMILL-3", "version": 1}
    assert event["data"]["revocation"] == {"request": asked["id"]} and event["data"]["achievement"] == converted
    assert _count(engine, "conversion_usage") == 0
    # a revoked certificate converts nothing again
    again = client.post("/api/v1/me/conversions", json={"programme": SUES}, headers=me.headers)
    assert again.status_code == 409 and again.json()["code"] == "conversion_nothing_proposed"
