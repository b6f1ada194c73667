"""Deny by default: every route names the roles it allows, or is explicitly public."""

from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient


def _api_routes(app) -> list[tuple[str, APIRoute]]:
    """The app's API routes with their effective paths (FastAPI keeps included routers as wrappers)."""
    found = [(c.path, c.original_route) for c in iter_route_contexts(app.routes)
             if isinstance(c.original_route, APIRoute)]
    assert len(found) > 50, "the walk over the app's routes found too few routes"
    return found


def _calls(route: APIRoute) -> list:
    stack, calls = list(route.dependant.dependencies), []
    while stack:
        dep = stack.pop()
        calls.append(dep.call)
        stack.extend(dep.dependencies)
    return calls


def _declared(route: APIRoute) -> tuple[bool, frozenset]:
    calls = _calls(route)
    is_public = any(getattr(call, "is_public", False) for call in calls)
    roles = {role for call in calls for role in getattr(call, "allowed_roles", ())}
    return is_public, frozenset(roles)


def _is_federation(path: str) -> bool:
    return path.startswith("/federation/v1/")  # the peer protocol; /federation/… without v1 are portal pages


def test_every_route_declares_its_roles(app) -> None:
    undeclared = []
    for path, route in _api_routes(app):
        is_public, roles = _declared(route)
        if not is_public and not roles:
            undeclared.append(f"{sorted(route.methods)} {path}")
    assert undeclared == []


def test_every_peer_route_verifies_the_signature(app) -> None:
    """`/federation/v1/*` is open to no user: every route there depends on the one signature check."""
    from federation.transport.inbound import FederationRoute, verify_peer

    peer_routes = [(path, route) for path, route in _api_routes(app) if _is_federation(path)]
    assert peer_routes
    assert [p for p, r in peer_routes if verify_peer not in _calls(r)] == []
    assert all(isinstance(r, FederationRoute) for _, r in peer_routes)


def test_unauthenticated_calls_are_refused(client, app) -> None:
    checked = 0
    for path, route in _api_routes(app):
        if _declared(route)[0] or _is_federation(path):
            continue
        method = min(route.methods)
        r = client.request(method, path.replace("{", "").replace("}", ""))
        assert r.status_code in (401, 422), (method, path, r.status_code)
        checked += 1
    assert checked > 30


def test_the_request_commits_before_the_response_is_sent(client, staff_headers, monkeypatch) -> None:
    """A write answered 2xx is committed: the unit of work ends when the endpoint returns, not after the
    response has gone out, so a failing commit is the client's 500 and nothing is half-done."""
    import sqlmodel

    from tests.conftest import valid_id

    number = valid_id(serial="771")
    body = {"id_number": number, "name": "张三", "password": "learner-pass-1"}
    outlet = staff_headers("outlet_staff")
    real_commit = sqlmodel.Session.commit

    def failing_commit(self) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(sqlmodel.Session, "commit", failing_commit)
    r = TestClient(client.app, raise_server_exceptions=False).post("/api/v1/learners/register", json=body)
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    monkeypatch.setattr(sqlmodel.Session, "commit", real_commit)
    first = client.post("/api/v1/learners/register", json=body)
    assert first.status_code == 202, first.text
    # the write is visible to the very next request: the outlet finds the registration by its reference
    verified = client.post("/api/v1/learners/registrations/verify", headers=outlet,
                           json={"reference": first.json()["reference"], "id_number": number})
    assert verified.status_code == 201, verified.text
    token = client.post("/api/v1/auth/token", data={"username": verified.json()["account_no"],
                                                    "password": "learner-pass-1"})
    assert token.status_code == 200, token.text