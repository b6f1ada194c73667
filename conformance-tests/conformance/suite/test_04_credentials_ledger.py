"""Credentials and the ledger as a transparency log: what a destination node verifies before it recognises
anything (docs/federation.md §5 via docs/ledger.md; W3C VC Data Integrity eddsa-jcs-2022, RFC 9162, C2SP
signed notes, Bitstring Status List)."""

from __future__ import annotations

import json

import pytest

from crypto.dataintegrity import verify as di_verify
from crypto.errors import LeafError
from crypto.keys import PublicKey
from crypto.leaf import open_leaf
from crypto.merkle import leaf_hash, verify_consistency, verify_inclusion
from crypto.note import NoteVerifier, parse_checkpoint, split_note, verify_note
from crypto.statuslist import StatusList

LEDGER = "docs/ledger.md"
VC = "W3C VC Data Integrity eddsa-jcs-2022 (RFC 8785 JCS)"


def _checkpoint(harness) -> dict:
    """Fetch, verify (a signature by a key of the node's DID document) and parse the latest checkpoint."""
    r = harness.node.get(harness.facts["discovery"]["endpoints"]["checkpoint"])
    assert r.status_code == 200, r.text
    note = r.text
    text, _sigs = split_note(note)
    origin = text.split("\n", 1)[0]
    doc = harness.node.did_document()
    verifiers = [NoteVerifier(origin, PublicKey.from_multikey(vm["publicKeyMultibase"]))
                 for vm in doc["verificationMethod"]]
    verified = verify_note(note, verifiers)
    assert origin in verified.signatures, "the checkpoint is not signed under its own origin"
    cp = parse_checkpoint(verified.text)
    return {"size": cp.size, "root": cp.root_hash, "origin": cp.origin}


@pytest.mark.rule("conformance contract: POST /api/v1/testing/fixtures/achievement deposits a synthetic record")
@pytest.mark.requires("membership")
@pytest.mark.provides("achievement")
def test_fixture_achievement(harness) -> None:
    made = harness.node.admin_ok("POST", "/api/v1/testing/fixtures/achievement",
                                 {"title": "高等数学（一）", "credits": "4.5", "code": "CONF101"})
    assert isinstance(made.get("achievement_id"), int) and isinstance(made.get("ledger_seq"), int), made
    harness.facts["achievement"] = made


@pytest.mark.rule(f"{VC}: the credential verifies with the issuer's DID document")
@pytest.mark.requires("achievement", "did")
@pytest.mark.provides("credential")
def test_credential_verifies(harness) -> None:
    made = harness.facts["achievement"]
    r = harness.node.admin("GET", f"/api/v1/achievements/{made['achievement_id']}/credential")
    assert r.status_code == 200, r.text
    credential = r.json()
    issuer = credential["issuer"]["id"] if isinstance(credential["issuer"], dict) else credential["issuer"]
    assert issuer == harness.facts["discovery"]["did"]
    outcome = di_verify(credential, harness.node.resolver("assertionMethod"))
    assert outcome.ok, f"the credential's proof does not verify: {outcome.reason}"
    harness.facts["credential"] = credential


@pytest.mark.rule(f"{LEDGER} leaf format v2: the credential's opening shows its public leaf is this record's "
                  "deposit, about the credential's subject")
@pytest.mark.requires("credential")
def test_credential_matches_ledger(harness) -> None:
    credential = harness.facts["credential"]
    record = credential["credentialSubject"]["creditBank"]
    seq = harness.facts["achievement"]["ledger_seq"]
    assert record.get("ledgerSequence") == seq
    r = harness.node.get(f"/api/v1/ledger/events/{seq}")
    assert r.status_code == 200, r.text
    event = r.json()
    assert leaf_hash(event["leaf"].encode("utf-8")).hex() == event["leaf_hash"] == record.get("ledgerLeafHash")
    assert isinstance(record.get("ledgerOpening"), dict), "the credential carries no opening of its ledger event"
    try:
        opened = open_leaf(event["leaf"], {**record["ledgerOpening"], "subject": credential["credentialSubject"]["id"]})
    except LeafError as exc:
        raise AssertionError(f"the credential's opening does not open its leaf: {exc}") from None
    assert opened.version == 2 and opened.seq == seq and opened.kind == "achievement.deposited"
    assert opened.data.get("achievement") == harness.facts["achievement"]["achievement_id"]
    assert str(opened.data.get("credits")) == record.get("credits") == "4.5"


@pytest.mark.rule(f"{LEDGER} threat model: public leaves identify no one and link no two events of a learner "
                  "(no account number, pseudonym, shared hash or data); the learner can open their own events")
@pytest.mark.requires("credential")
def test_public_leaves_link_no_one(harness) -> None:
    made = harness.facts["achievement"]
    seq, learner = made["ledger_seq"], made["learner"]
    token = harness.node.sign_in(learner["account_no"], learner["password"])
    mine = harness.node.as_user(token, "GET", f"/api/v1/me/ledger/events/{seq - 1}")
    assert mine.status_code == 200, mine.text
    assert open_leaf(mine.json()["leaf"], mine.json()["opening"]).kind == "learner.opened"
    views = [harness.node.get(f"/api/v1/ledger/events/{n}").json() for n in (seq - 1, seq)]
    leaves = [json.loads(v["leaf"]) for v in views]
    assert [leaf["kind"] for leaf in leaves] == ["learner.opened", "achievement.deposited"]
    for view, leaf in zip(views, leaves, strict=True):
        assert set(leaf) == {"v", "seq", "prev", "at", "kind", "commitment"}, f"leaf {leaf['seq']} shows {set(leaf)}"
        text = json.dumps(view, ensure_ascii=False)
        for secret in (learner["account_no"], learner["pseudonym"], "测试学员", "高等数学"):
            assert secret not in text, f"{secret!r} in the public view of event {leaf['seq']}"
    assert leaves[0]["commitment"] != leaves[1]["commitment"]
    other = harness.node.as_user(token, "GET", f"/api/v1/me/ledger/events/{seq + 10**6}")
    assert other.status_code == 404, other.text


@pytest.mark.rule(f"{LEDGER} + RFC 9162: signed checkpoint and inclusion proof of the credential's leaf")
@pytest.mark.requires("credential")
@pytest.mark.provides("checkpoint")
def test_inclusion_proof(harness) -> None:
    cp = _checkpoint(harness)
    seq = harness.facts["achievement"]["ledger_seq"]
    assert cp["size"] > seq
    r = harness.node.get("/api/v1/ledger/proof/inclusion", seq=seq, size=cp["size"])
    assert r.status_code == 200, r.text
    proof = r.json()
    leaf = bytes.fromhex(harness.facts["credential"]["credentialSubject"]["creditBank"]["ledgerLeafHash"])
    verify_inclusion(leaf, seq, cp["size"], [bytes.fromhex(h) for h in proof["proof"]], cp["root"])
    harness.facts["checkpoint1"] = cp


@pytest.mark.rule(f"{LEDGER} + RFC 9162: consistency proof between two signed checkpoints")
@pytest.mark.requires("checkpoint")
def test_consistency_proof(harness) -> None:
    first = harness.facts["checkpoint1"]
    harness.node.admin_ok("POST", "/api/v1/testing/fixtures/achievement", {"title": "大学英语", "credits": "2"})
    second = _checkpoint(harness)
    assert second["size"] > first["size"], "the log did not grow"
    assert second["origin"] == first["origin"]
    r = harness.node.get("/api/v1/ledger/proof/consistency", first=first["size"], second=second["size"])
    assert r.status_code == 200, r.text
    proof = [bytes.fromhex(h) for h in r.json()["proof"]]
    verify_consistency(first["size"], second["size"], first["root"], second["root"], proof)


@pytest.mark.rule("W3C Bitstring Status List: the credential's status list verifies and shows it unrevoked")
@pytest.mark.requires("credential")
def test_status_list(harness) -> None:
    status = harness.facts["credential"]["credentialStatus"]
    url = status["statusListCredential"]
    base = harness.facts["discovery"]["base_url"].rstrip("/")
    assert url.startswith(base + "/"), "the status list is not served by the issuer"
    r = harness.node.get(url.removeprefix(base))
    assert r.status_code == 200, r.text
    listing = r.json()
    outcome = di_verify(listing, harness.node.resolver("assertionMethod"))
    assert outcome.ok, f"the status list's proof does not verify: {outcome.reason}"
    bits = StatusList.decode(listing["credentialSubject"]["encodedList"])
    assert bits.get(int(status["statusListIndex"])) is False, "a fresh credential shows as revoked"
