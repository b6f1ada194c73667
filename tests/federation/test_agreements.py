"""Mutual-recognition agreements between two real in-process nodes (Shanghai = a, Zhejiang = b): negotiation through
the signed outbox/inbox, lifecycle, history verification, refusals, and recognise()."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pytest
from sqlmodel import select

from federation.agreements import active_agreement, agreement_hash, recognise
from federation.agreements.document import AgreementInvalid, check_shape, sign_agreement, verify_chain
from federation.agreements.service import store_version
from federation.outbox import enqueue, flush_outbox
from node.ledger.log import verify_log
from node.models import AuditEntry, LedgerEvent
from node.models.agreements import AgreementVersion

AG = "urn:creditnode:agreement:sh-zj-2026"
BASE = "/api/v1/federation/agreements"
TODAY = dt.date.today()


def draft(**over) -> dict:
    doc = {
        "agreement": AG,
        "parties": ["shanghai", "zhejiang"],
        "scope": {"achievement_types": ["course", "vocational_certificate"]},
        "credit_equivalence": {"shanghai": {"hours_per_credit": "18"}, "zhejiang": {"hours_per_credit": "16"}},
        "mappings": [
            {"from": {"node": "shanghai", "achievement_type": "course", "code": "MATH101"},
             "to": {"code": "ZJ-M101", "title": "高等数学", "credits": "4"}},
            {"from": {"node": "shanghai", "achievement_type": "course", "code": "ENG101"},
             "to": {"code": "ZJ-E101", "title": "大学英语", "credits": None}},
            {"from": {"node": "shanghai", "achievement_type": "vocational_certificate", "reference_level": "R3"},
             "to": {"reference_level": "R3"}},
        ],
        "recognition": "automatic",
        "valid_from": (TODAY - dt.timedelta(days=1)).isoformat(),
        "valid_to": None,
    }
    doc.update(over)
    return doc


def _admin(node, username: str = "agreementadmin") -> dict[str, str]:
    from node.org.service import create_staff

    with node.session() as s:
        create_staff(s, username=username, display_name=username, password="correct-horse-1",
                     roles=["federation_admin"], organisation_code=None)
    r = node.client.post("/api/v1/auth/token", data={"username": username, "password": "correct-horse-1"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def admins(joined):
    return _admin(joined.a), _admin(joined.b)


def _posts(joined) -> int:
    return len(joined.network.inbox_posts(joined.a.base_url)) + len(joined.network.inbox_posts(joined.b.base_url))


def _active(node, on: dt.date = TODAY) -> dict | None:
    with node.session() as s:
        return active_agreement(s, origin="shanghai", destination="zhejiang", on=on)


def _negotiate(joined, admins) -> dict:
    """Shanghai proposes, Zhejiang signs: returns the version's view at Zhejiang."""
    ha, hb = admins
    r = joined.a.client.post(BASE, json=draft(), headers=ha)
    assert r.status_code == 200, r.text
    assert flush_outbox(joined.a.ctx).sent == 1
    r = joined.b.client.post(f"{BASE}/{AG}/sign", json={"hash": r.json()["hash"]}, headers=hb)
    assert r.status_code == 200, r.text
    assert flush_outbox(joined.b.ctx).sent == 1
    return r.json()


def test_happy_path_two_signed_messages(joined, admins) -> None:
    before = _posts(joined)
    view = _negotiate(joined, admins)
    assert _posts(joined) - before == 2  # agreement.propose + agreement.sign
    assert view["complete"] and view["version"] == 1
    for node in (joined.a, joined.b):
        doc = _active(node)
        assert doc is not None and agreement_hash(doc) == view["hash"] and len(doc["proof"]) == 2
    assert _active(joined.a, on=TODAY - dt.timedelta(days=5)) is None  # before valid_from
    with joined.a.session() as s:
        assert active_agreement(s, origin="shanghai", destination="jiangsu", on=TODAY) is None
        actions = {e.action for e in s.exec(select(AuditEntry)).all()}
    assert "federation.agreement.propose" in actions
    got = joined.a.client.get(f"{BASE}/{AG}", headers=admins[0]).json()
    assert got["verification"]["ok"] and got["verification"]["versions"][0]["signers"] == ["shanghai", "zhejiang"]
    listed = joined.b.client.get(BASE, headers=admins[1]).json()
    assert [x["in_force"]["hash"] for x in listed] == [view["hash"]]
    # each party's ledger records, once, the version it is bound by
    for node in (joined.a, joined.b):
        with node.session() as s:
            events = s.exec(select(LedgerEvent).where(LedgerEvent.kind == "agreement.complete")).all()
            assert len(events) == 1 and view["hash"] in events[0].leaf and verify_log(s) == []
    again = joined.b.client.post(f"{BASE}/{AG}/sign", json={"hash": view["hash"]}, headers=admins[1])
    assert again.status_code == 200
    with joined.b.session() as s:
        assert len(s.exec(select(LedgerEvent).where(LedgerEvent.kind == "agreement.complete")).all()) == 1


def test_counter_proposal_then_stale_base(joined, admins) -> None:
    ha, hb = admins
    v1 = joined.a.client.post(BASE, json=draft(), headers=ha).json()
    flush_outbox(joined.a.ctx)
    r = joined.b.client.post(f"{BASE}/{AG}/counter", headers=hb,
                             json={"base": v1["hash"], "changes": {"recognition": "reviewed"}})
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["previous"] == v1["hash"] and not v2["complete"]
    flush_outbox(joined.b.ctx)
    # Shanghai tries to sign or counter the version it proposed: stale, the head is Zhejiang's counter
    r = joined.a.client.post(f"{BASE}/{AG}/sign", json={"hash": v1["hash"]}, headers=ha)
    assert r.status_code == 409 and r.json()["code"] == "stale_base"
    assert r.json()["detail"]["current"] == v2["hash"]
    r = joined.a.client.post(f"{BASE}/{AG}/counter", json={"base": v1["hash"], "changes": {}}, headers=ha)
    assert r.status_code == 409 and r.json()["code"] == "stale_base"
    r = joined.a.client.post(f"{BASE}/{AG}/sign", json={"hash": v2["hash"]}, headers=ha)
    assert r.status_code == 200 and r.json()["complete"]
    flush_outbox(joined.a.ctx)
    doc = _active(joined.b)
    assert doc is not None and doc["version"] == 2 and doc["recognition"] == "reviewed"


def test_stale_message_refused_at_receiver(joined, admins) -> None:
    """A peer's counter chained to a superseded version is refused by the inbox handler (409 stale_base)."""
    ha, hb = admins
    v1 = joined.a.client.post(BASE, json=draft(), headers=ha).json()
    flush_outbox(joined.a.ctx)
    joined.b.client.post(f"{BASE}/{AG}/counter", headers=hb, json={"base": v1["hash"], "changes": {"mappings": []}})
    # Shanghai, not having received Zhejiang's counter yet, counters v1 itself
    joined.a.client.post(f"{BASE}/{AG}/counter", headers=ha, json={"base": v1["hash"], "changes": {}})
    flush_outbox(joined.a.ctx)
    from node.models import InboxMessage

    with joined.b.session() as s:
        answers = [(m.status_code, (m.response or {}).get("code")) for m in s.exec(select(InboxMessage)).all()]
    assert (409, "stale_base") in answers


def test_tampered_and_non_party_refused(joined, admins) -> None:
    ha, _ = admins
    v1 = joined.a.client.post(BASE, json=draft(), headers=ha).json()
    with joined.a.session() as s:
        doc = s.get(AgreementVersion, v1["hash"]).document
    tampered = copy.deepcopy(doc)
    tampered["mappings"][0]["to"]["credits"] = "40"  # content changed after signing
    with joined.b.session() as s:
        with pytest.raises(Exception) as err:
            store_version(s, joined.b.ctx, tampered, sender="shanghai")
        assert getattr(err.value, "code", None) == "proof_invalid"
    bad_sig = copy.deepcopy(doc)
    bad_sig["proof"][0]["proofValue"] = "z" + "1" * 86
    with joined.b.session() as s:
        with pytest.raises(Exception) as err:
            store_version(s, joined.b.ctx, bad_sig, sender="shanghai")
        assert getattr(err.value, "code", None) == "proof_invalid"
    # Jiangsu is a member but not a party: its signed message is refused
    jiangsu = joined.identity("jiangsu")
    other = sign_agreement(draft(version=1, previous=None, type="MutualRecognitionAgreement", proposer="shanghai",
                                 status="active"), jiangsu)
    with joined.b.session() as s:
        with pytest.raises(Exception) as err:
            store_version(s, joined.b.ctx, other, sender="jiangsu")
        assert getattr(err.value, "code", None) == "not_a_party"
        with pytest.raises(Exception) as err:  # a proof by a key of no party does not count for a party
            store_version(s, joined.b.ctx, other, sender="shanghai")
        assert getattr(err.value, "code", None) == "proof_invalid"
    with joined.b.session() as s:
        assert s.exec(select(AgreementVersion)).all() == []


def test_amend_suspend_terminate_and_history(joined, admins) -> None:
    ha, hb = admins
    v1 = _negotiate(joined, admins)
    r = joined.a.client.post(f"{BASE}/{AG}/amend", headers=ha,
                             json={"base": v1["hash"], "changes": {"recognition": "reviewed"}})
    assert r.status_code == 200, r.text
    v2 = r.json()
    flush_outbox(joined.a.ctx)
    assert _active(joined.b)["version"] == 1  # the old version stays in force until the amendment is signed
    joined.b.client.post(f"{BASE}/{AG}/sign", json={"hash": v2["hash"]}, headers=hb)
    flush_outbox(joined.b.ctx)
    assert _active(joined.a)["version"] == 2
    v3 = joined.b.client.post(f"{BASE}/{AG}/suspend", json={"base": v2["hash"]}, headers=hb).json()
    flush_outbox(joined.b.ctx)
    joined.a.client.post(f"{BASE}/{AG}/sign", json={"hash": v3["hash"]}, headers=ha)
    flush_outbox(joined.a.ctx)
    assert _active(joined.a) is None and _active(joined.b) is None
    v4 = joined.a.client.post(f"{BASE}/{AG}/terminate", json={"base": v3["hash"]}, headers=ha).json()
    flush_outbox(joined.a.ctx)
    joined.b.client.post(f"{BASE}/{AG}/sign", json={"hash": v4["hash"]}, headers=hb)
    flush_outbox(joined.b.ctx)
    r = joined.a.client.post(f"{BASE}/{AG}/amend", json={"base": v4["hash"], "changes": {}}, headers=ha)
    assert r.status_code == 409 and r.json()["code"] == "agreement_terminated"
    for node, headers in ((joined.a, ha), (joined.b, hb)):
        got = node.client.get(f"{BASE}/{AG}", headers=headers).json()
        assert [v["status"] for v in got["history"]] == ["active", "active", "suspended", "terminated"]
        assert got["verification"]["ok"] and all(v["complete"] for v in got["verification"]["versions"])
    # a broken link is detected
    with joined.a.session() as s:
        docs = [r.document for r in s.exec(select(AgreementVersion)).all()]
    broken = [d for d in docs if d["version"] != 2]
    report = verify_chain(broken, {})
    assert not report.ok and any(p["code"] == "chain_broken" for p in report.problems)


def test_duplicate_delivery_one_effect(joined, admins) -> None:
    ha, _ = admins
    v1 = joined.a.client.post(BASE, json=draft(), headers=ha).json()
    with joined.a.session() as s:
        doc = s.get(AgreementVersion, v1["hash"]).document
        # the same message re-sent under a new id: the handler is idempotent (the inbox dedupes equal ids)
        enqueue(s, "zhejiang", "agreement.propose", {"agreement": AG, "hash": v1["hash"], "document": doc})
    assert flush_outbox(joined.a.ctx).sent == 2
    with joined.b.session() as s:
        rows = s.exec(select(AgreementVersion)).all()
        assert len(rows) == 1 and len(rows[0].document["proof"]) == 1


def test_admin_role_required(joined) -> None:
    assert joined.a.client.get(BASE).status_code == 401


# -- recognise() (pure) -------------------------------------------------------------------------------------


def _doc(**over) -> dict:
    return {**draft(**over), "type": "MutualRecognitionAgreement", "version": 1, "previous": None,
            "proposer": "shanghai", "status": "active"}


def test_shape_checks() -> None:
    check_shape(_doc())
    with pytest.raises(AgreementInvalid):
        check_shape(_doc(parties=["shanghai"]))
    with pytest.raises(AgreementInvalid):
        check_shape(_doc(credit_equivalence={"shanghai": {"hours_per_credit": "18"}}))


def test_recognise_direct_fixed_credits() -> None:
    rec = recognise(_doc(), origin="shanghai", destination="zhejiang",
                    record={"type": "course", "code": "MATH101", "title": "Calculus", "credits": Decimal(3),
                            "hours": Decimal(54), "level": None})
    assert rec is not None and rec.code == "ZJ-M101" and rec.credits == Decimal(4) and rec.automatic
    assert rec.mapping_index == 0 and "mapping 0" in rec.explanation


def test_recognise_hours_conversion() -> None:
    rec = recognise(_doc(), origin="shanghai", destination="zhejiang",
                    record={"type": "course", "code": "ENG101", "title": "English", "credits": Decimal(2),
                            "hours": Decimal(36), "level": None})
    assert rec.credits == Decimal("2.25") and rec.code == "ZJ-E101"  # 36 h / 16 h per credit
    rec = recognise(_doc(), origin="shanghai", destination="zhejiang",
                    record={"type": "course", "code": "ENG101", "title": "English", "credits": Decimal(1),
                            "hours": None, "level": None})
    assert rec.credits == Decimal("1.125")  # 1 × 18 h / 16 h


def test_recognise_reference_level() -> None:
    rec = recognise(_doc(recognition="reviewed"), origin="shanghai", destination="zhejiang",
                    record={"type": "vocational_certificate", "code": "CERT-9", "title": "Electrician",
                            "credits": Decimal(5), "hours": Decimal(80), "level": "SH-3"})
    assert rec is not None and rec.reference_level == "R3" and not rec.automatic
    assert rec.level is not None and rec.level.startswith("ZJ") and rec.credits == Decimal(5)
    assert recognise(_doc(), origin="shanghai", destination="zhejiang",
                     record={"type": "vocational_certificate", "code": "C", "title": "t", "credits": Decimal(1),
                             "hours": None, "level": "SH-2"}) is None  # R2: no mapping


def test_recognise_a_certificate_of_one_level_only() -> None:
    """A direct mapping with `from.level` recognises the certificate at that level and no other; `to.level` and
    fixed zero credits carry it into the destination's catalogue (its conversion rules then apply there)."""
    mapping = {"from": {"node": "shanghai", "achievement_type": "vocational_qualification",
                        "code": "VQ.AUTO_REPAIR", "level": "三级"},
               "to": {"code": "VQ.AUTO_REPAIR", "title": "汽车维修工", "level": "三级", "credits": "0"}}
    doc = _doc(scope={"achievement_types": ["vocational_qualification"]}, mappings=[mapping])
    check_shape(doc)
    cert = {"type": "vocational_qualification", "code": "VQ.AUTO_REPAIR", "title": "汽车维修工", "credits": None,
            "hours": None, "level": "三级"}
    rec = recognise(doc, origin="shanghai", destination="zhejiang", record=cert)
    assert rec is not None and (rec.code, rec.level, rec.credits) == ("VQ.AUTO_REPAIR", "三级", Decimal(0))
    assert recognise(doc, origin="shanghai", destination="zhejiang", record={**cert, "level": "四级"}) is None
    with pytest.raises(AgreementInvalid):
        check_shape(_doc(mappings=[{**mapping, "from": {**mapping["from"], "level": ""}}]))


def test_recognise_out_of_scope() -> None:
    assert recognise(_doc(), origin="shanghai", destination="zhejiang",
                     record={"type": "degree", "code": "MATH101", "credits": Decimal(4)}) is None
    assert recognise(_doc(), origin="shanghai", destination="zhejiang",
                     record={"type": "course", "code": "UNMAPPED", "credits": Decimal(4)}) is None
    assert recognise(_doc(), origin="zhejiang", destination="shanghai",
                     record={"type": "course", "code": "MATH101", "credits": Decimal(4)}) is None
    assert recognise(_doc(), origin="shanghai", destination="anhui",
                     record={"type": "course", "code": "MATH101", "credits": Decimal(4)}) is None


def test_three_parties_complete_only_with_every_proof(joined, admins) -> None:
    """Shanghai, Zhejiang and Jiangsu (a founding member whose key the test holds): complete needs all three."""
    ha, hb = admins
    three = draft(agreement=AG + "-3", parties=["shanghai", "zhejiang", "jiangsu"],
                  credit_equivalence={"shanghai": {"hours_per_credit": "18"}, "zhejiang": {"hours_per_credit": "16"},
                                      "jiangsu": {"hours_per_credit": "16"}})
    v1 = joined.a.client.post(BASE, json=three, headers=ha).json()
    flush_outbox(joined.a.ctx)
    signed = joined.b.client.post(f"{BASE}/{AG}-3/sign", json={"hash": v1["hash"]}, headers=hb).json()
    assert not signed["complete"] and _active(joined.b) is None
    with joined.b.session() as s:
        doc = s.get(AgreementVersion, v1["hash"]).document
        row = store_version(s, joined.b.ctx, sign_agreement(doc, joined.identity("jiangsu")), sender="jiangsu")
        assert row.complete
    assert _active(joined.b)["agreement"] == AG + "-3"
