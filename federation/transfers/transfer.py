"""Destination side: holder bindings, pulling and verifying released records, recognition, review, receipts.

`request_transfer` runs in phases with short transactions of its own, never holding one open across the
peer request (on SQLite every transaction takes the write lock, and the peer client needs the database too):

1. **check** the presented consent: its proof by the origin's DID key (from the membership's member), that
   it names this node, is unexpired, and carries a holder binding this node issued to *this* learner; an
   active agreement between origin and destination must exist. A second request with the same consent returns
   the transfer already made (one transfer per (origin, consent)).
2. **pull** `/federation/v1/records/release` from the origin (signed request, verified signed response, which
   is kept as a non-repudiable receipt of what the origin released).
3. **verify** the origin's checkpoint (C2SP note signed by a key of the origin's DID document, origin line of
   its log) and each credential: proof by the origin's DID key, issuer, subject (the consent's pseudonym),
   dates, status list bit (the signed list the origin sent), inclusion proof against the checkpoint root.
4. **record**, in one transaction: the transfer and its items; automatic recognitions become achievements
   (source `transfer`) with an `achievement.recognised` ledger event citing the origin credential id and hash
   and the agreement; reviewed ones wait for a reviewer; when nothing waits, the signed receipt is queued
   (`transfer.receipt`, reliable outbox) to the origin.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlmodel import Session, select

from crypto.did import resolve_verification_method
from crypto.merkle import MerkleError, verify_consistency, verify_inclusion
from crypto.note import NoteError, NoteVerifier, parse_checkpoint, split_note, verify_note
from federation.membership import Member
from federation.outbox import enqueue
from federation.runtime import runtime
from federation.transfers.consent import document_hash
from federation.transfers.errors import TransferRefused
from federation.transport.outbound import PeerClient
from node.audit.service import record
from node.credentials.context import FEDERATION_CONTEXT, VC_V2
from node.credentials.service import group_of
from node.credentials.status import revoke_achievement
from node.credentials.verify import Check, StatusListError, ledger_event_check, status_bit, verify_document
from node.db import session_scope
from node.decisions import Decision, publish
from node.errors import Conflict, Forbidden, NotFound
from node.ledger.log import checkpoint_origin
from node.ledger.service import EventSpec, append_events
from node.models import Achievement, Learner, Transfer, TransferIntent, TransferItem, utcnow

__all__ = [
    "RECEIPT_TYPE",
    "RELEASE_PATH",
    "create_intent",
    "decide_item",
    "items_by_transfer",
    "request_transfer",
    "transfer_view",
    "verify_release",
]

log = logging.getLogger("creditnode.federation.transfers")

RELEASE_PATH = "/federation/v1/records/release"
RECEIPT_TYPE = "transfer.receipt"


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


# -- holder binding ----------------------------------------------------------------------------------


def create_intent(session: Session, ctx: Any, *, learner_id: int, origin: str) -> dict:
    """An opaque holder binding tied to this learner's account, to be written into a consent at `origin`."""
    if origin == ctx.node_id or runtime(ctx).directory.member(session, origin) is None:
        raise TransferRefused("unknown_origin", f"{origin!r} is not another member of the federation")
    binding = f"hb1.{secrets.token_urlsafe(32)}"
    row = TransferIntent(binding=binding, learner_id=learner_id, origin=origin)
    session.add(row)
    session.flush()
    return {"binding": binding, "origin": origin, "destination": ctx.node_id, "destination_did": ctx.identity.did,
            "created_at": _iso(row.created_at)}


# -- agreements (federation.agreements, built alongside) -------------------------------------------------


def _active_agreement(session: Session, ctx: Any, origin: str) -> dict | None:
    try:
        from federation.agreements import active_agreement
    except ImportError:  # pragma: no cover - the agreements package ships with the node
        return None
    return active_agreement(session, origin=origin, destination=ctx.node_id, on=dt.date.today())


def _agreement_ref(agreement: dict) -> tuple[str | None, str]:
    """(agreement id, version hash): the version hash is what every party signed (docs/agreements.md)."""
    from federation.agreements import agreement_hash

    ident = agreement.get("agreement")
    return (str(ident) if ident is not None else None, agreement_hash(agreement))


def _record_of(credential: dict) -> dict:
    """What `recognise()` sees of an origin credential: its credit-bank fields, exact decimals as Decimal."""
    subject = credential.get("credentialSubject") or {}
    bank = subject.get("creditBank") or {}
    achievement = subject.get("achievement") or {}

    def dec(value: Any) -> Decimal | None:
        try:
            return Decimal(str(value)) if value is not None else None
        except ArithmeticError:
            return None

    kind = bank.get("achievementKind")
    return {
        "credential_id": credential.get("id"),
        "type": kind,
        "kind": kind,
        "group": group_of(kind or ""),
        "code": bank.get("courseCode"),
        "title": achievement.get("name") or credential.get("name"),
        "credits": dec(bank.get("credits")),
        "hours": dec(bank.get("hours")),
        "level": bank.get("level"),
        # the origin's shared reference level when its credential states it (`cb:referenceLevel`); else
        # recognise() derives it from the origin region's framework (config/regions), if the node knows it
        "reference_level": bank.get("referenceLevel"),
        "score": bank.get("score"),
        "earned_on": bank.get("earnedOn"),
        "term": bank.get("term"),
        "institution_code": bank.get("institutionCode"),
        "achievement_id": achievement.get("id"),
        "achievement_type": achievement.get("achievementType"),
    }


def _recognise(agreement: dict, origin: str, destination: str, rec: dict) -> Any:
    from federation.agreements import recognise

    return recognise(agreement, origin=origin, destination=destination, record=rec)


def _recognition_dict(recognition: Any) -> dict:
    raw = dataclasses.asdict(recognition) if dataclasses.is_dataclass(recognition) else dict(vars(recognition))
    return _jsonable(raw)


# -- phase 1: the consent ---------------------------------------------------------------------------------


@dataclasses.dataclass
class _Checked:
    origin: Member
    consent: dict
    consent_id: str
    pseudonym: str
    existing: int | None = None


def _resolver(session: Session, ctx: Any, member: Member):
    directory = runtime(ctx).directory
    return lambda did: directory.did_document(session, member) if did == member.did else None


def _check_consent(session: Session, ctx: Any, learner_id: int, consent: Any) -> _Checked:
    subject = consent.get("credentialSubject") if isinstance(consent, dict) else None
    types = consent.get("type") if isinstance(consent, dict) else None
    if not isinstance(subject, dict) or not isinstance(types, list) or "TransferConsent" not in types \
            or not isinstance(consent.get("id"), str):
        raise TransferRefused("consent_invalid", "this is not a signed TransferConsent document")
    document_hash(consent)  # every number representable in RFC 8785, else consent_invalid
    origin_id = subject.get("origin")
    member = runtime(ctx).directory.member(session, origin_id) if isinstance(origin_id, str) else None
    if member is None or origin_id == ctx.node_id:
        raise TransferRefused("unknown_origin", f"the consent's origin {origin_id!r} is not another member")
    if consent.get("issuer") != member.did:
        raise TransferRefused("consent_invalid", "the consent is not issued by its origin node")
    report = verify_document(consent, resolve_did=_resolver(session, ctx, member))
    signature = [c for c in report.checks if c.check == "signature"]
    if not signature or not all(c.ok for c in signature):
        raise TransferRefused("consent_invalid", "the consent's proof does not verify with the origin's keys",
                              detail={"checks": [dataclasses.asdict(c) for c in report.checks]})
    if subject.get("destination") != ctx.node_id:
        raise TransferRefused("wrong_destination", f"the consent names {subject.get('destination')!r}, "
                                                   f"not this node ({ctx.node_id})")
    if any(c.check == "dates" and c.ok is False for c in report.checks):
        raise TransferRefused("consent_expired", "the consent is outside its validity period")
    intent = session.exec(select(TransferIntent).where(TransferIntent.binding == subject.get("holderBinding"))).first()
    if intent is None or intent.learner_id != learner_id or intent.origin != origin_id:
        raise TransferRefused("binding_mismatch", "the consent's holder binding was not issued to you for "
                                                  "this origin")
    existing = session.exec(select(Transfer).where(Transfer.origin == origin_id,
                                                  Transfer.consent_id == consent["id"])).first()
    checked = _Checked(member, consent, consent["id"], str(subject.get("id")))
    if existing is not None:
        if existing.learner_id != learner_id:  # pragma: no cover - bindings are per learner
            raise TransferRefused("binding_mismatch", "this consent was presented by another learner")
        checked.existing = existing.id
        return checked
    if _active_agreement(session, ctx, origin_id) is None:
        raise TransferRefused("no_agreement", f"no active agreement with {origin_id} covers transfers today")
    return checked


# -- phase 3: verification ---------------------------------------------------------------------------------


@dataclasses.dataclass
class VerifiedItem:
    credential: dict
    credential_id: str
    credential_hash: str
    state: str  # ok | credential_invalid | credential_revoked
    reason: str
    checks: list[dict]


@dataclasses.dataclass
class VerifiedRelease:
    checkpoint_note: str
    checkpoint_size: int
    checkpoint_root: str
    checkpoint_checks: list[dict]
    items: list[VerifiedItem]

    def summary(self) -> dict:
        return {"checkpoint": {"size": self.checkpoint_size, "root": self.checkpoint_root,
                               "checks": self.checkpoint_checks},
                "credentials": [{"id": i.credential_id, "hash": i.credential_hash, "state": i.state,
                                 "reason": i.reason, "checks": i.checks} for i in self.items]}


def _checkpoint_verifiers(did_document: dict, name: str) -> list[NoteVerifier]:
    verifiers = []
    for method in did_document.get("verificationMethod") or []:
        try:
            key = resolve_verification_method(did_document, method["id"], purpose=None)
        except (KeyError, LookupError, ValueError):
            continue
        if key.revoked is None:
            verifiers.append(NoteVerifier(name, key.public_key))
    return verifiers


def verify_release(release: Any, *, origin: Member, did_document: dict, pseudonym: str,
                   consent: dict, now: dt.datetime | None = None) -> VerifiedRelease:
    """Verify everything the origin released (pure: the origin's DID document is passed in)."""
    if not isinstance(release, dict) or not isinstance(release.get("credentials"), list) \
            or not isinstance(release.get("checkpoint"), str):
        raise TransferRefused("release_invalid", "the origin's answer has no credentials or checkpoint")
    name = checkpoint_origin(origin.base_url, origin.node_id)
    try:
        verified = verify_note(release["checkpoint"], _checkpoint_verifiers(did_document, name))
        checkpoint = parse_checkpoint(verified.text)
    except NoteError as exc:
        raise TransferRefused("checkpoint_invalid", f"the origin's checkpoint does not verify: {exc}") from None
    if checkpoint.origin != name:
        raise TransferRefused("checkpoint_invalid", f"the checkpoint is for log {checkpoint.origin!r}, not {name!r}")
    cp_checks = [{"check": "checkpoint", "ok": True,
                  "reason": f"signed by {origin.node_id} (log {name}), size {checkpoint.size}"}]
    lists = release.get("status_lists") if isinstance(release.get("status_lists"), dict) else {}
    subject = consent.get("credentialSubject") or {}
    scope_records = set(subject.get("records") or [])
    scope_categories = set(subject.get("categories") or [])
    items = []
    for entry in release["credentials"]:
        credential = entry.get("credential") if isinstance(entry, dict) else None
        if not isinstance(credential, dict):
            raise TransferRefused("release_invalid", "a released item carries no credential")
        proof = entry.get("inclusion")

        def check_inclusion(doc: dict, proof: Any = proof) -> tuple[bool, str]:
            bank = (doc.get("credentialSubject") or {}).get("creditBank") or {}
            seq, leaf = bank.get("ledgerSequence"), bank.get("ledgerLeafHash")
            if not isinstance(proof, dict) or not isinstance(seq, int) or not isinstance(leaf, str):
                return False, "no inclusion proof for the credential's ledger event"
            if proof.get("seq") != seq or proof.get("leaf_hash") != leaf or proof.get("tree_size") != checkpoint.size:
                return False, "the inclusion proof is not for this credential's event at the checkpoint's size"
            try:
                verify_inclusion(bytes.fromhex(leaf), seq, checkpoint.size,
                                 [bytes.fromhex(h) for h in proof.get("proof") or []], checkpoint.root_hash)
            except (MerkleError, ValueError, TypeError) as exc:
                return False, f"not included under the signed checkpoint: {exc}"
            return True, f"event {seq} included under the signed checkpoint of size {checkpoint.size}"

        report = verify_document(credential, resolve_did=lambda did: did_document if did == origin.did else None,
                                 fetch_status=lambda url: lists.get(url), check_inclusion=check_inclusion, now=now)
        checks = [dataclasses.asdict(c) for c in report.checks]
        credential_subject = credential.get("credentialSubject") or {}
        extra: list[Check] = []
        issuer = credential.get("issuer")
        issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
        if issuer != origin.did:
            extra.append(Check("issuer", False, f"issued by {issuer}, not by the origin {origin.did}"))
        extra.append(ledger_event_check(credential, entry.get("leaf")))
        if credential_subject.get("id") != pseudonym:
            extra.append(Check("subject", False, "the credential's subject is not the consent's learner"))
        kind = (credential_subject.get("creditBank") or {}).get("achievementKind") or ""
        if credential.get("id") not in scope_records and kind not in scope_categories \
                and group_of(kind) not in scope_categories:
            extra.append(Check("consent", False, "the credential is outside the consent's scope"))
        checks += [dataclasses.asdict(c) for c in extra]
        failed = [c for c in report.checks + extra if c.ok is False]
        status_failed = [c for c in failed if c.check == "status" and c.reason.startswith("revoked")]
        if not failed:
            state, reason = "ok", "verified"
        elif status_failed and len(failed) == len(status_failed):
            state, reason = "credential_revoked", status_failed[0].reason
        else:
            state, reason = "credential_invalid", "; ".join(f"{c.check}: {c.reason}" for c in failed)
        try:
            digest = document_hash(credential, refusal="credential_invalid")
        except TransferRefused as exc:  # unreachable once the release parsed as I-JSON; kept per item anyway
            digest, state, reason = "", "credential_invalid", exc.message
        items.append(VerifiedItem(credential, str(credential.get("id")), digest, state, reason[:1000], checks))
    return VerifiedRelease(release["checkpoint"], checkpoint.size, checkpoint.root_hash.hex(), cp_checks, items)


def _check_consistency(ctx: Any, origin: Member, verified: VerifiedRelease) -> None:
    """The origin's checkpoint must extend the one it showed in this node's previous transfer from it (an
    RFC 9162 consistency proof from its public proof endpoint); a log rewritten in between is refused."""
    with session_scope(ctx.engine) as session:
        previous = session.exec(select(Transfer.checkpoint).where(Transfer.origin == origin.node_id)
                                .order_by(Transfer.id.desc()).limit(1)).first()
    if not previous:
        verified.checkpoint_checks.append({"check": "consistency", "ok": None,
                                           "reason": "first checkpoint seen from this origin in a transfer"})
        return
    before = None
    try:
        before = parse_checkpoint(split_note(previous)[0])
        first, second = sorted(((before.size, before.root_hash),
                                (verified.checkpoint_size, bytes.fromhex(verified.checkpoint_root))))
        proof: list[bytes] = []
        if first[0] != second[0]:
            url = f"{origin.base_url.rstrip('/')}/api/v1/ledger/proof/consistency"
            answer = runtime(ctx).client().get(url, params={"first": first[0], "second": second[0]})
            proof = [bytes.fromhex(h) for h in answer.json()["proof"]]
        verify_consistency(first[0], second[0], first[1], second[1], proof)
    except (MerkleError, NoteError, ValueError, KeyError, TypeError, httpx.HTTPError) as exc:
        raise TransferRefused("checkpoint_inconsistent", f"{origin.node_id}'s checkpoint of size "
                              f"{verified.checkpoint_size} is not consistent with the one of size "
                              f"{before.size if before else '?'} it showed before: {exc}") from None
    verified.checkpoint_checks.append({"check": "consistency", "ok": True, "reason": (
        f"consistent with the checkpoint of size {before.size} seen in the previous transfer")})


# -- the transfer --------------------------------------------------------------------------------------------


def _refuse(ctx: Any, actor: Any, exc: Exception, target: str | None) -> None:
    """Audit a refused transfer request in a transaction of its own (no other is open at that point)."""
    code = getattr(exc, "code", type(exc).__name__)
    with session_scope(ctx.engine) as session:
        record(session, actor=actor, action="transfer.request", outcome="denied", target_type="consent",
               target_id=(target or "")[:64] or None, detail={"code": code})


def request_transfer(ctx: Any, *, learner_id: int, consent: Any, actor: Any,
                     staff_id: int | None = None) -> tuple[int, bool]:
    """Run a transfer end to end (module docstring). Returns (transfer id, made now)."""
    target = consent.get("id") if isinstance(consent, dict) and isinstance(consent.get("id"), str) else None
    try:
        with session_scope(ctx.engine) as session:
            checked = _check_consent(session, ctx, learner_id, consent)
        if checked.existing is not None:
            return checked.existing, False
        response = PeerClient(ctx).post(checked.origin, RELEASE_PATH, {"consent": checked.consent})
        if not response.ok:
            body = response.body if isinstance(response.body, dict) else {}
            raise TransferRefused(response.code or "release_invalid",
                                  f"{checked.origin.node_id} refused: {body.get('message', response.status_code)}",
                                  status=response.status_code if 400 <= response.status_code < 500 else 502)
        with session_scope(ctx.engine) as session:
            did_document = runtime(ctx).directory.did_document(session, checked.origin)
        if did_document is None:
            raise TransferRefused("checkpoint_invalid", f"the DID document of {checked.origin.node_id} is unknown")
        verified = verify_release(response.body, origin=checked.origin, did_document=did_document,
                                  pseudonym=checked.pseudonym, consent=checked.consent)
        _check_consistency(ctx, checked.origin, verified)
    except Exception as exc:
        from node.errors import NodeError

        if isinstance(exc, NodeError):
            _refuse(ctx, actor, exc, target)
        raise
    with session_scope(ctx.engine) as session:
        return _record(session, ctx, learner_id=learner_id, checked=checked, verified=verified,
                       release_receipt=response.receipt, actor=actor, staff_id=staff_id)


def _record(session: Session, ctx: Any, *, learner_id: int, checked: _Checked, verified: VerifiedRelease,
            release_receipt: dict, actor: Any, staff_id: int | None) -> tuple[int, bool]:
    origin = checked.origin.node_id
    existing = session.exec(select(Transfer).where(Transfer.origin == origin,
                                                   Transfer.consent_id == checked.consent_id)).first()
    if existing is not None:  # a concurrent request with the same consent got there first
        return existing.id, False
    agreement = _active_agreement(session, ctx, origin)
    if agreement is None:
        raise TransferRefused("no_agreement", f"no active agreement with {origin} covers transfers today")
    agreement_id, agreement_hash = _agreement_ref(agreement)
    transfer = Transfer(learner_id=learner_id, origin=origin, consent_id=checked.consent_id, consent=checked.consent,
                        state="completed", requested_by_staff_id=staff_id, agreement_id=agreement_id,
                        agreement_hash=agreement_hash, checkpoint=verified.checkpoint_note,
                        verification=verified.summary(), release_receipt=release_receipt)
    session.add(transfer)
    session.flush()
    learner = session.get(Learner, learner_id)
    waiting = False
    for item in verified.items:
        row = TransferItem(transfer_id=transfer.id, credential_id=item.credential_id[:300],
                           credential_hash=item.credential_hash, credential=item.credential, state=item.state,
                           reason=item.reason, checks=item.checks)
        if item.state == "ok":
            recognition = _recognise(agreement, origin, ctx.node_id, _record_of(item.credential))
            if recognition is not None and "wrong_conversion" in ctx.settings.active_faults:  # FAULT HOOK (test mode)
                from node.testing.faults import convert_wrongly
                recognition = convert_wrongly(recognition)
            if recognition is None:
                row.state, row.reason = "not_recognised", "the agreement maps this record to nothing"
            else:
                row.recognition = _recognition_dict(recognition)
                if getattr(recognition, "automatic", False):
                    row.state, row.reason = "recognised", "recognised automatically under the agreement"
                    session.add(row)
                    session.flush()
                    _recognise_item(session, ctx, transfer, row, learner)
                else:
                    row.state, row.reason = "awaiting_review", "the agreement asks for a reviewer's decision"
                    waiting = True
        session.add(row)
    session.flush()
    append_events(session, [EventSpec(
        kind="transfer.verified", learner_id=learner_id, pseudonym=learner.pseudonym,
        data={"transfer": transfer.id, "origin": origin, "consent": checked.consent_id,
              "consent_hash": document_hash(checked.consent), "agreement": agreement_id,
              "agreement_hash": agreement_hash, "checkpoint_size": verified.checkpoint_size,
              "checkpoint_root": verified.checkpoint_root,
              "credentials": [{"id": i.credential_id, "hash": i.credential_hash, "state": i.state}
                              for i in verified.items]},
    )])
    if waiting:
        transfer.state = "awaiting_review"
        session.add(transfer)
    else:
        _complete(session, ctx, transfer)
    record(session, actor=actor, action="transfer.request", target_type="transfer", target_id=transfer.id,
           detail={"origin": origin, "consent": checked.consent_id, "state": transfer.state})
    session.flush()
    return transfer.id, True


def _recognise_item(session: Session, ctx: Any, transfer: Transfer, item: TransferItem, learner: Learner) -> None:
    """Append the recognised achievement (source `transfer`) and its ledger event, linked to the origin
    credential; the dedupe key makes a second recognition of the same credential for the learner impossible."""
    rec = item.recognition or {}
    bank = (item.credential.get("credentialSubject") or {}).get("creditBank") or {}

    def dec(key: str) -> Decimal | None:
        value = rec.get(key)
        return Decimal(str(value)) if value not in (None, "") else None

    earned = bank.get("earnedOn")
    dedupe = hashlib.sha256(f"transfer|{learner.id}|{item.credential_id}".encode()).hexdigest()
    if session.exec(select(Achievement).where(Achievement.dedupe_key == dedupe)).first() is not None:
        raise Conflict("this origin credential is already recognised for the learner", code="duplicate")
    achievement = Achievement(
        learner_id=learner.id, type=(bank.get("achievementKind") or "informal")[:30], issuer_code=transfer.origin[:32],
        issuer_name=f"{transfer.origin} · {bank.get('issuingInstitution', {}).get('name', '')}"[:200],
        code=str(rec.get("code") or "")[:64], title=str(rec.get("title") or item.credential.get("name") or "")[:200],
        credits=dec("credits"), hours=dec("hours"), level=(str(rec["level"])[:20] if rec.get("level") else None),
        score_text=(str(bank["score"])[:20] if bank.get("score") else None),
        earned_on=dt.date.fromisoformat(earned) if isinstance(earned, str) and len(earned) == 10 else None,
        source="transfer", status="deposited", remark=f"recognised from {item.credential_id}"[:500],
        dedupe_key=dedupe,
    )
    session.add(achievement)
    session.flush()
    item.achievement_id = achievement.id
    append_events(session, [EventSpec(
        kind="achievement.recognised", learner_id=learner.id, achievement_id=achievement.id,
        pseudonym=learner.pseudonym,
        data={"achievement": achievement.id, "transfer": transfer.id, "origin": transfer.origin,
              "credential": item.credential_id, "credential_hash": item.credential_hash,
              "agreement": transfer.agreement_id, "agreement_hash": transfer.agreement_hash,
              "mapping": rec.get("mapping_index", rec.get("mapping")), "code": achievement.code,
              "credits": rec.get("credits"), "automatic": bool(rec.get("automatic"))},
    )])


def _complete(session: Session, ctx: Any, transfer: Transfer) -> None:
    """Every item is decided: sign the receipt and queue it to the origin (reliable outbox)."""
    items = session.exec(select(TransferItem).where(TransferItem.transfer_id == transfer.id)
                         .order_by(TransferItem.id)).all()
    now = utcnow()
    unsigned = {
        "@context": [VC_V2, FEDERATION_CONTEXT],
        "id": f"urn:uuid:{uuid.uuid4()}",
        "type": ["VerifiableCredential", "TransferReceipt"],
        "issuer": ctx.identity.did,
        "validFrom": _iso(now),
        "credentialSubject": {
            "type": "TransferReceipt",
            "consent": transfer.consent_id,
            "origin": transfer.origin,
            "destination": ctx.node_id,
            "transfer": f"{ctx.settings.base_url}/transfers/{transfer.id}",
            "agreement": {"id": transfer.agreement_id, "hash": transfer.agreement_hash},
            "items": [_receipt_item(i) for i in items],
        },
    }
    transfer.receipt = ctx.identity.sign(unsigned)
    transfer.state, transfer.completed_at = "completed", now
    session.add(transfer)
    enqueue(session, transfer.origin, RECEIPT_TYPE, {"receipt": transfer.receipt})
    publish(session, Decision(kind="transfer.complete", learner_id=transfer.learner_id, subject_id=transfer.id,
                              at=now, outcome="completed", subject=transfer))


def _receipt_item(item: TransferItem) -> dict:
    out = {"credential": item.credential_id, "credentialHash": item.credential_hash, "outcome": item.state}
    if item.state == "recognised" and item.recognition:
        out["recognisedAs"] = {k: item.recognition.get(k) for k in ("code", "title", "credits")}
    return out


# -- review ----------------------------------------------------------------------------------------------


def decide_item(session: Session, ctx: Any, *, item_id: int, approve: bool, reason: str | None,
                staff_id: int) -> TransferItem:
    """A reviewer decides a recognition the agreement left to review (maker-checker against the requester)."""
    item = session.get(TransferItem, item_id, with_for_update=True)
    if item is None:
        raise NotFound("no such transfer item")
    transfer = session.get(Transfer, item.transfer_id, with_for_update=True)
    if item.state != "awaiting_review":
        raise Conflict(f"the item is {item.state}, not awaiting review", code="illegal_transition",
                       detail={"state": item.state, "action": "decide"})
    if transfer.requested_by_staff_id == staff_id:
        raise Forbidden("the staff member who requested the transfer cannot review it", code="self_review")
    if not (reason or "").strip():
        from node.errors import BadRequest

        raise BadRequest("a review decision needs a reason", code="reason_required")
    item.decided_by, item.decided_at = staff_id, utcnow()
    learner = session.get(Learner, transfer.learner_id)
    if approve:
        item.state, item.reason = "recognised", reason
        session.add(item)
        session.flush()
        _recognise_item(session, ctx, transfer, item, learner)
    else:
        item.state, item.reason = "rejected", reason
        append_events(session, [EventSpec(
            kind="transfer.rejected", learner_id=learner.id,
            pseudonym=learner.pseudonym,
            data={"transfer": transfer.id, "origin": transfer.origin, "credential": item.credential_id,
                  "credential_hash": item.credential_hash, "reason": reason},
        )])
    session.add(item)
    session.flush()
    _complete_if_decided(session, ctx, transfer)
    session.flush()
    return item


def _complete_if_decided(session: Session, ctx: Any, transfer: Transfer) -> bool:
    """Complete `transfer` (signed receipt to the origin) once none of its items waits for review."""
    waiting = session.exec(select(TransferItem.id).where(TransferItem.transfer_id == transfer.id,
                                                         TransferItem.state == "awaiting_review")).first()
    if waiting is not None:
        return False
    _complete(session, ctx, transfer)
    return True


# -- the origin revoked a record after releasing it (inbox message record.revoked) ----------------------


def apply_origin_revocation(session: Session, ctx: Any, *, peer: str, body: Any) -> dict:
    """The origin revoked a record it released to us. Believed only if the origin's signed status list in the
    message shows the bit of the credential *as we hold it* set. Then every item of ours from that credential
    becomes `credential_revoked`: a recognised one has its achievement revoked (status bit, ledger event, what
    was converted from it voided — node.credentials.status.revoke_achievement), one awaiting review can no longer
    be approved (and a transfer with nothing left to review completes, sending its receipt)."""
    credential = body.get("credential") if isinstance(body, dict) else None
    listing = body.get("status_list") if isinstance(body, dict) else None
    if not isinstance(credential, str) or not isinstance(listing, dict):
        raise TransferRefused("revocation_invalid", "body must hold the credential id and the signed status list")
    items = session.exec(select(TransferItem).join(Transfer, Transfer.id == TransferItem.transfer_id)
                         .where(TransferItem.credential_id == credential, Transfer.origin == peer)
                         .order_by(TransferItem.id).with_for_update()).all()
    if not items:
        return {"status": "unknown", "credential": credential}
    entry = items[0].credential.get("credentialStatus") or {}
    directory = runtime(ctx).directory
    member = directory.member(session, peer)
    if member is None or listing.get("id") != entry.get("statusListCredential") or listing.get("issuer") != member.did:
        raise TransferRefused("revocation_invalid", "the status list is not the one the credential points to")
    try:
        revoked = status_bit(entry, listing, lambda did: directory.did_document(session, member)
                             if did == member.did else None, member.did)
    except StatusListError as exc:
        raise TransferRefused("revocation_invalid", str(exc)) from None
    if not revoked:
        raise TransferRefused("revocation_invalid", "the origin's signed status list does not show it revoked")
    because = f"revoked by its origin {peer} after the transfer"
    changed, achievements, completed = [], [], []
    for item in items:
        if item.state not in ("recognised", "awaiting_review"):
            continue
        waited = item.state == "awaiting_review"
        if item.achievement_id is not None:
            achievement = session.get(Achievement, item.achievement_id, with_for_update=True)
            if achievement is not None and achievement.status == "deposited":
                revoke_achievement(session, ctx, achievement, cause={"origin": peer, "credential": credential},
                                   because=because)
                achievements.append(achievement.id)
        item.state, item.reason = "credential_revoked", because
        session.add(item)
        session.flush()
        changed.append(item.id)
        transfer = session.get(Transfer, item.transfer_id, with_for_update=True)
        if waited and transfer.state == "awaiting_review" and _complete_if_decided(session, ctx, transfer):
            completed.append(transfer.id)
    return {"status": "revoked", "credential": credential, "items": changed, "achievements": achievements,
            "transfers_completed": completed}


# -- views -----------------------------------------------------------------------------------------------


def item_view(item: TransferItem) -> dict:
    return {"id": item.id, "credential_id": item.credential_id, "credential_hash": item.credential_hash,
            "state": item.state, "reason": item.reason, "recognition": item.recognition,
            "achievement_id": item.achievement_id, "decided_by": item.decided_by,
            "decided_at": _iso(item.decided_at), "checks": item.checks}


def items_by_transfer(session: Session, transfer_ids: list[int | None]) -> dict[int, list[TransferItem]]:
    """The items of several transfers in one query: transfer id → its items in id order."""
    out: dict[int, list[TransferItem]] = {}
    if transfer_ids:
        for item in session.exec(select(TransferItem).where(TransferItem.transfer_id.in_(transfer_ids))  # type: ignore[union-attr]
                                 .order_by(TransferItem.id)).all():
            out.setdefault(item.transfer_id, []).append(item)
    return out


def transfer_view(session: Session, transfer: Transfer, *, full: bool = False,
                  items: list[TransferItem] | None = None) -> dict:
    """A transfer with its items (`items`: already read, e.g. by `items_by_transfer` for a page)."""
    if items is None:
        items = list(session.exec(select(TransferItem).where(TransferItem.transfer_id == transfer.id)
                                  .order_by(TransferItem.id)).all())
    recognised = sum((Decimal(str((i.recognition or {}).get("credits") or 0)) for i in items
                      if i.state == "recognised"), Decimal(0))
    view = {"id": transfer.id, "origin": transfer.origin, "consent_id": transfer.consent_id,
            "state": transfer.state, "agreement_id": transfer.agreement_id,
            "agreement_hash": transfer.agreement_hash, "recognised_credits": format(recognised, "f"),
            "created_at": _iso(transfer.created_at), "completed_at": _iso(transfer.completed_at),
            "verification": transfer.verification, "receipt": transfer.receipt,
            "items": [item_view(i) for i in items]}
    if full:
        view.update(consent=transfer.consent, checkpoint=transfer.checkpoint,
                    release_receipt=transfer.release_receipt, credentials=[i.credential for i in items])
    return view


def own_transfer(session: Session, learner_id: int, transfer_id: int) -> Transfer:
    transfer = session.get(Transfer, transfer_id)
    if transfer is None or transfer.learner_id != learner_id:
        raise NotFound("no such transfer")
    return transfer
