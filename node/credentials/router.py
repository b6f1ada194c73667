"""Identity and proofs over HTTP: the DID document, the credit-bank context, signed credentials and
transcripts, the ledger's checkpoints and proofs, status lists, reviewed revocation, and verification."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit
from collections import defaultdict, deque
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from node.audit.service import record
from node.credentials.context import (
    CREDITBANK_CONTEXT,
    CREDITBANK_CONTEXT_PATH,
    FEDERATION_CONTEXT_PATH,
    federation_context_bytes,
)
from node.credentials.service import achievement_credential, transcript
from node.credentials.status import decide_revocation, request_revocation, status_list_credential
from node.credentials.verify import verify_document
from node.deps import CtxDep, Principal, SessionDep, public, require_roles
from node.errors import NotFound, TooManyRequests
from node.ledger.log import consistency, event_by_seq, inclusion, latest_checkpoint, served_note
from node.roles import Role

router = APIRouter(tags=["identity and proofs"])
Public = [Depends(public)]
Learner = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
Staff = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER))]
CentreReviewer = Annotated[Principal, Depends(require_roles(Role.CENTRE_REVIEWER))]

_LD = "application/ld+json"


@router.get("/.well-known/did.json", dependencies=Public)
def did_document(ctx: CtxDep) -> JSONResponse:
    return JSONResponse(ctx.identity.did_document(), media_type="application/did+json")


def _base_path(ctx) -> str:
    return urlsplit(ctx.settings.base_url).path.strip("/")


@router.get("/did.json", dependencies=Public)
def did_document_behind_prefix(ctx: CtxDep) -> JSONResponse:
    """A base URL with a path (`https://host/creditbank`) makes `did:web:host:creditbank`, which resolvers fetch
    at `https://host/creditbank/did.json`: served here when the proxy strips the path, and at
    `/creditbank/did.json` when it does not."""
    if not _base_path(ctx):
        raise NotFound("this node's DID document is at /.well-known/did.json")
    return did_document(ctx)


@router.get("/{prefix:path}/did.json", dependencies=Public, include_in_schema=False)
def did_document_at_path(prefix: str, ctx: CtxDep) -> JSONResponse:
    if not _base_path(ctx) or prefix.strip("/") != _base_path(ctx):
        raise NotFound("no DID document here")
    return did_document(ctx)


@router.get(CREDITBANK_CONTEXT_PATH, dependencies=Public)
def creditbank_context() -> JSONResponse:
    """The old per-node context that credentials issued before the federation context name (kept, unchanged)."""
    return JSONResponse(CREDITBANK_CONTEXT, media_type=_LD)


@router.get(FEDERATION_CONTEXT_PATH, dependencies=Public)
def federation_context() -> Response:
    """A mirror of the federation context https://w3id.org/yangtze-credit-bank/v2: the exact bytes whose
    digestSRI the membership document pins (verifiers bundle it; docs/credentials.md)."""
    return Response(federation_context_bytes(), media_type=_LD,
                    headers={"Cache-Control": "public, max-age=86400, immutable"})


# -- credentials ----------------------------------------------------------------------------------


@router.get("/api/v1/me/credentials/{achievement_id}")
def my_credential(achievement_id: int, ctx: CtxDep, session: SessionDep, me: Learner) -> JSONResponse:
    return JSONResponse(achievement_credential(session, ctx, achievement_id, learner_id=me.id, rdfc=True),
                        media_type=_LD)


@router.get("/api/v1/me/transcript")
def my_transcript(ctx: CtxDep, session: SessionDep, me: Learner) -> JSONResponse:
    return JSONResponse(transcript(session, ctx, me.id), media_type=_LD)


@router.get("/api/v1/achievements/{achievement_id}/credential")
def staff_credential(achievement_id: int, ctx: CtxDep, session: SessionDep, staff: Staff) -> JSONResponse:
    record(session, actor=staff, action="credential.export", target_type="achievement", target_id=achievement_id)
    return JSONResponse(achievement_credential(session, ctx, achievement_id, rdfc=True), media_type=_LD)


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


class _RateLimiter:
    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, client: str, per_minute: int) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits[client]
            while hits and now - hits[0] > 60:
                hits.popleft()
            if len(hits) >= per_minute:
                return False
            hits.append(now)
            return True


_limiter = _RateLimiter()


@router.post("/api/v1/verify", dependencies=Public)
def verify(request: Request, ctx: CtxDep, session: SessionDep, document: Annotated[dict, Body()]) -> dict:
    """Check a credential or transcript: signature, issuer key, status, dates, inclusion in the issuer's log."""
    client = request.client.host if request.client else "unknown"
    if not _limiter.allow(client, ctx.settings.security.verify_rate_limit_per_minute):
        raise TooManyRequests("too many verification requests; try again in a minute")
    from node.credentials.resolvers import local_resolvers

    resolvers = local_resolvers(session, ctx)
    return verify_document(document, **resolvers).to_dict()
