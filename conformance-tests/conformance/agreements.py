"""The harness as a party to a mutual-recognition agreement (docs/agreements.md, "Agreements"), built from
`crypto` only: the document's hash, the harness's proof, the peer messages `agreement.propose` /
`agreement.sign` sent to the node's inbox as a real node's outbox sends them (a signed envelope on the
harness's stream), the node's admin API, and flushing the node's outbox so its messages reach the harness.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

from crypto.dataintegrity import sign as di_sign
from crypto.dataintegrity import verify as di_verify
from crypto.jcs import canonicalize

__all__ = [
    "ADMIN",
    "agreement_hash",
    "draft",
    "flush_until",
    "negotiate",
    "new_agreement_id",
    "next_valid_from",
    "proof_methods",
    "send",
    "sign",
    "unsecured",
]

ADMIN = "/api/v1/federation/agreements"
# Several agreements between the harness and the node are in force at once (one per test). Which one a node
# applies is not specified (docs/agreements.md); the reference node takes the latest `valid_from`, then the
# latest creation to the second, then the highest version. So each agreement the suite makes starts one day
# after the one before (all in the past): the one made last is the one in force.
_FIRST_START = dt.date.today() - dt.timedelta(days=365)
_made = itertools.count()


def next_valid_from() -> str:
    return (_FIRST_START + dt.timedelta(days=next(_made))).isoformat()


def unsecured(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "proof"}


def agreement_hash(document: dict) -> str:
    """`sha256(JCS(document without "proof"))`, hex: what every party signs and what `previous` names."""
    return hashlib.sha256(canonicalize(unsecured(document))).hexdigest()


def proofs(document: dict) -> list[dict]:
    proof = document.get("proof")
    return [] if proof is None else [p for p in (proof if isinstance(proof, list) else [proof])
                                     if isinstance(p, dict)]


def proof_methods(document: dict) -> list[str]:
    return [str(p.get("verificationMethod")) for p in proofs(document)]


def new_agreement_id(label: str = "conformance") -> str:
    return f"urn:creditnode:agreement:{label}-{uuid.uuid4().hex[:12]}"


def draft(harness: Any, agreement_id: str, *, mappings: list[dict], achievement_types: list[str],
          hours_per_credit: tuple[str, str] = ("16", "18"), recognition: str = "automatic") -> dict:
    """Version 1 proposed by the harness: parties (harness, node), the harness's and the node's hours per
    credit, the mappings (from the harness's records to the node's catalogue)."""
    peer, node = harness.peer.node_id, harness.node.node_id
    return {"type": "MutualRecognitionAgreement", "agreement": agreement_id, "version": 1, "previous": None,
            "parties": [peer, node], "proposer": peer, "scope": {"achievement_types": achievement_types},
            "credit_equivalence": {peer: {"hours_per_credit": hours_per_credit[0]},
                                   node: {"hours_per_credit": hours_per_credit[1]}},
            "mappings": mappings, "recognition": recognition, "valid_from": next_valid_from(), "valid_to": None,
            "status": "active"}


def sign(harness: Any, document: dict) -> dict:
    """The document with the harness's `eddsa-jcs-2022` proof added to its proof set (over the unsecured
    document, as every party signs the same hash)."""
    signed = di_sign(unsecured(document), harness.peer.key, harness.peer.key_id, proof_purpose="assertionMethod",
                     created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    merged = [*proofs(document), signed["proof"]]
    return {**unsecured(document), "proof": merged}


def send(harness: Any, message_type: str, document: dict, label: str | None = None):
    """`agreement.propose` / `agreement.sign` from the harness: `{agreement, version, hash, document}` in a
    signed envelope on the harness's stream to the node (docs/agreements.md, "Messages")."""
    envelope = harness.node.envelope(harness.peer.node_id, harness.next_seq(), type=message_type,
                                     body={"agreement": document["agreement"], "version": document["version"],
                                           "hash": agreement_hash(document), "document": document})
    return harness.node.send_signed(label or message_type, envelope, sign=harness.peer.sign)


def flush_until(harness: Any, found: Callable[[], Any], *, what: str, timeout: float = 3.0) -> Any:
    """Run the node's delivery job (test endpoint) until `found()` is truthy (the reference node may commit a
    request's work just after answering it, so the first flush can miss a message queued by that request)."""
    deadline = time.monotonic() + timeout
    while True:
        harness.node.admin_ok("POST", "/api/v1/testing/outbox/flush", {"advance_seconds": 0})
        result = found()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"the node never delivered {what} to the harness")
        time.sleep(0.1)


def messages_for(harness: Any, message_type: str, agreement_id: str) -> list:
    return [d for d in harness.peer.deliveries_of_type(message_type)
            if (d.envelope.get("body") or {}).get("agreement") == agreement_id]


def verify_node_proof(harness: Any, document: dict) -> list[str]:
    """Problems with the node's proof(s) on `document` (empty: at least one proof by a key of the node's DID
    document, and every proof of the set verifies — the harness's own with its key)."""
    node_did = harness.node.did_document()["id"]
    own = harness.peer.did

    def resolve(vm: str) -> Any:
        if vm.split("#", 1)[0] == own:
            return harness.peer.key.public_key
        return harness.node.resolver("assertionMethod")(vm)

    problems = []
    if not any(m.split("#", 1)[0] == node_did for m in proof_methods(document)):
        problems.append(f"no proof by the node's DID {node_did}: {proof_methods(document)}")
    outcome = di_verify(document, resolve)
    if not outcome.ok:
        problems.append(f"a proof does not verify: {outcome.reason}")
    return problems


def negotiate(harness: Any, document: dict) -> dict:
    """The two-message happy path with the harness as proposer: `agreement.propose` to the node, the node's
    admin signs the version (admin API), the node's `agreement.sign` reaches the harness. Returns
    `{"hash", "document" (both proofs), "messages"}`; raises AssertionError with the node's answer otherwise."""
    document = sign(harness, document)
    digest = agreement_hash(document)
    proposed = send(harness, "agreement.propose", document)
    assert proposed.status == 200, f"agreement.propose answered {proposed.status}: {proposed.body}"
    signed = harness.node.admin("POST", f"{ADMIN}/{document['agreement']}/sign", {"hash": digest})
    assert signed.status_code == 200, f"the node's admin could not sign: {signed.status_code} {signed.text[:300]}"
    assert signed.json().get("complete") is True, signed.json()
    got = flush_until(harness, lambda: messages_for(harness, "agreement.sign", document["agreement"]),
                      what=f"agreement.sign for {document['agreement']}")
    return {"hash": digest, "document": got[0].envelope["body"]["document"], "messages": 1 + len(got)}
