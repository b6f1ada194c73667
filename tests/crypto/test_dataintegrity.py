"""Data Integrity eddsa-jcs-2022: W3C intermediates, the didwebvh corpus, proof sets and chains."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from crypto.dataintegrity import JCS, hash_data, sign, verify
from crypto.did import VerificationMethodSpec, build_did_document, resolve_verification_method
from crypto.errors import ProofError
from crypto.jcs import canonicalize
from crypto.keys import Ed25519Key, b58encode, did_key_vm, public_key_from_did_key
from tests.crypto.conftest import vector_path

TV = ("w3c-vc-di-eddsa", "TestVectors")


def _tv(*parts: str) -> str:
    return vector_path(*TV, *parts).read_text()


def test_w3c_eddsa_jcs_2022_intermediates() -> None:
    key = Ed25519Key.from_multikey(json.loads(_tv("keyPair.json"))["privateKeyMultibase"])
    unsigned = json.loads(_tv("unsigned.json"))
    expected = json.loads(_tv("eddsa-jcs-2022", "signedJCS.json"))
    config = json.loads(_tv("eddsa-jcs-2022", "proofConfigJCS.json"))
    assert canonicalize(unsigned) == _tv("eddsa-jcs-2022", "canonDocJCS.txt").strip().encode()
    assert canonicalize(config) == _tv("eddsa-jcs-2022", "proofCanonJCS.txt").strip().encode()
    doc_hash = hashlib.sha256(canonicalize(unsigned)).hexdigest()
    proof_hash = hashlib.sha256(canonicalize(config)).hexdigest()
    assert doc_hash == _tv("eddsa-jcs-2022", "docHashJCS.txt").strip()
    assert proof_hash == _tv("eddsa-jcs-2022", "proofHashJCS.txt").strip()
    combined = hash_data(unsigned, config)
    assert combined.hex() == _tv("eddsa-jcs-2022", "combinedHashJCS.txt").strip()
    signature = key.sign(combined)
    assert signature.hex() == _tv("eddsa-jcs-2022", "sigHexJCS.txt").strip()
    assert "z" + b58encode(signature) == _tv("eddsa-jcs-2022", "sigBTC58JCS.txt").strip()
    signed = sign(unsigned, key, config["verificationMethod"], created=config["created"])
    assert signed == expected
    assert json.dumps(signed) == json.dumps(expected)  # same key order too
    assert "proof" not in unsigned  # input untouched
    result = verify(expected, public_key_from_did_key)
    assert result.ok and result.proofs[0].code == "ok"


def test_w3c_vector_tampered_fails() -> None:
    signed = json.loads(_tv("eddsa-jcs-2022", "signedJCS.json"))
    signed["credentialSubject"]["alumniOf"] = "Another School"
    r = verify(signed, public_key_from_did_key)
    assert not r.ok and r.proofs[0].code == "signature_invalid"


def test_context_mismatch() -> None:
    signed = json.loads(_tv("eddsa-jcs-2022", "signedJCS.json"))
    signed["@context"] = ["https://www.w3.org/ns/credentials/v2"]
    r = verify(signed, public_key_from_did_key)
    assert r.proofs[0].code == "context_mismatch"


# ------------------------------------------------------------------ didwebvh corpus
def _didwebvh_entries():
    root = vector_path("didwebvh", "vectors")
    for path in sorted(root.glob("*/*/did.jsonl")):
        for n, line in enumerate(path.read_text().splitlines()):
            if line.strip():
                yield f"{path.parent.parent.name}/{path.parent.name}#{n}", json.loads(line)


def _resolve_did_key(vm: str):
    return public_key_from_did_key(vm)


def test_didwebvh_corpus() -> None:
    valid, failed = 0, []
    for name, entry in _didwebvh_entries():
        result = verify(entry, _resolve_did_key, cryptosuites=(JCS,))  # did:webvh allows eddsa-jcs-2022 only
        if result.ok:
            valid += 1
        else:
            failed.append((name.split("/")[0], result.proofs[0].code))
    print(f"didwebvh: {valid} valid eddsa-jcs-2022 proofs, failures: {failed}")
    assert valid == 133
    assert sorted(failed) == [
        ("negative-did-key-body-fragment-mismatch", "unknown_key"),
        ("negative-wrong-cryptosuite", "unsupported_cryptosuite"),
    ]


def _flip(entry: dict) -> dict:
    """Flip one byte (one character) of the entry's signed content."""
    tampered = copy.deepcopy(entry)
    version = tampered["versionId"]
    tampered["versionId"] = version[:-1] + ("A" if version[-1] != "A" else "B")
    return tampered


def test_didwebvh_tampered_entries_fail() -> None:
    count = rejected = 0
    for _, entry in _didwebvh_entries():
        count += 1
        if not verify(_flip(entry), _resolve_did_key).ok:
            rejected += 1
    print(f"didwebvh tampered: {rejected}/{count} rejected")
    assert count == rejected == 135


def test_didwebvh_proofvalue_flip_fails() -> None:
    for _, entry in _didwebvh_entries():
        e = copy.deepcopy(entry)
        pv = e["proof"][0]["proofValue"]
        e["proof"][0]["proofValue"] = pv[:10] + ("2" if pv[10] != "2" else "3") + pv[11:]
        assert not verify(e, _resolve_did_key).ok


# ------------------------------------------------------------------ proof sets and chains
DOC = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "type": ["VerifiableCredential", "MutualRecognitionAgreement"],
    "issuer": "did:web:sh.example",
    "credentialSubject": {"title": "长三角学分互认协议", "credits": "3.5"},
}
KEYS = [Ed25519Key.from_seed(bytes([i]) * 32) for i in range(1, 5)]
VMS = [did_key_vm(k) for k in KEYS]


def test_proof_set_of_two_keys() -> None:
    one = sign(DOC, KEYS[0], VMS[0], created="2025-01-01T00:00:00Z", proof_id="urn:uuid:p1")
    two = sign(one, KEYS[1], VMS[1], created="2025-01-01T00:00:01Z", proof_id="urn:uuid:p2")
    assert isinstance(two["proof"], list) and len(two["proof"]) == 2
    r = verify(two, public_key_from_did_key)
    assert r.ok and [p.verification_method for p in r.proofs] == VMS[:2]
    # each proof signs the same unsecured document: either can be removed and the other still verifies
    alone = dict(two, proof=two["proof"][1])
    assert verify(alone, public_key_from_did_key).ok
    bad = copy.deepcopy(two)
    bad["credentialSubject"]["credits"] = "4"
    assert [p.code for p in verify(bad, public_key_from_did_key).proofs] == ["signature_invalid"] * 2


def _chain() -> dict:
    d = sign(DOC, KEYS[0], VMS[0], created="2025-01-01T00:00:00Z", proof_id="urn:uuid:a")
    d = sign(d, KEYS[1], VMS[1], created="2025-01-01T00:00:00Z", proof_id="urn:uuid:b")
    d = sign(d, KEYS[2], VMS[2], created="2025-01-02T00:00:00Z", proof_id="urn:uuid:c",
             previous_proof=["urn:uuid:a", "urn:uuid:b"])
    return sign(d, KEYS[3], VMS[3], created="2025-01-03T00:00:00Z", previous_proof="urn:uuid:c")


def test_proof_chain_verifies() -> None:
    chain = _chain()
    assert chain["proof"][2]["previousProof"] == ["urn:uuid:a", "urn:uuid:b"]
    assert chain["proof"][3]["previousProof"] == "urn:uuid:c"
    r = verify(chain, public_key_from_did_key)
    assert r.ok and len(r.proofs) == 4


def test_chain_covers_previous_proofs() -> None:
    chain = _chain()
    # altering a referenced proof breaks the proof that chains to it (and the altered one itself)
    chain["proof"][2]["created"] = "2025-01-02T00:00:01Z"
    codes = [p.code for p in verify(chain, public_key_from_did_key).proofs]
    assert codes == ["ok", "ok", "signature_invalid", "signature_invalid"]


def test_dropping_a_referenced_proof_fails() -> None:
    chain = _chain()
    del chain["proof"][2]  # proof d refers to c
    r = verify(chain, public_key_from_did_key)
    assert not r.ok and r.proofs[-1].code == "bad_previous_proof"
    chain = _chain()
    del chain["proof"][0]  # proof c refers to a and b
    assert [p.code for p in verify(chain, public_key_from_did_key).proofs][1] == "bad_previous_proof"


@pytest.mark.parametrize("bad", [456321, ["urn:uuid:a", 7], [], {"id": "urn:uuid:a"}, True])
def test_non_string_previous_proof_fails_cleanly(bad: object) -> None:
    chain = _chain()
    chain["proof"][3]["previousProof"] = bad
    r = verify(chain, public_key_from_did_key)
    assert not r.ok and r.proofs[3].code == "bad_previous_proof"


def test_ccg_previous_proof_not_string_shape() -> None:
    """The w3c-ccg vector (rdfc) has previousProof: 456321; our verifier must fail it cleanly, not crash."""
    doc = json.loads(vector_path("w3c-ccg-di-assertion", "inputs", "eddsa-rdfc-2022",
                                 "2.0-previousProofNotStringFail-SimpleSigned2.json").read_text())
    r = verify(doc, public_key_from_did_key)
    assert not r.ok
    assert r.proofs[1].code in ("unsupported_cryptosuite", "bad_previous_proof")
    doc["proof"] = [dict(p, cryptosuite="eddsa-jcs-2022") for p in doc["proof"]]
    assert verify(doc, public_key_from_did_key).proofs[1].code == "bad_previous_proof"


def test_sign_refuses_missing_previous_proof() -> None:
    one = sign(DOC, KEYS[0], VMS[0], proof_id="urn:uuid:a")
    with pytest.raises(ProofError):
        sign(one, KEYS[1], VMS[1], previous_proof="urn:uuid:zzz")
    with pytest.raises(ProofError):
        sign(one, KEYS[1], VMS[1], previous_proof=[1])  # type: ignore[list-item]
    with pytest.raises(ProofError):
        sign(one, KEYS[1], VMS[1], proof_id="urn:uuid:a")


def test_unknown_key_and_other_failures_are_results() -> None:
    signed = sign(DOC, KEYS[0], VMS[0])

    def failing(vm: str):
        raise LookupError("not a member")

    r = verify(signed, failing)
    assert not r.ok and r.proofs[0].code == "unknown_key" and "not a member" in r.proofs[0].reason
    assert verify(signed, lambda vm: None).proofs[0].code == "unknown_key"
    assert verify(signed, lambda vm: KEYS[1].public_key).proofs[0].code == "signature_invalid"
    assert verify(signed, public_key_from_did_key, expected_purpose="authentication").proofs[0].code == \
        "purpose_mismatch"
    assert verify({"a": 1}, public_key_from_did_key).proofs[0].code == "no_proof"
    for mutate in [lambda p: p.pop("proofValue"), lambda p: p.update(proofValue="zzz"),
                   lambda p: p.update(proofValue="uAAAA"), lambda p: p.update(verificationMethod=3)]:
        d = copy.deepcopy(signed)
        mutate(d["proof"])
        assert verify(d, public_key_from_did_key).proofs[0].code == "malformed_proof"
    d = copy.deepcopy(signed)
    d["proof"]["cryptosuite"] = "ecdsa-sd-2023"
    assert verify(d, public_key_from_did_key).proofs[0].code == "unsupported_cryptosuite"
    d["proof"]["cryptosuite"] = "eddsa-rdfc-2022"  # a JCS signature relabelled: RDFC hashes differ
    assert verify(d, public_key_from_did_key).proofs[0].code == "signature_invalid"
    assert verify(d, public_key_from_did_key, cryptosuites=(JCS,)).proofs[0].code == "unsupported_cryptosuite"
    assert verify(dict(signed, proof=["x"]), public_key_from_did_key).proofs[0].code == "malformed_proof"


def test_rotation_with_did_document() -> None:
    old, new = Ed25519Key.generate(), Ed25519Key.generate()
    did = "did:web:sh.example"
    doc = build_did_document(did, [
        VerificationMethodSpec("key-1", old.public_multikey, expires="2025-06-01T00:00:00Z"),
        VerificationMethodSpec("key-2", new.public_multikey),
    ])

    def resolve(vm: str):
        return resolve_verification_method(doc, vm)

    before = sign(DOC, old, f"{did}#key-1", created="2025-05-01T00:00:00Z")
    after = sign(DOC, old, f"{did}#key-1", created="2025-07-01T00:00:00Z")
    current = sign(DOC, new, f"{did}#key-2", created="2025-07-01T00:00:00Z")
    assert verify(before, resolve).ok
    assert verify(after, resolve).proofs[0].code == "key_expired"
    assert verify(current, resolve).ok
    revoked_doc = build_did_document(did, [
        VerificationMethodSpec("key-1", old.public_multikey, revoked="2025-06-01T00:00:00Z")])
    r = verify(before, lambda vm: resolve_verification_method(revoked_doc, vm))
    assert r.proofs[0].code == "key_revoked"
