"""Consent and transfer between two real in-process nodes (Shanghai = origin, Zhejiang = destination) joined by
the `Network` transport: happy path end to end, every refusal, revoked and tampered credentials, the reviewed
path, the receipt recorded at the origin, and no ID number in any cross-node byte."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from federation.outbox import flush_outbox
from federation.transfers import consent as consent_mod
from federation.transfers.transfer import RELEASE_PATH
from federation.transport.outbound import PeerClient
from node.credentials.service import ensure_status_index
from node.learners.service import open_account
from node.ledger.log import verify_log
from node.ledger.service import EventSpec, append_events
from node.models import Achievement, AuditEntry, Consent, LedgerEvent, Transfer, TransferItem, TransferReceipt
from node.org.service import create_staff
from node.security.idnumbers import mask_id_number
from tests.conftest import valid_id

PASSWORD = "learner-pass-1"
_serials = itertools.count(200)


class Person:
    """One real person with an account at the origin and one at the destination (same ID number, which
    stays in each node)."""

    def __init__(self, fed, title: str = "高等数学", credits: str = "4", kind: str = "degree_course",
                 code: str = "MATH101") -> None:
        self.fed = fed
        self.id_number = valid_id(serial=str(next(_serials)))
        self.achievements: list[int] = []
        with fed.a.session() as s:
            learner, _ = open_account(s, fed.a.ctx, id_type="resident_id", id_number=self.id_number, name="李四",
                                      password=PASSWORD)
            self.origin_learner, self.origin_account = learner.id, learner.account_no
        self.deposit(title, credits, kind, code)
        with fed.b.session() as s:
            learner, _ = open_account(s, fed.b.ctx, id_type="resident_id", id_number=self.id_number, name="李四",
                                      password=PASSWORD)
            self.dest_learner, self.dest_account = learner.id, learner.account_no
        self.at_origin = _token(fed.a.client, self.origin_account)
        self.at_dest = _token(fed.b.client, self.dest_account)

    def deposit(self, title: str, credits: str, kind: str = "degree_course", code: str = "MATH101") -> int:
        with self.fed.a.session() as s:
            from node.models import Learner

            learner = s.get(Learner, self.origin_learner)
            a = Achievement(learner_id=learner.id, type=kind, issuer_code="U001", issuer_name="上海开放大学",
                            code=code, title=title, credits=Decimal(credits), hours=Decimal(64), score_text="85",
                            score_value=Decimal(85), earned_on=dt.date(2024, 6, 30), term="202406",
                            source="individual")
            s.add(a)
            s.flush()
            append_events(s, [EventSpec(kind="achievement.deposited", learner_id=learner.id, achievement_id=a.id,
                                        pseudonym=learner.pseudonym,
                                        data={"achievement": a.id, "title": title, "credits": credits})])
            self.achievements.append(a.id)
            return a.id

    def binding(self, origin: str = "shanghai") -> str:
        r = self.fed.b.client.post("/api/v1/me/transfer-intents", json={"origin": origin}, headers=self.at_dest)
        assert r.status_code == 201, r.text
        assert r.json()["destination"] == "zhejiang"
        return r.json()["binding"]

    def consent(self, binding: str | None = None, destination: str = "zhejiang", **extra) -> dict:
        body = {"destination": destination, "achievement_ids": self.achievements, "purpose": "升学学分认定",
                "valid_days": 30, "holder_binding": binding or self.binding(), **extra}
        r = self.fed.a.client.post("/api/v1/me/consents", json=body, headers=self.at_origin)
        assert r.status_code == 201, r.text
        return r.json()["document"]

    def transfer(self, consent: dict, headers: dict | None = None) -> httpx.Response:
        return self.fed.b.client.post("/api/v1/me/transfers", json={"consent": consent},
                                      headers=headers or self.at_dest)


def _token(client, account: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": account, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _staff(node, *roles: str, name: str) -> tuple[int, dict]:
    with node.session() as s:
        staff = create_staff(s, username=name, display_name=name, password="correct-horse-1", roles=list(roles))
        staff_id = staff.id
    r = node.client.post("/api/v1/auth/token", data={"username": name, "password": "correct-horse-1"})
    assert r.status_code == 200, r.text
    return staff_id, {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def wire(joined):
    """Record every request and response body that crosses the network."""
    seen: list[bytes] = []
    original = joined.network.handle_request

    def handle(request: httpx.Request) -> httpx.Response:
        response = original(request)
        seen.append(request.content)
        seen.append(response.content)
        seen.append(str(request.url).encode())
        seen.append(repr(request.headers.multi_items()).encode())
        seen.append(repr(response.headers.multi_items()).encode())
        return response

    joined.network.handle_request = handle
    return seen


AGREEMENT = "urn:creditnode:agreement:sh-zj-transfers"


def negotiate_agreement(fed, *, automatic: bool) -> dict:
    """A real Shanghai → Zhejiang agreement: proposed by Shanghai's federation admin, signed by Zhejiang's, both
    messages delivered through the outboxes. MATH101 and MATH201 map to Zhejiang courses, credits from hours
    (64 h ÷ 16 h per credit at Zhejiang = 4)."""
    _, at_a = _staff(fed.a, "federation_admin", name="fedadmin-a")
    _, at_b = _staff(fed.b, "federation_admin", name="fedadmin-b")
    draft = {
        "agreement": AGREEMENT, "parties": ["shanghai", "zhejiang"],
        "scope": {"achievement_types": ["degree_course"]},
        "credit_equivalence": {"shanghai": {"hours_per_credit": "18"}, "zhejiang": {"hours_per_credit": "16"}},
        "mappings": [
            {"from": {"node": "shanghai", "achievement_type": "degree_course", "code": "MATH101"},
             "to": {"code": "ZJ-M101", "title": "高等数学（互认）", "credits": None}},
            {"from": {"node": "shanghai", "achievement_type": "degree_course", "code": "MATH201"},
             "to": {"code": "ZJ-M201", "title": "线性代数（互认）", "credits": None}},
        ],
        "recognition": "automatic" if automatic else "reviewed",
        "valid_from": (dt.date.today() - dt.timedelta(days=1)).isoformat(), "valid_to": None,
    }
    r = fed.a.client.post("/api/v1/federation/agreements", json=draft, headers=at_a)
    assert r.status_code == 200, r.text
    assert flush_outbox(fed.a.ctx).sent == 1
    r = fed.b.client.post(f"/api/v1/federation/agreements/{AGREEMENT}/sign", json={"hash": r.json()["hash"]},
                          headers=at_b)
    assert r.status_code == 200 and r.json()["complete"], r.text
    assert flush_outbox(fed.b.ctx).sent == 1
    return r.json()


@pytest.fixture
def automatic(joined) -> dict:
    return negotiate_agreement(joined, automatic=True)


def _kinds(node) -> list[str]:
    with node.session() as s:
        return list(s.execute(sa.select(LedgerEvent.kind).order_by(LedgerEvent.seq)).scalars())


def test_happy_path_end_to_end(joined, automatic, wire) -> None:
    person = Person(joined, "高等数学", "4")
    consent = person.consent()
    subject = consent["credentialSubject"]
    assert subject["origin"] == "shanghai" and subject["destination"] == "zhejiang"
    assert subject["id"].startswith("urn:uuid:") and consent["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert "consent.granted" in _kinds(joined.a)

    r = person.transfer(consent)
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["state"] == "completed"
    [item] = view["items"]
    assert item["state"] == "recognised", item
    assert Decimal(view["recognised_credits"]) == Decimal(4)  # 64 h ÷ 16 h per credit
    assert view["agreement_id"] == AGREEMENT and view["agreement_hash"] == automatic["hash"]
    assert item["recognition"]["code"] == "ZJ-M101" and "mapping 0" in item["recognition"]["explanation"]
    checks = {c["check"]: c["ok"] for c in item["checks"]}
    assert checks["signature"] and checks["status"] and checks["inclusion"] and checks["dates"]
    assert checks["ledger_event"], item["checks"]
    assert view["verification"]["checkpoint"]["checks"][0]["ok"] is True

    # the recognised achievement, with provenance in the destination's ledger
    with joined.b.session() as s:
        achievement = s.get(Achievement, item["achievement_id"])
        assert achievement.source == "transfer" and achievement.learner_id == person.dest_learner
        event = s.exec(select(LedgerEvent).where(LedgerEvent.kind == "achievement.recognised")).one()
        assert item["credential_id"] in event.opening and item["credential_hash"] in event.opening
        assert verify_log(s) == []
    assert "transfer.verified" in _kinds(joined.b)

    # a second request with the same consent returns the same transfer (one per consent)
    again = person.transfer(consent)
    assert again.status_code == 200 and again.json()["id"] == view["id"]
    with joined.b.session() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Achievement).where(
            Achievement.source == "transfer")).scalar_one() == 1

    # the receipt goes through the outbox and is recorded in the origin's ledger
    report = flush_outbox(joined.b.ctx)
    assert [peer for peer, _ in report.delivered] == ["shanghai"]
    with joined.a.session() as s:
        receipt = s.exec(select(TransferReceipt)).one()
        assert receipt.consent_id == consent["id"] and receipt.destination == "zhejiang"
        leaf = s.get(LedgerEvent, receipt.ledger_seq)
        assert leaf.kind == "transfer.receipt" and item["credential_id"] in leaf.opening
        assert verify_log(s) == []
    assert "consent.released" in _kinds(joined.a)
    listed = joined.a.client.get("/api/v1/me/consents", headers=person.at_origin).json()
    assert listed[0]["receipts"][0]["receipt_id"] == receipt.receipt_id
    assert flush_outbox(joined.b.ctx).sent == 0  # exactly once

    # the learner sees every step at the destination
    mine = joined.b.client.get(f"/api/v1/me/transfers/{view['id']}", headers=person.at_dest).json()
    assert mine["receipt"]["credentialSubject"]["items"][0]["outcome"] == "recognised"
    assert mine["release_receipt"]["status"] == 200

    # no ID number, in any form, crossed the network
    blob = b"\n".join(wire)
    for form in {person.id_number, person.id_number.lower(), mask_id_number(person.id_number),
                 person.id_number[:6] + "********" + person.id_number[-4:], person.id_number[-8:]}:
        assert form.encode() not in blob, form
    assert b"\xe6\x9d\x8e\xe5\x9b\x9b" not in blob  # nor the name (李四)
    assert any(RELEASE_PATH.encode() in w for w in wire)


def test_revoked_consent_is_refused(joined, automatic) -> None:
    person = Person(joined)
    consent = person.consent()
    r = joined.a.client.delete(f"/api/v1/me/consents/{consent['id']}", headers=person.at_origin)
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    assert "consent.revoked" in _kinds(joined.a)
    again = joined.a.client.delete(f"/api/v1/me/consents/{consent['id']}", headers=person.at_origin)
    assert again.status_code == 409 and again.json()["code"] == "already_revoked"
    r = person.transfer(consent)
    assert r.status_code == 403 and r.json()["code"] == "consent_revoked", r.text
    with joined.b.session() as s:
        assert s.exec(select(Transfer)).first() is None
        denied = s.exec(select(AuditEntry).where(AuditEntry.action == "transfer.request")).one()
        assert denied.outcome == "denied" and denied.detail["code"] == "consent_revoked"
    assert "consent.released" not in _kinds(joined.a)


def test_expired_consent_is_refused(joined, automatic) -> None:
    person = Person(joined)
    consent = person.consent()
    with joined.a.session() as s:  # the origin's record of the consent has run out
        row = s.exec(select(Consent)).one()
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        s.add(row)
    r = person.transfer(consent)
    assert r.status_code == 403 and r.json()["code"] == "consent_expired", r.text
    listed = joined.a.client.get("/api/v1/me/consents", headers=person.at_origin).json()
    assert listed[0]["state"] == "expired"
    # the destination checks the document's own validity too
    stale = person.consent(expires_at=(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat())
    import time

    time.sleep(2.1)
    r = person.transfer(stale)
    assert r.status_code == 403 and r.json()["code"] == "consent_expired", r.text


def test_consent_refusals_at_the_origin(joined, automatic) -> None:
    person = Person(joined)
    post = lambda **body: joined.a.client.post(
        "/api/v1/me/consents", headers=person.at_origin,
        json={"destination": "zhejiang", "achievement_ids": person.achievements, "purpose": "p", "valid_days": 3,
              "holder_binding": "hb1.xxxxxxxxxxxx", **body})
    assert post(destination="nowhere").json()["code"] == "unknown_destination"
    assert post(destination="shanghai").json()["code"] == "unknown_destination"
    assert post(achievement_ids=[], categories=[]).json()["code"] == "consent_scope_empty"
    assert post(valid_days=None, expires_at="2020-01-01T00:00:00Z").json()["code"] == "invalid_expiry"
    assert post(achievement_ids=[999999]).status_code == 404
    other = Person(joined)
    assert post(achievement_ids=other.achievements).status_code == 404  # someone else's record
    assert joined.a.client.get("/api/v1/me/consents", headers=other.at_origin).json() == []


def test_wrong_destination(joined, automatic) -> None:
    person = Person(joined)
    consent = person.consent(destination="jiangsu")
    r = person.transfer(consent)
    assert r.status_code == 403 and r.json()["code"] == "wrong_destination", r.text
    # and the origin itself refuses to release to a node the consent does not name
    response = PeerClient(joined.b.ctx).post("shanghai", RELEASE_PATH, {"consent": consent})
    assert response.status_code == 403 and response.code == "wrong_destination"
    # a consent the origin did not issue (edited) is refused
    forged = {**consent, "credentialSubject": {**consent["credentialSubject"], "destination": "zhejiang"}}
    response = PeerClient(joined.b.ctx).post("shanghai", RELEASE_PATH, {"consent": forged})
    assert response.code == "consent_invalid"
    r = person.transfer(forged)
    assert r.status_code == 400 and r.json()["code"] == "consent_invalid"


def test_someone_elses_consent_binding_mismatch(joined, automatic) -> None:
    alice, mallory = Person(joined), Person(joined)
    consent = alice.consent()
    r = mallory.transfer(consent)
    assert r.status_code == 403 and r.json()["code"] == "binding_mismatch", r.text
    # a binding issued for another origin does not fit either
    wrong_origin = alice.consent(binding=alice.binding(origin="jiangsu"))
    assert alice.transfer(wrong_origin).json()["code"] == "binding_mismatch"
    assert alice.transfer(consent).status_code == 201


def test_tampered_credential_is_rejected(joined, automatic, monkeypatch) -> None:
    person = Person(joined, credits="4")
    person.deposit("线性代数", "3", code="MATH201")
    real = consent_mod.achievement_credential

    def tampered(session, ctx, achievement_id, **kw):
        credential = real(session, ctx, achievement_id, **kw)
        if credential["name"] == "线性代数":
            credential["credentialSubject"]["creditBank"]["credits"] = "30"
        return credential

    monkeypatch.setattr(consent_mod, "achievement_credential", tampered)
    r = person.transfer(person.consent())
    assert r.status_code == 201, r.text
    states = {i["credential_id"].rsplit("/", 1)[1]: i for i in r.json()["items"]}
    bad = states[str(person.achievements[1])]
    assert bad["state"] == "credential_invalid" and "signature" in bad["reason"]
    assert bad["achievement_id"] is None
    assert states[str(person.achievements[0])]["state"] == "recognised"
    assert Decimal(r.json()["recognised_credits"]) == Decimal(4)


def test_revoked_credential_is_not_recognised(joined, automatic) -> None:
    person = Person(joined)
    person.deposit("线性代数", "3", code="MATH201")
    consent = person.consent()
    with joined.a.session() as s:  # revoked at the origin after the consent was given
        achievement = s.get(Achievement, person.achievements[1])
        achievement.status = "revoked"
        ensure_status_index(s, achievement)
        s.add(achievement)
    r = person.transfer(consent)
    assert r.status_code == 201, r.text
    items = {i["credential_id"].rsplit("/", 1)[1]: i for i in r.json()["items"]}
    revoked = items[str(person.achievements[1])]
    assert revoked["state"] == "credential_revoked" and revoked["achievement_id"] is None
    assert items[str(person.achievements[0])]["state"] == "recognised"
    flush_outbox(joined.b.ctx)
    with joined.a.session() as s:
        receipt = s.exec(select(TransferReceipt)).one()
        outcomes = {i["outcome"] for i in receipt.document["credentialSubject"]["items"]}
        assert outcomes == {"recognised", "credential_revoked"}


def test_reviewed_path(joined) -> None:
    negotiate_agreement(joined, automatic=False)
    person = Person(joined)
    consent = person.consent()
    outlet_id, outlet = _staff(joined.b, "outlet_staff", name="outlet1")
    _, reviewer = _staff(joined.b, "centre_reviewer", name="reviewer1")
    _, both = _staff(joined.b, "outlet_staff", "centre_reviewer", name="both1")
    # staff present the consent for the learner; a reviewer other than them decides
    r = joined.b.client.post("/api/v1/transfers", json={"consent": consent, "learner_id": person.dest_learner},
                             headers=both)
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["state"] == "awaiting_review" and view["receipt"] is None
    [item] = view["items"]
    assert item["state"] == "awaiting_review" and item["recognition"]["automatic"] is False
    assert flush_outbox(joined.b.ctx).sent == 0  # no receipt before the decision

    queue = joined.b.client.get("/api/v1/transfer-items", headers=reviewer).json()
    assert [q["id"] for q in queue] == [item["id"]]
    # keyset pages: after a cursor (the last id shown), `limit` at a time; a transfer's items come with it
    page = joined.b.client.get("/api/v1/transfer-items", params={"cursor": item["id"] - 1, "limit": 1},
                               headers=reviewer).json()
    assert [q["id"] for q in page] == [item["id"]]
    assert joined.b.client.get("/api/v1/transfer-items", params={"cursor": item["id"]}, headers=reviewer).json() == []
    listed = joined.b.client.get("/api/v1/transfers", params={"state": "awaiting_review", "limit": 1},
                                 headers=reviewer).json()
    assert [t["id"] for t in listed] == [view["id"]] and listed[0]["items"] == view["items"]
    assert joined.b.client.get("/api/v1/transfers", params={"cursor": view["id"]}, headers=reviewer).json() == []
    assert joined.b.client.get("/api/v1/transfers", params={"limit": 501}, headers=reviewer).status_code == 422
    url = f"/api/v1/transfer-items/{item['id']}/decision"
    own = joined.b.client.post(url, json={"approve": True, "reason": "ok"}, headers=both)
    assert own.status_code == 403 and own.json()["code"] == "self_review"
    no_reason = joined.b.client.post(url, json={"approve": True}, headers=reviewer)
    assert no_reason.json()["code"] == "reason_required"
    assert joined.b.client.post(url, json={"approve": True}, headers=outlet).status_code == 403
    ok = joined.b.client.post(url, json={"approve": True, "reason": "课程内容实质等效"}, headers=reviewer)
    assert ok.status_code == 200, ok.text
    assert ok.json()["state"] == "completed"
    assert Decimal(ok.json()["recognised_credits"]) == Decimal(4)
    again = joined.b.client.post(url, json={"approve": False, "reason": "x"}, headers=reviewer)
    assert again.status_code == 409 and again.json()["code"] == "illegal_transition"
    with joined.b.session() as s:
        assert s.exec(select(TransferItem)).one().achievement_id is not None
        reviews = s.exec(select(AuditEntry).where(AuditEntry.action == "transfer.review")).all()
        assert {e.outcome for e in reviews} >= {"ok", "denied"}
    assert [peer for peer, _ in flush_outbox(joined.b.ctx).delivered] == ["shanghai"]
    with joined.a.session() as s:
        assert s.exec(select(TransferReceipt)).one().consent_id == consent["id"]
    assert outlet_id


def test_reviewed_rejection(joined) -> None:
    negotiate_agreement(joined, automatic=False)
    person = Person(joined)
    r = person.transfer(person.consent())
    [item] = r.json()["items"]
    _, reviewer = _staff(joined.b, "branch_reviewer", name="reviewer2")
    done = joined.b.client.post(f"/api/v1/transfer-items/{item['id']}/decision",
                                json={"approve": False, "reason": "学时不足"}, headers=reviewer)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "completed" and done.json()["recognised_credits"] == "0"
    assert done.json()["items"][0]["state"] == "rejected"
    assert "transfer.rejected" in _kinds(joined.b)


def test_checkpoints_must_stay_consistent(joined, automatic) -> None:
    first, second, third = Person(joined), Person(joined), Person(joined)
    view = first.transfer(first.consent()).json()
    assert view["verification"]["checkpoint"]["checks"][-1]["check"] == "consistency"
    later = second.transfer(second.consent()).json()
    check = later["verification"]["checkpoint"]["checks"][-1]
    assert check["check"] == "consistency" and check["ok"] is True, check
    # the origin shows a history that does not extend the one it showed before (simulated: the destination's
    # record of the earlier checkpoint differs in its root)
    from crypto.note import format_checkpoint, parse_checkpoint, split_note

    with joined.b.session() as s:
        row = s.get(Transfer, later["id"])
        text, _ = split_note(row.checkpoint)
        cp = parse_checkpoint(text)
        row.checkpoint = format_checkpoint(cp.origin, cp.size, bytes(32)) + "\n— forged signature\n"
        s.add(row)
    r = third.transfer(third.consent())
    assert r.status_code == 502 and r.json()["code"] == "checkpoint_inconsistent", r.text


def test_no_agreement_means_no_transfer(joined) -> None:
    person = Person(joined)
    r = person.transfer(person.consent())
    assert r.status_code == 409 and r.json()["code"] == "no_agreement"


def test_routes_name_their_roles_and_codes_are_documented() -> None:
    from pathlib import Path

    from fastapi.routing import APIRoute

    from federation.transfers.errors import CODES
    from federation.transfers.router import ROUTERS

    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            calls, stack = set(), list(route.dependant.dependencies)
            while stack:
                dep = stack.pop()
                calls.add(dep.call)
                stack.extend(dep.dependencies)
            assert any(getattr(c, "allowed_roles", None) or getattr(c, "is_public", False) for c in calls), route.path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text(encoding="utf-8")
    assert [c for c in CODES if f"`{c}`" not in doc] == []


def _revoke_at_origin(fed, achievement_id: int, tag: str) -> None:
    """Shanghai revokes a record (maker-checker: two centre reviewers)."""
    _, maker = _staff(fed.a, "centre_reviewer", name=f"maker-{tag}")
    _, checker = _staff(fed.a, "centre_reviewer", name=f"checker-{tag}")
    asked = fed.a.client.post(f"/api/v1/achievements/{achievement_id}/revocations", json={"reason": "证书造假"},
                              headers=maker)
    assert asked.status_code == 201, asked.text
    decided = fed.a.client.post(f"/api/v1/revocations/{asked.json()['id']}/decision", json={"approve": True},
                                headers=checker)
    assert decided.status_code == 200, decided.text


def _sent(node, type_: str) -> list:
    from node.models import OutboxMessage

    with node.session() as s:
        return s.exec(select(OutboxMessage).where(OutboxMessage.type == type_)).all()


def test_a_record_revoked_after_the_transfer_is_revoked_where_it_was_recognised(joined, automatic) -> None:
    """The origin tells every region it released the record to (record.revoked, reliable outbox, with its signed
    status list); the destination checks the list, revokes the recognised achievement and marks the item; a
    record never released tells nobody."""
    person = Person(joined)
    kept = person.deposit("线性代数", "3", code="MATH201")
    consent = person.consent(achievement_ids=[person.achievements[0]])
    view = person.transfer(consent).json()
    [item] = view["items"]
    assert item["state"] == "recognised"
    flush_outbox(joined.b.ctx)  # the receipt

    _revoke_at_origin(joined, kept, "kept")  # never released: nobody to tell
    assert _sent(joined.a, "record.revoked") == []
    _revoke_at_origin(joined, person.achievements[0], "used")
    [notice] = _sent(joined.a, "record.revoked")
    assert notice.peer == "zhejiang" and notice.body["credential"] == item["credential_id"]
    with joined.a.session() as s:
        event = s.exec(select(LedgerEvent).where(LedgerEvent.kind == "revocation.notified")).one()
        assert '"destinations":["zhejiang"]' in event.opening
    assert flush_outbox(joined.a.ctx).sent == 1
    [notice] = _sent(joined.a, "record.revoked")
    assert notice.state == "delivered" and '"status":"revoked"' in notice.response["body"]

    after = joined.b.client.get(f"/api/v1/me/transfers/{view['id']}", headers=person.at_dest).json()
    [revoked] = after["items"]
    assert revoked["state"] == "credential_revoked" and "revoked by its origin shanghai" in revoked["reason"]
    with joined.b.session() as s:
        assert s.get(Achievement, item["achievement_id"]).status == "revoked"
        event = s.exec(select(LedgerEvent).where(LedgerEvent.kind == "achievement.revoked")).one()
        assert event.achievement_id == item["achievement_id"] and item["credential_id"] in event.opening
        assert verify_log(s) == []
    # delivered again (a retry after a lost answer): the same single effect
    from federation.outbox import enqueue

    with joined.a.session() as s:
        enqueue(s, "zhejiang", "record.revoked", dict(notice.body))
    flush_outbox(joined.a.ctx)
    with joined.b.session() as s:
        assert len(s.exec(select(LedgerEvent).where(LedgerEvent.kind == "achievement.revoked")).all()) == 1


def test_a_revocation_notice_without_the_bit_set_is_refused(joined, automatic) -> None:
    """The destination believes the origin's signed status list, not the message: a notice for a record that is
    not revoked changes nothing and is answered revocation_invalid."""
    from federation.outbox import enqueue
    from node.credentials.status import status_list_credential

    person = Person(joined)
    [item] = person.transfer(person.consent()).json()["items"]
    with joined.a.session() as s:
        listing = status_list_credential(s, joined.a.ctx, 0)
        enqueue(s, "zhejiang", "record.revoked", {"credential": item["credential_id"], "status_list": listing})
    flush_outbox(joined.a.ctx)
    [notice] = _sent(joined.a, "record.revoked")
    assert notice.last_error is not None and "revocation_invalid" in notice.last_error
    with joined.b.session() as s:
        assert s.get(Achievement, item["achievement_id"]).status == "deposited"
        assert s.get(TransferItem, item["id"]).state == "recognised"


def test_a_record_revoked_while_awaiting_review_cannot_be_approved(joined) -> None:
    negotiate_agreement(joined, automatic=False)
    person = Person(joined)
    _, reviewer = _staff(joined.b, "centre_reviewer", name="reviewer-r")
    view = person.transfer(person.consent()).json()
    [item] = view["items"]
    assert item["state"] == "awaiting_review"
    _revoke_at_origin(joined, person.achievements[0], "waiting")
    assert flush_outbox(joined.a.ctx).sent == 1
    after = joined.b.client.get(f"/api/v1/me/transfers/{view['id']}", headers=person.at_dest).json()
    assert after["state"] == "completed" and after["items"][0]["state"] == "credential_revoked"
    r = joined.b.client.post(f"/api/v1/transfer-items/{item['id']}/decision",
                             json={"approve": True, "reason": "ok"}, headers=reviewer)
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    # the receipt the completed transfer queued tells the origin the outcome
    flush_outbox(joined.b.ctx)
    with joined.a.session() as s:
        receipt = s.exec(select(TransferReceipt)).one()
        assert [i["outcome"] for i in receipt.document["credentialSubject"]["items"]] == ["credential_revoked"]
