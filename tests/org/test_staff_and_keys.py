"""Staff accounts, roles and institution API keys through the admin API, all audited."""

from __future__ import annotations

import json

import sqlalchemy as sa

from tests.deposits.helpers import ok, refused
from tests.org.conftest import sign_in


def _actions(engine, prefix: str) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT action, target_id, outcome, detail FROM audit_log WHERE action LIKE :p "
                                    "ORDER BY id"), {"p": prefix + "%"}).all()
    return [(a, t, o, json.loads(d) if isinstance(d, str) else d) for a, t, o, d in rows]


def test_add_staff_prints_a_generated_password_once_and_checks_where_roles_fit(api, tree, client, engine) -> None:
    made = api("POST", "/staff", 201, json={"username": "rev.b01", "display_name": "王审核", "roles": ["branch_reviewer"],
                                            "organisation_code": "B01"})
    assert made["organisation_code"] == "B01" and made["roles"] == ["branch_reviewer"]
    password = made["initial_password"]
    assert password and len(password) >= 12
    sign_in(client, "rev.b01", password)
    assert "initial_password" not in api("GET", "/staff/rev.b01")
    chosen = api("POST", "/staff", 201, json={"username": "fed", "display_name": "联邦", "password": "chosen-pass-1",
                                              "roles": ["federation_admin"]})
    assert chosen["initial_password"] is None and chosen["organisation_code"] == tree["centre"]  # default: centre
    sign_in(client, "fed", "chosen-pass-1")
    for roles, org in ((["centre_reviewer"], "B01"), (["branch_reviewer"], "OUT1"), (["institution_uploader"], "B01"),
                       (["node_admin"], "U001"), (["outlet_staff"], "U001")):
        body = api("POST", "/staff", 400, json={"username": "nobody", "display_name": "x", "roles": roles,
                                                "organisation_code": org})
        assert body["code"] == "role_not_allowed" and body["detail"]["roles"] == roles, (roles, org)
    assert api("POST", "/staff", 422, json={"username": "nobody", "display_name": "x", "roles": ["janitor"]})[
        "code"] == "validation_error"
    assert api("POST", "/staff", 409, json={"username": "fed", "display_name": "x", "roles": ["auditor"]})["code"] \
        == "duplicate"
    assert api("POST", "/staff", 404, json={"username": "nobody", "display_name": "x", "roles": ["auditor"],
                                            "organisation_code": "NOPE"})["code"] == "not_found"
    created = [(t, o, d) for a, t, o, d in _actions(engine, "staff.create")]
    assert created[0][1] == "ok" and created[0][2]["password_generated"] is True
    assert all(password not in json.dumps(d) for _, _, d in created)  # never in the audit log


def test_role_changes_take_effect_at_the_next_request(api, tree, client) -> None:
    made = api("POST", "/staff", 201, json={"username": "clerk", "display_name": "c", "roles": ["outlet_staff"],
                                            "organisation_code": "B01"})
    token = sign_in(client, "clerk", made["initial_password"])
    ok(client.get("/api/v1/deposit-applications", headers=token))
    assert api("POST", "/staff/clerk/roles", json={"add": ["branch_reviewer"]})["roles"] == [
        "branch_reviewer", "outlet_staff"]
    assert api("POST", "/staff/clerk/roles", json={"remove": ["outlet_staff"]})["roles"] == ["branch_reviewer"]
    assert api("POST", "/staff/clerk/roles", json={"set": ["outlet_staff"]})["roles"] == ["outlet_staff"]
    api("POST", "/staff/clerk/roles", json={"set": ["auditor"]}, status=400)  # auditors sit at the centre
    assert api("POST", "/staff/clerk/roles", 400, json={"remove": ["outlet_staff"]})["code"] == "roles_required"
    assert api("POST", "/staff/clerk/roles", 422, json={"set": ["outlet_staff"], "add": ["auditor"]})["code"] == \
        "validation_error"
    api("POST", "/staff/clerk/roles", json={"set": ["branch_reviewer"]})
    # the token issued while the clerk held outlet_staff no longer opens an outlet-only route
    refused(client.post("/api/v1/deposit-applications", json={"learner_id": 1, "achievement": {}}, headers=token),
            403, "forbidden")


def test_disable_enable_and_reset_password(api, tree, client, engine) -> None:
    made = api("POST", "/staff", 201, json={"username": "clerk", "display_name": "c", "roles": ["outlet_staff"],
                                            "organisation_code": "OUT1"})
    token = sign_in(client, "clerk", made["initial_password"])
    assert api("POST", "/staff/clerk/disable")["active"] is False
    refused(client.get("/api/v1/deposit-applications", headers=token), 401, "account_disabled")
    refused(client.post("/api/v1/auth/token", data={"username": "clerk", "password": made["initial_password"]}),
            401, "invalid_credentials")
    assert api("POST", "/staff/clerk/enable")["active"] is True
    # disabling revoked the tokens: re-enabled, the clerk signs in afresh (an old token never comes back)
    refused(client.get("/api/v1/deposit-applications", headers=token), 401, "token_revoked")
    token = sign_in(client, "clerk", made["initial_password"])
    ok(client.get("/api/v1/deposit-applications", headers=token))
    issued = api("POST", "/staff/clerk/reset-password")
    assert issued["username"] == "clerk" and issued["password"]
    refused(client.post("/api/v1/auth/token", data={"username": "clerk", "password": made["initial_password"]}),
            401, "invalid_credentials")
    sign_in(client, "clerk", issued["password"])
    assert api("POST", "/staff/clerk/reset-password", json={"password": "my-own-pass-1"})["password"] is None
    sign_in(client, "clerk", "my-own-pass-1")
    assert api("POST", "/staff/clerk/reset-password", 422, json={"password": "short"})["code"] == "validation_error"
    assert api("POST", "/staff/nobody/disable", 404)["code"] == "not_found"
    actions = [(a, o, d) for a, _, o, d in _actions(engine, "staff.")]
    assert [a for a, o, _ in actions if o == "ok"] == ["staff.create", "staff.disable", "staff.enable",
                                                       "staff.reset_password", "staff.reset_password"]
    assert all(issued["password"] not in json.dumps(d) for _, _, d in actions)


def test_the_last_active_node_administrator_is_kept(api, tree, client) -> None:
    assert api("POST", "/staff/admin/disable", 409)["code"] == "last_admin"
    assert api("POST", "/staff/admin/roles", 409, json={"set": ["auditor"]})["code"] == "last_admin"
    second = api("POST", "/staff", 201, json={"username": "admin2", "display_name": "a2", "roles": ["node_admin"]})
    api("POST", "/staff/admin/roles", json={"add": ["auditor"]})
    api("POST", "/staff/admin2/disable")
    assert api("POST", "/staff/admin/disable", 409)["code"] == "last_admin"
    api("POST", "/staff/admin2/enable")
    api("POST", "/staff/admin/disable")  # admin2 remains
    other = sign_in(client, "admin2", second["initial_password"])
    assert api("POST", "/staff/admin2/disable", 409, headers=other)["code"] == "last_admin"


def test_staff_listing_filters_keyset_paging_and_moves(api, tree, client) -> None:
    for name, roles, org in (("a.clerk", ["outlet_staff"], "OUT1"), ("b.rev", ["branch_reviewer"], "B01"),
                             ("c.rev", ["branch_reviewer", "outlet_staff"], "B02"), ("d.aud", ["auditor"], None)):
        api("POST", "/staff", 201, json={"username": name, "display_name": name, "roles": roles,
                                         **({"organisation_code": org} if org else {})})
    names = lambda rows: [r["username"] for r in rows]
    assert names(api("GET", "/staff", params={"role": "branch_reviewer"})) == ["b.rev", "c.rev"]
    assert names(api("GET", "/staff", params={"role": "outlet_staff"})) == ["a.clerk", "c.rev"]
    assert names(api("GET", "/staff", params={"organisation": "B01"})) == ["b.rev"]
    assert names(api("GET", "/staff", params={"role": "no_such_role"})) == []
    first = api("GET", "/staff", params={"limit": 2})
    rest = api("GET", "/staff", params={"limit": 10, "after": first[-1]["username"]})
    assert names(first) + names(rest) == ["a.clerk", "admin", "b.rev", "c.rev", "d.aud"]
    api("POST", "/staff/b.rev/disable")
    assert names(api("GET", "/staff", params={"active": False})) == ["b.rev"]
    # moves: the roles must fit the new organisation
    assert api("PATCH", "/staff/a.clerk", json={"organisation_code": "OUT2", "display_name": "李柜员"})[
        "organisation_code"] == "OUT2"
    assert api("PATCH", "/staff/c.rev", 400, json={"organisation_code": "OUT1"})["code"] == "role_not_allowed"
    assert api("GET", "/staff/c.rev")["organisation_code"] == "B02"
    # staff other than node administrators cannot administer
    made = api("POST", "/staff", 201, json={"username": "e.rev", "display_name": "e", "roles": ["centre_reviewer"]})
    reviewer = sign_in(client, "e.rev", made["initial_password"])
    refused(client.get("/api/v1/admin/staff", headers=reviewer), 403, "forbidden")
    refused(client.post("/api/v1/admin/staff/a.clerk/disable", headers=reviewer), 403, "forbidden")


def test_api_keys_create_list_revoke(api, tree, client, engine) -> None:
    made = api("POST", "/api-keys", 201, json={"organisation_code": "U001", "label": "教务系统"})
    key, prefix = made["key"], made["prefix"]
    assert key.startswith(prefix + ".")
    ok(client.get("/api/v1/imports", headers={"X-API-Key": key}))
    listed = api("GET", "/api-keys", params={"organisation": "U001"})
    assert [(k["prefix"], k["label"], k["organisation_code"], k["revoked_at"]) for k in listed] == [
        (prefix, "教务系统", "U001", None)]
    assert "key" not in listed[0] and key not in json.dumps(listed)
    assert api("POST", "/api-keys", 400, json={"organisation_code": "B01"})["code"] == "unknown_institution"
    revoked = api("POST", f"/api-keys/{prefix}/revoke")
    assert revoked["revoked_at"] is not None
    refused(client.get("/api/v1/imports", headers={"X-API-Key": key}), 401, "invalid_api_key")
    again = api("POST", f"/api-keys/{prefix}/revoke")
    assert again["revoked_at"] == revoked["revoked_at"]
    assert api("GET", "/api-keys", params={"active": True}) == []
    assert api("POST", "/api-keys/abcdef/revoke", 404)["code"] == "not_found"
    assert [(a, t, o) for a, t, o, _ in _actions(engine, "api_key.")] == [
        ("api_key.create", prefix, "ok"), ("api_key.create", "B01", "failed"), ("api_key.revoke", prefix, "ok"),
        ("api_key.revoke", prefix, "ok"), ("api_key.revoke", "abcdef", "denied")]
    with engine.connect() as conn:
        assert key not in json.dumps([list(r) for r in conn.execute(sa.text("SELECT * FROM audit_log")).all()],
                                     default=str)


def test_roles_say_what_each_may_do_from_the_routes(api, tree, app) -> None:
    from node.roles import ROLE_DESCRIPTIONS

    roles = {r["role"]: r for r in api("GET", "/roles")}
    assert set(roles) == set(ROLE_DESCRIPTIONS)
    ops = {role: {(o["method"], o["path"]) for o in r["operations"]} for role, r in roles.items()}
    assert ("POST", "/api/v1/admin/staff") in ops["node_admin"]
    assert ("POST", "/api/v1/deposit-applications/{app_id}/decision") in ops["branch_reviewer"]
    assert ("POST", "/api/v1/deposit-applications/{app_id}/decision") not in ops["outlet_staff"]
    assert ("GET", "/api/v1/me/archive") in ops["learner"] and not any(
        path.startswith("/api/v1/admin") for _, path in ops["learner"])
    assert roles["centre_reviewer"]["organisation_kinds"] == ["centre"]
    assert all(r["description"] for r in roles.values())
    # every staff-only route of the app is listed under at least one role
    from fastapi.routing import APIRoute, iter_route_contexts

    listed = set().union(*ops.values())
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path.startswith("/federation/"):
            continue
        roles_declared = set()
        stack = list(route.dependant.dependencies)
        while stack:
            dep = stack.pop()
            roles_declared |= set(getattr(dep.call, "allowed_roles", ()))
            stack.extend(dep.dependencies)
        for method in route.methods - {"HEAD", "OPTIONS"}:
            assert bool(roles_declared) == ((method, context.path) in listed), (method, context.path)
