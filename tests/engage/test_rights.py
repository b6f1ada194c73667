"""Data rights: the export holds every row of every learner table for the learner and nothing of another;
a readable PDF; correction requests handled with the existing correction; retention; institution extracts."""

from __future__ import annotations

import csv
import io
import json

import sqlalchemy as sa
from sqlmodel import Session

from node.engage.rights import learner_tables
from node.models import Achievement, Organisation
from node.models.engage import PointsEntry
from tests.deposits.helpers import decide, ok, refused, register_learner, submitted


def _busy_learner(client, staff_headers, deposited, serial: str, name: str, engine):
    """A learner with rows in as many learner tables as the API can make."""
    learner = register_learner(client, serial=serial, name=name)
    ok(client.put("/api/v1/me/notice-preferences",
                  json={"email_kinds": ["review_decided"], "email": f"{serial}@example.test"},
                  headers=learner.headers))
    done = deposited(learner)
    rejected = submitted(client, learner, code="X" + serial)
    ok(decide(client, staff_headers("branch_reviewer"), rejected, "reject", reason="不符"))
    ok(client.post("/api/v1/me/correction-requests",
                   json={"achievement_id": done["achievement_id"], "message": "成绩应为90"}, headers=learner.headers),
       201)
    ok(client.post("/api/v1/me/counselling-consents", headers=learner.headers), 201)
    with Session(engine) as s:
        s.add(PointsEntry(learner_id=learner.id, points=7, kind="earned", rule_id="test"))
        s.commit()
    return learner


def test_the_export_holds_every_learner_row_and_nothing_of_another(client, staff_headers, deposited, engine,
                                                                    ctx) -> None:
    me = _busy_learner(client, staff_headers, deposited, "101", "张三", engine)
    other = _busy_learner(client, staff_headers, deposited, "102", "李四", engine)
    r = client.get("/api/v1/me/data-export", headers=me.headers)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    export = r.json()
    assert export["account"]["name"] == "张三" and export["account"]["id"] == me.id
    assert me.id_number not in r.text  # masked, as the account pages show it
    assert "password_hash" not in r.text and "id_cipher" not in r.text and "name_cipher" not in r.text
    non_empty = set()
    with engine.connect() as conn:
        for table in learner_tables():
            ids = conn.execute(sa.select(sa.func.count()).select_from(table)
                               .where(table.c.learner_id == me.id)).scalar_one()
            rows = export["tables"][table.name]
            assert len(rows) == ids, table.name
            assert all(row["learner_id"] == me.id for row in rows), table.name
            if rows:
                non_empty.add(table.name)
    assert non_empty >= {"achievement", "deposit_application", "ledger_event", "notice", "notice_delivery",
                         "notice_preference", "points_entry", "correction_request", "counselling_consent"}
    assert export["tables"]["notice_preference"][0]["email"] == "101@example.test"
    assert "李四" not in r.text and "102@example.test" not in r.text and other.account_no not in r.text
    assert any(e["action"] for e in export["tables"]["audit_log (about the account)"])
    assert export["retention"] and json.dumps(export)
    # the export is audited as an access to the account (the learner sees it on the accesses page)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'rights.export' "
                                    "AND target_id = :t"), {"t": str(me.id)}).scalar_one() == 1


def test_the_export_as_a_readable_pdf(client, engine) -> None:
    from pypdf import PdfReader

    me = register_learner(client)
    r = client.get("/api/v1/me/data-export.pdf", headers=me.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(r.content))
    assert len(reader.pages) >= 1
    text = "".join(page.extract_text() or "" for page in reader.pages)
    assert me.account_no in text and me.id_number not in text


def test_a_correction_request_is_handled_with_the_existing_correction(client, staff_headers, deposited,
                                                                      engine) -> None:
    me = register_learner(client)
    other = register_learner(client, serial="102", name="李四")
    achievement_id = deposited(me)["achievement_id"]
    refused(client.post("/api/v1/me/correction-requests", json={"achievement_id": achievement_id, "message": "x"},
                        headers=other.headers), 404, "not_found")
    refused(client.post("/api/v1/me/correction-requests", json={"achievement_id": achievement_id, "message": " "},
                        headers=me.headers), 400, "reason_required")
    refused(client.post("/api/v1/me/correction-requests",
                        json={"achievement_id": achievement_id, "message": "x" * 1001}, headers=me.headers),
            422, "validation_error")
    req = ok(client.post("/api/v1/me/correction-requests",
                         json={"achievement_id": achievement_id, "message": "学分应为3"}, headers=me.headers), 201)
    refused(client.post("/api/v1/me/correction-requests", json={"achievement_id": achievement_id, "message": "再次"},
                        headers=me.headers), 409, "duplicate")
    refused(client.get("/api/v1/correction-requests", headers=staff_headers("outlet_staff")), 403, "forbidden")
    centre = staff_headers("centre_reviewer")
    queue = ok(client.get("/api/v1/correction-requests", headers=centre))
    assert [q["id"] for q in queue] == [req["id"]]
    refused(client.post(f"/api/v1/correction-requests/{req['id']}/correct",
                        json={"correction": {"credits": "2.5", "reason": "核对"}}, headers=centre),
            400, "nothing_to_correct")
    done = ok(client.post(f"/api/v1/correction-requests/{req['id']}/correct",
                          json={"correction": {"credits": "3", "reason": "学校更正"}}, headers=centre))
    assert done["state"] == "corrected" and done["ledger_seq"]
    refused(client.post(f"/api/v1/correction-requests/{req['id']}/decline", json={"reason": "x"}, headers=centre),
            409, "illegal_transition")
    with engine.connect() as conn:
        kind = conn.execute(sa.text("SELECT kind FROM ledger_event WHERE seq = :s"),
                            {"s": done["ledger_seq"]}).scalar_one()
    assert kind == "achievement.corrected"
    archive = ok(client.get("/api/v1/me/archive", headers=me.headers))
    assert archive["totals"]["credits"] == "3"
    notices = ok(client.get("/api/v1/me/notices", headers=me.headers))["items"]
    assert notices[0]["kind"] == "correction_answered" and notices[0]["params"]["outcome"] == "corrected"
    second = ok(client.post("/api/v1/me/correction-requests",
                            json={"achievement_id": achievement_id, "message": "名称有误"}, headers=me.headers), 201)
    declined = ok(client.post(f"/api/v1/correction-requests/{second['id']}/decline",
                              json={"reason": "与学校记录一致"}, headers=centre))
    assert declined["state"] == "declined" and declined["answer"] == "与学校记录一致"
    mine = ok(client.get("/api/v1/me/correction-requests", headers=me.headers))
    assert [m["state"] for m in mine] == ["declined", "corrected"]


def test_retention_rules_are_public(client) -> None:
    rules = ok(client.get("/api/v1/retention"))
    assert {r["key"] for r in rules} >= {"archive", "audit", "import_reports", "notices"}


def test_an_institution_downloads_what_it_deposited_and_nothing_else(client, staff_headers, engine) -> None:
    me = register_learner(client)
    headers = staff_headers("institution_uploader", org="U001")
    with Session(engine) as s:
        orgs = {o.code: o.id for o in s.exec(sa.select(Organisation)).scalars()}
        s.add(Organisation(code="U002", name="另一大学", kind="institution"))
        s.flush()
        other_org = s.exec(sa.select(Organisation).where(Organisation.code == "U002")).scalar_one().id
        for i in range(3):
            s.add(Achievement(learner_id=me.id, type="degree_course", issuer_org_id=orgs["U001"], issuer_code="U001",
                              code=f"C{i}", title="=HYPERLINK(\"x\")" if i == 0 else f"课程{i}", source="bulk"))
        s.add(Achievement(learner_id=me.id, type="degree_course", issuer_org_id=other_org, issuer_code="U002",
                          code="OTHER", title="别校课程", source="bulk"))
        s.commit()
    r = client.get("/api/v1/institution/deposits.csv", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert sorted(row["code"] for row in rows) == ["C0", "C1", "C2"]
    assert rows[0]["title"].startswith("'=")  # no formula when opened in a spreadsheet
    assert all(row["account_no"] == me.account_no and me.id_number not in row["id_masked"] for row in rows)
    refused(client.get("/api/v1/institution/deposits.csv", headers=me.headers), 403, "forbidden")
