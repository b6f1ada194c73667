"""Agreement storage, lifecycle and the two peer messages (docs/agreements.md).

Every version — ours or a peer's — enters through `store_version`, which checks shape, sender, chain and proofs
before writing. The *head* of an agreement is its highest stored version: a new version must be chained to the head
and a signature must be on the head (else 409 `stale_base` with the head's hash). Counter-proposals, amendments,
suspension and termination are all new versions; an amendment leaves the previous complete version in force until it
is complete itself.

Messages (through the reliable outbox/inbox): `agreement.propose` carries a new version with the proposer's proof;
`agreement.sign` carries the version with the signer's proof set. Two parties, happy path: two messages.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from sqlmodel import Session, select

from crypto.dataintegrity import ProofError
from federation.agreements.document import (
    AgreementInvalid,
    agreement_hash,
    check_shape,
    covers,
    merge_proofs,
    proof_signers,
    proofs_of,
    sign_agreement,
    unsecured,
    verify_chain,
)
from federation.outbox import enqueue
from node.errors import Conflict, Forbidden, NotFound
from node.ledger.service import EventSpec, append_events
from node.models import AgreementVersion, utcnow

__all__ = [
    "AgreementConflict",
    "NotAParty",
    "active_agreement",
    "amend",
    "counter",
    "get_head",
    "handle_propose",
    "handle_sign",
    "history",
    "propose",
    "sign",
    "store_version",
    "verify_history",
]

_FIXED = ("type", "agreement", "version", "previous", "proposer", "proof")


class AgreementConflict(Conflict):
    code = "agreement_conflict"


class NotAParty(Forbidden):
    code = "not_a_party"


class ProofRefused(Conflict):
    code = "proof_invalid"


# -- reading -------------------------------------------------------------------------------------------------


def history(session: Session, agreement: str) -> list[AgreementVersion]:
    rows = session.exec(select(AgreementVersion).where(AgreementVersion.agreement == agreement)).all()
    return sorted(rows, key=lambda r: (r.version, r.created_at))


def get_head(session: Session, agreement: str) -> AgreementVersion | None:
    rows = history(session, agreement)
    return rows[-1] if rows else None


def _in_force(rows: list[AgreementVersion]) -> AgreementVersion | None:
    complete = [r for r in rows if r.complete]
    return complete[-1] if complete else None


def active_agreement(session: Session, *, origin: str, destination: str, on: dt.date) -> dict | None:
    """The newest fully-signed version's document of an agreement between `origin` and `destination` that is
    active on `on` (None when there is none). Per agreement only the newest complete version counts, so a later
    suspension or termination wins over an earlier active version."""
    rows = session.exec(select(AgreementVersion).where(AgreementVersion.complete.is_(True))).all()
    newest: dict[str, AgreementVersion] = {}
    for row in rows:
        if row.agreement not in newest or row.version > newest[row.agreement].version:
            newest[row.agreement] = row
    candidates = [r for r in newest.values() if covers(r.document, origin=origin, destination=destination, on=on)]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: (r.document.get("valid_from", ""), r.created_at, r.version))
    return copy.deepcopy(best.document)


def _did_documents(session: Session, ctx: Any, parties: list[str]) -> dict[str, dict]:
    from federation.runtime import runtime

    directory = runtime(ctx).directory
    docs: dict[str, dict] = {}
    for node in parties:
        member = directory.member(session, node)
        if member is None:
            raise NotAParty(f"party {node!r} is not a member of the federation")
        doc = directory.did_document(session, member)
        if doc is not None:
            docs[node] = doc
    return docs


def verify_history(session: Session, ctx: Any, agreement: str) -> dict:
    rows = history(session, agreement)
    if not rows:
        raise NotFound(f"no agreement {agreement!r}", code="agreement_not_found")
    parties = sorted({p for r in rows for p in r.document.get("parties", [])})
    return verify_chain([r.document for r in rows], _did_documents(session, ctx, parties)).to_dict()


# -- writing -------------------------------------------------------------------------------------------------


def _stale(head: AgreementVersion) -> Conflict:
    return Conflict("the base is not the agreement's current version", code="stale_base",
                    detail={"current": head.hash, "version": head.version})


def store_version(session: Session, ctx: Any, document: dict, *, sender: str) -> AgreementVersion:
    """Verify and store a version (or merge new proofs into a stored one). `sender` is the node that sent or
    produced it: it must be a party and must have a verifying proof on the document. Idempotent."""
    check_shape(document)
    parties = document["parties"]
    if sender not in parties:
        raise NotAParty(f"{sender} is not a party to {document['agreement']}")
    if ctx.node_id not in parties:
        raise NotAParty(f"this node ({ctx.node_id}) is not a party to {document['agreement']}")
    signers, problems = proof_signers(document, _did_documents(session, ctx, parties))
    if problems:
        raise ProofRefused(problems[0]["message"], code=problems[0]["code"], detail={"problems": problems})
    if sender not in signers:
        raise ProofRefused(f"the document carries no valid proof by {sender}", code="proof_missing")
    digest = agreement_hash(document)
    rows = history(session, document["agreement"])
    existing = next((r for r in rows if r.hash == digest), None)
    head = rows[-1] if rows else None
    if existing is None:
        if head is None:
            if document["version"] != 1:
                raise AgreementConflict("the first version of an agreement must be version 1 with no previous",
                                        code="chain_broken")
        elif document["previous"] != head.hash or document["version"] != head.version + 1:
            raise _stale(head)
        else:
            prior = _in_force(rows)
            if prior is not None and prior.status == "terminated":
                raise AgreementConflict("the agreement is terminated", code="agreement_terminated")
        row = AgreementVersion(hash=digest, agreement=document["agreement"], version=document["version"],
                               previous=document["previous"], proposer=document["proposer"],
                               status=document["status"], complete=False, document=unsecured(document))
        session.add(row)
    else:
        if head is not None and head.hash != digest and not existing.complete:
            raise _stale(head)
        row = existing
    was_complete = row.complete
    merged = merge_proofs(row.document, proofs_of(document))
    merged_signers, _ = proof_signers(merged, _did_documents(session, ctx, parties))
    row.document = merged
    row.complete = merged_signers == set(parties)
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    if row.complete and not was_complete:
        # every party's node records the version it is now bound by (once: a later merge changes nothing)
        append_events(session, [EventSpec(kind="agreement.complete", public=True, data={
            "agreement": row.agreement, "version": row.version, "hash": row.hash, "previous": row.previous,
            "status": row.status, "parties": sorted(parties), "valid_from": merged.get("valid_from"),
            "valid_to": merged.get("valid_to")})])
    return row


def _send(session: Session, ctx: Any, row: AgreementVersion, message_type: str) -> list[str]:
    peers = [p for p in row.document["parties"] if p != ctx.node_id]
    for peer in peers:
        enqueue(session, peer, message_type, {"agreement": row.agreement, "version": row.version, "hash": row.hash,
                                              "document": row.document})
    return peers


def _new_version(session: Session, ctx: Any, draft: dict) -> AgreementVersion:
    document = {k: v for k, v in draft.items() if k != "proof"}
    document["proposer"] = ctx.node_id
    check_shape(document)  # refused before it is signed
    try:
        document = sign_agreement(document, ctx.identity)
    except ProofError as exc:  # e.g. a number RFC 8785 cannot write exactly: the draft is invalid, not a 500
        raise AgreementInvalid(f"the document cannot be signed: {exc}") from None
    row = store_version(session, ctx, document, sender=ctx.node_id)
    _send(session, ctx, row, "agreement.propose")
    return row


def propose(session: Session, ctx: Any, draft: dict) -> AgreementVersion:
    """Version 1 of a new agreement, signed by this node and sent to the other parties."""
    if not isinstance(draft, dict):
        raise AgreementInvalid("the draft must be a JSON object")
    if history(session, str(draft.get("agreement"))):
        raise AgreementConflict(f"agreement {draft.get('agreement')!r} already exists; counter or amend it",
                                code="agreement_exists")
    document = {**draft, "type": "MutualRecognitionAgreement", "version": 1, "previous": None}
    document.setdefault("status", "active")
    return _new_version(session, ctx, document)


def _on_head(session: Session, agreement: str, base: str) -> AgreementVersion:
    head = get_head(session, agreement)
    if head is None:
        raise NotFound(f"no agreement {agreement!r}", code="agreement_not_found")
    if base != head.hash:
        raise _stale(head)
    return head


def _derive(head: AgreementVersion, changes: dict) -> dict:
    bad = sorted(set(changes) & set(_FIXED))
    if bad:
        raise AgreementInvalid(f"these fields cannot be changed: {', '.join(bad)}")
    document = {**unsecured(head.document), **changes}
    document["version"] = head.version + 1
    document["previous"] = head.hash
    return document


def counter(session: Session, ctx: Any, agreement: str, *, base: str, changes: dict) -> AgreementVersion:
    """A counter-proposal: the pending head with `changes`, chained to it."""
    head = _on_head(session, agreement, base)
    if head.complete:
        raise AgreementConflict("the current version is already signed by every party; amend it instead",
                                code="agreement_not_pending")
    return _new_version(session, ctx, _derive(head, changes))


def amend(session: Session, ctx: Any, agreement: str, *, base: str, changes: dict,
          status: str | None = None) -> AgreementVersion:
    """A new version of a fully-signed agreement (`status` set for suspend / terminate / reactivate)."""
    head = _on_head(session, agreement, base)
    if not head.complete:
        raise AgreementConflict("the current version is still being negotiated; counter or sign it",
                                code="agreement_pending")
    if head.status == "terminated":
        raise AgreementConflict("the agreement is terminated", code="agreement_terminated")
    document = _derive(head, changes)
    if status is not None:
        document["status"] = status
    return _new_version(session, ctx, document)


def sign(session: Session, ctx: Any, agreement: str, *, version_hash: str) -> AgreementVersion:
    """Add this node's proof to the head version and send the proof set to the other parties."""
    head = _on_head(session, agreement, version_hash)
    signers, _ = proof_signers(head.document, _did_documents(session, ctx, head.document["parties"]))
    if ctx.node_id in signers:
        return head  # already signed: nothing to send again
    row = store_version(session, ctx, sign_agreement(head.document, ctx.identity), sender=ctx.node_id)
    _send(session, ctx, row, "agreement.sign")
    return row


# -- inbox handlers ------------------------------------------------------------------------------------------


def _document_of(message: Any) -> dict:
    body = message.body or {}
    document = body.get("document")
    if not isinstance(document, dict):
        raise AgreementInvalid("the message carries no agreement document")
    if body.get("hash") is not None and body["hash"] != agreement_hash(document):
        raise AgreementInvalid("the message's hash does not match its document")
    return document


def _receipt(row: AgreementVersion) -> dict:
    return {"agreement": row.agreement, "version": row.version, "hash": row.hash, "complete": row.complete}


def handle_propose(session: Session, ctx: Any, peer: Any, message: Any) -> dict:
    document = _document_of(message)
    if document.get("proposer") != peer.node_id:
        raise NotAParty("agreement.propose must come from the version's proposer", code="not_proposer")
    return _receipt(store_version(session, ctx, document, sender=peer.node_id))


def handle_sign(session: Session, ctx: Any, peer: Any, message: Any) -> dict:
    return _receipt(store_version(session, ctx, _document_of(message), sender=peer.node_id))
