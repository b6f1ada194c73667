"""Token lifecycle: a per-account token version checked on every request; sign-out, password change and
`invalidate_tokens` revoke; a validly signed but malformed subject is 401, never 500 (issue 11.17)."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.auth.conftest import PASSWORD, audit_rows, bearer, token


def _signed(ctx, **claims) -> dict[str, str]:
    now = int(time.time())
    body = {"iss": ctx.node_id, "iat": now, "exp": now + 600, "roles": ["node_admin"], **claims}
    return {"Authorization": "Bearer " + jwt.encode(body, ctx.token_secret, algorithm="HS256")}


@pytest.mark.parametrize("claims", [
    {"sub": "staff:abc", "ver": 0},
    {"sub": "learner:", "ver": 0},
    {"sub": "learner:99999999999999999999999", "ver": 0},
    {"sub": "learner:١", "ver": 0},
    {"sub": "root:1", "ver": 0},
    {"sub": "staff", "ver": 0},
    {"sub": "staff:1"},  # issued before token versions
    {"sub": "staff:1", "ver": "0"},
    {"sub": "staff:1", "ver": True},
    {"sub": "staff:1", "ver": 2**70},
    {"sub": 12, "ver": 0},
])
def test_validly_signed_malformed_tokens_are_401(app, ctx, staff_headers, claims) -> None:
    from fastapi.testclient import TestClient

    staff_headers("node_admin")  # staff:1 exists
    with TestClient(app, raise_server_exceptions=False) as c:
        for path in ("/api/v1/me", "/api/v1/audit"):
            r = c.get(path, headers=_signed(ctx, **claims))
            assert r.status_code == 401 and r.json()["code"] == "invalid_token", (path, r.text)


def test_a_token_of_an_account_that_does_not_exist_is_refused(client, ctx) -> None:
    r = client.get("/api/v1/me", headers=_signed(ctx, sub="learner:424242", ver=0))
    assert r.status_code == 401 and r.json()["code"] == "token_revoked"


def test_sign_out_revokes_every_token_of_the_learner(client, learner, engine) -> None:
    person = learner()
    phone, laptop = bearer(token(client, person.account_no)), bearer(token(client, person.account_no))
    assert client.post("/api/v1/auth/logout", headers=phone).status_code == 204
    for h in (phone, laptop):
        r = client.get("/api/v1/me", headers=h)
        assert r.status_code == 401 and r.json()["code"] == "token_revoked"
    assert client.get("/api/v1/me", headers=bearer(token(client, person.account_no))).status_code == 200
    assert [r[:4] for r in audit_rows(engine, "auth.logout")] == [("learner", "learner", str(person.id), "ok")]


def test_sign_out_for_staff(client, staff_headers, engine) -> None:
    h = staff_headers("centre_reviewer")
    assert client.get("/api/v1/audit", headers=staff_headers("auditor")).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
    r = client.post("/api/v1/auth/logout", headers=h)
    assert r.status_code == 401 and r.json()["code"] == "token_revoked"
    assert len(audit_rows(engine, "auth.logout")) == 1


def test_an_api_key_has_no_token_to_revoke(client, app) -> None:
    from node.db import session_scope
    from node.models import Organisation
    from node.org.service import create_api_key

    with session_scope(app.state.ctx.engine) as s:
        s.add(Organisation(code="U1", name="大学", kind="institution", institution_type="university"))
        s.flush()
        _row, key = create_api_key(s, organisation_code="U1", label="sis", created_by=None)
    for path, body in (("/api/v1/auth/logout", None), ("/api/v1/auth/password",
                                                      {"current_password": "x", "new_password": "y" * 8})):
        r = client.post(path, json=body, headers={"X-API-Key": key})
        assert r.status_code == 400 and r.json()["code"] == "token_required", r.text


def test_learner_changes_password(client, learner, engine) -> None:
    person = learner()
    old = bearer(token(client, person.account_no))
    wrong = client.post("/api/v1/auth/password", headers=old,
                        json={"current_password": "not-my-password", "new_password": "brand-new-pass-2"})
    assert wrong.status_code == 400 and wrong.json()["code"] == "wrong_password"
    assert client.get("/api/v1/me", headers=old).status_code == 200  # nothing changed
    r = client.post("/api/v1/auth/password", headers=old,
                    json={"current_password": PASSWORD, "new_password": "brand-new-pass-2"})
    assert r.status_code == 200, r.text
    fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert client.get("/api/v1/me", headers=fresh).status_code == 200
    assert client.get("/api/v1/me", headers=old).json()["code"] == "token_revoked"
    assert token(client, person.account_no).status_code == 401
    bearer(token(client, person.account_no, "brand-new-pass-2"))
    outcomes = [r[3] for r in audit_rows(engine, "auth.password_change")]
    assert outcomes == ["denied", "ok"]
    short = client.post("/api/v1/auth/password", headers=fresh,
                        json={"current_password": "brand-new-pass-2", "new_password": "short"})
    assert short.status_code == 422


def test_staff_change_password_and_wrong_ones_count_towards_lockout(client, staff_headers) -> None:
    h = staff_headers("outlet_staff", username="desk7")
    for _ in range(5):
        r = client.post("/api/v1/auth/password", headers=h,
                        json={"current_password": "not-my-password", "new_password": "brand-new-pass-2"})
        assert r.status_code == 400
    r = client.post("/api/v1/auth/password", headers=h,
                    json={"current_password": "correct-horse-1", "new_password": "brand-new-pass-2"})
    assert r.status_code == 429 and r.json()["code"] == "account_locked"
    assert token(client, "desk7", "correct-horse-1").json()["code"] == "account_locked"


def test_staff_password_change_revokes_old_tokens(client, staff_headers) -> None:
    h = staff_headers("auditor", username="aud3")
    r = client.post("/api/v1/auth/password", headers=h,
                    json={"current_password": "correct-horse-1", "new_password": "brand-new-pass-2"})
    assert r.status_code == 200
    assert client.get("/api/v1/audit", headers=h).json()["code"] == "token_revoked"
    assert client.get("/api/v1/audit", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
                      ).status_code == 200


def test_invalidate_tokens_for_other_services(client, ctx, learner, staff_headers) -> None:
    """The function other areas call (staff disabled, password reset by an administrator)."""
    from node.auth.service import invalidate_tokens
    from node.db import session_scope
    from node.models import Learner, StaffAccount
    from sqlmodel import select

    person = learner()
    lh = bearer(token(client, person.account_no))
    sh = staff_headers("auditor", username="aud4")
    with session_scope(ctx.engine) as s:
        staff = s.exec(select(StaffAccount).where(StaffAccount.username == "aud4")).one()
        assert invalidate_tokens(s, staff) == 1
        assert invalidate_tokens(s, s.get(Learner, person.id)) == 1
        assert staff.token_version == 1
    assert client.get("/api/v1/me", headers=lh).json()["code"] == "token_revoked"
    assert client.get("/api/v1/audit", headers=sh).json()["code"] == "token_revoked"


def test_a_remembered_token_still_expires_and_is_still_revocable(client, ctx, learner) -> None:
    """Tokens are verified once per process (node.security.tokens.verified_tokens); what the account says is
    read on every request, and the remembered token stops at its `exp` like a fresh one."""
    person = learner()
    headers = _signed(ctx, sub=f"learner:{person.id}", ver=0, roles=["learner"], exp=int(time.time()) + 2)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 200  # from the cache
    time.sleep(2.2)  # its `exp` has passed
    r = client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "token_expired", r.text
    other = bearer(token(client, person.account_no))
    assert client.get("/api/v1/me", headers=other).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=other).status_code == 204
    r = client.get("/api/v1/me", headers=other)
    assert r.status_code == 401 and r.json()["code"] == "token_revoked", r.text
    # a token signed with another secret is not served from the cache of this one
    raw = other["Authorization"].removeprefix("Bearer ")
    forged = jwt.encode(jwt.decode(raw, options={"verify_signature": False}), b"x" * 32, algorithm="HS256")
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


def test_the_learners_reads_check_like_every_route(client, learner, staff_headers, engine) -> None:
    """The archive, credential and transcript resolve their role, principal and session as ONE dependency
    (node.deps.LearnerCallDep, for speed): the same refusals as `require_roles(LEARNER)` — no token, a revoked
    token, a staff token (403, audited)."""
    person = learner()
    h = bearer(token(client, person.account_no))
    paths = ("/api/v1/me/archive", "/api/v1/me/transcript", "/api/v1/me/credentials/1")
    for path in paths:
        r = client.get(path)
        assert r.status_code == 401 and r.json()["code"] == "not_authenticated", (path, r.text)
    assert client.get(paths[0], headers=h).status_code == 200
    staff = staff_headers("centre_reviewer")
    for path in paths:
        r = client.get(path, headers=staff)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (path, r.text)
    for template in ("/api/v1/me/archive", "/api/v1/me/transcript", "/api/v1/me/credentials/{achievement_id}"):
        assert [row[0] + "/" + row[3] for row in audit_rows(engine, f"http.get {template}")] == ["staff/denied"]
    assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
    for path in paths:
        r = client.get(path, headers=h)
        assert r.status_code == 401 and r.json()["code"] == "token_revoked", (path, r.text)
