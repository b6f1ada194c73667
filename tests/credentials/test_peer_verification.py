"""Any member's credential verifies at any node (issue 11 item 21): Zhejiang's `POST /api/v1/verify` checks a
credential Shanghai issued — Shanghai's DID document from the membership's cache, both proofs, Shanghai's signed
status list, inclusion under Shanghai's signed checkpoint — and sees a revocation or a rotated key; a DID that
is not a member's stays unknown and no other host is contacted."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

from federation.runtime import runtime
from node.credentials.status import revoke_achievement
from node.identity.keyring import rotate_keyring
from node.learners.service import open_account
from node.ledger.service import EventSpec, append_events
from node.models import Achievement, Learner, PeerDidDocument
from tests.conftest import valid_id
from tests.federation.conftest import federation, joined, make_database, network  # noqa: F401 - fixtures

__all__ = ["federation", "joined", "make_database", "network"]


def _deposit(node, serial: str) -> tuple[int, int]:
    with node.session() as s:
        learner, _ = open_account(s, node.ctx, id_type="resident_id", id_number=valid_id(serial=serial),
                                  name="王五", password="learner-pass-1")
        a = Achievement(learner_id=learner.id, type="degree_course", issuer_code="U001", issuer_name="上海开放大学",
                        code="MATH101", title="高等数学", credits=Decimal(4), hours=Decimal(64), score_text="85",
                        earned_on=dt.date(2024, 6, 30), term="202406", source="individual")
        s.add(a)
        s.flush()
        append_events(s, [EventSpec(kind="achievement.deposited", learner_id=learner.id, achievement_id=a.id,
                                    pseudonym=learner.pseudonym,
                                    data={"achievement": a.id})])
        return learner.id, a.id


def _export(node, learner_id: int, achievement_id: int) -> dict:
    with node.session() as s:
        account = s.get(Learner, learner_id).account_no
    token = node.client.post("/api/v1/auth/token", data={"username": account, "password": "learner-pass-1"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    r = node.client.get(f"/api/v1/me/credentials/{achievement_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _checks(verdict: dict) -> dict:
    out: dict = {}
    for c in verdict["checks"]:
        out.setdefault(c["check"], []).append(c["ok"])
    return out


def test_a_members_credential_verifies_at_another_node(joined) -> None:  # noqa: F811
    shanghai, zhejiang = joined.a, joined.b
    learner_id, achievement_id = _deposit(shanghai, "501")
    credential = _export(shanghai, learner_id, achievement_id)

    verdict = zhejiang.client.post("/api/v1/verify", json=credential).json()
    assert verdict["valid"], verdict
    checks = _checks(verdict)
    assert checks["signature"] == [True, True]  # eddsa-jcs-2022 and eddsa-rdfc-2022
    assert checks["status"] == [True] and checks["inclusion"] == [True] and checks["dates"] == [True]
    with zhejiang.session() as s:  # Shanghai's DID document is cached with the membership
        assert s.get(PeerDidDocument, shanghai.ctx.identity.did) is not None

    tampered = copy.deepcopy(credential)
    tampered["credentialSubject"]["creditBank"]["credits"] = "40"
    assert not zhejiang.client.post("/api/v1/verify", json=tampered).json()["valid"]

    # Shanghai revokes it: Zhejiang sees the bit in Shanghai's signed list (after the short fetch cache)
    with shanghai.session() as s:
        revoke_achievement(s, shanghai.ctx, s.get(Achievement, achievement_id), cause={"test": 1}, because="test")
    zhejiang.ctx.extras.pop("federation.artefacts", None)  # the status list is cached for a minute
    verdict = zhejiang.client.post("/api/v1/verify", json=credential).json()
    assert not verdict["valid"] and _checks(verdict)["status"] == [False]


def test_a_rotated_peer_key_is_fetched_and_a_stranger_stays_unknown(joined) -> None:  # noqa: F811
    shanghai, zhejiang = joined.a, joined.b
    learner_id, achievement_id = _deposit(shanghai, "502")
    first = _export(shanghai, learner_id, achievement_id)
    verdict = zhejiang.client.post("/api/v1/verify", json=first).json()
    assert verdict["valid"], verdict  # caches key-1's document

    rotate_keyring(shanghai.settings)
    shanghai.ctx.reload_identity()
    runtime(shanghai.ctx).directory = type(runtime(shanghai.ctx).directory)(
        own_did=shanghai.ctx.identity.did, own_document=shanghai.ctx.identity.did_document,
        http=runtime(shanghai.ctx).client)
    with zhejiang.session() as s:  # the cached copy is old enough to be re-fetched
        row = s.get(PeerDidDocument, shanghai.ctx.identity.did)
        row.fetched_at = row.fetched_at - dt.timedelta(minutes=5)
        s.add(row)
    second = _export(shanghai, learner_id, achievement_id)
    assert {p["verificationMethod"] for p in second["proof"]} == {f"{shanghai.ctx.identity.did}#key-2"}
    verdict = zhejiang.client.post("/api/v1/verify", json=second).json()
    assert verdict["valid"], verdict

    contacted = len(joined.network.log)
    stranger = copy.deepcopy(second)
    stranger["issuer"]["id"] = "did:web:evil.example"
    for proof in stranger["proof"]:
        proof["verificationMethod"] = "did:web:evil.example#key-1"
    stranger["credentialStatus"]["statusListCredential"] = "http://evil.example/status/0"
    verdict = zhejiang.client.post("/api/v1/verify", json=stranger).json()
    assert not verdict["valid"]
    assert any("not known" in c["reason"] for c in verdict["checks"] if c["check"] == "signature")
    assert all("evil.example" not in base for base, _path, _body in joined.network.log[contacted:])
