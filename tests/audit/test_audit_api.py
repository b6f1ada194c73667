"""The audit log API: auditors read (filtered, paginated) and export (CSV, JSONL); both are audited; the log
offers no way to change or delete an entry."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from sqlmodel import Session, select

from node.audit.service import AppendOnlyViolation, record
from node.models import AuditEntry
from tests.deposits.helpers import decide, ok, refused, register_learner, submitted


@pytest.fixture
def activity(client, staff_headers):
    """A learner's deposit reviewed by two reviewers, plus one refusal."""
    learner = register_learner(client)
    app = submitted(client, learner)
    branch, centre = staff_headers("branch_reviewer", username="branch1"), staff_headers("centre_reviewer",
                                                                                       username="centre1")
    first = ok(decide(client, branch, app, "approve"))
    refused(decide(client, branch, first, "approve"), 403, "forbidden")
    ok(decide(client, centre, first, "approve"))
    return {"app": app, "learner": learner}


def test_auditor_reads_filters_and_pages(client, staff_headers, activity, engine) -> None:
    auditor = staff_headers("auditor", username="auditor1")
    page = ok(client.get("/api/v1/audit", params={"limit": 1000}, headers=auditor))
    actions = [e["action"] for e in page["items"]]
    assert {"deposit.create", "deposit.submit", "deposit.approve", "evidence.upload"} <= set(actions)
    ids = [e["id"] for e in page["items"]]
    assert ids == sorted(ids, reverse=True) and page["next_cursor"] is None

    approvals = ok(client.get("/api/v1/audit", params={"action": "deposit.approve"}, headers=auditor))["items"]
    assert [(e["actor_name"], e["outcome"]) for e in approvals] == [("centre1", "ok"), ("branch1", "denied"),
                                                                     ("branch1", "ok")]
    by_actor = ok(client.get("/api/v1/audit", params={"actor": "branch1", "outcome": "denied"}, headers=auditor))
    assert [e["action"] for e in by_actor["items"]] == ["deposit.approve"]
    target = f"deposit_application:{activity['app']['id']}"
    on_target = ok(client.get("/api/v1/audit", params={"target": target}, headers=auditor))["items"]
    assert {e["target_id"] for e in on_target} == {str(activity["app"]["id"])}
    prefixed = ok(client.get("/api/v1/audit", params={"action": "deposit.*"}, headers=auditor))["items"]
    assert prefixed and all(e["action"].startswith("deposit.") for e in prefixed)
    assert ok(client.get("/api/v1/audit", params={"action": "deposit%"}, headers=auditor))["items"] == []

    first_page = ok(client.get("/api/v1/audit", params={"limit": 2}, headers=auditor))
    second = ok(client.get("/api/v1/audit", params={"limit": 2, "cursor": first_page["next_cursor"]},
                           headers=auditor))
    assert len(first_page["items"]) == 2 and second["items"][0]["id"] < first_page["items"][-1]["id"]

    newest = page["items"][0]["at"]
    none_before = ok(client.get("/api/v1/audit", params={"to": "2000-01-01T00:00:00Z"}, headers=auditor))
    assert none_before["items"] == []
    since = ok(client.get("/api/v1/audit", params={"from": "2000-01-01T00:00:00Z", "limit": 1000},
                          headers=auditor))
    assert since["items"] and all(e["at"] >= "2000" for e in since["items"]) and newest
    refused(client.get("/api/v1/audit", params={"from": "2024-01-02T00:00:00", "to": "2024-01-01T00:00:00"},
                       headers=auditor), 400, "invalid_query")
    with engine.connect() as conn:
        reads = conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'audit.read'")).scalar_one()
    assert reads >= 9


def test_an_actor_is_matched_by_id_or_name_and_paged_newest_first(client, staff_headers, engine) -> None:
    """The actor filter matches the actor's id or name (each read from its own index, a page from each);
    pages with a cursor give every match once, newest first, whichever column matched."""
    auditor = staff_headers("auditor", username="auditor3")
    with Session(engine) as s:
        for i in range(7):
            s.add(AuditEntry(actor_kind="staff", actor_id="77" if i % 2 else "5", actor_name="77" if i % 3 == 0 else
                             f"clerk{i}", action="test.actor", outcome="ok", detail={}))
            s.add(AuditEntry(actor_kind="staff", actor_id="8", actor_name="other", action="test.actor", outcome="ok",
                             detail={}))
        s.commit()
        expected = [e.id for e in s.exec(select(AuditEntry).where(sa.or_(AuditEntry.actor_id == "77",
                                                                         AuditEntry.actor_name == "77"))
                                          .order_by(AuditEntry.id.desc()))]
    assert len(expected) == 5
    seen: list[int] = []
    cursor = None
    while True:
        params = {"actor": "77", "action": "test.actor", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ok(client.get("/api/v1/audit", params=params, headers=auditor))
        seen += [e["id"] for e in page["items"]]
        assert len(page["items"]) <= 2
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


def test_only_auditors(client, staff_headers, activity) -> None:
    for headers in (staff_headers("centre_reviewer"), staff_headers("node_admin"), activity["learner"].headers):
        refused(client.get("/api/v1/audit", headers=headers), 403, "forbidden")
        refused(client.get("/api/v1/audit/export", headers=headers), 403, "forbidden")
    assert client.get("/api/v1/audit").status_code == 401


def test_export_contains_the_actions_and_is_itself_audited(client, staff_headers, activity, engine) -> None:
    auditor = staff_headers("auditor", username="auditor2")
    r = client.get("/api/v1/audit/export", params={"format": "jsonl"}, headers=auditor)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    actions = [e["action"] for e in lines]
    assert {"deposit.create", "deposit.submit", "deposit.approve", "evidence.upload", "auth.sign_in"} <= set(actions)
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
    assert activity["learner"].id_number not in r.text

    r = client.get("/api/v1/audit/export", params={"format": "csv", "action": "deposit.approve"}, headers=auditor)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["actor_name"], row["outcome"]) for row in rows] == [("branch1", "ok"), ("branch1", "denied"),
                                                                     ("centre1", "ok")]
    assert json.loads(rows[0]["detail"])["decision"] == "approve"
    refused(client.get("/api/v1/audit/export", params={"format": "xml"}, headers=auditor), 422, "validation_error")
    with engine.connect() as conn:
        exports = conn.execute(sa.text("SELECT detail FROM audit_log WHERE action = 'audit.export' ORDER BY id")
                               ).all()
    assert len(exports) == 2
    detail = exports[1][0] if isinstance(exports[1][0], dict) else json.loads(exports[1][0])
    assert detail["format"] == "csv" and detail["filters"] == {"action": "deposit.approve"}
    # the export is on record before it streams, and includes its own entry
    r = client.get("/api/v1/audit/export", params={"action": "audit.export"}, headers=auditor)
    assert len(r.text.splitlines()) == 3


def test_csv_export_neutralises_formulas(client, staff_headers, engine) -> None:
    with Session(engine) as s:
        record(s, actor=None, action="=HYPERLINK(\"x\")", target_type="-2+3", target_id="@SUM(A1)")
        s.commit()
    r = client.get("/api/v1/audit/export", params={"format": "csv"}, headers=staff_headers("auditor"))
    row = next(row for row in csv.DictReader(io.StringIO(r.text)) if row["action"].startswith("'="))
    assert row["target_type"] == "'-2+3" and row["target_id"] == "'@SUM(A1)"


def test_the_log_is_append_only(app, engine) -> None:
    from node.audit.router import router as audit_router

    assert audit_router.routes and all(
        isinstance(r, APIRoute) and r.methods <= {"GET", "HEAD"} for r in audit_router.routes
    )
    offered = {path: set(ops) for path, ops in app.openapi()["paths"].items() if path.startswith("/api/v1/audit")}
    assert offered == {"/api/v1/audit": {"get"}, "/api/v1/audit/export": {"get"}}
    with Session(engine) as s:
        record(s, actor=None, action="test.entry")
        s.commit()
    with Session(engine) as s:
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "test.entry")).one()
        entry.outcome = "tampered"
        with pytest.raises(AppendOnlyViolation):
            s.flush()
        s.rollback()
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "test.entry")).one()
        s.delete(entry)
        with pytest.raises(AppendOnlyViolation):
            s.flush()
        s.rollback()
        with pytest.raises(AppendOnlyViolation):
            s.execute(sa.update(AuditEntry).values(outcome="tampered"))
        with pytest.raises(AppendOnlyViolation):
            s.execute(sa.delete(AuditEntry))
        s.rollback()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT outcome FROM audit_log WHERE action = 'test.entry'")).scalar_one() == "ok"
