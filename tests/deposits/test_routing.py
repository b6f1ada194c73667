"""Routing of individual deposits to branches, and branch queues at the data level: a branch reviewer sees and
decides their own branch's applications only; the centre sees every queue and re-routes."""

from __future__ import annotations

import json

import sqlalchemy as sa

from tests.conftest import valid_id
from tests.deposits.helpers import PDF, claim, decide, ok, refused, register_learner, submitted, upload


def _ids(page: dict) -> list[int]:
    return [a["id"] for a in page["items"]]


def test_a_branch_reviewer_cannot_see_or_decide_another_branchs_application(client, staff_headers, orgs,
                                                                            engine) -> None:
    mine = submitted(client, register_learner(client, "201"), branch=orgs.b01)
    theirs = submitted(client, register_learner(client, "202"), branch=orgs.b02)
    b01 = staff_headers("branch_reviewer", org=orgs.b01)
    b02 = staff_headers("branch_reviewer", org=orgs.b02)

    assert _ids(ok(client.get("/api/v1/deposit-applications", headers=b01))) == [mine["id"]]
    assert _ids(ok(client.get("/api/v1/deposit-applications", headers=b02))) == [theirs["id"]]
    # asking for the other branch's queue by name gives nothing either
    assert _ids(ok(client.get("/api/v1/deposit-applications", params={"branch": orgs.b02}, headers=b01))) == []
    # not readable, not decidable, its evidence not downloadable: reported as missing
    refused(client.get(f"/api/v1/deposit-applications/{theirs['id']}", headers=b01), 404, "not_found")
    refused(decide(client, b01, theirs, "approve"), 404, "not_found")
    sha = theirs["evidence"][0]["sha256"]
    refused(client.get(f"/api/v1/deposit-applications/{theirs['id']}/evidence/{sha}", headers=b01), 404,
            "not_found")
    with engine.connect() as conn:
        state = conn.execute(sa.text("SELECT state, first_reviewer_id FROM deposit_application WHERE id = :i"),
                             {"i": theirs["id"]}).one()
        denied = conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'deposit.approve' "
                                      "AND outcome = 'denied' AND target_id = :t"), {"t": str(theirs["id"])}).scalar()
    assert tuple(state) == ("pending_first", None) and denied == 1
    # their own branch's reviewer decides it
    assert ok(decide(client, b02, theirs, "approve"))["state"] == "pending_second"


def test_the_centre_sees_every_queue_and_filters_by_branch(client, staff_headers, orgs) -> None:
    a = submitted(client, register_learner(client, "211"), branch=orgs.b01)
    b = submitted(client, register_learner(client, "212"), branch=orgs.b02)
    c = submitted(client, register_learner(client, "213"))  # no branch: the centre's own queue
    assert c["branch_code"] is None
    for centre in (staff_headers("branch_reviewer", org=orgs.centre), staff_headers("centre_reviewer", org=orgs.centre)):
        assert _ids(ok(client.get("/api/v1/deposit-applications", headers=centre))) == [c["id"], b["id"], a["id"]]
        by = {code: _ids(ok(client.get("/api/v1/deposit-applications", params={"branch": code}, headers=centre)))
              for code in (orgs.b01, orgs.b02, orgs.centre)}
        assert by == {orgs.b01: [a["id"]], orgs.b02: [b["id"]], orgs.centre: [c["id"]]}
    # the centre's own queue is the centre's: no branch reviewer sees it
    b01 = staff_headers("branch_reviewer", org=orgs.b01)
    refused(client.get(f"/api/v1/deposit-applications/{c['id']}", headers=b01), 404, "not_found")
    first = ok(decide(client, staff_headers("branch_reviewer", org=orgs.centre), c, "approve"))
    assert first["state"] == "pending_second"
    refused(client.get("/api/v1/deposit-applications", params={"branch": orgs.out1}, headers=b01), 400,
            "invalid_query")


def test_routing_order_named_branch_then_outlet_then_home_branch_then_centre(client, staff_headers, orgs) -> None:
    # an account opened at OUT1 (under B01): the learner's home branch is B01
    clerk = staff_headers("outlet_staff", org=orgs.out1)
    number = valid_id(serial="221")
    opened = ok(client.post("/api/v1/learners", json={"id_number": number, "name": "李四",
                                                      "password": "learner-pass-1"}, headers=clerk), 201)
    token = ok(client.post("/api/v1/auth/token", data={"username": opened["account_no"],
                                                       "password": "learner-pass-1"}))
    learner = {"Authorization": f"Bearer {token['access_token']}"}
    home = ok(client.post("/api/v1/me/deposit-applications", json={"achievement": claim()}, headers=learner), 201)
    assert home["branch_code"] == orgs.b01
    named = ok(client.post("/api/v1/me/deposit-applications",
                           json={"achievement": claim(), "branch_code": orgs.b02}, headers=learner), 201)
    assert named["branch_code"] == orgs.b02
    to_centre = ok(client.post("/api/v1/me/deposit-applications",
                               json={"achievement": claim(), "branch_code": orgs.centre}, headers=learner), 201)
    assert to_centre["branch_code"] is None
    # outlet staff of OUT2 (under B02) applying for the same learner: their branch
    out2 = staff_headers("outlet_staff", org=orgs.out2)
    on_behalf = ok(client.post("/api/v1/deposit-applications", json={"learner_id": opened["id"],
                                                                     "achievement": claim()}, headers=out2), 201)
    assert on_behalf["branch_code"] == orgs.b02
    # a learner registered online has no home branch: the centre's queue
    online = register_learner(client, "222")
    assert ok(client.post("/api/v1/me/deposit-applications", json={"achievement": claim()},
                          headers=online.headers), 201)["branch_code"] is None
    for bad in (orgs.out1, "NOPE"):
        refused(client.post("/api/v1/me/deposit-applications", json={"achievement": claim(), "branch_code": bad},
                            headers=online.headers), 400, "invalid_branch")


def test_queue_keyset_paging_both_ways_with_state_filter(client, staff_headers, orgs) -> None:
    learner = register_learner(client, "231")
    ids = [submitted(client, learner, branch=orgs.b01)["id"] for _ in range(5)]
    b01 = staff_headers("branch_reviewer", org=orgs.b01)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ok(client.get("/api/v1/deposit-applications", params=params, headers=b01))
        seen += _ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    first = ok(client.get("/api/v1/deposit-applications", params={"order": "oldest", "limit": 2}, headers=b01))
    second = ok(client.get("/api/v1/deposit-applications",
                           params={"order": "oldest", "limit": 2, "cursor": first["next_cursor"]}, headers=b01))
    assert _ids(first) + _ids(second) == ids[:4]
    app = ok(client.get(f"/api/v1/deposit-applications/{ids[2]}", headers=b01))
    ok(decide(client, b01, app, "reject", reason="证明不清"))
    rejected = ok(client.get("/api/v1/deposit-applications", params={"state": "rejected_first"}, headers=b01))
    assert _ids(rejected) == [ids[2]]


def test_the_centre_reroutes_an_open_application(client, staff_headers, orgs, engine) -> None:
    app = submitted(client, register_learner(client, "241"), branch=orgs.b01)
    centre = staff_headers("centre_reviewer", org=orgs.centre)
    b01, b02 = staff_headers("branch_reviewer", org=orgs.b01), staff_headers("branch_reviewer", org=orgs.b02)
    route = f"/api/v1/deposit-applications/{app['id']}/route"
    refused(client.post(route, json={"branch_code": orgs.b02, "version": app["version"]}, headers=b01), 403,
            "forbidden")  # a branch does not hand its applications around
    refused(client.post(route, json={"branch_code": orgs.b02, "version": app["version"] - 1}, headers=centre),
            409, "stale_version")
    refused(client.post(route, json={"branch_code": orgs.out2, "version": app["version"]}, headers=centre),
            400, "invalid_branch")
    moved = ok(client.post(route, json={"branch_code": orgs.b02, "version": app["version"]}, headers=centre))
    assert moved["branch_code"] == orgs.b02 and moved["version"] == app["version"] + 1
    refused(client.get(f"/api/v1/deposit-applications/{app['id']}", headers=b01), 404, "not_found")
    first = ok(decide(client, b02, moved, "approve"))
    done = ok(decide(client, centre, first, "approve"))
    refused(client.post(route, json={"branch_code": orgs.b01, "version": done["version"]}, headers=centre), 409,
            "illegal_transition")
    with engine.connect() as conn:
        detail = conn.execute(sa.text("SELECT detail FROM audit_log WHERE action = 'deposit.route' "
                                      "AND outcome = 'ok'")).scalar_one()
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert {k: v for k, v in detail.items() if k != "request_id"} == {"from": orgs.b01, "to": orgs.b02}


def test_outlet_staff_see_what_they_started_wherever_it_went(client, staff_headers, orgs) -> None:
    learner = register_learner(client, "251")
    clerk = staff_headers("outlet_staff", org=orgs.out1)
    app = ok(client.post("/api/v1/deposit-applications", json={"learner_id": learner.id, "achievement": claim(),
                                                                "branch_code": orgs.b02}, headers=clerk), 201)
    ok(upload(client, app["id"], clerk, content=PDF, own=False), 201)
    mine = submitted(client, learner, branch=orgs.b01)  # the learner's own, in B01: not the clerk's
    assert _ids(ok(client.get("/api/v1/deposit-applications", headers=clerk))) == [app["id"]]
    refused(client.get(f"/api/v1/deposit-applications/{mine['id']}", headers=clerk), 404, "not_found")
