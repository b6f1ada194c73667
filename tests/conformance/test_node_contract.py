"""The node's side of the conformance contract, in process: test mode and fault switches are refused where they
must be, and the test endpoints are role-checked and audited."""

from __future__ import annotations

import pytest
from sqlmodel import select

from config.settings import InsecureConfiguration, Settings
from node.models import AuditEntry


def test_testing_endpoints_refused_without_test_mode(client, staff_headers, ctx) -> None:
    headers = staff_headers("federation_admin")
    r = client.post("/api/v1/testing/reset", json={}, headers=headers)
    assert (r.status_code, r.json()["code"]) == (403, "test_mode_off")
    assert client.post("/api/v1/testing/membership", json={"members": []}).status_code == 401
    from node.db import session_scope

    with session_scope(ctx.engine) as s:
        denied = s.exec(select(AuditEntry).where(AuditEntry.action == "testing.refused")).all()
        assert len(denied) == 1 and denied[0].outcome == "denied"


def test_testing_endpoints_need_federation_admin(settings, engine) -> None:
    from fastapi.testclient import TestClient

    from node.app import create_app

    settings.federation.test_mode = True
    with TestClient(create_app(settings, engine=engine)) as c:
        from node.db import session_scope
        from node.org.service import create_staff

        with session_scope(c.app.state.ctx.engine) as s:
            create_staff(s, username="rev", display_name="rev", password="correct-horse-1",
                         roles=["centre_reviewer"])
            create_staff(s, username="fed", display_name="fed", password="correct-horse-1",
                         roles=["federation_admin"])

        def token(name: str) -> dict:
            r = c.post("/api/v1/auth/token", data={"username": name, "password": "correct-horse-1"})
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        assert c.post("/api/v1/testing/reset", json={}, headers=token("rev")).status_code == 403
        member = {"node_id": "harness", "did": "did:web:127.0.0.1%3A9", "base_url": "http://127.0.0.1:9"}
        r = c.post("/api/v1/testing/membership", json={"members": [member]}, headers=token("fed"))
        assert r.status_code == 201, r.text
        held = c.get("/.well-known/credit-node").json()["membership"]
        assert held["hash"] == r.json()["hash"]
        clash = c.post("/api/v1/testing/membership", json={"members": [member]}, headers=token("fed"))
        assert clash.status_code == 400
        r = c.post("/api/v1/testing/reset", json={}, headers=token("fed"))
        assert r.status_code == 200 and r.json()["peers"] == ["harness"]
        assert c.get("/.well-known/credit-node").json()["membership"] is None
        with session_scope(c.app.state.ctx.engine) as s:
            actions = {a.action for a in s.exec(select(AuditEntry)).all()}
        assert {"testing.membership.install", "testing.reset"} <= actions


def test_production_refuses_test_mode_and_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITNODE_NODE__MODE", "production")
    monkeypatch.setenv("CREDITNODE_DATABASE__URL", "postgresql://x@127.0.0.1/db")
    monkeypatch.setenv("CREDITNODE_SECURITY__DATABASE_KEY", "A" * 43)
    monkeypatch.setenv("CREDITNODE_SECURITY__BLIND_INDEX_KEY", "B" * 43)
    monkeypatch.setenv("CREDITNODE_SECURITY__TOKEN_SECRET", "C" * 43)
    monkeypatch.setenv("CREDITNODE_NODE__BASE_URL", "https://creditbank.example.sh.cn")  # production is https
    Settings()  # the baseline is a valid production configuration
    monkeypatch.setenv("CREDITNODE_FEDERATION__TEST_MODE", "true")
    with pytest.raises(InsecureConfiguration, match="test_mode"):
        Settings()
    monkeypatch.setenv("CREDITNODE_TESTING__FAULTS", "no_retry")
    with pytest.raises(InsecureConfiguration):
        Settings()


def test_faults_only_with_test_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITNODE_TESTING__FAULTS", "no_retry")
    with pytest.raises(InsecureConfiguration, match="test_mode"):
        Settings()
    monkeypatch.setenv("CREDITNODE_FEDERATION__TEST_MODE", "true")
    assert Settings().active_faults == {"no_retry"}
    monkeypatch.setenv("CREDITNODE_TESTING__FAULTS", "no_retry,made_up")
    with pytest.raises(ValueError, match="made_up"):
        Settings()
