"""Federation administrators' pages (issue 15, journey 5), apart from the agreements (node.portal.agreements) and
the membership (node.portal.membership): the home of the federation admin, the outbox per peer (streams, dead
letters, requeue, re-sync) and the witness alerts.

Pages call the admin API's own route functions (federation.router, federation.witness): reads that the API
audits are audited here the same way, and requeue / re-sync are the API's audited actions. Role: federation_admin
only (page_principal refuses anyone else with a 403 page, audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from federation import router as api
from federation import witness
from federation.membership import held_membership
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError, NotFound
from node.portal.agreements import ADMIN, audit_refusal, error_key
from node.portal.agreements import router as agreements_router
from node.portal.membership import router as membership_router
from node.portal.web import check_csrf, page_principal, redirect, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
Peer = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
MessageId = Annotated[str, Path(min_length=1, max_length=64)]


def _admin(request: Request, session: Any) -> Principal:
    principal = page_principal(request, session, roles=ADMIN)
    assert principal is not None
    return principal


@router.get("/federation", response_class=HTMLResponse)
def home_page(request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    me = _admin(request, session)
    from federation.agreements.router import list_agreements

    agreements = list_agreements(session=session, admin=me)
    waiting = [a for a in agreements if not a["head"]["complete"]
               and ctx.identity.did not in a["head"]["signers"]]
    held = held_membership(session)
    return render(request, "federation/home.html", title="fed.home.title", agreements=agreements, waiting=waiting,
                  membership=held)


# -- outbox, dead letters, streams ----------------------------------------------------------------------------


def _outbox(request: Request, session: Any, me: Principal, *, errors: dict | None = None, status: int = 200,
            report: dict | None = None) -> HTMLResponse:
    streams = api.list_streams(session=session, admin=me)
    dead = api.list_dead_letters(session=session, admin=me)
    peers = sorted({s["peer"] for s in streams} | {d["peer"] for d in dead})
    by_peer = [{"peer": p, "stream": next((s for s in streams if s["peer"] == p), None),
                "dead": [d for d in dead if d["peer"] == p]} for p in peers]
    return render(request, "federation/outbox.html", status=status, title="fed.outbox.title", peers=by_peer,
                  errors=errors or {}, report=report, done=request.query_params.get("done"),
                  done_peer=request.query_params.get("peer"))


@router.get("/federation/outbox", response_class=HTMLResponse)
def outbox_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = _admin(request, session)
    return _outbox(request, session, me)


@router.post("/federation/outbox/{message_id}/requeue", response_class=HTMLResponse)
def requeue_submit(message_id: MessageId, request: Request, session: SessionDep,
                   csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _admin(request, session)
    try:
        row = api.requeue_message(message_id=message_id, session=session, admin=me)
    except NodeError as exc:
        audit_refusal(session, me, "federation.outbox.requeue", message_id, exc)
        return _outbox(request, session, me, errors={"": error_key(exc)}, status=exc.status_code)
    return redirect(request, f"/federation/outbox?done=requeue&peer={row['peer']}")


@router.post("/federation/streams/{peer}/resync", response_class=HTMLResponse)
async def resync_submit(peer: Peer, request: Request, session: SessionDep, ctx: CtxDep) -> Response:
    form = await request.form()
    check_csrf(request, form)
    me = _admin(request, session)
    discard = [v for v in (str(x)[:64] for x in form.getlist("discard")) if v][:100]
    try:
        report = api.resync(peer=peer, request=api.ResyncRequest(discard=discard), ctx=ctx, session=session,
                            admin=me)
    except NodeError as exc:  # resync_stream audits its own refusals (federation.stream.resync, failed)
        session.rollback()
        return _outbox(request, session, me, errors={"": error_key(exc)}, status=exc.status_code)
    return _outbox(request, session, me, report=report)


# -- witness --------------------------------------------------------------------------------------------------


@router.get("/federation/witness", response_class=HTMLResponse)
def witness_page(request: Request, session: SessionDep, ctx: CtxDep, peer: str = "") -> HTMLResponse:
    me = _admin(request, session)
    if len(peer) > 64:
        raise NotFound("no such peer", code="unknown_peer")
    alerts = witness.alerts(session=session, principal=me, peer=peer or None, limit=100)["alerts"]
    peers = witness.peers(session=session, principal=me, ctx=ctx)
    return render(request, "federation/witness.html", title="fed.witness.title", alerts=alerts,
                  witness_peers=peers["peers"], witness_name=peers["witness"], peer=peer)


router.include_router(agreements_router)  # /federation/agreements/...
router.include_router(membership_router)  # /federation/membership/...
