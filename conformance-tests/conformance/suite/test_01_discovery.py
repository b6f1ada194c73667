"""Discovery and identity: the documents every peer reads before anything else (docs/federation.md §1)."""

from __future__ import annotations

import pytest

from conformance import PROTOCOL
from crypto.did import did_web_from_url, parse_datetime
from crypto.keys import PublicKey

F1 = "docs/federation.md §1"


@pytest.mark.rule(f"{F1} discovery document")
@pytest.mark.provides("discovery")
def test_discovery_document(harness) -> None:
    r = harness.node.get("/.well-known/credit-node")
    assert r.status_code == 200, r.text
    doc = r.json()
    for key in ("node_id", "did", "base_url", "protocol_versions", "features", "endpoints", "membership"):
        assert key in doc, f"discovery lacks {key!r}"
    assert PROTOCOL in doc["protocol_versions"]
    assert doc["base_url"].rstrip("/") == harness.node.base, "discovery names another base URL"
    assert doc["did"] == did_web_from_url(doc["base_url"]), "the DID is not the did:web of the base URL"
    for name in ("inbox", "did", "checkpoint"):
        assert str(doc["endpoints"].get(name, "")).startswith("/"), f"endpoint {name!r} missing"
    harness.facts["discovery"] = doc


@pytest.mark.rule(f"{F1} DID document (did:web, Multikey verification methods)")
@pytest.mark.requires("discovery")
@pytest.mark.provides("did")
def test_did_document(harness) -> None:
    doc = harness.node.did_document(refresh=True)
    assert doc.get("id") == harness.facts["discovery"]["did"]
    methods = doc.get("verificationMethod") or []
    assert methods, "no verification method"
    ids = set()
    for vm in methods:
        assert vm.get("type") == "Multikey", vm
        assert vm.get("controller") == doc["id"]
        assert str(vm.get("id", "")).startswith(doc["id"] + "#")
        PublicKey.from_multikey(vm["publicKeyMultibase"])  # an Ed25519 Multikey
        ids.add(vm["id"])
    for relation in ("authentication", "assertionMethod"):
        refs = [r if isinstance(r, str) else r.get("id") for r in doc.get(relation) or []]
        assert refs, f"no key is listed for {relation}"
        assert set(refs) <= ids, f"{relation} names keys that are not verification methods"


@pytest.mark.rule(f"{F1} keys: rotated keys stay published with their expiry")
@pytest.mark.requires("did")
def test_retired_keys_carry_dates(harness) -> None:
    """Every key not usable for authentication any more must still be listed (old signatures verify) and say
    why: an expiry or revocation date."""
    doc = harness.node.did_document()
    live = {r if isinstance(r, str) else r.get("id") for r in doc.get("authentication") or []}
    for vm in doc["verificationMethod"]:
        if vm["id"] not in live:
            stamp = vm.get("expires") or vm.get("revoked")
            assert stamp and parse_datetime(stamp), f"{vm['id']} is retired without a date"
