"""eddsa-rdfc-2022 and JSON-LD: the W3C vectors (both appendix credentials, proof sets and chains, the CCG
previousProof inputs), the 1EdTech OB 3.0 / CLR 2.0 implementation-guide vectors and validator samples, the
document loader that refuses unknown or unpinned contexts, safe-mode expansion, and the canonicalization limits."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from crypto.dataintegrity import JCS, RDFC, hash_data, sign, verify
from crypto.errors import JsonLdError, ProofError
from crypto.jsonld import (
    BUNDLED,
    ContextLoader,
    bundled_contexts,
    canonicalize_rdfc,
    default_loader,
    digest_sri,
    expand_safe,
)
from crypto.keys import Ed25519Key, PublicKey, b58encode, public_key_from_did_key
from tests.crypto.conftest import vector_path

TV = ("w3c-vc-di-eddsa", "TestVectors")
TEST_CONTEXTS = {  # contexts only the vectors use (tests/vectors/contexts, see its README)
    "https://www.w3.org/ns/credentials/examples/v2": "credentials-examples-v2.jsonld",
    "https://w3id.org/citizenship/v4rc1": "citizenship-v4rc1.jsonld",
    "https://www.w3.org/2018/credentials/v1": "2018-credentials-v1.jsonld",
    "https://w3id.org/security/data-integrity/v2": "data-integrity-v2.jsonld",
}


@pytest.fixture(scope="module")
def loader() -> ContextLoader:
    return default_loader().with_documents(
        {url: vector_path("contexts", name).read_bytes() for url, name in TEST_CONTEXTS.items()})


def _tv(*parts: str) -> str:
    return vector_path(*TV, *parts).read_text()


def _json(*parts: str):
    return json.loads(vector_path(*parts).read_text())


@pytest.mark.parametrize(("folder", "unsigned_name"), [("eddsa-rdfc-2022", "unsigned.json"),
                                                       ("eddsa-rdfc-2022/employ", "employmentAuth.json")])
def test_w3c_eddsa_rdfc_2022_intermediates(loader, folder: str, unsigned_name: str) -> None:
    """Every intermediate of the W3C appendix vectors (the alumni and the employment-authorisation credential)
    reproduces byte for byte, the signature too (Ed25519 is deterministic), and sign() gives the signed doc."""
    key = Ed25519Key.from_multikey(json.loads(_tv("keyPair.json"))["privateKeyMultibase"])
    unsigned = json.loads(_tv(unsigned_name))
    config = json.loads(_tv(folder, "proofConfigDataInt.json"))
    expected = json.loads(_tv(folder, "signedDataInt.json"))
    canon_doc = canonicalize_rdfc(unsigned, loader)
    canon_proof = canonicalize_rdfc(config, loader)
    assert canon_doc == _tv(folder, "canonDocDataInt.txt")
    assert canon_proof == _tv(folder, "proofCanonDataInt.txt")
    assert hashlib.sha256(canon_doc.encode()).hexdigest() == _tv(folder, "docHashDataInt.txt").strip()
    assert hashlib.sha256(canon_proof.encode()).hexdigest() == _tv(folder, "proofHashDataInt.txt").strip()
    combined = hash_data(unsigned, config, cryptosuite=RDFC, loader=loader)
    assert combined.hex() == _tv(folder, "combinedHashDataInt.txt").strip()
    signature = key.sign(combined)
    assert signature.hex() == _tv(folder, "sigHexDataInt.txt").strip()
    assert "z" + b58encode(signature) == _tv(folder, "sigBTC58DataInt.txt").strip()
    signed = sign(unsigned, key, config["verificationMethod"], created=config["created"], cryptosuite=RDFC,
                  loader=loader)
    assert signed == expected
    result = verify(expected, public_key_from_did_key, loader=loader)
    assert result.ok and result.proofs[0].code == "ok"


def test_w3c_rdfc_tampered_and_reordered(loader) -> None:
    """RDFC signs the graph, not the bytes: reordering keys still verifies; changing a value does not."""
    signed = json.loads(_tv("eddsa-rdfc-2022", "signedDataInt.json"))
    reordered = dict(reversed(list(signed.items())))
    assert verify(reordered, public_key_from_did_key, loader=loader).ok
    tampered = copy.deepcopy(signed)
    tampered["credentialSubject"]["alumniOf"] = "Another School"
    assert verify(tampered, public_key_from_did_key, loader=loader).proofs[0].code == "signature_invalid"
    assert verify(signed, public_key_from_did_key, loader=loader, cryptosuites=(JCS,)).proofs[0].code == \
        "unsupported_cryptosuite"


@pytest.mark.parametrize("name", ["signedProofSet1", "signedProofSet2", "signedProofChain1", "signedProofChain2"])
def test_w3c_proof_sets_and_chains(loader, name: str) -> None:
    doc = _json(*TV, "proof-set-chain", f"{name}.json")
    result = verify(doc, public_key_from_did_key, loader=loader)
    assert result.ok, result.reason
    tampered = copy.deepcopy(doc)
    tampered["name"] = "Another name"
    assert not any(p.ok for p in verify(tampered, public_key_from_did_key, loader=loader).proofs)
    if "Chain" in name:  # dropping a proof another one chains to breaks the chain
        dropped = copy.deepcopy(doc)
        previous = doc["proof"][-1]["previousProof"]
        referenced = previous if isinstance(previous, list) else [previous]
        dropped["proof"] = [p for p in doc["proof"] if p.get("id") != referenced[0]]
        result = verify(dropped, public_key_from_did_key, loader=loader)
        assert not result.ok and "bad_previous_proof" in {p.code for p in result.proofs}


def test_w3c_proof_chain_reproduced_by_sign(loader) -> None:
    """Build the W3C proof chain with sign(): same proofValues as the vector."""
    keys = _json(*TV, "proof-set-chain", "multiKeyPairs.json")
    unsigned = _json(*TV, "proof-set-chain", "unsigned.json")
    expected = _json(*TV, "proof-set-chain", "signedProofChain2.json")
    by_vm = {}
    for pair in keys.values():
        key = Ed25519Key.from_multikey(pair["privateKeyMultibase"])
        by_vm[f"did:key:{key.public_multikey}#{key.public_multikey}"] = key
    doc = unsigned
    for proof in expected["proof"]:
        doc = sign(doc, by_vm[proof["verificationMethod"]], proof["verificationMethod"], created=proof["created"],
                   proof_id=proof.get("id"), previous_proof=proof.get("previousProof"), cryptosuite=RDFC,
                   loader=loader)
    assert doc == expected


def test_ccg_previous_proof_inputs(loader) -> None:
    """The CCG data-integrity assertion inputs: `*Ok*` verify; a missing or non-string previousProof fails."""
    folder = vector_path("w3c-ccg-di-assertion", "inputs", "eddsa-rdfc-2022")
    files = sorted(folder.glob("*.json"))
    assert len(files) == 12
    for path in files:
        result = verify(json.loads(path.read_text()), public_key_from_did_key, loader=loader)
        if "Ok" in path.name:
            assert result.ok, (path.name, result.reason)
        else:
            assert not result.ok, path.name
            assert "bad_previous_proof" in {p.code for p in result.proofs}, (path.name, result.reason)


def _multibase_fragment_key(vm: str) -> PublicKey:
    """1EdTech's samples name keys `https://…/issuers/565049#z6Mk…`: the fragment is the public Multikey."""
    fragment = vm.rsplit("#", 1)[-1]
    return public_key_from_did_key(vm) if vm.startswith("did:key:") else PublicKey.from_multikey(fragment)


@pytest.mark.parametrize("name", ["obv3p0", "clrv2p0"])
def test_1edtech_implementation_guide_vectors(name: str) -> None:
    """OB 3.0 / CLR 2.0 implementation-guide vectors: canonical N-Quads of document and proof, hashes,
    signature and proofValue from the published key."""
    expected = _json("1edtech-ob3-clr2", "expected.json")[name]
    signed = _json("1edtech-ob3-clr2", {"obv3p0": "ob", "clrv2p0": "clr"}[name] + "-signed-credential.json")
    proof = signed["proof"][0] if isinstance(signed["proof"], list) else signed["proof"]
    unsigned = {k: v for k, v in signed.items() if k != "proof"}
    config = {k: v for k, v in proof.items() if k != "proofValue"} | {"@context": signed["@context"]}
    canon_doc = canonicalize_rdfc(unsigned)
    assert canon_doc == vector_path("1edtech-ob3-clr2", name, "document-canon.txt").read_text()
    assert canonicalize_rdfc(config) == vector_path("1edtech-ob3-clr2", name, "proof-canon.txt").read_text()
    assert hashlib.sha256(canon_doc.encode()).hexdigest() == expected["documentHashHex"]
    data = hash_data(unsigned, config, cryptosuite=RDFC)
    assert data.hex() == expected["dataToSignHex"]
    key = Ed25519Key.from_seed(bytes.fromhex(expected["privateKeyHex"])[:32])
    assert key.public_bytes().hex() == expected["publicKeyHex"]
    assert key.sign(data).hex() == expected["signatureHex"]
    assert proof["proofValue"] == expected["proofValue"]
    assert verify(signed, _multibase_fragment_key).ok
    assert sign(unsigned, key, proof["verificationMethod"], created=proof["created"], cryptosuite=RDFC)["proof"] \
        == proof


VALID_SAMPLES = ["ob30/simple.json", "ob30/complete.json", "ob30/simple-did-key-method.json",
                 "ob30/simple-did-web-method.json", "ob30/simple-context-alias.json",
                 "ob30/simple-context-version.json", "ob30/endorsement-valid.json", "clr20/simple.json",
                 "ob30/bit-string-list/testlist"]


@pytest.mark.parametrize("sample", VALID_SAMPLES)
def test_1edtech_validator_samples_verify(sample: str) -> None:
    doc = _json("1edtech-validator", *sample.split("/"))
    result = verify(doc, _multibase_fragment_key)
    assert result.ok, result.reason
    if sample == "clr20/simple.json":  # and the OB credential it embeds
        for embedded in doc["credentialSubject"]["verifiableCredential"]:
            assert verify(embedded, _multibase_fragment_key).ok


def test_1edtech_multiple_proofs_sample() -> None:
    """`simple-multiple-proofs`: its eddsa-rdfc-2022 proof verifies; the other is an unknown suite."""
    doc = _json("1edtech-validator", "ob30", "simple-multiple-proofs.json")
    codes = {p.code for p in verify(doc, _multibase_fragment_key).proofs}
    assert codes == {"ok", "unsupported_cryptosuite"}


@pytest.mark.parametrize("sample", ["simple-err-type.json", "simple-err-context.json",
                                    "simple-err-proof-value.json"])
def test_1edtech_validator_broken_samples_fail(sample: str) -> None:
    result = verify(_json("1edtech-validator", "ob30", sample), _multibase_fragment_key)
    assert not result.ok


@pytest.mark.parametrize("sample", ["simple-err-expired.json", "simple-err-issued.json", "simple-err-issuer.json"])
def test_1edtech_validator_samples_failing_elsewhere_have_good_proofs(sample: str) -> None:
    """These must fail on dates or issuer checks, not on the proof."""
    assert verify(_json("1edtech-validator", "ob30", sample), _multibase_fragment_key).ok


# ------------------------------------------------------------------ the loader


def test_loader_refuses_unknown_urls_no_network() -> None:
    doc = {"@context": ["https://www.w3.org/ns/credentials/v2", "https://evil.example/ctx"], "type": ["A"]}
    with pytest.raises(JsonLdError, match="evil.example"):
        canonicalize_rdfc(doc)
    with pytest.raises(JsonLdError, match="evil.example"):
        expand_safe(doc)


def test_bundled_contexts_are_the_published_bytes() -> None:
    bundle = bundled_contexts()
    assert set(bundle) == set(BUNDLED)
    # the W3C-published VC 2.0 context, byte for byte
    assert hashlib.sha256(bundle["https://www.w3.org/ns/credentials/v2"]).hexdigest() == \
        "59955ced6697d61e03f2b2556febe5308ab16842846f5b586d7f1f7adec92734"
    for url, data in bundle.items():
        json.loads(data)  # every file parses
        assert url.startswith("https://")


def test_pinned_context_with_other_bytes_is_refused() -> None:
    url = "https://www.w3.org/ns/credentials/v2"
    doc = json.loads(_tv("eddsa-jcs-2022", "signedJCS.json"))
    doc["@context"] = [url]
    doc["credentialSubject"] = {"id": "did:example:1"}
    good = ContextLoader(pins={url: digest_sri(bundled_contexts()[url])})
    canonicalize_rdfc({k: v for k, v in doc.items() if k != "proof"}, good)
    bad = ContextLoader(pins={url: digest_sri(b"something else")})
    with pytest.raises(JsonLdError, match="pinned digest"):
        canonicalize_rdfc({k: v for k, v in doc.items() if k != "proof"}, bad)


def test_rdfc_needs_json_ld() -> None:
    key = Ed25519Key.generate()
    with pytest.raises(ProofError):
        sign({"a": 1}, key, key.did_key + "#k", cryptosuite=RDFC)
    signed = sign({"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"],
                   "issuer": "did:example:1", "credentialSubject": {"id": "did:example:2"}},
                  key, key.did_key + "#k", cryptosuite=RDFC)
    unlinked = dict(signed)
    del unlinked["@context"]
    assert verify(unlinked, lambda vm: key.public_key).proofs[0].code == "jsonld_error"


# ------------------------------------------------------------------ safe mode


def test_safe_mode_reports_dropped_terms_and_relative_iris() -> None:
    base = {"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"],
            "issuer": "did:example:1", "credentialSubject": {"id": "did:example:2"}}
    expand_safe(base)
    with pytest.raises(JsonLdError) as caught:
        expand_safe({**base, "credentialSubject": {"id": "did:example:2", "favouriteColour": "blue"}})
    assert any("favouriteColour" in p for p in caught.value.problems)
    with pytest.raises(JsonLdError) as caught:
        expand_safe({**base, "type": ["VerifiableCredential", "MadeUpCredential"]})
    assert any("MadeUpCredential" in p for p in caught.value.problems)
    with pytest.raises(JsonLdError) as caught:
        expand_safe({**base, "id": "relative/path"})
    assert any("relative @id" in p for p in caught.value.problems)


def test_protected_term_redefinition_is_an_error() -> None:
    """What broke the old credit-bank context: a protected term redefined by a later context."""
    doc = {"@context": ["https://www.w3.org/ns/credentials/v2", {"name": "https://example.org/other#name"}],
           "type": ["VerifiableCredential"], "name": "x", "issuer": "did:example:1",
           "credentialSubject": {"id": "did:example:2"}}
    with pytest.raises(JsonLdError, match="protected"):
        expand_safe(doc)


# ------------------------------------------------------------------ limits


def test_canonicalization_limits_refuse_huge_or_poison_inputs(monkeypatch) -> None:
    ctx = {"@vocab": "https://example.org/#"}
    many = {"@context": ctx, "@graph": [{"p": {"q": i}} for i in range(300)]}
    monkeypatch.setattr("crypto.jsonld.MAX_BLANK_NODES", 100)
    with pytest.raises(JsonLdError, match="blank nodes"):
        canonicalize_rdfc(many, ContextLoader({}))
    monkeypatch.setattr("crypto.jsonld.MAX_BLANK_NODES", 5_000)
    # a clique of blank nodes all alike: every N-degree step explores permutations
    nodes = [{"@id": f"_:n{i}", "p": [{"@id": f"_:n{j}"} for j in range(8) if j != i]} for i in range(8)]
    monkeypatch.setattr("crypto.jsonld.MAX_NDEGREE_CALLS", 50)
    with pytest.raises(JsonLdError, match="poison"):
        canonicalize_rdfc({"@context": ctx, "@graph": nodes}, ContextLoader({}))
