"""Key rotation is visible to peers (docs/federation.md §1, §3; docs/operations.md): after a rotation the DID
document lists the new key for authentication and assertions, keeps the old one published with its expiry, the
node signs with the new key, and what it signed before still verifies. Runs late: it changes the node's key."""

from __future__ import annotations

import pytest

from crypto.dataintegrity import verify as di_verify
from crypto.did import parse_datetime

F1 = "docs/federation.md §1"
pytestmark = pytest.mark.requires("signed_exchange", "credential")


def _signing_keys(doc: dict) -> set[str]:
    """The verification methods of a document's proof or proof set (a node may send either)."""
    proofs = doc["proof"] if isinstance(doc["proof"], list) else [doc["proof"]]
    return {p["verificationMethod"] for p in proofs}


def _refs(doc: dict, relation: str) -> set[str]:
    return {r if isinstance(r, str) else r.get("id") for r in doc.get(relation) or []}


@pytest.mark.rule(f"{F1} key rotation visible: new key published, old key kept with expiry, old proofs verify")
def test_key_rotation_visible(harness) -> None:
    node = harness.node
    [old_key] = _signing_keys(harness.facts["credential"])
    rotated = node.admin("POST", "/api/v1/testing/keys/rotate", {"keep_old_days": 30})
    if rotated.status_code == 404:
        pytest.skip("the node exposes no key-rotation endpoint (POST /api/v1/testing/keys/rotate)")
    assert rotated.status_code == 200, rotated.text
    doc = node.did_document(refresh=True)
    methods = {vm["id"]: vm for vm in doc["verificationMethod"]}
    new_key = rotated.json()["current"]
    assert new_key != old_key and new_key in methods
    assert new_key in _refs(doc, "authentication") and new_key in _refs(doc, "assertionMethod")
    assert old_key in methods, "the old key is no longer published: old signatures cannot be checked"
    assert parse_datetime(methods[old_key].get("expires")), "the old key carries no expiry"

    _envelope, ex = harness.ping("after rotation", token="rotated")
    assert ex.status == 200 and ex.response_signed, ex.response_problem
    assert ex.response_key_id == new_key, f"still signing with {ex.response_key_id}"

    before = harness.facts["credential"]
    assert di_verify(before, node.resolver("assertionMethod")).ok, "a credential signed before the rotation fails"
    r = node.admin("GET", f"/api/v1/achievements/{harness.facts['achievement']['achievement_id']}/credential")
    assert r.status_code == 200, r.text
    after = r.json()
    assert _signing_keys(after) == {new_key}
    assert di_verify(after, node.resolver("assertionMethod")).ok
