"""Origin side: learner consents (PIPL art. 23), releasing records against them, and receipts.

A consent is a signed artefact (`eddsa-jcs-2022` by the origin node's key) shaped as a VC 2.0 credential of
type `TransferConsent`. Its subject is the learner's pseudonym (the credentials' subject id, never an ID
number); it names the destination, the records (credential ids) and/or categories, the purpose, the expiry,
and the destination's *holder binding* (docs/agreements.md, "Consent and transfer"). Granting and revoking are
ledger events. `release_records` serves `/federation/v1/records/release`: only the named destination gets
records, only under a valid, unrevoked, unexpired consent, with inclusion proofs against a signed checkpoint
and the signed status lists needed to check revocation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from crypto.errors import CanonicalizationError
from crypto.jcs import canonicalize
from federation.outbox import enqueue
from federation.runtime import runtime
from federation.transfers.errors import TransferRefused
from node.credentials.context import FEDERATION_CONTEXT, VC_V2
from node.credentials.service import STATUS_LIST_SIZE, achievement_credential, credential_id, group_of
from node.credentials.status import on_revocation, status_list_credential
from node.credentials.verify import verify_document
from node.errors import NotFound
from node.ledger.log import inclusion, latest_checkpoint
from node.ledger.service import EventSpec, append_events, event_data
from node.models import Achievement, Consent, Learner, LedgerEvent, TransferReceipt, utcnow

__all__ = [
    "CATEGORIES",
    "MAX_CONSENT_DAYS",
    "consent_view",
    "document_hash",
    "grant_consent",
    "list_consents",
    "notify_revocation",
    "record_receipt",
    "release_records",
    "released_to",
    "revoke_consent",
]

MAX_CONSENT_DAYS = 366
# Categories a consent may name: the credential groups and the achievement kinds.
CATEGORIES = frozenset({"degree", "certificate", "training", "other", "degree_course", "self_study_course",
                        "vocational_qualification", "skill_level", "community", "informal",
                        "university_course_certificate", "cultural_leisure"})


def document_hash(document: dict, *, refusal: str = "consent_invalid") -> str:
    """sha256 of the JCS form of a signed document (proof included): what the ledger and receipts cite. A
    document RFC 8785 cannot write (an integer past 2**53, NaN, an infinity) is refused with `refusal`."""
    try:
        return hashlib.sha256(canonicalize(document)).hexdigest()
    except CanonicalizationError as exc:
        raise TransferRefused(refusal, f"the document cannot be canonicalised (RFC 8785): {exc}") from None


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _matches(achievement: Achievement, categories: list[str]) -> bool:
    return achievement.type in categories or group_of(achievement.type) in categories


def grant_consent(session: Session, ctx: Any, *, learner_id: int, destination: str, achievement_ids: list[int],
                  categories: list[str], purpose: str, expires_at: dt.datetime, holder_binding: str) -> Consent:
    """Record and sign a consent; appends `consent.granted` to the ledger."""
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    member = runtime(ctx).directory.member(session, destination)
    if member is None or destination == ctx.node_id:
        raise TransferRefused("unknown_destination", f"{destination!r} is not another member of the federation")
    if not achievement_ids and not categories:
        raise TransferRefused("consent_scope_empty", "name the records or the categories to release")
    unknown = sorted(set(categories) - CATEGORIES)
    if unknown:
        raise TransferRefused("consent_scope_empty", f"unknown categories {unknown}",
                              detail={"known": sorted(CATEGORIES)})
    now = utcnow()
    expires_at = _aware(expires_at)
    if expires_at <= now or expires_at > now + dt.timedelta(days=MAX_CONSENT_DAYS):
        raise TransferRefused("invalid_expiry", f"the expiry must be in the next {MAX_CONSENT_DAYS} days")
    ids = sorted(set(achievement_ids))
    rows = session.exec(select(Achievement).where(Achievement.id.in_(ids))).all() if ids else []
    if len(rows) != len(ids) or any(a.learner_id != learner_id or a.status != "deposited" for a in rows):
        raise NotFound("no such deposited achievement in your archive")
    base = ctx.settings.base_url
    consent_id = f"urn:uuid:{uuid.uuid4()}"
    unsigned = {
        "@context": [VC_V2, FEDERATION_CONTEXT],
        "id": consent_id,
        "type": ["VerifiableCredential", "TransferConsent"],
        "issuer": ctx.identity.did,
        "validFrom": _iso(now),
        "validUntil": _iso(expires_at),
        "credentialSubject": {
            "id": learner.pseudonym,
            "type": "TransferConsent",
            "origin": ctx.node_id,
            "destination": destination,
            "destinationDid": member.did,
            "records": [f"{base}/credentials/achievements/{i}" for i in ids],
            "categories": sorted(set(categories)),
            "purpose": purpose,
            "holderBinding": holder_binding,
        },
    }
    document = ctx.identity.sign(unsigned)
    row = Consent(consent_id=consent_id, learner_id=learner_id, destination=destination,
                  holder_binding=holder_binding, purpose=purpose, achievement_ids=ids,
                  categories=sorted(set(categories)), document=document, document_hash=document_hash(document),
                  expires_at=expires_at, created_at=now)
    session.add(row)
    session.flush()
    append_events(session, [EventSpec(
        kind="consent.granted", learner_id=learner_id, pseudonym=learner.pseudonym,
        data={"consent": consent_id, "destination": destination, "records": len(ids), "categories": row.categories,
              "expires": _iso(expires_at), "hash": row.document_hash},
    )])
    return row


def _own_consent(session: Session, learner_id: int, consent_id: str) -> Consent:
    row = session.exec(select(Consent).where(Consent.consent_id == consent_id)).first()
    if row is None or row.learner_id != learner_id:
        raise NotFound("no such consent")
    return row


def revoke_consent(session: Session, *, learner_id: int, consent_id: str) -> Consent:
    """Revoke; later release requests under it are refused (`consent_revoked`). Appends `consent.revoked`."""
    row = session.exec(select(Consent).where(Consent.consent_id == consent_id).with_for_update()).first()
    if row is None or row.learner_id != learner_id:
        raise NotFound("no such consent")
    if row.state == "revoked":
        raise TransferRefused("already_revoked", "this consent is already revoked")
    row.state, row.revoked_at = "revoked", utcnow()
    session.add(row)
    learner = session.get(Learner, learner_id)
    append_events(session, [EventSpec(
        kind="consent.revoked", learner_id=learner_id, pseudonym=learner.pseudonym,
        data={"consent": consent_id, "destination": row.destination},
    )])
    session.flush()
    return row


def consent_view(session: Session, row: Consent) -> dict:
    now = utcnow()
    state = row.state if row.state == "revoked" or _aware(row.expires_at) > now else "expired"
    receipts = session.exec(select(TransferReceipt).where(TransferReceipt.consent_id == row.consent_id)
                            .order_by(TransferReceipt.id)).all()
    return {"consent_id": row.consent_id, "destination": row.destination, "state": state,
            "purpose": row.purpose, "achievement_ids": row.achievement_ids, "categories": row.categories,
            "expires_at": _iso(row.expires_at), "created_at": _iso(row.created_at),
            "revoked_at": _iso(row.revoked_at) if row.revoked_at else None, "document": row.document,
            "receipts": [{"receipt_id": r.receipt_id, "ledger_seq": r.ledger_seq,
                          "received_at": _iso(r.received_at), "document": r.document} for r in receipts]}


def list_consents(session: Session, learner_id: int) -> list[dict]:
    rows = session.exec(select(Consent).where(Consent.learner_id == learner_id).order_by(Consent.id)).all()
    return [consent_view(session, r) for r in rows]


def get_consent(session: Session, learner_id: int, consent_id: str) -> dict:
    return consent_view(session, _own_consent(session, learner_id, consent_id))


# -- release (peer request) -------------------------------------------------------------------------


def _released_achievements(session: Session, row: Consent) -> list[Achievement]:
    """The consented records: those named, plus the learner's records in the named categories (deposited or
    revoked: a revoked record is released so the destination can see, from the status list, that it is)."""
    query = select(Achievement).where(Achievement.learner_id == row.learner_id,
                                      Achievement.status.in_(("deposited", "revoked")))
    found = []
    for achievement in session.exec(query.order_by(Achievement.id)).all():
        if achievement.id in row.achievement_ids or (row.categories and _matches(achievement, row.categories)):
            found.append(achievement)
    return found


def release_records(session: Session, ctx: Any, *, peer: str, body: Any) -> dict:
    """The consented signed credentials, each with an inclusion proof against the signed checkpoint, plus the
    status list credentials they point to. Refuses unless `peer` is the consent's destination and the consent
    is the one stored here, unrevoked and unexpired. Appends `consent.released`."""
    document = body.get("consent") if isinstance(body, dict) else None
    if not isinstance(document, dict) or not isinstance(document.get("id"), str):
        raise TransferRefused("consent_invalid", "body.consent must be the signed consent document")
    row = session.exec(select(Consent).where(Consent.consent_id == document["id"])).first()
    if row is None:
        raise TransferRefused("consent_unknown", "this node issued no consent with this id")
    if document_hash(document) != row.document_hash:
        raise TransferRefused("consent_invalid", "the consent presented is not the one this node issued")
    if row.destination != peer:
        raise TransferRefused("wrong_destination", f"the consent names {row.destination!r}, not {peer!r}")
    if row.state == "revoked":
        raise TransferRefused("consent_revoked", "the learner revoked this consent")
    if _aware(row.expires_at) <= utcnow():
        raise TransferRefused("consent_expired", "this consent has expired")
    achievements = _released_achievements(session, row)
    checkpoint = latest_checkpoint(session, ctx)
    items, lists = [], {}
    for achievement in achievements:
        credential = achievement_credential(session, ctx, achievement.id)
        record = credential["credentialSubject"].get("creditBank", {})
        seq = record.get("ledgerSequence")
        covered = isinstance(seq, int) and seq < checkpoint.size
        proof = inclusion(session, seq=seq, size=checkpoint.size) if covered else None
        event = session.get(LedgerEvent, seq) if covered else None
        # the leaf itself, so the destination can check (with the credential's ledgerOpening) that the logged
        # event is this record's deposit, about this learner — the public view would not show a v1 leaf
        items.append({"credential": credential, "inclusion": proof, "leaf": event.leaf if event else None})
        url = credential.get("credentialStatus", {}).get("statusListCredential", "")
        prefix = f"{ctx.settings.base_url}/status/"
        if url.startswith(prefix) and url[len(prefix):].isdigit() and url not in lists:
            lists[url] = status_list_credential(session, ctx, int(url[len(prefix):]))
    learner = session.get(Learner, row.learner_id)
    append_events(session, [EventSpec(
        kind="consent.released", learner_id=row.learner_id,
        pseudonym=learner.pseudonym,
        data={"consent": row.consent_id, "destination": peer, "checkpoint_size": checkpoint.size,
              "credentials": [i["credential"]["id"] for i in items]},
    )])
    return {"consent": row.consent_id, "origin": ctx.node_id, "checkpoint": checkpoint.note,
            "credentials": items, "status_lists": lists}


# -- receipts (inbox message transfer.receipt) --------------------------------------------------------


def record_receipt(session: Session, ctx: Any, *, peer: str, body: dict) -> dict:
    """A destination reports what it did with released records: verify its proof, keep it, ledger it."""
    document = body.get("receipt")
    subject = document.get("credentialSubject") if isinstance(document, dict) else None
    if not isinstance(subject, dict) or not isinstance(document.get("id"), str):
        raise TransferRefused("receipt_invalid", "body.receipt must be a signed TransferReceipt")
    row = session.exec(select(Consent).where(Consent.consent_id == subject.get("consent"))).first()
    if row is None:
        raise TransferRefused("consent_unknown", "this node issued no consent with this id")
    if row.destination != peer or subject.get("destination") != peer or subject.get("origin") != ctx.node_id:
        raise TransferRefused("wrong_destination", "the receipt is not from the consent's destination")
    directory = runtime(ctx).directory
    member = directory.member(session, peer)
    report = verify_document(document, resolve_did=lambda did: (
        directory.did_document(session, member) if member is not None and did == member.did else None))
    if not all(c.ok for c in report.checks if c.check == "signature") or document.get("issuer") != member.did:
        raise TransferRefused("receipt_invalid", "the receipt's proof does not verify with the destination's keys")
    seen = session.exec(select(TransferReceipt).where(TransferReceipt.receipt_id == document["id"])).first()
    if seen is not None:
        return {"status": "duplicate", "ledger_seq": seen.ledger_seq}
    learner = session.get(Learner, row.learner_id)
    items = subject.get("items") or []
    [seq] = append_events(session, [EventSpec(
        kind="transfer.receipt", learner_id=row.learner_id,
        pseudonym=learner.pseudonym,
        data={"consent": row.consent_id, "destination": peer, "receipt": document["id"],
              "hash": document_hash(document),
              "recognised": [i.get("credential") for i in items if i.get("outcome") == "recognised"]},
    )])
    session.add(TransferReceipt(receipt_id=document["id"], consent_id=row.consent_id, destination=peer,
                                document=document, ledger_seq=seq))
    session.flush()
    return {"status": "recorded", "ledger_seq": seq}


def receipts_count(session: Session) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(TransferReceipt)).scalar_one()


# -- a released record revoked later (outbox message record.revoked) --------------------------------------

RECORD_REVOKED = "record.revoked"


def released_to(session: Session, learner_id: int, credential: str) -> list[str]:
    """The destinations this node released `credential` to (its `consent.released` ledger events)."""
    events = session.execute(sa.select(LedgerEvent.leaf, LedgerEvent.opening).where(
        LedgerEvent.kind == "consent.released", LedgerEvent.learner_id == learner_id))
    found = set()
    for event in events:
        data = event_data(event)
        if credential in (data.get("credentials") or []):
            found.add(data.get("destination"))
    return sorted(d for d in found if isinstance(d, str))


def notify_revocation(session: Session, ctx: Any, achievement: Achievement) -> list[str]:
    """A revocation listener (node.credentials.status): every region the record was released to gets a
    `record.revoked` message through the reliable outbox, in the revoking transaction, carrying the record's
    credential id and this node's signed status list that shows the bit set — the destination believes the
    list, not the message. Appends `revocation.notified` when there is anyone to tell."""
    credential = credential_id(ctx.settings.base_url, achievement.id)
    destinations = released_to(session, achievement.learner_id, credential)
    if not destinations or achievement.status_index is None:
        return []
    status_list = status_list_credential(session, ctx, achievement.status_index // STATUS_LIST_SIZE)
    for destination in destinations:
        enqueue(session, destination, RECORD_REVOKED, {"credential": credential, "status_list": status_list})
    learner = session.get(Learner, achievement.learner_id)
    append_events(session, [EventSpec(
        kind="revocation.notified", learner_id=learner.id, achievement_id=achievement.id,
        pseudonym=learner.pseudonym,
        data={"achievement": achievement.id, "credential": credential, "destinations": destinations},
    )])
    return destinations


on_revocation(notify_revocation)
