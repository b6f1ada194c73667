"""crypto.rdfc: the RDFC-1.0 form of a presentation composed from its credentials' datasets is byte-identical to
canonicalising the whole presentation (what a verifier does), the shortcut is taken in the usual case, and every
case it does not cover falls back to the full algorithm with the same result."""

from __future__ import annotations

import copy

import pytest

import crypto.rdfc as rdfc
from crypto.dataintegrity import JCS, RDFC, sign, verify
from crypto.errors import JsonLdError, ProofError
from crypto.jsonld import canonicalize_rdfc, canonicalize_rdfc_small, expand_safe
from crypto.keys import Ed25519Key, did_key_vm
from crypto.rdfc import EmbeddedDataset, canonicalize_embedding

VC_V2 = "https://www.w3.org/ns/credentials/v2"
CONTEXTS = [VC_V2, "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
            "https://w3id.org/yangtze-credit-bank/v2"]
KEY = Ed25519Key.from_seed(bytes(range(32)))
VM = did_key_vm(KEY)


def _credential(n: int, *, title: str | None = None, score: str = "85", term: str = "202406") -> dict:
    """Shaped like the node's credentials (OB 3.0 + the credit bank's record), every term defined."""
    subject = {
        "id": "urn:uuid:6a1f0000-0000-4000-8000-00000000beef",
        "type": ["AchievementSubject"],
        "achievement": {"id": f"https://node.example/achievements/U1/C{n}", "type": ["Achievement"],
                        "name": title or f"课程 {n}", "criteria": {"narrative": f"{title or n}（上海开放大学）"}},
        "result": [{"type": ["Result"], "resultDescription": f"https://node.example/achievements/U1/C{n}#score",
                    "value": score}],
        "creditBank": {"type": "CreditBankRecord", "credits": "2.5", "ledgerSequence": n, "term": term,
                       "score": 'quote " back\\slash\nnew line\ttab'},
    }
    doc = {"@context": CONTEXTS, "id": f"https://node.example/credentials/{n}",
           "type": ["VerifiableCredential", "AchievementCredential"],
           "issuer": {"id": "did:web:node.example", "type": ["Profile"], "name": "上海"},
           "validFrom": "2026-01-01T00:00:00Z", "name": title or f"课程 {n}", "credentialSubject": subject}
    expand_safe(doc)  # nothing dropped: every value below reaches the canonical form
    for suite in (JCS, RDFC):
        doc = sign(doc, KEY, VM, created="2026-01-02T00:00:00Z", cryptosuite=suite)
    return doc


def _presentation(credentials: list[dict]) -> dict:
    return {"@context": [VC_V2, CONTEXTS[2]], "type": ["VerifiablePresentation", "CreditBankTranscript"],
            "id": "urn:uuid:0d7c0000-0000-4000-8000-000000000001", "holder": "urn:uuid:holder",
            "verifiableCredential": credentials}


@pytest.fixture
def fallbacks(monkeypatch) -> list[int]:
    """Counts the falls back to the full algorithm."""
    calls: list[int] = []
    real = rdfc.canonicalize_rdfc

    def counted(document, loader=None):
        calls.append(1)
        return real(document, loader)

    monkeypatch.setattr(rdfc, "canonicalize_rdfc", counted)
    return calls


def _compose(presentation: dict) -> str:
    parts = [EmbeddedDataset.of(c) for c in presentation["verifiableCredential"]]
    return canonicalize_embedding(presentation, "verifiableCredential", parts)


def test_composed_equals_whole_and_takes_the_shortcut(fallbacks) -> None:
    vp = _presentation([_credential(n) for n in range(6)])
    composed = _compose(vp)
    assert fallbacks == []
    assert composed == canonicalize_rdfc(vp)
    assert composed.count("\n") > 6 * 30
    assert '"quote \\" back\\\\slash\\nnew line\\ttab"' in composed  # N-Quads escapes


@pytest.mark.parametrize("count", [0, 1])
def test_none_or_one_embedded(fallbacks, count) -> None:
    vp = _presentation([_credential(n) for n in range(count)])
    assert _compose(vp) == canonicalize_rdfc(vp)


def test_same_credential_twice_falls_back(fallbacks) -> None:
    one = _credential(1)
    vp = _presentation([one, copy.deepcopy(one), _credential(2)])
    assert _compose(vp) == canonicalize_rdfc(vp)
    assert fallbacks  # two graphs with one first-degree hash: N-degree hashing, the full algorithm


def test_blank_nodes_alike_across_credentials_fall_back(fallbacks) -> None:
    # the same course retaken with the same score: identical criteria/result blank nodes in two graphs
    a = _credential(7, title="高等数学")
    b = _credential(7, title="高等数学", term="202506")
    b["id"] = "https://node.example/credentials/8"
    vp = _presentation([a, b])
    assert _compose(vp) == canonicalize_rdfc(vp)
    assert fallbacks


def test_not_a_graph_container_falls_back(fallbacks) -> None:
    doc = {"@context": [VC_V2], "id": "urn:uuid:x", "type": ["VerifiablePresentation"], "holder": "urn:uuid:h",
           "evidence": [{"id": "urn:uuid:e1", "name": "a"}, {"id": "urn:uuid:e2", "name": "b"}]}
    parts = [EmbeddedDataset.of({"@context": [VC_V2], **e}) for e in doc["evidence"]]
    assert canonicalize_embedding(doc, "evidence", parts) == canonicalize_rdfc(doc)
    assert fallbacks


def test_mismatched_parts_fall_back(fallbacks) -> None:
    vp = _presentation([_credential(1), _credential(2)])
    parts = [EmbeddedDataset.of(_credential(1))]
    assert canonicalize_embedding(vp, "verifiableCredential", parts) == canonicalize_rdfc(vp)
    assert fallbacks


def test_blank_presentation_subject(fallbacks) -> None:
    vp = _presentation([_credential(1), _credential(2)])
    del vp["id"]  # the presentation itself is then a blank node
    assert _compose(vp) == canonicalize_rdfc(vp)


def test_a_proof_over_the_composed_form_verifies_with_the_full_algorithm() -> None:
    vp = _presentation([_credential(n) for n in range(3)])
    signed = sign(vp, KEY, VM, created="2026-01-03T00:00:00Z", cryptosuite=RDFC, canonical_document=_compose(vp))
    result = verify(signed, lambda vm: KEY.public_key)
    assert result.ok, result.reason
    tampered = copy.deepcopy(signed)
    tampered["verifiableCredential"][1]["credentialSubject"]["creditBank"]["credits"] = "25"
    assert not verify(tampered, lambda vm: KEY.public_key).ok


def test_canonical_document_only_for_rdfc() -> None:
    with pytest.raises(ProofError):
        sign(_presentation([]), KEY, VM, cryptosuite=JCS, canonical_document="")


def test_small_canonicalisation_is_remembered_but_equal() -> None:
    config = {"@context": [VC_V2], "type": "DataIntegrityProof", "cryptosuite": RDFC, "created": "2026-01-01T00:00:00Z",
              "verificationMethod": VM, "proofPurpose": "assertionMethod"}
    first = canonicalize_rdfc_small(config)
    assert first == canonicalize_rdfc(config) == canonicalize_rdfc_small(dict(config))
    other = dict(config, created="2026-01-01T00:00:01Z")
    assert canonicalize_rdfc_small(other) == canonicalize_rdfc(other) != first
    as_tuple = dict(config, **{"@context": (VC_V2,)})  # not plain JSON (PyLD refuses it): never remembered
    with pytest.raises(JsonLdError):
        canonicalize_rdfc_small(as_tuple)
