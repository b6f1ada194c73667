"""Ed25519 keys, Multikey, did:key vectors; did:web and DID documents with rotation/revocation."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from crypto.did import (
    VerificationMethodSpec,
    build_did_document,
    did_web_from_url,
    did_web_to_url,
    resolve_verification_method,
)
from crypto.errors import DidError, KeyFormatError, UnknownVerificationMethod
from crypto.keys import (
    Ed25519Key,
    PublicKey,
    b58decode,
    b58encode,
    did_key,
    did_key_vm,
    public_key_from_did_key,
)
from tests.crypto.conftest import vector_path


def test_did_key_vectors() -> None:
    cases = json.loads(vector_path("did-key", "ed25519-x25519.json").read_text())
    assert len(cases) == 5
    for did, case in cases.items():
        key = Ed25519Key.from_seed(bytes.fromhex(case["seed"]))
        vkp = case["verificationKeyPair"]
        if "publicKeyBase58" in vkp:
            assert b58encode(key.public_bytes()) == vkp["publicKeyBase58"]
        else:
            x = vkp["publicKeyJwk"]["x"]
            assert base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)) == key.public_bytes()
        assert key.did_key == did == did_key(key.public_key)
        assert public_key_from_did_key(did).raw == key.public_bytes()


def test_w3c_keypair_multikeys() -> None:
    kp = json.loads(vector_path("w3c-vc-di-eddsa", "TestVectors", "keyPair.json").read_text())
    key = Ed25519Key.from_multikey(kp["privateKeyMultibase"])
    assert key.public_multikey == kp["publicKeyMultibase"]
    assert key.secret_multikey == kp["privateKeyMultibase"]
    assert PublicKey.from_multikey(kp["publicKeyMultibase"]) == key.public_key
    assert key.public_multikey.startswith("z6Mk") and key.secret_multikey.startswith("z3u2")


def test_sign_verify_and_bytes_roundtrip() -> None:
    key = Ed25519Key.generate()
    sig = key.sign(b"msg")
    assert key.public_key.verify(sig, b"msg")
    assert not key.public_key.verify(sig, b"msh")
    assert not key.public_key.verify(sig[:-1], b"msg")
    assert not key.public_key.verify(b"\0" * 64, b"msg")
    assert Ed25519Key.from_private_bytes(key.private_bytes()).public_bytes() == key.public_bytes()
    assert Ed25519Key.from_private_bytes(key.private_bytes() + key.public_bytes()).public_bytes() == key.public_bytes()
    assert "seed" not in repr(key) and key.private_bytes().hex() not in repr(key)


def test_base58_leading_zeros() -> None:
    for data in [b"", b"\0", b"\0\0\1", b"\xff" * 40]:
        assert b58decode(b58encode(data)) == data
    with pytest.raises(KeyFormatError):
        b58decode("0OIl")


def test_did_key_fragment_must_match_body() -> None:
    a, b = Ed25519Key.generate(), Ed25519Key.generate()
    assert public_key_from_did_key(did_key_vm(a)) == a.public_key
    with pytest.raises(KeyFormatError):
        public_key_from_did_key(f"did:key:{a.public_multikey}#{b.public_multikey}")
    with pytest.raises(KeyFormatError):
        PublicKey.from_multikey(a.secret_multikey)


@pytest.mark.parametrize(("url", "did"), [
    ("https://example.com", "did:web:example.com"),
    ("https://Example.COM/", "did:web:example.com"),
    ("http://127.0.0.1:8101", "did:web:127.0.0.1%3A8101"),
    ("https://node.sh.example:8443/creditnode/shanghai", "did:web:node.sh.example%3A8443:creditnode:shanghai"),
])
def test_did_web_from_url(url: str, did: str) -> None:
    assert did_web_from_url(url) == did


def test_did_web_to_url() -> None:
    assert did_web_to_url("did:web:example.com") == "https://example.com/.well-known/did.json"
    assert did_web_to_url("did:web:h%3A8443:a:b") == "https://h:8443/a/b/did.json"
    with pytest.raises(DidError):
        did_web_to_url("did:web:h:..")


def _doc():
    k1, k2, k3 = Ed25519Key.generate(), Ed25519Key.generate(), Ed25519Key.generate()
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    specs = [
        VerificationMethodSpec("key-1", k1.public_multikey, expires="2025-01-01T00:00:00Z"),
        VerificationMethodSpec("key-2", k2.public_multikey, revoked=dt.datetime(2025, 3, 1, tzinfo=dt.UTC)),
        VerificationMethodSpec("key-3", k3.public_multikey),
    ]
    return build_did_document("did:web:example.com", specs, now=now), (k1, k2, k3)


def test_did_document_shape() -> None:
    doc, (k1, _, k3) = _doc()
    assert doc["@context"] == ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
    vms = {vm["id"]: vm for vm in doc["verificationMethod"]}
    assert set(vms) == {"did:web:example.com#key-1", "did:web:example.com#key-2", "did:web:example.com#key-3"}
    assert vms["did:web:example.com#key-1"] == {
        "id": "did:web:example.com#key-1", "type": "Multikey", "controller": "did:web:example.com",
        "publicKeyMultibase": k1.public_multikey, "expires": "2025-01-01T00:00:00Z"}
    assert vms["did:web:example.com#key-2"]["revoked"] == "2025-03-01T00:00:00Z"
    assert doc["assertionMethod"] == ["did:web:example.com#key-1", "did:web:example.com#key-3"]
    assert doc["authentication"] == ["did:web:example.com#key-3"]


def test_resolve_verification_method() -> None:
    doc, (k1, k2, k3) = _doc()
    r3 = resolve_verification_method(doc, "did:web:example.com#key-3")
    assert r3.public_key == k3.public_key and r3.status == "valid"
    r1 = resolve_verification_method(doc, "#key-1", at="2024-12-01T00:00:00Z")
    assert r1.status == "valid" and r1.expires is not None
    assert resolve_verification_method(doc, "#key-1", at="2025-02-01T00:00:00Z").status == "expired"
    r2 = resolve_verification_method(doc, "#key-2")
    assert r2.status == "revoked" and r2.revoked is not None
    with pytest.raises(UnknownVerificationMethod, match="not listed"):
        resolve_verification_method(doc, "#key-9")
    with pytest.raises(UnknownVerificationMethod, match="not authorised"):
        resolve_verification_method(doc, "#key-1", purpose="authentication")
    with pytest.raises(LookupError):
        resolve_verification_method(doc, "did:web:other.example#key-3")
