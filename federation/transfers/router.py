"""HTTP of consent and transfer: the learner's consents (origin) and transfers (destination), staff review,
the signed peer route `/federation/v1/records/release`, and the `transfer.receipt` message handler."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import select

from federation.inbox import InboxEnvelope, register_handler
from federation.service import register_feature
from federation.transfers import consent as consents
from federation.transfers import transfer as transfers
from federation.transport.inbound import FederationRoute, PeerIdentity, VerifiedBody, VerifiedPeer
from node.audit.service import record, refusals_recorded
from node.context import NodeContext
from node.db import session_scope
from node.deps import CtxDep, Principal, SessionDep, public, require_roles
from node.errors import NotFound
from node.models import Learner, Transfer, TransferItem, TransferReceipt
from node.roles import Role
from node.models.types import Int64

__all__ = ["ROUTERS", "learner_router", "peer_router", "staff_router"]

learner_router = APIRouter(prefix="/api/v1/me", tags=["consent and transfer"])
staff_router = APIRouter(prefix="/api/v1", tags=["consent and transfer"])
peer_router = APIRouter(prefix="/federation/v1", tags=["federation peers"], route_class=FederationRoute)

LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
Requester = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF))]
Reviewer = Annotated[Principal, Depends(require_roles(Role.CENTRE_REVIEWER, Role.BRANCH_REVIEWER))]
Reader = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER,
                                                    Role.AUDITOR))]
ReceiptReader = Annotated[Principal, Depends(require_roles(Role.FEDERATION_ADMIN, Role.AUDITOR))]


# -- consents (origin) --------------------------------------------------------------------------------


class ConsentCreate(BaseModel):
    destination: str = Field(min_length=1, max_length=64)
    achievement_ids: list[Int64] = Field(default_factory=list, max_length=1000)
    categories: list[str] = Field(default_factory=list, max_length=20)
    purpose: str = Field(min_length=1, max_length=500)
    expires_at: dt.datetime | None = None
    valid_days: Int64 | None = Field(default=None, ge=1, le=consents.MAX_CONSENT_DAYS)
    holder_binding: str = Field(min_length=8, max_length=128)


@learner_router.post("/consents", status_code=201)
def grant(body: ConsentCreate, ctx: CtxDep, session: SessionDep, me: LearnerOnly) -> dict:
    """Consent to release records to one destination node (PIPL art. 23); returns the signed consent."""
    expires = body.expires_at or (dt.datetime.now(dt.UTC) + dt.timedelta(days=body.valid_days or 90))
    with refusals_recorded(session, actor=me, action="consent.grant", target_type="consent"):
        row = consents.grant_consent(
            session, ctx, learner_id=me.id, destination=body.destination, achievement_ids=body.achievement_ids,
            categories=body.categories, purpose=body.purpose, expires_at=expires, holder_binding=body.holder_binding)
    record(session, actor=me, action="consent.grant", target_type="consent", target_id=row.consent_id,
           detail={"destination": row.destination})
    return consents.consent_view(session, row)


@learner_router.get("/consents")
def my_consents(session: SessionDep, me: LearnerOnly) -> list[dict]:
    """The signed-in learner's consents, oldest first."""
    return consents.list_consents(session, me.id)


@learner_router.get("/consents/{consent_id}")
def my_consent(consent_id: str, session: SessionDep, me: LearnerOnly) -> dict:
    """One of the signed-in learner's consents; 404 if it is not theirs."""
    return consents.get_consent(session, me.id, consent_id)


@learner_router.delete("/consents/{consent_id}")
def revoke(consent_id: str, session: SessionDep, me: LearnerOnly) -> dict:
    """Revoke a consent: the origin releases nothing more under it (recorded in the ledger)."""
    with refusals_recorded(session, actor=me, action="consent.revoke", target_type="consent",
                           target_id=consent_id[:64]):
        row = consents.revoke_consent(session, learner_id=me.id, consent_id=consent_id)
    record(session, actor=me, action="consent.revoke", target_type="consent", target_id=row.consent_id)
    return consents.consent_view(session, row)


# -- transfers (destination) ----------------------------------------------------------------------------


class IntentCreate(BaseModel):
    origin: str = Field(min_length=1, max_length=64)


class TransferCreate(BaseModel):
    consent: dict


class StaffTransferCreate(TransferCreate):
    learner_id: Int64


@learner_router.post("/transfer-intents", status_code=201)
def intent(body: IntentCreate, ctx: CtxDep, session: SessionDep, me: LearnerOnly) -> dict:
    """A holder binding to paste into the consent request at the origin node."""
    return transfers.create_intent(session, ctx, learner_id=me.id, origin=body.origin)


def _transfer_response(ctx: NodeContext, made: tuple[int, bool], response: Response) -> dict:
    transfer_id, created = made
    with session_scope(ctx.engine) as session:
        view = transfers.transfer_view(session, session.get(Transfer, transfer_id))
    if not created:
        response.status_code = 200  # an earlier request with this consent made the transfer
    return view


@learner_router.post("/transfers", status_code=201)
def ask_transfer(body: TransferCreate, ctx: CtxDep, response: Response, me: LearnerOnly) -> dict:
    """Present a consent given at the origin: pull, verify, recognise under the active agreement."""
    made = transfers.request_transfer(ctx, learner_id=me.id, consent=body.consent, actor=me)
    return _transfer_response(ctx, made, response)


@learner_router.get("/transfers")
def my_transfers(session: SessionDep, me: LearnerOnly) -> list[dict]:
    """The signed-in learner's transfers with their items, oldest first."""
    rows = session.exec(select(Transfer).where(Transfer.learner_id == me.id).order_by(Transfer.id)).all()
    return [transfers.transfer_view(session, t) for t in rows]


@learner_router.get("/transfers/{transfer_id}")
def my_transfer(transfer_id: Int64, session: SessionDep, me: LearnerOnly) -> dict:
    """One of the signed-in learner's transfers in full: items, consent, checkpoint, release receipt and the
    credentials received; 404 if it is not theirs."""
    return transfers.transfer_view(session, transfers.own_transfer(session, me.id, transfer_id), full=True)


@staff_router.post("/transfers", status_code=201)
def ask_transfer_on_behalf(body: StaffTransferCreate, ctx: CtxDep, session: SessionDep, response: Response,
                           staff: Requester) -> dict:
    """Outlet staff present a learner's consent for them (a reviewer other than them decides reviewed items)."""
    # Reading the staff account began the request's transaction; end it: the transfer runs in short
    # transactions of its own around the peer request (on SQLite an open one holds the write lock).
    session.rollback()
    with session_scope(ctx.engine) as scope:
        if scope.get(Learner, body.learner_id) is None:
            raise NotFound("no such learner")
    made = transfers.request_transfer(ctx, learner_id=body.learner_id, consent=body.consent, actor=staff,
                                      staff_id=staff.id)
    return _transfer_response(ctx, made, response)


Cursor = Annotated[Int64 | None, Query(ge=0, description="the id of the last entry of the previous page: the "
                                                         "page after it (keyset paging, docs/scaling.md)")]
PageLimit = Annotated[int, Query(ge=1, le=500)]


@staff_router.get("/transfers")
def list_transfers(session: SessionDep, staff: Reader,
                   state: Annotated[str | None, Query(max_length=20)] = None,
                   cursor: Cursor = None, limit: PageLimit = 500) -> list[dict]:
    """Transfers into this node with their items, oldest first, optionally filtered by `state`: `limit` of them
    (at most 500) after `cursor` (pass the last id shown for the next page). Audited."""
    query = select(Transfer).order_by(Transfer.id)
    if state:
        query = query.where(Transfer.state == state)
    if cursor is not None:
        query = query.where(Transfer.id > cursor)
    record(session, actor=staff, action="transfer.list", detail={"state": state, "cursor": cursor})
    rows = session.exec(query.limit(limit)).all()
    items = transfers.items_by_transfer(session, [t.id for t in rows])
    return [transfers.transfer_view(session, t, items=items.get(t.id, [])) for t in rows]


@staff_router.get("/transfers/{transfer_id}")
def read_transfer(transfer_id: Int64, session: SessionDep, staff: Reader) -> dict:
    """One transfer in full: items, consent, checkpoint, release receipt and the credentials received;
    404 if unknown. Audited."""
    transfer = session.get(Transfer, transfer_id)
    if transfer is None:
        raise NotFound("no such transfer")
    record(session, actor=staff, action="transfer.read", target_type="transfer", target_id=transfer_id)
    return transfers.transfer_view(session, transfer, full=True)


class ItemDecision(BaseModel):
    approve: bool
    reason: str = Field(default="", max_length=1000)


@staff_router.post("/transfer-items/{item_id}/decision")
def decide(item_id: Int64, body: ItemDecision, ctx: CtxDep, session: SessionDep, staff: Reviewer) -> dict:
    """Approve or reject (with a reason) a recognition the agreement leaves to review."""
    with refusals_recorded(session, actor=staff, action="transfer.review", target_type="transfer_item",
                           target_id=item_id):
        item = transfers.decide_item(session, ctx, item_id=item_id, approve=body.approve, reason=body.reason,
                                     staff_id=staff.id)
    record(session, actor=staff, action="transfer.review", target_type="transfer_item", target_id=item_id,
           detail={"approve": body.approve, "state": item.state, "transfer": item.transfer_id})
    transfer = session.get(Transfer, item.transfer_id)
    return transfers.transfer_view(session, transfer)


@staff_router.get("/transfer-items")
def pending_items(session: SessionDep, staff: Reviewer, cursor: Cursor = None, limit: PageLimit = 500) -> list[dict]:
    """Transfer items awaiting review, oldest first, with their transfer id: `limit` of them (at most 500)
    after `cursor` (the last item id shown). Audited."""
    query = select(TransferItem).where(TransferItem.state == "awaiting_review")
    if cursor is not None:
        query = query.where(TransferItem.id > cursor)
    rows = session.exec(query.order_by(TransferItem.id).limit(limit)).all()
    record(session, actor=staff, action="transfer.review_queue", detail={"cursor": cursor, "count": len(rows)})
    return [{**transfers.item_view(r), "transfer_id": r.transfer_id} for r in rows]


@staff_router.get("/federation/transfer-receipts")
def receipts(session: SessionDep, staff: ReceiptReader) -> list[dict]:
    """Receipts destinations sent for records this node released (where its records were used)."""
    record(session, actor=staff, action="transfer.receipts")
    rows = session.exec(select(TransferReceipt).order_by(TransferReceipt.id).limit(500)).all()
    return [{"receipt_id": r.receipt_id, "consent_id": r.consent_id, "destination": r.destination,
             "ledger_seq": r.ledger_seq, "received_at": r.received_at.isoformat(), "document": r.document}
            for r in rows]


# -- peers ------------------------------------------------------------------------------------------------


@peer_router.post("/records/release", dependencies=[Depends(public)])
def release(peer: VerifiedPeer, body: VerifiedBody, ctx: CtxDep, session: SessionDep) -> dict:
    """A destination pulls the records a learner consented to release to it (signed request and response)."""
    return consents.release_records(session, ctx, peer=peer.node_id, body=body)


def handle_receipt(session: Any, ctx: NodeContext, peer: PeerIdentity, message: InboxEnvelope) -> dict:
    return consents.record_receipt(session, ctx, peer=peer.node_id, body=message.body)


def handle_record_revoked(session: Any, ctx: NodeContext, peer: PeerIdentity, message: InboxEnvelope) -> dict:
    return transfers.apply_origin_revocation(session, ctx, peer=peer.node_id, body=message.body)


register_handler(transfers.RECEIPT_TYPE, handle_receipt)
register_handler(consents.RECORD_REVOKED, handle_record_revoked)
register_feature("transfers")

ROUTERS = [learner_router, staff_router, peer_router]
