"""Consented transfer with the node as **origin** and the harness as destination (docs/agreements.md,
"Consent and transfer"; issue 5 item 6–7): records are released only to the destination a valid, unrevoked
consent names, as signed credentials with inclusion proofs against the origin's signed checkpoint."""

from __future__ import annotations

import re
import secrets
import time

import pytest

from crypto.dataintegrity import verify as di_verify
from crypto.keys import PublicKey
from crypto.leaf import open_leaf
from crypto.merkle import leaf_hash, verify_inclusion
from crypto.note import NoteVerifier, parse_checkpoint, split_note, verify_note
from crypto.statuslist import StatusList

AG = "docs/agreements.md consent and transfer"
RELEASE = "/federation/v1/records/release"
pytestmark = pytest.mark.requires("signed_exchange", "achievement")


@pytest.fixture(scope="module")
def transfers(harness):
    if "transfers" not in harness.node.discovery(refresh=True).get("features", []):
        pytest.skip("the node does not advertise the 'transfers' feature")
    made = harness.node.admin_ok("POST", "/api/v1/testing/fixtures/achievement",
                                 {"title": "数据结构", "credits": "3", "code": "CONF201"})
    token = harness.node.sign_in(made["learner"]["account_no"], made["learner"]["password"])
    return {"achievement": made, "token": token}


def _release(harness, label: str, consent) -> object:
    return harness.node.send_signed(label, {"consent": consent}, path=RELEASE, sign=harness.peer.sign)


def _grant(harness, transfers) -> dict:
    r = harness.node.as_user(transfers["token"], "POST", "/api/v1/me/consents", {
        "destination": harness.peer.node_id, "achievement_ids": [transfers["achievement"]["achievement_id"]],
        "purpose": "conformance: credit transfer", "valid_days": 1,
        "holder_binding": secrets.token_urlsafe(16)})
    assert r.status_code == 201, r.text
    return r.json()


def _visible(harness, transfers, consent_id: str, state: str) -> None:
    """Wait (≤ 2 s) until the consent reads in `state`: the reference node commits a request's unit of work
    after sending its response, so an immediate next request may not see it yet."""
    deadline = time.monotonic() + 2
    while True:
        r = harness.node.as_user(transfers["token"], "GET", f"/api/v1/me/consents/{consent_id}")
        if r.status_code == 200 and r.json().get("state") == state:
            return
        assert time.monotonic() < deadline, f"the consent never read as {state}"
        time.sleep(0.05)


def _document(view: dict) -> dict:
    return view.get("document", view)


@pytest.mark.rule(f"{AG}: no records are released without a consent the origin issued")
def test_release_requires_consent(harness, transfers) -> None:
    missing = _release(harness, "release without consent", None)
    assert missing.status in (400, 404) and missing.code in ("consent_invalid", "consent_unknown"), missing.body
    forged = _release(harness, "release with unknown consent", {"id": f"urn:uuid:{secrets.token_hex(8)}"})
    assert (forged.status, forged.code) == (404, "consent_unknown"), forged.body
    assert missing.response_signed and forged.response_signed


@pytest.mark.rule(f"{AG}: a consented release carries verifiable credentials, inclusion proofs, checkpoint, and "
                  "each record's ledger leaf, which the credential's opening shows to be its deposit")
@pytest.mark.provides("consent")
def test_consented_release_verifies(harness, transfers) -> None:
    view = _grant(harness, transfers)
    consent = _document(view)
    assert di_verify(consent, harness.node.resolver("assertionMethod")).ok, "the consent's proof fails"
    transfers["consent"] = consent
    transfers["consent_id"] = view.get("consent_id", consent.get("id"))
    _visible(harness, transfers, transfers["consent_id"], "active")
    ex = _release(harness, "consented release", consent)
    assert ex.status == 200, ex.body
    assert ex.response_signed and ex.response_bound
    body = ex.body
    assert not re.search(r"\b\d{17}[\dXx]\b", str(body)), "an ID number left the node"
    note = body["checkpoint"]
    text, _ = split_note(note)
    origin = text.split("\n", 1)[0]
    doc = harness.node.did_document()
    verified = verify_note(note, [NoteVerifier(origin, PublicKey.from_multikey(vm["publicKeyMultibase"]))
                                  for vm in doc["verificationMethod"]])
    cp = parse_checkpoint(verified.text)
    assert body["credentials"], "nothing released"
    for item in body["credentials"]:
        credential = item["credential"]
        assert di_verify(credential, harness.node.resolver("assertionMethod")).ok
        record = credential["credentialSubject"]["creditBank"]
        proof = item["inclusion"]
        verify_inclusion(bytes.fromhex(record["ledgerLeafHash"]), record["ledgerSequence"], cp.size,
                         [bytes.fromhex(h) for h in proof["proof"]], cp.root_hash)
        # the leaf itself travels with the record, and the credential's opening shows it is this deposit
        assert isinstance(item.get("leaf"), str), "a released record carries no ledger leaf"
        assert leaf_hash(item["leaf"].encode("utf-8")).hex() == record["ledgerLeafHash"]
        opened = open_leaf(item["leaf"], {**record.get("ledgerOpening", {}),
                                          "subject": credential["credentialSubject"]["id"]})
        assert (opened.seq, opened.kind) == (record["ledgerSequence"], "achievement.deposited")
        assert opened.data.get("achievement") == int(credential["id"].rsplit("/", 1)[-1])
    assert body["status_lists"], "no status list to check revocation with"
    transfers["released"] = [item["credential"] for item in body["credentials"]]


@pytest.mark.rule(f"{AG}: a revoked consent releases nothing (consent_revoked)")
@pytest.mark.requires("consent")
def test_revoked_consent_refused(harness, transfers) -> None:
    consent = transfers["consent"]
    r = harness.node.as_user(transfers["token"], "DELETE", f"/api/v1/me/consents/{transfers['consent_id']}")
    assert r.status_code == 200, r.text
    _visible(harness, transfers, transfers["consent_id"], "revoked")
    ex = _release(harness, "release after revocation", consent)
    assert (ex.status, ex.code) == (403, "consent_revoked"), ex.body
    assert ex.response_signed


REVOKED = "docs/agreements.md revocation after a transfer"


@pytest.mark.rule(f"{REVOKED}: a record the node released and then revokes is announced to the destination: one "
                  "signed record.revoked naming the credential, carrying the node's signed status list with its "
                  "bit set")
@pytest.mark.requires("consent")
def test_revoked_record_announced_to_the_destination(harness, transfers) -> None:
    from conformance.agreements import flush_until

    [credential] = transfers["released"]
    revoked = harness.node.admin_ok(
        "POST", f"/api/v1/testing/fixtures/achievement/{transfers['achievement']['achievement_id']}/revoke", {})
    assert revoked["status"] == "revoked", revoked

    def notices() -> list:
        return [d for d in harness.peer.deliveries_of_type("record.revoked")
                if (d.envelope.get("body") or {}).get("credential") == credential["id"]]

    flush_until(harness, notices, what="the record.revoked notice")
    harness.node.admin_ok("POST", "/api/v1/testing/outbox/flush", {"advance_seconds": 3600})
    got = notices()
    assert len(got) == 1, f"{len(got)} notices for one revocation"
    assert got[0].verified, f"the node's request does not verify: {got[0].problem}"
    listing = got[0].envelope["body"]["status_list"]
    assert di_verify(listing, harness.node.resolver("assertionMethod")).ok, "the status list's proof fails"
    entry = credential["credentialStatus"]
    assert listing["id"] == entry["statusListCredential"], "not the list the credential points to"
    bits = StatusList.decode(listing["credentialSubject"]["encodedList"])
    assert bits.get(int(entry["statusListIndex"])), "the status list does not show the record revoked"
