"""Revocation: reviewed staff action (maker-checker), a ledger event, and the signed Bitstring Status List
credential the node serves at /status/{n} (131,072 entries a list). Revoking an outcome also voids what was
converted from it (docs/conversion.md, "Revoked sources")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from crypto.statuslist import StatusList
from node.credentials.context import VC_V2
from node.credentials.service import STATUS_LIST_SIZE, ensure_status_index
from node.errors import BadRequest, Conflict, Forbidden, NotFound
from node.ledger.service import EventSpec, append_events
from node.models import Achievement, Learner, RevocationRequest, utcnow
from node.models.standards import ConversionItem, ConversionUsage, ExemptionStatement

__all__ = ["decide_revocation", "on_revocation", "request_revocation", "revoke_achievement", "status_list_credential"]

# Called, in the revoking transaction, for every achievement revoked (session, ctx, achievement): the federation
# registers one that tells the regions the record was released to (docs/agreements.md, "Revocation after a
# transfer"). node does not import federation; this is how it hears of a revocation.
RevocationListener = Callable[[Session, Any, Achievement], None]
_LISTENERS: list[RevocationListener] = []


def on_revocation(listener: RevocationListener) -> None:
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def status_list_credential(session: Session, ctx, list_no: int) -> dict:
    if not 0 <= list_no < 2**63 // STATUS_LIST_SIZE:  # beyond: its indexes could not be stored
        raise NotFound("no such status list")
    start, end = list_no * STATUS_LIST_SIZE, (list_no + 1) * STATUS_LIST_SIZE
    revoked = session.execute(sa.union_all(
        sa.select(Achievement.status_index).where(
            Achievement.status == "revoked", Achievement.status_index >= start, Achievement.status_index < end
        ),
        sa.select(ExemptionStatement.status_index).where(
            ExemptionStatement.revoked.is_(True), ExemptionStatement.status_index >= start,
            ExemptionStatement.status_index < end,
        ),
    )).scalars()
    bits = StatusList(size=STATUS_LIST_SIZE)
    for index in revoked:
        bits.set(index - start, True)
    url = f"{ctx.settings.base_url}/status/{list_no}"
    unsigned = {
        "@context": [VC_V2],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": ctx.identity.did,
        "validFrom": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": bits.encode(),
        },
    }
    return ctx.identity.sign(unsigned)


def request_revocation(session: Session, *, achievement_id: int, reason: str, staff_id: int) -> RevocationRequest:
    achievement = session.get(Achievement, achievement_id)
    if achievement is None:
        raise NotFound("no such achievement")
    if achievement.status != "deposited":
        raise Conflict(f"the achievement is {achievement.status}, not deposited", code="illegal_transition")
    if not reason.strip():
        raise BadRequest("a revocation needs a reason", code="reason_required")
    open_request = session.execute(
        sa.select(RevocationRequest.id).where(
            RevocationRequest.achievement_id == achievement_id, RevocationRequest.state == "requested"
        )
    ).first()
    if open_request:
        raise Conflict("a revocation of this achievement is already awaiting review", code="duplicate")
    req = RevocationRequest(achievement_id=achievement_id, reason=reason, requested_by=staff_id)
    session.add(req)
    session.flush()
    return req


def decide_revocation(
    session: Session, ctx: Any, *, request_id: int, approve: bool, reason: str | None, staff_id: int
) -> RevocationRequest:
    """The second pair of eyes: approving flips the status bit and appends `achievement.revoked`."""
    req = session.get(RevocationRequest, request_id, with_for_update=True)
    if req is None:
        raise NotFound("no such revocation request")
    if req.state != "requested":
        raise Conflict(f"the request is already {req.state}", code="illegal_transition")
    if req.requested_by == staff_id:
        raise Forbidden("the requester cannot review their own revocation request", code="self_review")
    req.state = "approved" if approve else "rejected"
    req.decided_by, req.decided_at, req.decision_reason = staff_id, utcnow(), reason
    if approve:
        achievement = session.get(Achievement, req.achievement_id, with_for_update=True)
        revoke_achievement(session, ctx, achievement, cause={"request": req.id},
                           because=f"revocation request {req.id}")
    session.add(req)
    session.flush()
    return req


def revoke_achievement(session: Session, ctx: Any, achievement: Achievement, *, cause: dict, because: str) -> None:
    """Revoke a deposited achievement in the caller's transaction: its status bit flips, `achievement.revoked`
    (with `cause`) is appended, what was converted from it is voided (`because` is the reason items show), and
    the revocation listeners hear of each achievement revoked. Only a deposited achievement can be revoked
    (409 illegal_transition)."""
    if achievement.status != "deposited":
        raise Conflict(f"the achievement is {achievement.status}", code="illegal_transition")
    achievement.status = "revoked"
    index = ensure_status_index(session, achievement)
    learner = session.get(Learner, achievement.learner_id)
    voided, derived = _void_conversions(session, achievement, cause, because, learner.pseudonym)
    append_events(session, [EventSpec(
        kind="achievement.revoked", learner_id=learner.id, achievement_id=achievement.id, pseudonym=learner.pseudonym,
        data={"achievement": achievement.id, "status_index": index, **cause},
    ), *voided])
    session.add(achievement)
    session.flush()
    for revoked in (achievement, *derived):
        for listener in _LISTENERS:
            listener(session, ctx, revoked)


def _void_conversions(session: Session, source: Achievement, cause: dict, because: str,
                      pseudonym: str) -> tuple[list[EventSpec], list[Achievement]]:
    """Every approved conversion item that used `source` is void: the item becomes `revoked` (with the reason),
    the course credits it recorded are revoked too (their status bit flips, so their credentials fail), and the
    item's other sources are free again for that target. One `conversion.revoked` event each; returns the
    events and the converted courses revoked."""
    item_ids = sorted(set(session.execute(
        sa.select(ConversionUsage.item_id).where(ConversionUsage.achievement_id == source.id)).scalars()))
    specs: list[EventSpec] = []
    derived_revoked: list[Achievement] = []
    for item_id in item_ids:
        item = session.get(ConversionItem, item_id, with_for_update=True)
        if item is None or item.status != "approved":
            continue
        item.status = "revoked"
        item.reason = f"source outcome {source.id} revoked ({because})"
        session.execute(sa.delete(ConversionUsage).where(ConversionUsage.item_id == item.id))
        data: dict = {"item": item.id, "request": item.request_id, "target": item.target_key,
                      "rule": {"id": item.rule_id, "version": item.rule_version}, "source": source.id,
                      "revocation": cause, "achievement": None}
        statement = session.execute(sa.select(ExemptionStatement).where(ExemptionStatement.item_id == item.id)
                                    .with_for_update()).scalar_one_or_none()
        if statement is not None:  # its status bit flips (statements issued before migration 0011 have none)
            statement.revoked = True
            data["statement_status_index"] = statement.status_index
            session.add(statement)
        derived = session.get(Achievement, item.achievement_id, with_for_update=True) if item.achievement_id else None
        if derived is not None and derived.status == "deposited":
            derived.status = "revoked"
            data.update(achievement=derived.id, status_index=ensure_status_index(session, derived))
            session.add(derived)
            derived_revoked.append(derived)
        session.add(item)
        specs.append(EventSpec(kind="conversion.revoked", learner_id=source.learner_id, pseudonym=pseudonym,
                               achievement_id=derived.id if derived is not None else None, data=data))
    return specs, derived_revoked
