"""Organisations through the admin API: the seeds' tree, edits, moves, deactivation, all audited."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.deposits.helpers import claim, decide, ok, refused, register_learner, submitted
from tests.org.conftest import sign_in


def _audit(engine, action: str) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT actor_name, target_id, outcome, detail FROM audit_log WHERE action = :a "
                                    "ORDER BY id"), {"a": action}).all()
    return [(a, t, o, json.loads(d) if isinstance(d, str) else d) for a, t, o, d in rows]


def test_the_tree_follows_the_seeds(api, tree, client, engine) -> None:
    b01 = api("GET", "/organisations/B01")
    assert (b01["kind"], b01["parent_code"], b01["active"]) == ("branch", tree["centre"], True)  # default parent
    assert api("GET", "/organisations/OUT1")["parent_code"] == "B01"
    assert api("GET", "/organisations/U001")["institution_type"] == "university"
    for body, code in (
        ({"code": "X1", "name": "x", "kind": "outlet", "parent_code": tree["centre"]}, "invalid_parent"),
        ({"code": "X2", "name": "x", "kind": "outlet"}, "invalid_parent"),
        ({"code": "X3", "name": "x", "kind": "branch", "parent_code": "OUT1"}, "invalid_parent"),
        ({"code": "X4", "name": "x", "kind": "institution", "parent_code": "U001"}, "invalid_parent"),
        ({"code": "X5", "name": "x", "kind": "branch", "institution_type": "university"}, "invalid_kind"),
        ({"code": "X6", "name": "x", "kind": "institution", "institution_type": "bakery"}, "invalid_kind"),
        ({"code": "X7", "name": "x", "kind": "centre"}, "duplicate"),
        ({"code": "B01", "name": "x", "kind": "branch"}, "duplicate"),
    ):
        status = 409 if code == "duplicate" else 400
        assert api("POST", "/organisations", status, json=body)["code"] == code, body
    assert api("POST", "/organisations", 422, json={"code": "X8", "name": "x", "kind": "shop"})["code"] == \
        "validation_error"
    assert api("POST", "/organisations", 404, json={"code": "X9", "name": "x", "kind": "outlet",
                                                    "parent_code": "NOPE"})["code"] == "not_found"
    created = _audit(engine, "organisation.create")
    assert [t for _, t, o, _ in created if o == "ok"] == ["B01", "B02", "OUT1", "OUT2", "U001"]
    assert created[0][3]["parent"] == tree["centre"] and created[0][0] == "admin"
    assert {o for _, _, o, _ in created} == {"ok", "failed", "denied"}  # refusals are audited too
    # other staff may read the tree; only node administrators change it
    clerk = sign_in_as(client, api, "clerk1", ["outlet_staff"], "OUT1")
    assert len(ok(client.get("/api/v1/admin/organisations", headers=clerk))) == 6
    refused(client.post("/api/v1/admin/organisations", json={"code": "Y", "name": "y", "kind": "branch"},
                        headers=clerk), 403, "forbidden")


def sign_in_as(client, api, username: str, roles: list[str], org: str) -> dict[str, str]:
    made = api("POST", "/staff", 201, json={"username": username, "display_name": username, "roles": roles,
                                            "organisation_code": org})
    return sign_in(client, username, made["initial_password"])


def test_listing_filters_and_keyset_paging(api, tree) -> None:
    for i in range(5):
        api("POST", "/organisations", 201, json={"code": f"OUT1-{i}", "name": f"网点{i}", "kind": "outlet",
                                                 "parent_code": "B01"})
    under_b01 = [o["code"] for o in api("GET", "/organisations", params={"parent": "B01"})]
    assert under_b01 == ["OUT1", "OUT1-0", "OUT1-1", "OUT1-2", "OUT1-3", "OUT1-4"]
    pages, after = [], None
    while True:
        page = api("GET", "/organisations", params={"kind": "outlet", "limit": 3, **({"after": after} if after else {})})
        if not page:
            break
        pages.append([o["code"] for o in page])
        after = page[-1]["code"]
    assert pages == [["OUT1", "OUT1-0", "OUT1-1"], ["OUT1-2", "OUT1-3", "OUT1-4"], ["OUT2"]]
    api("POST", "/organisations/OUT1-4/deactivate")
    assert [o["code"] for o in api("GET", "/organisations", params={"active": False})] == ["OUT1-4"]
    assert "OUT1-4" not in [o["code"] for o in api("GET", "/organisations", params={"active": True})]


def test_update_and_move_are_audited(api, tree, engine) -> None:
    renamed = api("PATCH", "/organisations/B01", json={"name": "黄浦区学分银行分部"})
    assert renamed["name"] == "黄浦区学分银行分部"
    assert api("PATCH", "/organisations/U001", json={"institution_type": "open_university"})["institution_type"] \
        == "open_university"
    assert api("PATCH", "/organisations/B01", 400, json={"institution_type": "university"})["code"] == "invalid_kind"
    assert api("PATCH", "/organisations/B01", 422, json={"kind": "outlet"})["code"] == "validation_error"
    assert api("PATCH", "/organisations/B01", 422, json={"name": None})["code"] == "validation_error"
    moved = api("POST", "/organisations/OUT1/move", json={"parent_code": "B02"})
    assert moved["parent_code"] == "B02"
    assert api("POST", "/organisations/OUT1/move", 400, json={"parent_code": "U001"})["code"] == "invalid_parent"
    assert api("POST", "/organisations/OUT1/move", 400, json={"parent_code": None})["code"] == "invalid_parent"
    assert api("POST", "/organisations/U001/move", json={"parent_code": "OUT2"})["parent_code"] == "OUT2"
    assert api("POST", "/organisations/U001/move", json={"parent_code": None})["parent_code"] is None
    assert api("PATCH", "/organisations/NOPE", 404, json={"name": "x"})["code"] == "not_found"
    def without_request_id(detail: dict) -> dict:
        return {k: v for k, v in detail.items() if k != "request_id"}

    updates = [(t, without_request_id(d)) for _, t, o, d in _audit(engine, "organisation.update") if o == "ok"]
    assert updates[0] == ("B01", {"changed": {"name": ["B01 名称", "黄浦区学分银行分部"]}})
    moves = [(t, without_request_id(d)) for _, t, o, d in _audit(engine, "organisation.move") if o == "ok"]
    assert moves == [("OUT1", {"from": "B01", "to": "B02"}), ("U001", {"from": None, "to": "OUT2"}),
                     ("U001", {"from": "OUT2", "to": None})]


@pytest.mark.parametrize("name", ["黄浦\x00分部", "line\nbreak", "\t", "   "])
def test_names_with_control_characters_are_refused_at_the_edge(api, tree, name) -> None:
    """A NUL in a text column is a 500 on PostgreSQL: refused as payload validation on every database."""
    assert api("POST", "/organisations", 422, json={"code": "X1", "name": name, "kind": "branch"})["code"] == \
        "validation_error"
    assert api("PATCH", "/organisations/B01", 422, json={"name": name})["code"] == "validation_error"
    assert api("POST", "/staff", 422, json={"username": "someone", "display_name": name,
                                            "roles": ["outlet_staff"]})["code"] == "validation_error"


def test_a_deactivated_organisation_s_staff_and_keys_cannot_act(api, tree, client) -> None:
    clerk = sign_in_as(client, api, "clerk1", ["outlet_staff"], "OUT1")
    key = api("POST", "/api-keys", 201, json={"organisation_code": "U001", "label": "sis"})["key"]
    assert client.get("/api/v1/imports", headers={"X-API-Key": key}).status_code == 200
    ok(client.get("/api/v1/deposit-applications", headers=clerk))
    # a branch with an active outlet under it cannot go first; the centre never
    assert api("POST", "/organisations/B01/deactivate", 409)["code"] == "organisation_has_children"
    assert api("POST", f"/organisations/{tree['centre']}/deactivate", 409)["code"] == "illegal_transition"
    assert api("POST", "/organisations/OUT1/deactivate")["active"] is False
    assert api("POST", "/organisations/U001/deactivate")["active"] is False
    refused(client.get("/api/v1/deposit-applications", headers=clerk), 401, "organisation_disabled")
    refused(client.get("/api/v1/imports", headers={"X-API-Key": key}), 401, "organisation_disabled")
    # nothing new joins it
    assert api("POST", "/staff", 409, json={"username": "clerk2", "display_name": "c", "roles": ["outlet_staff"],
                                            "organisation_code": "OUT1"})["code"] == "organisation_inactive"
    assert api("POST", "/organisations", 409, json={"code": "I2", "name": "x", "kind": "institution",
                                                    "parent_code": "OUT1"})["code"] == "organisation_inactive"
    assert api("POST", "/api-keys", 409, json={"organisation_code": "U001"})["code"] == "organisation_inactive"
    # the branch can go once its outlet has; reactivating the outlet needs its branch active again
    api("POST", "/organisations/B01/deactivate")
    assert api("POST", "/organisations/OUT1/activate", 409)["code"] == "organisation_inactive"
    api("POST", "/organisations/B01/activate")
    api("POST", "/organisations/OUT1/activate")
    ok(client.get("/api/v1/deposit-applications", headers=clerk))


def test_a_deactivated_branch_s_open_applications_stay_with_the_centre_or_move(api, tree, client,
                                                                                 staff_headers) -> None:
    api("POST", "/organisations/OUT1/deactivate")
    kept = submitted(client, register_learner(client, "301"), branch="B01")
    moving = submitted(client, register_learner(client, "302"), branch="B01")
    b01 = staff_headers("branch_reviewer", org="B01")
    decided = ok(decide(client, b01, moving, "reject", reason="材料不全"))  # rejected_first: still open
    api("POST", "/organisations/B01/deactivate")
    refused(client.get("/api/v1/deposit-applications", headers=b01), 401, "organisation_disabled")
    # a deactivated branch takes no new applications
    learner = register_learner(client, "303")
    refused(client.post("/api/v1/me/deposit-applications", json={"achievement": claim(), "branch_code": "B01"},
                        headers=learner.headers), 400, "invalid_branch")
    # the centre still sees and decides what is left in it
    centre = staff_headers("branch_reviewer", org=tree["centre"])
    queue = ok(client.get("/api/v1/deposit-applications", params={"branch": "B01"}, headers=centre))
    assert {a["id"] for a in queue["items"]} == {kept["id"], moving["id"]}
    ok(decide(client, centre, kept, "approve"))
    # re-routing moves the open ones (a rejected one waiting for its appeal is open) and is audited
    api("POST", "/organisations/B01/activate")
    after = api("POST", "/organisations/B01/deactivate", json={"reroute_to": "B02"})
    assert after["active"] is False
    b02 = staff_headers("branch_reviewer", org="B02")
    queue = ok(client.get("/api/v1/deposit-applications", headers=b02))
    assert {a["id"] for a in queue["items"]} == {kept["id"], decided["id"]}
    # re-routing to the branch being deactivated (or any inactive one) is refused, and nothing changes
    api("POST", "/organisations/OUT2/deactivate")
    for target in ("B02", "B01", "OUT1"):
        assert api("POST", "/organisations/B02/deactivate", 400, json={"reroute_to": target})["code"] == \
            "invalid_branch"
    assert api("GET", "/organisations/B02")["active"] is True


def test_service_points_are_public_and_list_active_branches_and_outlets(api, tree, client) -> None:
    api("POST", "/organisations/OUT2/deactivate")
    points = ok(client.get("/api/v1/service-points"))
    assert [(p["code"], p["kind"], p["parent_code"]) for p in points] == [
        ("B01", "branch", tree["centre"]), ("B02", "branch", tree["centre"]), ("OUT1", "outlet", "B01")]
