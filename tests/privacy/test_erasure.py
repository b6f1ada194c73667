"""The centre's erasure of a person: maker-checker, the rules it waits for, what it shreds, and that the ledger
keeps verifying afterwards (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from tests.deposits.helpers import PDF, decide, ok, refused, register_learner, submitted


def _ask(client, headers, learner_id: int, **over):
    body = {"learner_id": learner_id, "basis": "learner_request", "legal_reference": "个人信息删除申请 2026-001",
            "reason": "本人申请注销学分银行账户并删除个人信息"} | over
    return client.post("/api/v1/admin/erasures", json={k: v for k, v in body.items() if v is not None},
                       headers=headers)


def test_erasure_shreds_the_person_and_the_ledger_still_verifies(app, client, staff_headers, engine) -> None:
    from node.evidence.storage import evidence_path
    from node.ledger.log import verify_log
    from node.models import Learner
    from node.security.filecrypt import file_cipher
    from sqlmodel import Session

    ctx = app.state.ctx
    branch = staff_headers("branch_reviewer", org="B01")
    centre = staff_headers("centre_reviewer")
    maker, checker = staff_headers("node_admin"), staff_headers("node_admin")
    learner = register_learner(client)
    other = register_learner(client, serial="202", name="李四")
    # a deposited record (its evidence a file of its own), a pending application, a notice address
    first = ok(decide(client, branch, submitted(client, learner, branch="B01", content=PDF + b"% mine"), "approve"))
    achievement_id = ok(decide(client, centre, first, "approve"))["achievement_id"]
    credential = ok(client.get(f"/api/v1/me/credentials/{achievement_id}", headers=learner.headers))
    assert ok(client.post("/api/v1/verify", json=credential))["valid"] is True
    printed = client.get("/api/v1/me/transcript", headers=learner.headers | {"Accept": "application/pdf"})
    token = printed.headers["content-disposition"].split("transcript-", 1)[1].split(".pdf", 1)[0]
    assert client.get(f"/verify/{token}").status_code == 200
    pending = submitted(client, learner, branch="B01", code="PHY101", title="大学物理")
    ok(client.put("/api/v1/me/notice-preferences", json={"email": "zhang@example.test"}, headers=learner.headers))
    shared = submitted(client, other, branch="B01", code="PHY101", title="大学物理")  # the same PDF as `pending`
    with engine.connect() as conn:
        own_sha = conn.execute(sa.text("SELECT sha256 FROM application_evidence WHERE application_id = :a"),
                               {"a": first["id"]}).scalar()
    blob = evidence_path(ctx.settings.evidence_dir, own_sha, file_cipher(ctx))
    assert blob.is_file()

    # the rules: a reference for this basis, retention not run out, no work in a queue
    refused(_ask(client, maker, learner.id, legal_reference=None), 400, "legal_reference_required")
    refused(_ask(client, maker, learner.id, basis="retention_expired"), 409, "erasure_not_allowed")
    body = refused(_ask(client, maker, learner.id), 409, "erasure_open_work")
    assert body["detail"] == {"deposit_applications": 1}
    refused(_ask(client, maker, 999_999), 404, "not_found")
    r = client.post("/api/v1/admin/erasures", json={"basis": "learner_request", "reason": "x"}, headers=maker)
    assert r.status_code == 422
    assert client.post("/api/v1/admin/erasures", json={"learner_id": learner.id, "basis": "learner_request",
                                                       "reason": "x"}, headers=centre).status_code == 403
    ok(decide(client, branch, pending, "reject", reason="不符"))  # decided: nothing waits any more
    asked = ok(_ask(client, maker, learner.id), 201)
    assert asked["state"] == "requested" and asked["account_no"] == learner.account_no
    refused(_ask(client, checker, learner.id), 409, "duplicate")

    # maker-checker
    refused(client.post(f"/api/v1/admin/erasures/{asked['id']}/confirm", json={"version": asked["version"]},
                        headers=maker), 403, "erasure_same_person")
    refused(client.post(f"/api/v1/admin/erasures/{asked['id']}/confirm", json={"version": asked["version"] + 1},
                        headers=checker), 409, "stale_version")
    done = ok(client.post(f"/api/v1/admin/erasures/{asked['id']}/confirm", json={"version": asked["version"]},
                          headers=checker))
    assert done["state"] == "done"
    assert done["result"]["records_revoked"] == 1 and done["result"]["applications_deleted"] == 2
    assert done["result"]["evidence_files_deleted"] == 1  # the shared PDF stays for the other learner
    refused(client.post(f"/api/v1/admin/erasures/{asked['id']}/cancel", json={"version": done["version"]},
                        headers=maker), 409, "illegal_transition")

    # the account answers 410; the person cannot sign in; the credential issued before no longer verifies
    front = staff_headers("outlet_staff", org="B01")
    refused(client.get(f"/api/v1/learners/{learner.id}", headers=front), 410, "learner_erased")
    refused(client.get(f"/api/v1/learners/{learner.id}/archive", headers=front), 410, "learner_erased")
    refused(client.get(f"/api/v1/learners/search?account_no={learner.account_no}", headers=front), 410,
            "learner_erased")
    refused(client.get(f"/api/v1/learners/search?id_number={learner.id_number}", headers=front), 404, "not_found")
    refused(_ask(client, maker, learner.id), 410, "learner_erased")
    assert client.get("/api/v1/me/archive", headers=learner.headers).status_code == 401
    r = client.post("/api/v1/auth/token", data={"username": learner.account_no, "password": "learner-pass-1"})
    assert r.status_code == 401
    assert ok(client.post("/api/v1/verify", json=credential))["valid"] is False
    assert client.get(f"/verify/{token}").status_code == 404  # the printed transcript's page is gone too
    assert ok(client.get(f"/api/v1/learners/{other.id}", headers=front))["account_no"] == other.account_no
    assert ok(client.get(f"/api/v1/me/deposit-applications/{shared['id']}", headers=other.headers))["evidence"]
    # the blob of the learner's own file is gone (removed after the commit), the shared one kept
    assert not blob.exists()

    with Session(engine) as s:
        row = s.get(Learner, learner.id)
        assert ctx.cipher.decrypt(row.name_cipher, row.key_id) == "" and ctx.cipher.decrypt(row.id_cipher, row.key_id) == ""
        assert row.id_blind.startswith("erased:") and row.password_hash is None and row.erased_at is not None
        kept = s.execute(sa.text("SELECT count(*), count(opening), count(salt) FROM ledger_event "
                                 "WHERE learner_id = :l"), {"l": learner.id}).one()
        assert kept[0] >= 3 and kept[1] == 0 and kept[2] == 0  # the events stay, their openings do not
        assert verify_log(s) == []  # proofs and checkpoints keep verifying
        for table in ("notice", "notice_preference", "deposit_application"):
            assert s.execute(sa.text(f"SELECT count(*) FROM {table} WHERE learner_id = :l"),
                             {"l": learner.id}).scalar() == 0, table
        assert s.execute(sa.text("SELECT title, score_text, status FROM achievement WHERE id = :a"),
                         {"a": achievement_id}).one() == ("—", None, "revoked")
        actions = s.execute(sa.text("SELECT action, outcome FROM audit_log WHERE action LIKE 'erasure.%'")).all()
    assert {("erasure.request", "ok"), ("erasure.confirm", "ok"), ("erasure.confirm", "denied"),
            ("erasure.request", "failed")} <= set(actions)
    assert learner.id_number not in str(actions)


def test_an_erasure_request_can_be_cancelled(client, staff_headers) -> None:
    maker, checker = staff_headers("node_admin"), staff_headers("node_admin")
    learner = register_learner(client)
    asked = ok(_ask(client, maker, learner.id, basis="legal_obligation", legal_reference="法院判决书（2026）沪01号"),
               201)
    listed = ok(client.get("/api/v1/admin/erasures?state=requested", headers=checker))
    assert [r["id"] for r in listed] == [asked["id"]]
    cancelled = ok(client.post(f"/api/v1/admin/erasures/{asked['id']}/cancel",
                               json={"version": asked["version"], "reason": "申请人撤回"}, headers=checker))
    assert cancelled["state"] == "cancelled"
    assert ok(client.get("/api/v1/me/archive", headers=learner.headers))  # nothing was erased
    refused(client.post(f"/api/v1/admin/erasures/{asked['id']}/confirm", json={"version": cancelled["version"]},
                        headers=checker), 409, "illegal_transition")
    refused(client.get("/api/v1/admin/erasures/123456", headers=checker), 404, "not_found")
