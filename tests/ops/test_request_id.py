"""A request id per request: in the response, in every log line written while serving it, in its audit entries."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from node.logging import JsonFormatter


def test_a_request_id_is_made_or_kept(client) -> None:
    made = client.get("/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert client.get("/health").headers["x-request-id"] != made
    assert client.get("/health", headers={"X-Request-ID": "proxy-42.a:b_c"}).headers["x-request-id"] == "proxy-42.a:b_c"
    for bad in ("x" * 65, "has space", "310101199003071234", "<script>", "ｆｕｌｌ".encode()):
        got = client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", got), bad
    # a 404 (no route) and a 422 carry it too
    assert client.get("/no/such/path").headers["x-request-id"]
    assert client.get("/api/v1/ledger/events/not-a-number").headers["x-request-id"]


def test_the_audit_entry_carries_the_request_id(client, staff_headers, engine) -> None:
    headers = {**staff_headers("auditor"), "X-Request-ID": "req-audit-1"}
    denied = client.post("/api/v1/admin/organisations", json={"code": "X1", "name": "x", "kind": "branch"},
                         headers=headers)
    assert denied.status_code == 403 and denied.headers["x-request-id"] == "req-audit-1"
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT detail FROM audit_log WHERE outcome = 'denied' ORDER BY id")).all()
    details = [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in rows]
    assert details and details[-1]["request_id"] == "req-audit-1"


@pytest.fixture
def json_log() -> io.StringIO:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("creditnode")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def test_log_lines_of_a_request_carry_its_id_even_on_a_500(app, json_log: io.StringIO) -> None:
    def logs_then_fails() -> None:
        logging.getLogger("creditnode.test").warning("working on 310101199003071234")
        raise RuntimeError("boom")

    app.add_api_route("/test/boom", logs_then_fails, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/test/boom", headers={"X-Request-ID": "req-500"})
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    assert r.headers["x-request-id"] == "req-500"
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    mine = [line for line in lines if line["request_id"] == "req-500"]
    messages = [line["message"] for line in mine]
    assert "working on 310101********1234" in messages
    assert any(m.startswith("unhandled error") for m in messages), lines
