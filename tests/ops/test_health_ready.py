"""`/health` (liveness, no database) and `/ready` (database, schema at head, keys)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa


def test_health_answers_without_the_database(client, ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_database(*_a, **_k):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(ctx.engine, "connect", no_database)
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    # ready says why it is not
    r = client.get("/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["code"] == "not_ready"
    assert body["detail"]["checks"]["database"].startswith("unreachable: OperationalError")
    assert body["detail"]["checks"]["keys"] == "ok"


def test_ready_when_all_is_well(client) -> None:
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "schema": "ok", "keys": "ok"}}


def test_not_ready_when_the_schema_is_behind(client, engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0009'"))
    r = client.get("/ready")
    assert r.status_code == 503
    reason = r.json()["detail"]["checks"]["schema"]
    assert "revision 0009" in reason and "creditnode db upgrade" in reason
    assert "schema: " in r.json()["message"]


def test_not_ready_with_a_revoked_current_key(client, ctx) -> None:
    ctx.identity.ring.current_key.revoked = "2026-01-01T00:00:00Z"
    r = client.get("/ready")
    assert r.status_code == 503
    assert "revoked" in r.json()["detail"]["checks"]["keys"]
    assert r.json()["detail"]["checks"]["database"] == "ok"


def test_health_and_ready_are_public_and_documented(client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/health", "/ready", "/metrics"):
        operation = spec["paths"][path]["get"]
        assert operation["x-roles"] == ["public"] and operation["description"]
