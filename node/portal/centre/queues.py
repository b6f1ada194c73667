"""The centre's review queues: conversion requests (node.conversion.router), transfer items from other regions
(federation.transfers.router) and revocations of deposited outcomes (node.credentials.router) — filters, keyset
paging ("next page" carries the last id shown), a decision with a reason.

The API's route functions decide: who may review (not the person who confirmed / requested), that a rejection
needs a reason, that every open item of a conversion is decided at once. The lists are personal-data reads and
are audited by the API (`conversion.list`, `transfer.review_queue`), the revocation queue by this page
(`revocation.list`); refusals of a decision are audited (`refusals_recorded`)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from federation.transfers import router as transfer_api
from node.audit.service import record, refusals_recorded
from node.conversion import router as conversion_api
from node.credentials import router as credentials_api
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError
from node.models import Achievement, RevocationRequest
from node.portal.centre.common import REVIEWERS, error_key, page, staff_page
from node.portal.centre.common import FormField as Field
from node.portal.web import check_csrf, redirect
from node.roles import Role

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
CENTRE_REVIEWER = frozenset({Role.CENTRE_REVIEWER})
PAGE_SIZE = 20
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
CONVERSION_STATES = ("confirmed", "appealed", "proposed", "decided", "closed", "withdrawn")
AWAITING = ("confirmed", "appealed")


def _cursor(request: Request) -> int | None:
    value = request.query_params.get("cursor", "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _reason(text: str) -> tuple[str, str | None]:
    """The reason as given (trimmed), and the key of what is wrong with it (None when fine)."""
    text = text.strip()
    if len(text) > 1000:
        return text[:1000], "centre.err.reason_long"
    return text, None


def _row_decision(posted: dict, key: object, *, reason_required: bool) -> tuple[str, str, dict, dict[str, str]]:
    """One row's decision form (`decision_<key>`, `reason_<key>`): the decision, the reason, the values to show
    again and the errors next to each field."""
    decision = posted.get(f"decision_{key}", "")
    text, problem = _reason(posted.get(f"reason_{key}", ""))
    values = {f"decision_{key}": decision[:10], f"reason_{key}": text}
    errors: dict[str, str] = {}
    if decision not in ("approve", "reject"):
        errors[f"decision_{key}"] = "centre.conv.err_decision"
    if reason_required and not text:
        errors[f"reason_{key}"] = "centre.err.reason_missing"
    elif problem:
        errors[f"reason_{key}"] = problem
    return decision, text, values, errors


# -- conversion requests ----------------------------------------------------------------------------------


@router.get("/centre/conversions", response_class=HTMLResponse)
def conversions_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Requests newest first; by default those awaiting review (confirmed, or appealed)."""
    me = staff_page(request, session, REVIEWERS)
    state = request.query_params.get("state", "awaiting")
    states = list(AWAITING) if state == "awaiting" else [state] if state in CONVERSION_STATES else list(AWAITING)
    cursor = _cursor(request)
    rows = conversion_api.list_conversions(session=session, staff=me, state=states, learner_id=None, cursor=cursor,
                                           limit=PAGE_SIZE)
    next_url = (f"/centre/conversions?{urlencode({'state': state, 'cursor': rows[-1].id})}"
                if len(rows) == PAGE_SIZE else None)
    return page(request, "centre/conversions.html", me, title="centre.conv.title", requests=rows,
                state_filter=state if state in CONVERSION_STATES else "awaiting", states=CONVERSION_STATES,
                next_url=next_url, first_url="/centre/conversions?" + urlencode({"state": state})
                if cursor is not None else None)


def _conversion(request: Request, session: Session, me: Principal, request_id: int, *, errors: dict[str, str],
                values: dict[str, str], status: int = 200, notice: str = "") -> HTMLResponse:
    req = conversion_api.read_conversion(request_id=request_id, session=session, staff=me)
    open_status = "rejected" if req.state == "appealed" else "confirmed"
    open_items = [i for i in req.items if i.status == open_status] if req.state in AWAITING else []
    return page(request, "centre/conversion.html", me, status=status, title="centre.conv.detail_title",
                req=req, open_items=open_items, errors=errors, values=values, notice=notice)


@router.get("/centre/conversions/{request_id}", response_class=HTMLResponse)
def conversion_page(request_id: Id, request: Request, session: SessionDep) -> HTMLResponse:
    me = staff_page(request, session, REVIEWERS)
    notice = "centre.conv.decided" if request.query_params.get("done") == "1" else ""
    return _conversion(request, session, me, request_id, errors={}, values={}, notice=notice)


async def _posted(request: Request) -> dict[str, str]:
    """A decision form's fields, named per item (`decision_<id>`, `reason_<id>`) so that several items' forms
    on one page keep distinct field ids (a conversion's form holds one pair per open item)."""
    form = await request.form()  # parsed once for the request (the route's own form fields read it too)
    return {k: v[:1001] for k, v in form.items() if isinstance(v, str) and len(k) < 40
            and k.startswith(("decision_", "reason_"))}


Posted = Annotated[dict[str, str], Depends(_posted)]


@router.post("/centre/conversions/{request_id}", response_class=HTMLResponse)
def conversion_submit(request_id: Id, request: Request, session: SessionDep, ctx: CtxDep, values: Posted,
                      version: Field = "",
                      csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    return _conversion_decide(request, session, ctx, request_id, values, version)


def _conversion_decide(request: Request, session: Session, ctx: Any, request_id: int, values: dict[str, str],
                       version: str) -> Response:
    me = staff_page(request, session, REVIEWERS)
    req = conversion_api.read_conversion(request_id=request_id, session=session, staff=me)
    open_status = "rejected" if req.state == "appealed" else "confirmed"
    errors: dict[str, str] = {}
    decisions = []
    for item in (i for i in req.items if i.status == open_status):
        decision = values.get(f"decision_{item.id}", "")
        reason, problem = _reason(values.get(f"reason_{item.id}", ""))
        if decision not in ("approve", "reject"):
            errors[f"decision_{item.id}"] = "centre.conv.err_decision"
        elif decision == "reject" and not reason:
            errors[f"reason_{item.id}"] = "centre.err.reason_missing"
        elif problem:
            errors[f"reason_{item.id}"] = problem
        decisions.append(conversion_api.ItemDecision(item_id=item.id, decision=decision if decision in (
            "approve", "reject") else "reject", reason=reason or None))
    if errors:
        return _conversion(request, session, me, request_id, errors=errors, values=values, status=400)
    try:
        body = conversion_api.Review(version=int(version) if version.isdigit() and len(version) < 10 else -1,
                                     decisions=decisions)
        conversion_api.review(request_id=request_id, body=body, session=session, ctx=ctx, reviewer=me)
    except NodeError as exc:  # audited by the API (refusals_recorded) and committed
        return _conversion(request, session, me, request_id, errors={"": error_key(exc)}, values=values,
                           status=exc.status_code)
    return redirect(request, f"/centre/conversions/{request_id}?done=1")


# -- transfer items ---------------------------------------------------------------------------------------


@router.get("/centre/transfers", response_class=HTMLResponse)
def transfers_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Items of transfers from other regions that the agreement leaves to review, oldest first."""
    me = staff_page(request, session, REVIEWERS)
    return _transfers(request, session, me, errors={}, values={})


def _transfers(request: Request, session: Session, me: Principal, *, errors: dict[str, str],
               values: dict[str, str], status: int = 200, notice: str = "") -> HTMLResponse:
    cursor = _cursor(request)
    items = transfer_api.pending_items(session=session, staff=me, cursor=cursor, limit=PAGE_SIZE)
    next_url = f"/centre/transfers?{urlencode({'cursor': items[-1]['id']})}" if len(items) == PAGE_SIZE else None
    return page(request, "centre/transfers.html", me, status=status, title="centre.transfer.title",
                items=[{**i, "name": _credential_name(i)} for i in items], errors=errors, values=values,
                next_url=next_url, first_url="/centre/transfers" if cursor is not None else None,
                notice=notice or ("centre.transfer.decided" if request.query_params.get("done") == "1" else ""))


def _credential_name(item: dict) -> str:
    recognition = item.get("recognition") or {}
    for key in ("title", "name", "achievement"):
        value = recognition.get(key)
        if isinstance(value, str) and value:
            return value[:200]
    return item.get("credential_id", "")[:200]


@router.post("/centre/transfers/items/{item_id}", response_class=HTMLResponse)
def transfer_submit(item_id: Id, request: Request, session: SessionDep, ctx: CtxDep, values: Posted,
                    csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, REVIEWERS)
    decision, text, values, errors = _row_decision(values, item_id, reason_required=True)
    if errors:
        return _transfers(request, session, me, errors=errors, values=values, status=400)
    try:
        transfer_api.decide(item_id=item_id, body=transfer_api.ItemDecision(approve=decision == "approve",
                                                                          reason=text),
                            ctx=ctx, session=session, staff=me)
    except NodeError as exc:
        if exc.code == "not_found":
            raise
        return _transfers(request, session, me, errors={f"decision_{item_id}": error_key(exc)}, values=values,
                          status=exc.status_code)
    return redirect(request, "/centre/transfers?done=1")


# -- revocations ------------------------------------------------------------------------------------------


def _pending_revocations(session: Session, *, cursor: int | None, limit: int) -> list[Any]:
    """Revocation requests awaiting a decision, oldest first, with the outcome's title (keyset on id)."""
    rr, ach = RevocationRequest.__table__, Achievement.__table__
    stmt = (sa.select(rr.c.id, rr.c.achievement_id, rr.c.reason, rr.c.requested_by, rr.c.created_at,
                      ach.c.title, ach.c.learner_id)
            .join(ach, ach.c.id == rr.c.achievement_id).where(rr.c.state == "requested"))
    if cursor is not None:
        stmt = stmt.where(rr.c.id > cursor)
    return list(session.execute(stmt.order_by(rr.c.id).limit(limit)).all())


def _revocations(request: Request, session: Session, me: Principal, *, errors: dict[str, str],
                 values: dict[str, str], status: int = 200) -> HTMLResponse:
    cursor = _cursor(request)
    rows = _pending_revocations(session, cursor=cursor, limit=PAGE_SIZE)
    record(session, actor=me, action="revocation.list", target_type="revocation",
           detail={"cursor": cursor, "requests": [r.id for r in rows],
                   "learners": sorted({r.learner_id for r in rows})})
    next_url = f"/centre/revocations?{urlencode({'cursor': rows[-1].id})}" if len(rows) == PAGE_SIZE else None
    notice = {"requested": "centre.revoke.requested", "decided": "centre.revoke.decided"}.get(
        request.query_params.get("done", ""), "")
    return page(request, "centre/revocations.html", me, status=status, title="centre.revoke.title", rows=rows,
                errors=errors, values=values, next_url=next_url, notice=notice,
                first_url="/centre/revocations" if cursor is not None else None)


@router.get("/centre/revocations", response_class=HTMLResponse)
def revocations_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = staff_page(request, session, CENTRE_REVIEWER)
    return _revocations(request, session, me, errors={}, values={})


@router.post("/centre/revocations", response_class=HTMLResponse)
def revocation_request_submit(request: Request, session: SessionDep, achievement_id: Field = "",
                              reason: Field = "", csrf: Field = "") -> Response:
    """Ask to revoke a deposited outcome (by its number), with a reason; another centre reviewer decides."""
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, CENTRE_REVIEWER)
    text, problem = _reason(reason)
    values = {"achievement_id": achievement_id.strip()[:20], "reason": text}
    errors: dict[str, str] = {}
    number = values["achievement_id"]
    if not (number.isdigit() and 0 < len(number) < 19 and int(number) > 0):
        errors["achievement_id"] = "centre.revoke.err_achievement"
    if not text:
        errors["reason"] = "centre.err.reason_missing"
    elif problem:
        errors["reason"] = problem
    if errors:
        return _revocations(request, session, me, errors=errors, values=values, status=400)
    try:
        with refusals_recorded(session, actor=me, action="revocation.request", target_type="achievement",
                               target_id=int(number)):
            credentials_api.ask_revocation(achievement_id=int(number),
                                           body=credentials_api.RevocationCreate(reason=text),
                                           session=session, staff=me)
    except NodeError as exc:
        field = "achievement_id" if exc.code in ("not_found", "illegal_transition", "duplicate") else "reason"
        return _revocations(request, session, me, errors={field: error_key(exc)}, values=values,
                            status=exc.status_code)
    return redirect(request, "/centre/revocations?done=requested")


@router.post("/centre/revocations/{request_id}", response_class=HTMLResponse)
def revocation_decide_submit(request_id: Id, request: Request, session: SessionDep, ctx: CtxDep, values: Posted,
                             csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, CENTRE_REVIEWER)
    decision, text, values, errors = _row_decision(values, request_id, reason_required=False)
    if errors:
        return _revocations(request, session, me, errors=errors, values=values, status=400)
    try:
        with refusals_recorded(session, actor=me, action="revocation.decide", target_type="revocation",
                               target_id=request_id):
            credentials_api.decide(request_id=request_id, body=credentials_api.RevocationDecision(
                approve=decision == "approve", reason=text or None), session=session, ctx=ctx, staff=me)
    except NodeError as exc:
        if exc.code == "not_found":
            raise
        return _revocations(request, session, me, errors={f"decision_{request_id}": error_key(exc)},
                            values=values, status=exc.status_code)
    return redirect(request, "/centre/revocations?done=decided")
