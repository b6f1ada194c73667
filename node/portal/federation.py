"""Federation administrators' pages (issue 15, journey 5), apart from the agreements (node.portal.agreements):
the home of the federation admin, the membership (members, versions, who signed each version), the outbox per
peer (streams, dead letters, requeue, re-sync) and the witness alerts.

Pages call the admin API's own route functions (federation.router, federation.witness): reads that the API
audits are audited here the same way, and requeue / re-sync are the API's audited actions. Role: federation_admin
only (page_principal refuses anyone else with a 403 page, audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from federation import router as api
from federation import witness
from federation.membership import held_membership, membership_hash
from federation.service import membership_version
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError, NotFound
from node.portal.agreements import ADMIN, audit_refusal, error_key
from node.portal.agreements import router as agreements_router
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


# -- membership -----------------------------------------------------------------------------------------------


def _signers(document: dict, members: list[dict]) -> list[dict]:
    """Who signed a membership version: each proof's key, named by the member whose DID it belongs to."""
    by_did = {m.get("did"): m for m in members}
    proofs = document.get("proof") or []
    out = []
    for p in proofs if isinstance(proofs, list) else [proofs]:
        if not isinstance(p, dict):
            continue
        did = str(p.get("verificationMethod", "")).split("#", 1)[0]
        member = by_did.get(did) or {}
        out.append({"node_id": member.get("node_id", "?"), "name_zh": member.get("name_zh", ""),
                    "name_en": member.get("name_en", ""), "key": p.get("verificationMethod", ""),
                    "created": p.get("created", "")})
    return out


@router.get("/federation/membership", response_class=HTMLResponse)
def membership_page(request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    me = _admin(request, session)
    held = held_membership(session)
    versions = []
    if held is not None:
        previous_members: list[dict] = []
        for number in range(1, held.version + 1):
            document = membership_version(session, number)
            if document is None:  # joined the federation at a later version: earlier ones are not held here
                continue
            members = list(document.get("members") or [])
            # a version is signed by members of the version before it (the genesis: by its own members)
            signers = _signers(document, previous_members or members)
            versions.append({"version": number, "hash": membership_hash(document), "previous": document.get("previous"),
                             "threshold": document.get("threshold"), "members": members, "signers": signers})
            previous_members = members
        versions.reverse()
    proposals = api.list_proposals(ctx=ctx, session=session, admin=me)
    for proposal in proposals:
        proposal["signers"] = _signers(proposal["document"], list((held.document if held else {}).get("members") or []))
    return render(request, "federation/membership.html", title="fed.membership.title", held=held,
                  members=(held.document.get("members") or []) if held else [], versions=versions,
                  proposals=proposals, this_node=ctx.node_id)


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
