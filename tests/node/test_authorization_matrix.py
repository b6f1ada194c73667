"""Every route of the app × every principal, derived from the routes' declared dependencies (`require_roles`'s
`allowed_roles`, `public`), so that a new route cannot escape it (issue 11, "Keep them fixed").

* a principal holding none of a role check's roles is refused (401/403) by it;
* a principal holding one is not refused by the role check (any other 4xx is fine: the path's ids do not exist);
* `/federation/v1/*` refuses every unsigned call (401);
* no call returns a 5xx.
"""

from __future__ import annotations

import re

import pytest
from dataclasses import dataclass

from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from node.db import session_scope
from node.models import Organisation
from node.org.service import create_api_key
from node.roles import ALL_STAFF_ROLES, Role
from tests.conftest import make_settings
from tests.deposits.helpers import register_learner


@pytest.fixture
def settings(database_url: str, tmp_path):
    """The node under test, with the per-client rate limits out of the way: one client makes every call here
    (a 429 would hide whether the role check refuses; the limits have tests of their own)."""
    base = make_settings(database_url, tmp_path / "data")
    return base.model_copy(update={
        "ratelimit": base.ratelimit.model_copy(update={"sign_in": "100000/minute", "registration": "100000/minute"}),
        "security": base.security.model_copy(update={"verify_rate_limit_per_minute": 100000}),
    })

# What a role check says when it refuses (anything else, even a 403, is another rule's refusal).
ROLE_REFUSALS = {"not_authenticated", "forbidden", "invalid_token", "invalid_api_key", "token_expired",
                 "account_disabled"}


@dataclass(frozen=True)
class Caller:
    name: str
    roles: frozenset[str]
    headers: dict


def _role_checks(route: APIRoute) -> tuple[bool, list[frozenset[str]]]:
    """(is public, the allowed-role sets of every role check the route depends on)."""
    stack, is_public, checks = list(route.dependant.dependencies), False, []
    while stack:
        dep = stack.pop()
        is_public = is_public or getattr(dep.call, "is_public", False)
        if getattr(dep.call, "allowed_roles", None):
            checks.append(frozenset(dep.call.allowed_roles))
        stack.extend(dep.dependencies)
    return is_public, checks


def _concrete(path: str) -> str:
    """The path with each parameter replaced by a value of the right shape that names nothing."""
    def value(match: re.Match) -> str:
        name = match[1]
        if name == "sha256":
            return "0" * 64
        if name in {"job_id", "consent_id", "message_id", "digest", "rule_id", "agreement", "code", "programme",
                    "segment"}:
            return "no-such-" + name.replace("_", "-")
        return "987654321"

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, path)


def _callers(client: TestClient, app, staff_headers) -> list[Caller]:
    callers = [Caller("anonymous", frozenset(), {})]
    for name, serial in (("learner", "301"), ("other learner", "302")):
        learner = register_learner(client, serial=serial)
        callers.append(Caller(name, frozenset({Role.LEARNER}), learner.headers))
    for role in sorted(ALL_STAFF_ROLES):
        callers.append(Caller(role, frozenset({role}), staff_headers(role, org="M01")))
    with session_scope(app.state.ctx.engine) as session:
        for code in ("U001", "U002"):
            session.add(Organisation(code=code, name=code, kind="institution", institution_type="university"))
        session.flush()
        own_row, own = create_api_key(session, organisation_code="U001", label="own", created_by=None)
        foreign_row, foreign = create_api_key(session, organisation_code="U002", label="foreign", created_by=None)
    callers.append(Caller("own institution key", frozenset(own_row.roles), {"X-API-Key": own}))
    callers.append(Caller("foreign institution key", frozenset(foreign_row.roles), {"X-API-Key": foreign}))
    return callers


def test_every_route_for_every_principal(app, client, staff_headers) -> None:
    callers = _callers(client, app, staff_headers)
    http = TestClient(app, raise_server_exceptions=False)
    routes = [(c.path, c.original_route) for c in iter_route_contexts(app.routes)
              if isinstance(c.original_route, APIRoute)]
    assert len(routes) > 100
    problems, calls = [], 0
    for path, route in routes:
        is_public, checks = _role_checks(route)
        url = _concrete(path)
        for method in sorted(route.methods):
            for caller in callers:
                kwargs = {"json": {}} if method in {"POST", "PUT", "PATCH", "DELETE"} else {}
                r = http.request(method, url, headers=caller.headers, **kwargs)
                calls += 1
                code = r.json().get("code") if r.headers.get("content-type", "").startswith(
                    "application/json") and isinstance(r.json(), dict) else None
                where = f"{method} {path} as {caller.name}: {r.status_code} {code}"
                if r.status_code >= 500:
                    problems.append(f"{where} (server error)")
                elif path.startswith("/federation/v1/"):  # the peer protocol (/federation/… pages are the portal)
                    if r.status_code != 401:
                        problems.append(f"{where} (an unsigned peer call must be refused 401)")
                elif is_public:
                    continue
                elif not checks:
                    problems.append(f"{where} (declares neither roles nor public)")
                elif all(caller.roles & allowed for allowed in checks):
                    if r.status_code in (401, 403) and code in ROLE_REFUSALS:
                        problems.append(f"{where} (a declared role was refused)")
                elif r.status_code not in (401, 403):
                    problems.append(f"{where} (should be refused: allowed {sorted(set().union(*checks))})")
    assert calls > 1500
    assert problems == [], "\n".join(problems)
