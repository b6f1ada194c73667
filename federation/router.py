"""HTTP of the federation: discovery, the signed `/federation/v1/*` peer routes, and the admin endpoints
(role federation_admin, every action audited). `ROUTERS` is included by `node.routers`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Path
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlmodel import Session, select

from crypto.errors import CanonicalizationError
from federation.errors import EnvelopeInvalid, MembershipRefused
from federation.inbox import InboxEnvelope, receive_message
from federation.jobs import start_scheduler
from federation.membership import (
    check_membership,
    held_membership,
    membership_hash,
    propose_membership,
    sign_membership,
)
from federation.outbox import INBOX_PATH, dead_letters, requeue
from federation.runtime import runtime
from federation.streams import RESYNC_PATH, answer_resync, resync_stream, stream_status
from federation.service import (
    DISCOVERY_PATH,
    MEMBERSHIP_PATH,
    build_discovery_bytes,
    discovery_bytes,
    discovery_generation,
    install_and_announce,
    membership_version,
)
from federation.transport.inbound import FederationRoute, PeerIdentity, peer_endpoint
from node.audit.service import record
from node.context import NodeContext
from node.deps import CtxDep, Principal, SessionDep, public, require_roles
from node.errors import BadRequest, NotFound
from node.fastlane import Lane, fast_read
from node.models import MembershipProposal, OutboxMessage
from node.roles import Role

__all__ = ["ROUTERS", "admin_router", "discovery_router", "peer_router"]


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx = app.state.ctx
    scheduler = start_scheduler(ctx)
    app.state.federation_scheduler = scheduler
    try:
        yield
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        runtime(ctx).close()


discovery_router = APIRouter(tags=["federation"], lifespan=_lifespan)
peer_router = APIRouter(prefix="/federation/v1", tags=["federation peers"], route_class=FederationRoute)
admin_router = APIRouter(prefix="/api/v1/federation", tags=["federation admin"])

Admin = Annotated[Principal, Depends(require_roles(Role.FEDERATION_ADMIN))]


# -- discovery -----------------------------------------------------------------------------------------


@discovery_router.get(DISCOVERY_PATH, dependencies=[Depends(public)], response_class=Response,
                      responses={200: {"content": {"application/json": {}}}})
async def credit_node(ctx: CtxDep) -> Response:
    """The node's discovery document: identity, DID, base URL, protocol versions, features, endpoints
    and the membership version it holds. Served from bytes built at most a second ago (a membership version
    installed by this process shows at once)."""
    body = discovery_bytes(ctx) or await _rebuilt_discovery(ctx)
    return Response(body, media_type="application/json")


@fast_read(DISCOVERY_PATH)
async def fast_discovery(lane: Lane, _scope: dict, _param: None) -> tuple[bytes, bytes] | None:
    """`credit_node` while its bytes are fresh (node.fastlane); the route rebuilds them."""
    body = discovery_bytes(lane.ctx)
    return None if body is None else (body, b"application/json")


async def _rebuilt_discovery(ctx: Any) -> bytes:
    """One rebuild at a time (per event loop and membership generation): the requests that arrive while it runs
    wait for it instead of each starting their own in a worker thread."""
    loop, generation = asyncio.get_running_loop(), discovery_generation()
    running = ctx.extras.get("discovery_rebuild")
    if running is None or running[0] is not loop or running[1] != generation or running[2].done():
        running = (loop, generation, asyncio.ensure_future(run_in_threadpool(build_discovery_bytes, ctx)))
        ctx.extras["discovery_rebuild"] = running
    return await asyncio.shield(running[2])


@discovery_router.get(MEMBERSHIP_PATH + "/{version}", dependencies=[Depends(public)])
def membership_document(version: Int64, session: SessionDep) -> dict:
    """An installed membership version, so a member that missed it can fetch and check it (docs/federation.md §2)."""
    document = membership_version(session, version)
    if document is None:
        raise NotFound(f"this node holds no membership version {version}")
    return document


# -- peers (signed) ------------------------------------------------------------------------------------


@peer_router.post(INBOX_PATH.removeprefix("/federation/v1"), dependencies=[Depends(public)])
@peer_endpoint
def inbox(session: Session, ctx: NodeContext, peer: PeerIdentity, body: Any) -> JSONResponse:
    """One-way messages from members (authenticated by their HTTP signature, not by a user)."""
    try:
        envelope = InboxEnvelope.model_validate(body)
    except ValidationError as exc:
        raise EnvelopeInvalid("the envelope is not valid", detail={"errors": [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]}) from None
    status, response = receive_message(session, ctx, peer, envelope)
    return JSONResponse(response, status_code=status)


@peer_router.post(RESYNC_PATH.removeprefix("/federation/v1"), dependencies=[Depends(public)])
@peer_endpoint
def stream_resync(session: Session, ctx: NodeContext, peer: PeerIdentity, body: Any) -> dict:
    """A member re-syncing its stream to this node asks what this node consumed (docs/federation.md §4.1)."""
    return answer_resync(session, ctx, peer, body)


# -- admin ---------------------------------------------------------------------------------------------


class InstallRequest(BaseModel):
    hash: str | None = None
    document: dict | None = None


@admin_router.get("/membership")
def get_membership(session: SessionDep, admin: Admin) -> dict:
    """The membership version this node holds (version, hash, document, accepted at); 404 if none."""
    held = held_membership(session)
    if held is None:
        raise NotFound("this node holds no membership yet")
    return {"version": held.version, "hash": held.hash, "document": held.document,
            "accepted_at": held.accepted_at.isoformat()}


def _proposal_view(session: Any, ctx: Any, row: MembershipProposal) -> dict:
    held = held_membership(session)
    check = check_membership(row.document, held=held.document if held else None,
                             resolve_did=runtime(ctx).directory.resolver(session))
    return {"hash": row.hash, "version": row.version, "document": row.document, "check": check.to_dict()}


@admin_router.get("/membership/proposals")
def list_proposals(ctx: CtxDep, session: SessionDep, admin: Admin) -> list[dict]:
    """Stored membership proposals, by version: hash, version and document."""
    rows = session.exec(select(MembershipProposal).order_by(MembershipProposal.version)).all()
    return [{"hash": r.hash, "version": r.version, "document": r.document} for r in rows]


@admin_router.post("/membership/proposals", status_code=201)
def post_proposal(ctx: CtxDep, session: SessionDep, admin: Admin, document: Annotated[dict, Body()]) -> dict:
    """Propose the next version, or add proofs collected elsewhere to a proposal of the same hash."""
    row = propose_membership(session, document)
    record(session, actor=admin, action="federation.membership.propose", target_type="membership",
           target_id=row.hash, detail={"version": row.version})
    return _proposal_view(session, ctx, row)


@admin_router.post("/membership/proposals/{digest}/signature")
def sign_proposal(digest: str, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """Add this node's proof to a proposed version."""
    row = session.get(MembershipProposal, digest)
    if row is None:
        raise NotFound("no proposal with this hash")
    row.document = sign_membership(row.document, ctx.identity)
    session.add(row)
    session.flush()
    record(session, actor=admin, action="federation.membership.sign", target_type="membership",
           target_id=row.hash, detail={"version": row.version, "key_id": ctx.identity.key_id})
    return _proposal_view(session, ctx, row)


@admin_router.post("/membership/install")
def install(ctx: CtxDep, session: SessionDep, admin: Admin, request: InstallRequest) -> dict:
    """Validate a version (a stored proposal by hash, or a full signed document) and install it."""
    if request.document is not None:
        document = request.document
    elif request.hash is not None:
        row = session.get(MembershipProposal, request.hash)
        if row is None:
            raise NotFound("no proposal with this hash")
        document = row.document
    else:
        raise BadRequest("give a proposal hash or a document", code="invalid_request")
    try:
        installed_row, installed, peers = install_and_announce(session, ctx, document)
    except MembershipRefused as exc:
        # the refusal is audited in this request's session, after undoing the attempt (a second connection
        # would wait for this one's write lock on SQLite)
        session.rollback()
        try:
            target = membership_hash(document)
        except (CanonicalizationError, MembershipRefused):  # a refused document may not even canonicalise
            target = None
        record(session, actor=admin, action="federation.membership.install", outcome="failed",
               target_type="membership", target_id=target, detail=exc.to_dict())
        session.commit()
        raise
    record(session, actor=admin, action="federation.membership.install", target_type="membership",
           target_id=installed_row.hash, detail={"version": installed_row.version, "announced_to": peers,
                                                 "already_held": not installed})
    return {"version": installed_row.version, "hash": installed_row.hash, "installed": installed,
            "announced_to": peers}


def _outbox_view(row: OutboxMessage) -> dict:
    return {"message_id": row.message_id, "peer": row.peer, "seq": row.seq, "type": row.type,
            "state": row.state, "attempts": row.attempts, "last_error": row.last_error,
            "next_attempt_at": row.next_attempt_at.isoformat(), "created_at": row.created_at.isoformat()}


@admin_router.get("/outbox/dead")
def list_dead_letters(session: SessionDep, admin: Admin) -> list[dict]:
    """Outbound federation messages that were dead-lettered, per peer and sequence. Audited."""
    record(session, actor=admin, action="federation.outbox.dead_letters")
    return [_outbox_view(r) for r in dead_letters(session)]


@admin_router.post("/outbox/{message_id}/requeue")
def requeue_message(message_id: str, session: SessionDep, admin: Admin) -> dict:
    """Put a dead-lettered outbound message back in the queue with fresh attempts; 404 if no
    dead-lettered message has this id. Audited."""
    row = requeue(session, message_id)
    record(session, actor=admin, action="federation.outbox.requeue", target_type="outbox_message",
           target_id=row.message_id, detail={"peer": row.peer, "seq": row.seq})
    return _outbox_view(row)


@admin_router.get("/streams")
def list_streams(session: SessionDep, admin: Admin) -> list[dict]:
    """Per peer: sequence counters, outbound messages by state, the head; `wedged` when the head is dead."""
    record(session, actor=admin, action="federation.streams.read")
    return stream_status(session)


class ResyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    discard: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100)


@admin_router.post("/streams/{peer}/resync")
def resync(peer: Annotated[str, Path(min_length=1, max_length=64)], request: ResyncRequest, ctx: CtxDep,
           session: SessionDep, admin: Admin) -> dict:
    """Re-sync this node's stream to `peer` (docs/federation.md §4.1); `discard` drops undelivered messages
    the peer can never accept. Audited as federation.stream.resync."""
    session.rollback()  # the re-sync runs in short transactions of its own around the peer request
    return resync_stream(ctx, peer, actor=admin, discard=request.discard).to_dict()


ROUTERS = [discovery_router, peer_router, admin_router]

from federation.transfers.router import ROUTERS as _TRANSFER_ROUTERS  # consent and transfer

ROUTERS += _TRANSFER_ROUTERS

from federation.witness import router as _witness_router  # checkpoint witnessing

ROUTERS += [_witness_router]

from federation.agreements.router import ROUTERS as _AGREEMENT_ROUTERS  # mutual-recognition agreements
from node.models.types import Int64

ROUTERS += _AGREEMENT_ROUTERS
