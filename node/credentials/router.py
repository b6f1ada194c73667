"""Identity and proofs over HTTP: the DID document, the credit-bank context, signed credentials and
transcripts, the ledger's checkpoints and proofs, status lists, reviewed revocation, and verification."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from node.audit.service import record
from node.credentials.context import CREDITBANK_CONTEXT, CREDITBANK_CONTEXT_PATH
from node.credentials.service import achievement_credential, transcript
from node.credentials.status import decide_revocation, request_revocation, status_list_credential
from node.credentials.verify import verify_document
from node.deps import CtxDep, Principal, SessionDep, public, require_roles
from node.ledger.log import consistency, event_by_seq, inclusion, latest_checkpoint, served_note
from node.roles import Role
from node.security.ratelimit import per_client_limit

router = APIRouter(tags=["identity and proofs"])
Public = [Depends(public)]
Learner = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
Staff = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER))]
CentreReviewer = Annotated[Principal, Depends(require_roles(Role.CENTRE_REVIEWER))]

_LD = "application/ld+json"


@router.get("/.well-known/did.json", dependencies=Public)
def did_document(ctx: CtxDep) -> JSONResponse:
    return JSONResponse(ctx.identity.did_document(), media_type="application/did+json")


@router.get(CREDITBANK_CONTEXT_PATH, dependencies=Public)
def creditbank_context() -> JSONResponse:
    return JSONResponse(CREDITBANK_CONTEXT, media_type=_LD)


# -- credentials ----------------------------------------------------------------------------------


@router.get("/api/v1/me/credentials/{achievement_id}")
def my_credential(achievement_id: int, ctx: CtxDep, session: SessionDep, me: Learner) -> JSONResponse:
    return JSONResponse(achievement_credential(session, ctx, achievement_id, learner_id=me.id), media_type=_LD)


@router.get("/api/v1/me/transcript")
def my_transcript(ctx: CtxDep, session: SessionDep, me: Learner) -> JSONResponse:
    return JSONResponse(transcript(session, ctx, me.id), media_type=_LD)


@router.get("/api/v1/achievements/{achievement_id}/credential")
def staff_credential(achievement_id: int, ctx: CtxDep, session: SessionDep, staff: Staff) -> JSONResponse:
    record(session, actor=staff, action="credential.export", target_type="achievement", target_id=achievement_id)
    return JSONResponse(achievement_credential(session, ctx, achievement_id), media_type=_LD)


# -- ledger log -----------------------------------------------------------------------------------


@router.get("/api/v1/ledger/checkpoint", dependencies=Public, response_class=PlainTextResponse)
def checkpoint(ctx: CtxDep, session: SessionDep) -> PlainTextResponse:
    """The latest checkpoint as a C2SP signed note (text/plain), with the witnesses' cosignatures collected
    for it appended (docs/ledger.md, Witnessing)."""
    return PlainTextResponse(served_note(session, latest_checkpoint(session, ctx)))


@router.get("/api/v1/ledger/proof/inclusion", dependencies=Public)
def inclusion_proof(session: SessionDep, seq: int, size: int | None = None) -> dict:
    return inclusion(session, seq=seq, size=size)


@router.get("/api/v1/ledger/proof/consistency", dependencies=Public)
def consistency_proof(session: SessionDep, first: int, second: int) -> dict:
    return consistency(session, first=first, second=second)


@router.get("/api/v1/ledger/events/{seq}", dependencies=Public)
def ledger_leaf(seq: int, session: SessionDep) -> dict:
    """An event's published leaf (no personal data: the learner appears only as a salted hash)."""
    event = event_by_seq(session, seq)
    return {"seq": event.seq, "leaf": event.leaf, "leaf_hash": event.hash.hex()}


# -- status and revocation -----------------------------------------------------------------------


@router.get("/status/{list_no}", dependencies=Public)
def status_list(list_no: int, ctx: CtxDep, session: SessionDep) -> JSONResponse:
    return JSONResponse(status_list_credential(session, ctx, list_no), media_type=_LD)


class RevocationCreate(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class RevocationDecision(BaseModel):
    approve: bool
    reason: str | None = Field(default=None, max_length=1000)


@router.post("/api/v1/achievements/{achievement_id}/revocations", status_code=201)
def ask_revocation(achievement_id: int, body: RevocationCreate, session: SessionDep, staff: CentreReviewer) -> dict:
    req = request_revocation(session, achievement_id=achievement_id, reason=body.reason, staff_id=staff.id)
    record(session, actor=staff, action="revocation.request", target_type="achievement", target_id=achievement_id,
           detail={"request": req.id})
    return {"id": req.id, "state": req.state, "achievement_id": achievement_id}


@router.post("/api/v1/revocations/{request_id}/decision")
def decide(request_id: int, body: RevocationDecision, session: SessionDep, ctx: CtxDep,
           staff: CentreReviewer) -> dict:
    req = decide_revocation(session, ctx, request_id=request_id, approve=body.approve, reason=body.reason,
                            staff_id=staff.id)
    record(session, actor=staff, action="revocation.decide", target_type="revocation", target_id=request_id,
           detail={"state": req.state, "achievement": req.achievement_id})
    return {"id": req.id, "state": req.state, "achievement_id": req.achievement_id}


# -- verification (no account; rate-limited) ------------------------------------------------------


_verify_limit = per_client_limit("verify", lambda s: f"{s.security.verify_rate_limit_per_minute}/minute")


@router.post("/api/v1/verify", dependencies=[*Public, Depends(_verify_limit)])
def verify(ctx: CtxDep, session: SessionDep, document: Annotated[dict, Body()]) -> dict:
    """Check a credential or transcript: signature, issuer key, status, dates, inclusion in the issuer's log."""
    from node.credentials.resolvers import local_resolvers

    resolvers = local_resolvers(session, ctx)
    return verify_document(document, **resolvers).to_dict()
