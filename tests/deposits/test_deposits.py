"""Individual deposits through the API: two-stage review, refusals with their codes, appeals, privacy."""

from __future__ import annotations

import json

import sqlalchemy as sa

from node.ledger.service import event_data
from tests.deposits.helpers import (
    PDF,
    claim,
    decide,
    draft,
    ok,
    refused,
    register_learner,
    submitted,
    upload,
)


def _audit(engine, where: str = "") -> list[tuple]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT action, outcome, actor_id, target_id FROM audit_log {where}")))


def test_happy_path_deposits_with_ledger_event_and_audit(client, staff_headers, engine, orgs) -> None:
    learner = register_learner(client)
    app = submitted(client, learner, branch=orgs.b01)
    assert app["branch_code"] == orgs.b01
    branch, centre = staff_headers("branch_reviewer", org=orgs.b01), staff_headers("centre_reviewer", org=orgs.centre)
    first = ok(decide(client, branch, app, "approve"))
    assert first["state"] == "pending_second" and first["first_decision"] == "approve"
    assert first["achievement_id"] is None
    done = ok(decide(client, centre, first, "approve"))
    assert done["state"] == "deposited" and done["achievement_id"]
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT learner_id, source, status, credits, type FROM achievement WHERE id = :i"),
                           {"i": done["achievement_id"]}).one()
        assert tuple(row) == (learner.id, "individual", "deposited", 2500, "degree_course")
        event = conn.execute(sa.text("SELECT kind, leaf, opening FROM ledger_event WHERE achievement_id = :i"),
                             {"i": done["achievement_id"]}).one()
    assert event.kind == "achievement.deposited"
    data = event_data(event)
    assert data["credits"] == "2.5" and data["source"] == "individual"
    assert learner.id_number not in event.leaf and learner.id_number not in event.opening
    assert "credits" not in json.loads(event.leaf)  # what it says is committed, not public
    actions = {(a, o) for a, o, *_ in _audit(engine)}
    assert {("deposit.approve", "ok"), ("deposit.create", "ok"), ("deposit.submit", "ok"),
            ("evidence.upload", "ok")} <= actions
    # the learner sees the outcome in their archive
    archive = ok(client.get("/api/v1/me/archive", headers=learner.headers))
    degree = next(g for g in archive["groups"] if g["key"] == "degree")
    assert [i["id"] for i in degree["items"]] == [done["achievement_id"]]
    assert degree["items"][0]["application_id"] == app["id"]


def test_learner_view_shows_state_and_reasons_but_not_reviewers(client, staff_headers) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    branch = staff_headers("branch_reviewer")
    ok(decide(client, branch, app, "reject", reason="成绩单未盖章"))
    mine = ok(client.get(f"/api/v1/me/deposit-applications/{app['id']}", headers=learner.headers))
    assert mine["state"] == "rejected_first" and mine["first_reason"] == "成绩单未盖章"
    assert "first_reviewer_id" not in mine and "learner_id" not in mine
    listed = ok(client.get("/api/v1/me/deposit-applications", headers=learner.headers))
    assert [a["id"] for a in listed] == [app["id"]]


def test_outlet_staff_apply_on_behalf_and_cannot_review_their_own(client, staff_headers, engine, orgs) -> None:
    learner = register_learner(client)
    outlet = staff_headers("outlet_staff", "branch_reviewer", org=orgs.out1)
    app = ok(client.post("/api/v1/deposit-applications",
                         json={"learner_id": learner.id, "achievement": claim(type="vocational_qualification",
                               title="电工", level="四级", credits=None, score=None, code="CERT-1")},
                         headers=outlet), 201)
    assert app["submitted_by_staff_id"] is not None and app["submitted_on_behalf"] is True
    assert app["branch_code"] == orgs.b01  # the outlet's branch
    ok(upload(client, app["id"], outlet, own=False), 201)
    app = ok(client.get(f"/api/v1/deposit-applications/{app['id']}", headers=outlet))
    app = ok(client.post(f"/api/v1/deposit-applications/{app['id']}/submit", json={"version": app["version"]},
                         headers=outlet))
    refused(decide(client, outlet, app, "approve"), 403, "self_review")
    assert ("deposit.approve", "denied") in {(a, o) for a, o, *_ in _audit(engine)}
    # another outlet's staff member cannot see it, let alone act on it
    other = staff_headers("outlet_staff", org=orgs.out2)
    refused(client.get(f"/api/v1/deposit-applications/{app['id']}", headers=other), 404, "not_found")
    refused(upload(client, app["id"], other, own=False), 404, "not_found")
    # the learner sees it as theirs
    mine = ok(client.get(f"/api/v1/me/deposit-applications/{app['id']}", headers=learner.headers))
    assert mine["submitted_on_behalf"] is True and mine["state"] == "pending_first"


def test_nobody_reviews_both_stages(client, staff_headers) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    both = staff_headers("branch_reviewer", "centre_reviewer")
    first = ok(decide(client, both, app, "approve"))
    refused(decide(client, both, first, "approve"), 403, "same_reviewer")
    refused(decide(client, both, first, "reject", reason="no"), 403, "same_reviewer")


def test_wrong_roles_are_forbidden(client, staff_headers) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    centre = staff_headers("centre_reviewer")
    refused(decide(client, centre, app, "approve"), 403, "forbidden")  # first stage is the branch's
    first = ok(decide(client, staff_headers("branch_reviewer"), app, "approve"))
    refused(decide(client, staff_headers("branch_reviewer"), first, "approve"), 403, "forbidden")
    for headers in (learner.headers, staff_headers("outlet_staff"), staff_headers("auditor")):
        refused(decide(client, headers, first, "approve"), 403, "forbidden")
    refused(client.post("/api/v1/deposit-applications", json={"learner_id": learner.id, "achievement": claim()},
                        headers=staff_headers("branch_reviewer")), 403, "forbidden")
    refused(client.post("/api/v1/me/deposit-applications", json={"achievement": claim()}, headers=centre),
            403, "forbidden")
    assert client.post(f"/api/v1/deposit-applications/{app['id']}/decision",
                       json={"decision": "approve", "version": 1}).status_code == 401


def test_illegal_transitions_and_missing_reasons(client, staff_headers) -> None:
    learner = register_learner(client)
    branch = staff_headers("branch_reviewer")
    app = draft(client, learner)
    body = refused(decide(client, branch, app, "approve"), 409, "illegal_transition")
    assert body["detail"] == {"state": "draft", "action": "approve"}
    refused(client.post(f"/api/v1/me/deposit-applications/{app['id']}/submit", json={"version": app["version"]},
                        headers=learner.headers), 409, "evidence_required")
    app = submitted(client, learner)
    refused(client.post(f"/api/v1/me/deposit-applications/{app['id']}/submit", json={"version": app["version"]},
                        headers=learner.headers), 409, "illegal_transition")
    refused(client.post(f"/api/v1/me/deposit-applications/{app['id']}/appeal",
                        json={"reason": "why", "version": app["version"]}, headers=learner.headers),
            409, "illegal_transition")
    refused(decide(client, branch, app, "reject"), 400, "reason_required")
    refused(decide(client, branch, app, "reject", reason="  "), 400, "reason_required")
    done = ok(decide(client, staff_headers("centre_reviewer"), ok(decide(client, branch, app, "approve")), "approve"))
    body = refused(decide(client, staff_headers("centre_reviewer"), done, "reject", reason="late"), 409,
                   "illegal_transition")
    assert body["detail"] == {"state": "deposited", "action": "reject"}
    refused(upload(client, app["id"], learner.headers), 409, "illegal_transition")


def test_stale_version_means_only_one_of_two_reviewers_wins(client, staff_headers, engine) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    a, b = staff_headers("branch_reviewer"), staff_headers("branch_reviewer")
    ok(decide(client, a, app, "approve"))
    body = refused(decide(client, b, app, "reject", reason="too late"), 409, "stale_version")
    assert body["detail"]["expected_version"] == app["version"]
    state = ok(client.get(f"/api/v1/me/deposit-applications/{app['id']}", headers=learner.headers))
    assert state["state"] == "pending_second" and state["first_decision"] == "approve"
    assert state["version"] == app["version"] + 1
    # a version from the future is stale too, and evidence added after reading makes the reader's version stale
    refused(decide(client, b, state, "approve", version=state["version"] + 5), 409, "stale_version")


def test_evidence_added_after_a_reviewer_read_makes_their_decision_stale(client, staff_headers) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    branch = staff_headers("branch_reviewer")
    ok(decide(client, branch, app, "reject", reason="请补充证书扫描件"))
    rejected = ok(client.get(f"/api/v1/me/deposit-applications/{app['id']}", headers=learner.headers))
    ok(upload(client, app["id"], learner.headers, content=PDF + b"% page 2\n"), 201)
    refused(client.post(f"/api/v1/me/deposit-applications/{app['id']}/appeal",
                        json={"reason": "已补充", "version": rejected["version"]}, headers=learner.headers),
            409, "stale_version")


def test_appeal_returns_to_the_rejecting_stage_for_a_different_reviewer(client, staff_headers) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    rejecter, other = staff_headers("branch_reviewer"), staff_headers("branch_reviewer")
    rejected = ok(decide(client, rejecter, app, "reject", reason="材料不全"))
    refused(client.post(f"/api/v1/me/deposit-applications/{app['id']}/appeal",
                        json={"version": rejected["version"]}, headers=learner.headers), 400, "reason_required")
    appealed = ok(client.post(f"/api/v1/me/deposit-applications/{app['id']}/appeal",
                              json={"reason": "原件已补交", "version": rejected["version"]}, headers=learner.headers))
    assert appealed["state"] == "appealed_first" and appealed["appeal_stage"] == "first"
    refused(decide(client, staff_headers("centre_reviewer"), appealed, "approve"), 403, "forbidden")
    refused(decide(client, rejecter, appealed, "approve"), 403, "same_reviewer")
    upheld = ok(decide(client, other, appealed, "approve"))
    assert upheld["state"] == "pending_second" and upheld["appeal_decision"] == "approve"
    assert upheld["first_decision"] == "reject" and upheld["first_reason"] == "材料不全"
    centre = staff_headers("centre_reviewer")
    rejected2 = ok(decide(client, centre, upheld, "reject", reason="学分超出标准"))
    assert rejected2["state"] == "rejected_second"
    refused(client.post(f"/api/v1/me/deposit-applications/{app['id']}/appeal",
                        json={"reason": "again", "version": rejected2["version"]}, headers=learner.headers),
            409, "already_appealed")


def test_a_rejected_appeal_is_final(client, staff_headers) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    first = ok(decide(client, staff_headers("branch_reviewer"), app, "approve"))
    centre_a, centre_b = staff_headers("centre_reviewer"), staff_headers("centre_reviewer")
    rejected = ok(decide(client, centre_a, first, "reject", reason="证书不在目录中"))
    appealed = ok(client.post(f"/api/v1/me/deposit-applications/{app['id']}/appeal",
                              json={"reason": "证书在2024版目录中", "version": rejected["version"]},
                              headers=learner.headers))
    assert appealed["state"] == "appealed_second"
    refused(decide(client, centre_a, appealed, "reject", reason="same"), 403, "same_reviewer")
    final = ok(decide(client, centre_b, appealed, "reject", reason="复核维持原决定"))
    assert final["state"] == "rejected_final" and final["appeal_decision_reason"] == "复核维持原决定"
    refused(client.post(f"/api/v1/me/deposit-applications/{app['id']}/appeal",
                        json={"reason": "again", "version": final["version"]}, headers=learner.headers),
            409, "already_appealed")
    refused(decide(client, staff_headers("centre_reviewer"), final, "approve"), 409, "illegal_transition")


def test_appeal_upheld_at_second_stage_deposits(client, staff_headers, engine) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    first = ok(decide(client, staff_headers("branch_reviewer"), app, "approve"))
    rejected = ok(decide(client, staff_headers("centre_reviewer"), first, "reject", reason="x"))
    appealed = ok(client.post(f"/api/v1/me/deposit-applications/{app['id']}/appeal",
                              json={"reason": "y", "version": rejected["version"]}, headers=learner.headers))
    done = ok(decide(client, staff_headers("centre_reviewer"), appealed, "approve"))
    assert done["state"] == "deposited" and done["achievement_id"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ledger_event WHERE kind = 'achievement.deposited'")
                            ).scalar_one() == 1


def test_learners_cannot_see_or_touch_each_others_applications(client, staff_headers) -> None:
    alice, bob = register_learner(client, "201", "甲"), register_learner(client, "202", "乙")
    app = submitted(client, alice)
    sha = app["evidence"][0]["sha256"]
    for method, path, body in (
        ("GET", f"/api/v1/me/deposit-applications/{app['id']}", None),
        ("POST", f"/api/v1/me/deposit-applications/{app['id']}/submit", {"version": app["version"]}),
        ("POST", f"/api/v1/me/deposit-applications/{app['id']}/appeal", {"reason": "x", "version": app["version"]}),
        ("GET", f"/api/v1/me/deposit-applications/{app['id']}/evidence/{sha}", None),
    ):
        refused(client.request(method, path, json=body, headers=bob.headers), 404, "not_found")
    refused(upload(client, app["id"], bob.headers), 404, "not_found")
    assert ok(client.get("/api/v1/me/deposit-applications", headers=bob.headers)) == []
    refused(client.get(f"/api/v1/deposit-applications/{app['id']}", headers=bob.headers), 403, "forbidden")
    refused(client.get(f"/api/v1/learners/{alice.id}/archive", headers=bob.headers), 403, "forbidden")


def test_claims_are_validated_per_type(client) -> None:
    learner = register_learner(client)
    bad = [
        claim(type="vocational_qualification", level=None),
        claim(type="skill_level", level="六级"),
        claim(credits=2.5),  # a binary float, not an exact decimal
        claim(credits="1.2345"),
        claim(credits="-1"),
        claim(score="A+"),
        claim(score="101"),
        claim(type="training", credits=None, score=None),
        claim(earned_on="2999-01-01"),
        claim(expires_on="2020-01-01"),
        claim(type="nonsense"),
        claim(certificate_no="3100012345678"),  # a course has no certificate number
    ]
    for c in bad:
        r = client.post("/api/v1/me/deposit-applications", json={"achievement": c}, headers=learner.headers)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (c, r.text)
    good = draft(client, learner, type="vocational_qualification", level="三级", credits="4", score="合格")
    assert good["achievement"]["credits"] == "4" and good["achievement"]["level"] == "三级"
    t = draft(client, learner, type="training", credits=None, score=None, hours="16.5")
    assert t["achievement"]["hours"] == "16.5"


def test_a_certificate_keeps_its_number_apart_from_its_catalogue_code(client, staff_headers, engine, orgs) -> None:
    """`code` is what conversion rules match (the certificate's catalogue code); the serial number is stored and
    shown to the learner, but stays out of the ledger leaf."""
    learner = register_learner(client)
    app = submitted(client, learner, type="vocational_qualification", code="VQ.CNC_MILLING", title="数控铣工",
                    level="三级", credits=None, score="合格", certificate_no=" 3105000123456 ", branch=orgs.b01)
    assert app["achievement"]["certificate_no"] == "3105000123456"
    first = ok(decide(client, staff_headers("branch_reviewer", org=orgs.b01), app, "approve"))
    done = ok(decide(client, staff_headers("centre_reviewer", org=orgs.centre), first, "approve"))
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT code, certificate_no, level FROM achievement WHERE id = :i"),
                           {"i": done["achievement_id"]}).one()
        event = conn.execute(sa.text("SELECT leaf, opening FROM ledger_event WHERE achievement_id = :i"),
                             {"i": done["achievement_id"]}).one()
    assert tuple(row) == ("VQ.CNC_MILLING", "3105000123456", "三级")
    assert "3105000123456" not in event.leaf + event.opening and event_data(event)["code"] == "VQ.CNC_MILLING"
    archive = ok(client.get("/api/v1/me/archive", headers=learner.headers))
    items = [i for g in archive["groups"] for i in g["items"]]
    assert [i["certificate_no"] for i in items] == ["3105000123456"]


def test_no_clear_id_number_in_any_response(client, staff_headers) -> None:
    learner = register_learner(client, "303")
    texts = []
    app = submitted(client, learner)
    branch, centre = staff_headers("branch_reviewer"), staff_headers("centre_reviewer")
    for r in (
        decide(client, branch, app, "approve"),
        client.get(f"/api/v1/deposit-applications/{app['id']}", headers=centre),
        client.get("/api/v1/deposit-applications", headers=centre),
        client.get("/api/v1/me/deposit-applications", headers=learner.headers),
        client.get("/api/v1/me/archive", headers=learner.headers),
        client.get(f"/api/v1/learners/{learner.id}/archive", headers=centre),
    ):
        assert r.status_code == 200, r.text
        texts.append(r.text)
    assert all(learner.id_number not in t for t in texts)
    staff_view = json.loads(texts[1])
    assert staff_view["learner_id_number_masked"] == learner.id_number[:6] + "********" + learner.id_number[-4:]


def test_review_queue_filters_and_pages(client, staff_headers) -> None:
    learner = register_learner(client)
    apps = [submitted(client, learner, code=f"C{i}") for i in range(3)]
    draft(client, learner)
    branch = staff_headers("branch_reviewer")
    ok(decide(client, branch, apps[0], "approve"))
    page = ok(client.get("/api/v1/deposit-applications", params={"state": "pending_first", "limit": 1},
                         headers=branch))
    assert [a["id"] for a in page["items"]] == [apps[2]["id"]] and page["next_cursor"] == apps[2]["id"]
    page2 = ok(client.get("/api/v1/deposit-applications",
                          params={"state": "pending_first", "limit": 1, "cursor": page["next_cursor"]},
                          headers=branch))
    assert [a["id"] for a in page2["items"]] == [apps[1]["id"]]
    everything = ok(client.get("/api/v1/deposit-applications", headers=branch))
    assert {a["state"] for a in everything["items"]} == {"pending_first", "pending_second"}  # drafts hidden
    outlet = ok(client.get("/api/v1/deposit-applications", headers=staff_headers("outlet_staff")))
    assert outlet["items"] == []
