"""Erasure of a person by the centre (docs/privacy.md, "Deletion and anonymisation with an append-only ledger").

requested ──confirm (a second node administrator)──▶ done;  requested ──cancel──▶ cancelled.

A node administrator asks, naming the learner, the basis and the reason: `retention_expired` (allowed only when
the learner's last ledger event is at least `privacy.retention_years_after_last_activity` years old) or
`learner_request` / `legal_obligation` (with the reference of the document it rests on). Another node
administrator confirms; the erasure then runs in that transaction:

1. every deposited record is revoked (its status bit flips, so credentials already issued stop verifying; what
   was converted from it is voided; peers that received it are told, as for any revocation);
2. the ledger's private openings and salts of the learner's events are destroyed: the leaves and hashes stay,
   so proofs, checkpoints and `verify_log` keep verifying, but nothing can say any more what they committed to;
3. the personal content of what stays (achievements, RPL applications) is blanked; the deposit applications,
   their evidence links, notices, deliveries, preferences (address, phone), points, counselling records,
   correction requests, activation codes, transfer intents and printed transcripts (their `/verify/{token}`
   page showed the name) are deleted; evidence files no other application or project references are deleted
   (their rows here; the stored blobs just after the commit);
4. the account's personal fields are overwritten: the name and ID number ciphertexts with an encryption of an
   empty value, the blind index with a random value (no look-up finds the person), the masked number blanked,
   the password removed, every token revoked, the v1 leaf salt replaced; `erased_at` is set. The account number
   and the pseudonym stay as the subject of what peers and the audit log already hold.

The audit entries stay (they name the account only). Reading the account afterwards answers 410
`learner_erased`. Refused while the learner has work in a queue (`erasure_open_work`)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from node.audit.service import record
from node.deps import Principal
from node.errors import BadRequest, Conflict, Forbidden, Gone, NotFound
from node.models import Achievement, DepositApplication, EvidenceFile, LedgerEvent, Learner, utcnow
from node.models.accounts import ActivationCode
from node.models.credentials import IssuedTranscript
from node.models.engage import (
    CorrectionRequest,
    CounsellingConsent,
    CounsellingSession,
    ErasureRequest,
    Notice,
    NoticeDelivery,
    NoticePreference,
    PointsEntry,
)
from node.models.projects import DcProjectEvidence, RplApplication, RplEvidence
from node.models.standards import ConversionRequest
from node.models.transfers import Transfer, TransferIntent

__all__ = ["BASES", "cancel", "check_erasable", "confirm", "erasure_for", "erasures", "open_work",
           "purge_evidence_files", "request", "still_personal"]

_TARGET = "erasure_request"
BASES = ("learner_request", "legal_obligation", "retention_expired")
ERASED_MASK = "—"
_OPEN = {
    "deposit_applications": (DepositApplication, ("pending_first", "pending_second", "appealed_first",
                                                  "appealed_second")),
    "conversion_requests": (ConversionRequest, ("proposed", "confirmed", "appealed")),
    "rpl_applications": (RplApplication, ("submitted", "assessed")),
    "transfers": (Transfer, ("awaiting_review",)),
}
_APPLICATION_EVIDENCE = sa.table("application_evidence", sa.column("application_id"), sa.column("sha256"))
_CLOCK = sa.table("stats_review_clock", sa.column("application_id"))


def still_personal(learner: Learner) -> None:
    """410 `learner_erased` for an erased account (its reads answer this, not its blanked fields)."""
    if learner.erased_at is not None:
        raise Gone("this learner's personal data has been erased", code="learner_erased",
                   detail={"erased_at": learner.erased_at.isoformat()})


def open_work(session: Session, learner_id: int) -> dict[str, int]:
    """What of the learner waits in a queue (an erasure must wait for it to be decided): kind → count."""
    out = {}
    for name, (model, states) in _OPEN.items():
        n = session.execute(sa.select(sa.func.count()).select_from(model).where(
            model.learner_id == learner_id, model.state.in_(states))).scalar_one()
        if n:
            out[name] = n
    return out


def _last_activity(session: Session, learner_id: int) -> dt.datetime | None:
    return session.execute(sa.select(sa.func.max(LedgerEvent.created_at))
                           .where(LedgerEvent.learner_id == learner_id)).scalar()


def check_erasable(session: Session, ctx: Any, *, learner: Learner, basis: str,
                   legal_reference: str | None) -> None:
    """The rules an erasure must meet when asked for and again when confirmed."""
    still_personal(learner)
    if basis not in BASES:
        raise BadRequest(f"basis must be one of {', '.join(BASES)}", code="invalid_basis")
    if basis == "retention_expired":
        years = ctx.settings.privacy.retention_years_after_last_activity
        last = _last_activity(session, learner.id) or learner.created_at
        if last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)
        limit = utcnow() - dt.timedelta(days=round(365.25 * years))
        if last > limit:
            raise Conflict(f"the retention period has not run out: last activity {last.date().isoformat()}, "
                           f"kept {years} years after it", code="erasure_not_allowed",
                           detail={"last_activity": last.date().isoformat(), "years": years})
    elif not (legal_reference or "").strip():
        raise BadRequest("an erasure on this basis names the document it rests on (legal_reference)",
                         code="legal_reference_required")
    busy = open_work(session, learner.id)
    if busy:
        raise Conflict("the learner has work waiting in a queue: decide or withdraw it first",
                       code="erasure_open_work", detail=busy)


def erasure_for(session: Session, request_id: int) -> ErasureRequest:
    row = session.get(ErasureRequest, request_id)
    if row is None:
        raise NotFound(f"no erasure request {request_id}")
    return row


def erasures(session: Session, *, state: str | None = None, limit: int = 50) -> list[ErasureRequest]:
    stmt = select(ErasureRequest).order_by(ErasureRequest.id.desc()).limit(limit)  # type: ignore[union-attr]
    if state:
        stmt = stmt.where(ErasureRequest.state == state)
    return list(session.exec(stmt).all())


def request(session: Session, ctx: Any, *, learner_id: int, basis: str, legal_reference: str | None,
            reason: str, admin: Principal) -> ErasureRequest:
    """The maker's step: checked now (and again at confirmation), audited, waiting for a second administrator."""
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest("a reason is required", code="reason_required")
    check_erasable(session, ctx, learner=learner, basis=basis, legal_reference=legal_reference)
    pending = session.execute(sa.select(ErasureRequest.id).where(ErasureRequest.learner_id == learner_id,
                                                                 ErasureRequest.state == "requested")).first()
    if pending is not None:
        raise Conflict("an erasure of this learner is already waiting for confirmation", code="duplicate",
                       detail={"request": pending[0]})
    row = ErasureRequest(learner_id=learner_id, basis=basis, legal_reference=(legal_reference or "").strip() or None,
                         reason=reason[:1000], state="requested", requested_by=admin.id)
    session.add(row)
    session.flush()
    record(session, actor=admin, action="erasure.request", target_type=_TARGET, target_id=row.id,
           detail={"learner_id": learner_id, "basis": basis})
    return row


def _expect(row: ErasureRequest, version: int) -> None:
    if row.state != "requested":
        raise Conflict(f"the erasure request is {row.state}", code="illegal_transition",
                       detail={"state": row.state})
    if row.version != version:
        raise Conflict("the erasure request changed since you read it", code="stale_version",
                       detail={"expected_version": row.version})


def cancel(session: Session, *, row: ErasureRequest, admin: Principal, version: int,
           reason: str | None = None) -> ErasureRequest:
    _expect(row, version)
    row.state, row.decided_at, row.confirmed_by, row.version = "cancelled", utcnow(), admin.id, row.version + 1
    session.add(row)
    record(session, actor=admin, action="erasure.cancel", target_type=_TARGET, target_id=row.id,
           detail={"learner_id": row.learner_id} | ({"reason": reason.strip()[:200]} if reason else {}))
    return row


def confirm(session: Session, ctx: Any, *, row: ErasureRequest, admin: Principal,
            version: int) -> tuple[ErasureRequest, list[str]]:
    """The checker's step: a second node administrator; the erasure runs in this transaction. Returns the
    request and the evidence files whose stored blobs `purge_evidence_files` removes once it committed."""
    _expect(row, version)
    if admin.id == row.requested_by:
        raise Forbidden("a second administrator confirms an erasure", code="erasure_same_person")
    learner = session.get(Learner, row.learner_id, with_for_update=True)
    assert learner is not None
    check_erasable(session, ctx, learner=learner, basis=row.basis, legal_reference=row.legal_reference)
    result, files = _erase(session, ctx, learner, row)
    row.state, row.decided_at, row.confirmed_by, row.version = "done", utcnow(), admin.id, row.version + 1
    row.result = result
    session.add(row)
    record(session, actor=admin, action="erasure.confirm", target_type=_TARGET, target_id=row.id,
           detail={"learner_id": learner.id, "basis": row.basis, **result})
    return row, files


def _erase(session: Session, ctx: Any, learner: Learner, row: ErasureRequest) -> tuple[dict[str, Any], list[str]]:
    from node.auth.service import invalidate_tokens
    from node.credentials.status import revoke_achievement

    lid = learner.id
    result: dict[str, Any] = {}
    # 1. revoke what is deposited (sources first: revoking one voids what was converted from it)
    deposited = session.exec(select(Achievement).where(Achievement.learner_id == lid,
                                                       Achievement.status == "deposited")
                             .order_by(Achievement.source == "conversion", Achievement.id)).all()
    revoked = 0
    for achievement in deposited:
        session.refresh(achievement)
        if achievement.status != "deposited":  # a conversion voided with its source
            continue
        revoke_achievement(session, ctx, achievement, cause={"reason": "erasure", "erasure": row.id},
                           because="the learner's personal data was erased")
        revoked += 1
    result["records_revoked"] = revoked
    session.flush()
    # 2. the ledger's openings and salts (after the revocations' own events)
    result["ledger_openings_destroyed"] = session.execute(
        sa.update(LedgerEvent).where(LedgerEvent.learner_id == lid, LedgerEvent.opening.is_not(None))
        .values(salt=None, opening=None)).rowcount or 0
    # 3. projections: blank what stays, delete what is only about the person
    result["records_blanked"] = session.execute(
        sa.update(Achievement).where(Achievement.learner_id == lid)
        .values(title=ERASED_MASK, certificate_no=None, score_text=None, score_value=None, remark=None,
                student_no=None, programme_name=None, earned_on=None, expires_on=None, term=None,
                graduation_year=None, graduation_status=None, graduation_season=None)).rowcount or 0
    app_ids = list(session.execute(sa.select(DepositApplication.id)
                                   .where(DepositApplication.learner_id == lid)).scalars())
    rpl_ids = list(session.execute(sa.select(RplApplication.id).where(RplApplication.learner_id == lid)).scalars())
    shas = set(session.execute(sa.select(_APPLICATION_EVIDENCE.c.sha256)
                               .where(_APPLICATION_EVIDENCE.c.application_id.in_(app_ids))).scalars()) if app_ids else set()
    if rpl_ids:
        shas |= set(session.execute(sa.select(RplEvidence.sha256)
                                    .where(RplEvidence.application_id.in_(rpl_ids))).scalars())
        session.execute(sa.delete(RplEvidence).where(RplEvidence.application_id.in_(rpl_ids)))
        session.execute(sa.update(RplApplication).where(RplApplication.id.in_(rpl_ids)).values(
            title=ERASED_MASK, description="", employer=None, assessment=None, decision_reason=None,
            started_on=None, ended_on=None))
    if app_ids:
        session.execute(sa.delete(_APPLICATION_EVIDENCE).where(_APPLICATION_EVIDENCE.c.application_id.in_(app_ids)))
        session.execute(sa.delete(_CLOCK).where(_CLOCK.c.application_id.in_(app_ids)))
        session.execute(sa.delete(DepositApplication).where(DepositApplication.id.in_(app_ids)))
    result["applications_deleted"] = len(app_ids)
    files = _delete_unreferenced(session, shas)
    result["evidence_files_deleted"] = len(files)
    deleted = 0
    for model in (NoticeDelivery, Notice, NoticePreference, CounsellingSession, CounsellingConsent,
                  CorrectionRequest, PointsEntry, ActivationCode, TransferIntent, IssuedTranscript):
        deleted += session.execute(sa.delete(model).where(model.learner_id == lid)).rowcount or 0
    result["rows_deleted"] = deleted
    # 4. the account
    learner.name_cipher = ctx.cipher.encrypt("")
    learner.id_cipher = ctx.cipher.encrypt("")
    learner.key_id = ctx.cipher.current_key_id
    learner.id_blind = f"erased:{secrets.token_hex(24)}"
    learner.id_masked = ERASED_MASK
    learner.password_hash = None
    learner.leaf_salt = os.urandom(16)
    learner.erased_at = utcnow()
    session.add(learner)
    session.flush()
    invalidate_tokens(session, learner)
    return result, files


def _delete_unreferenced(session: Session, shas: set[str]) -> list[str]:
    """Evidence rows no application, RPL application or project references any more: deleted (their stored
    blobs are removed after the commit by `purge_evidence_files`)."""
    gone = []
    for sha in sorted(shas):
        used = session.execute(sa.union_all(
            sa.select(_APPLICATION_EVIDENCE.c.sha256).where(_APPLICATION_EVIDENCE.c.sha256 == sha),
            sa.select(RplEvidence.sha256).where(RplEvidence.sha256 == sha),
            sa.select(DcProjectEvidence.sha256).where(DcProjectEvidence.sha256 == sha))).first()
        if used is None:
            session.execute(sa.delete(EvidenceFile).where(EvidenceFile.sha256 == sha))
            gone.append(sha)
    return gone


def purge_evidence_files(ctx: Any, shas: list[str]) -> int:
    """Delete the stored blobs of evidence files whose rows are gone (run after the erasure committed; a file
    uploaded again meanwhile has a row again and is kept)."""
    from node.db import session_scope
    from node.evidence.storage import _legacy_path, evidence_path
    from node.security.filecrypt import file_cipher

    if not shas:
        return 0
    with session_scope(ctx.engine) as session:
        alive = set(session.execute(sa.select(EvidenceFile.sha256).where(EvidenceFile.sha256.in_(shas))).scalars())
    root, cipher, removed = Path(ctx.settings.evidence_dir), file_cipher(ctx), 0
    for sha in shas:
        if sha in alive:
            continue
        for path in (evidence_path(root, sha, cipher), _legacy_path(root, sha)):
            if path.is_file():
                path.unlink()
                removed += 1
    return removed
