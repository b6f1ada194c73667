"""The engagement pages (issue 16, items 5–8): the learner's points, notices and what they receive, their data
(copy, correction request, retention, a counselling code); outlet staff's counselling what-if and its print;
centre reviewers' queue of correction requests.

Every page calls the API's own route functions (node.engage.router), so a rule lives in one place."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import select

from node.deposits.schemas import AchievementCorrection
from node.deps import CtxDep, Principal, SessionDep, public
from node.engage import counselling as counselling_service
from node.engage import router as api
from node.engage.notices import KINDS
from node.errors import NodeError
from node.models import Achievement, Learner
from node.models.types import Int64
from node.portal.web import check_csrf, page_principal, redirect
from node.portal.web import render as _render
from node.roles import Role

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
Field = Annotated[str, Form()]
LEARNER = frozenset({Role.LEARNER})
OUTLET = frozenset({Role.OUTLET_STAFF})
CENTRE = frozenset({Role.CENTRE_REVIEWER})
POINTS_ERRORS = ("insufficient_points", "benefit_closed", "benefit_limit", "benefit_unavailable", "not_found")


def key(prefix: str, name: str) -> str:
    """A text key made of a prefix and a value (a notice's kind, a state): every such key of this area is checked
    by tests/engage/test_pages.py, since the catalogue check reads literal keys only."""
    return f"{prefix}.{name}"


def render(request: Request, template: str, **values) -> HTMLResponse:
    return _render(request, template, key=key, **values)


def _who(request: Request, session, roles: frozenset[str]) -> Principal:
    principal = page_principal(request, session, roles=roles)
    assert principal is not None
    return principal


# -- points ---------------------------------------------------------------------------------------------


def _points_page(request: Request, ctx, session, me: Principal, *, errors: dict | None = None,
                 status: int = 200) -> HTMLResponse:
    view = api.points_view(session, ctx, me.id)
    return render(request, "engage/points.html", status=status, title="points.title", view=view,
                  errors=errors or {}, redeemed=request.query_params.get("redeemed"))


@router.get("/me/points", response_class=HTMLResponse)
def points_page(request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, LEARNER)
    return _points_page(request, ctx, session, me)


@router.post("/me/points/redeem", response_class=HTMLResponse)
def points_redeem(request: Request, ctx: CtxDep, session: SessionDep, benefit: Field = "",
                  csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _who(request, session, LEARNER)
    try:
        body = api.RedemptionCreate(benefit=benefit)
        api.redeem_points(body=body, session=session, ctx=ctx, me=me)
    except ValidationError:
        return _points_page(request, ctx, session, me, errors={"": "error.bad_request"}, status=400)
    except NodeError as exc:
        session.commit()  # the refusal's audit entry (refusals_recorded rolled the work back)
        key = f"points.err.{exc.code}" if exc.code in POINTS_ERRORS else "error.generic"
        return _points_page(request, ctx, session, me, errors={"": key}, status=exc.status_code)
    return redirect(request, f"/me/points?redeemed={benefit}")


# -- notices --------------------------------------------------------------------------------------------


@router.get("/me/notices", response_class=HTMLResponse)
def notices_page(request: Request, session: SessionDep, cursor: str = "") -> HTMLResponse:
    me = _who(request, session, LEARNER)
    after = int(cursor) if cursor.isdigit() and len(cursor) < 19 else None
    page = api.notices_of(session, me.id, cursor=after, limit=50)
    return render(request, "engage/notices.html", title="notice.title", page=page)


@router.post("/me/notices/read", response_class=HTMLResponse)
def notices_read(request: Request, session: SessionDep, csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _who(request, session, LEARNER)
    api.mark_read(session, me.id, None)
    return redirect(request, "/me/notices")


def _prefs_page(request: Request, values: dict, errors: dict, status: int = 200, saved: bool = False) -> HTMLResponse:
    return render(request, "engage/preferences.html", status=status, title="notice.prefs_title", kinds=KINDS,
                  values=values, errors=errors, saved=saved)


@router.get("/me/notices/preferences", response_class=HTMLResponse)
def preferences_page(request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, LEARNER)
    view = api.preferences_view(session, ctx, me.id)
    return _prefs_page(request, view.model_dump(), {}, saved=request.query_params.get("saved") == "1")


@router.post("/me/notices/preferences", response_class=HTMLResponse)
async def preferences_submit(request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    form = await request.form()
    check_csrf(request, form)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_save_preferences, request, ctx, session, form)


def _save_preferences(request: Request, ctx, session, form) -> Response:
    me = _who(request, session, LEARNER)
    picked = {name: [k for k in form.getlist(name) if k in KINDS][:len(KINDS)]
              for name in ("muted_kinds", "email_kinds", "sms_kinds")}
    email, phone = str(form.get("email") or "")[:300], str(form.get("phone") or "")[:40]
    values = {**picked, "email": email, "phone": phone}
    errors: dict[str, str] = {}
    try:
        body = api.PreferencesUpdate(**picked, email=email or None, phone=phone or None)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            errors[field if field in ("email", "phone") else ""] = \
                f"notice.err.{field}" if field in ("email", "phone") else "error.bad_request"
        return _prefs_page(request, values, errors, status=400)
    try:
        api.save_preferences(session, ctx, me, body)
    except NodeError as exc:
        session.rollback()
        field = (exc.detail or {}).get("field", "") if isinstance(exc.detail, dict) else ""
        return _prefs_page(request, values, {field: f"notice.err.{field}_required" if field else f"err.{exc.code}"},
                           status=exc.status_code)
    return redirect(request, "/me/notices/preferences?saved=1")


# -- my data --------------------------------------------------------------------------------------------


def _data_page(request: Request, ctx, session, me: Principal, *, errors: dict | None = None, values: dict | None = None,
               status: int = 200, code: dict | None = None) -> HTMLResponse:
    records = session.exec(select(Achievement.id, Achievement.title).where(
        Achievement.learner_id == me.id, Achievement.status == "deposited").order_by(Achievement.id)).all()
    requests = api.my_correction_requests(session=session, me=me)
    titles = dict(session.exec(select(Achievement.id, Achievement.title).where(
        Achievement.id.in_([r.achievement_id for r in requests] or [0]))).all())
    return render(request, "engage/data.html", status=status, title="rights.title", records=records,
                  requests=requests, titles=titles, retention=api.retention(ctx=ctx), errors=errors or {},
                  values=values or {}, code=code, sent=request.query_params.get("sent") == "1")


@router.get("/me/data", response_class=HTMLResponse)
def data_page(request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, LEARNER)
    return _data_page(request, ctx, session, me)


@router.get("/me/data/export.json")
def data_export_json(request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    me = _who(request, session, LEARNER)
    return api.my_data_export(session=session, ctx=ctx, me=me)


@router.get("/me/data/export.pdf")
def data_export_pdf(request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    me = _who(request, session, LEARNER)
    return api.my_data_export_pdf(session=session, ctx=ctx, me=me)


@router.post("/me/data/correction", response_class=HTMLResponse)
def correction_submit(request: Request, ctx: CtxDep, session: SessionDep, achievement_id: Field = "",
                      message: Field = "", csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _who(request, session, LEARNER)
    values = {"achievement_id": achievement_id, "message": message}
    errors: dict[str, str] = {}
    if not achievement_id.isdigit() or len(achievement_id) > 18:
        errors["achievement_id"] = "rights.err.record"
    if not message.strip():
        errors["message"] = "rights.err.message"
    elif len(message) > 1000:
        errors["message"] = "rights.err.message_long"
    if errors:
        return _data_page(request, ctx, session, me, errors=errors, values=values, status=400)
    try:
        api.request_correction(body=api.CorrectionRequestCreate(achievement_id=int(achievement_id),
                                                                message=message), session=session, me=me)
    except NodeError as exc:
        session.rollback()
        field = "achievement_id" if exc.code in ("not_found", "duplicate", "illegal_transition") else ""
        key = f"rights.err.{exc.code}" if exc.code in ("not_found", "duplicate", "illegal_transition") \
            else "error.generic"
        return _data_page(request, ctx, session, me, errors={field: key}, values=values,
                          status=exc.status_code)
    return redirect(request, "/me/data?sent=1#corrections")


@router.post("/me/data/counselling-code", response_class=HTMLResponse)
def counselling_code(request: Request, ctx: CtxDep, session: SessionDep, csrf: Field = "") -> Response:
    """The code is shown once, on this response (never in a URL)."""
    check_csrf(request, {"csrf": csrf})
    me = _who(request, session, LEARNER)
    code = api.give_consent(session=session, ctx=ctx, me=me)
    return _data_page(request, ctx, session, me, code=code.model_dump())


# -- counselling at the outlet --------------------------------------------------------------------------


def _counsel_form(request: Request, values: dict, errors: dict, status: int = 200) -> HTMLResponse:
    return render(request, "engage/counselling.html", status=status, title="counsel.title", values=values,
                  errors=errors, today=dt.date.today().isoformat())


@router.get("/staff/counselling", response_class=HTMLResponse)
def counselling_page(request: Request, session: SessionDep) -> HTMLResponse:
    _who(request, session, OUTLET)
    return _counsel_form(request, {}, {})


@router.post("/staff/counselling", response_class=HTMLResponse)
def counselling_submit(request: Request, ctx: CtxDep, session: SessionDep, account_no: Field = "", code: Field = "",
                       programme: Field = "", on: Field = "", csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    staff = _who(request, session, OUTLET)
    values = {"account_no": account_no, "programme": programme, "on": on}
    errors: dict[str, str] = {}
    for name, value, limit in (("account_no", account_no, 20), ("code", code, 20), ("programme", programme, 64)):
        if not value.strip():
            errors[name] = f"counsel.err.{name}"
        elif len(value) > limit:
            errors[name] = f"counsel.err.{name}"
    day = None
    if on.strip():
        try:
            day = dt.date.fromisoformat(on.strip())
        except ValueError:
            errors["on"] = "counsel.err.on"
    if errors:
        return _counsel_form(request, values, errors, status=400)
    try:
        row = api.run_counselling(body=api.CounsellingCreate(account_no=account_no, code=code, programme=programme,
                                                             on=day), session=session, ctx=ctx, staff=staff)
    except NodeError as exc:
        session.commit()  # the refusal's audit entry
        field = "code" if exc.code == "invalid_consent_code" else "programme" if exc.status_code == 404 else ""
        key = f"counsel.err.{exc.code}" if exc.code in ("invalid_consent_code", "not_found") else f"err.{exc.code}"
        return _counsel_form(request, values, {field: key}, status=exc.status_code)
    return redirect(request, f"/staff/counselling/{row.id}")


@router.get("/staff/counselling/{session_id}", response_class=HTMLResponse)
def counselling_result(session_id: Int64, request: Request, session: SessionDep) -> HTMLResponse:
    staff = _who(request, session, OUTLET)
    try:
        row = counselling_service.session_for_staff(session, staff=staff, session_id=session_id)
    except NodeError:
        return render(request, "error.html", status=404, title="error.not_found", message_key="error.not_found",
                      status_code=404)
    learner = session.get(Learner, row.learner_id)
    return render(request, "engage/counselling_result.html", title="counsel.result_title", row=row,
                  account_no=learner.account_no if learner else "", result=row.result)


# -- correction requests at the centre ------------------------------------------------------------------


def _queue_page(request: Request, session, staff: Principal, errors: dict | None = None, status: int = 200,
                done: str | None = None) -> HTMLResponse:
    rows = api.correction_queue(session=session, staff=staff, state="open", cursor=None, limit=50)
    achievements = {a.id: a for a in session.exec(select(Achievement).where(
        Achievement.id.in_([r.achievement_id for r in rows] or [0]))).all()}
    return render(request, "engage/corrections.html", status=status, title="rights.queue_title", rows=rows,
                  achievements=achievements, errors=errors or {}, done=done)


@router.get("/staff/corrections", response_class=HTMLResponse)
def corrections_page(request: Request, session: SessionDep) -> HTMLResponse:
    staff = _who(request, session, CENTRE)
    return _queue_page(request, session, staff, done=request.query_params.get("done"))


_CORRECTABLE = ("title", "credits", "hours", "score", "level", "earned_on")


@router.post("/staff/corrections/{request_id}", response_class=HTMLResponse)
async def correction_handle(request_id: Int64, request: Request, session: SessionDep) -> Response:
    form = await request.form()
    check_csrf(request, form)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_handle, request_id, request, session, form)


def _handle(request_id: int, request: Request, session, form) -> Response:
    staff = _who(request, session, CENTRE)
    reason = str(form.get("reason") or "").strip()
    action = form.get("action")
    prefix = f"r{request_id}-"
    if not reason or len(reason) > 1000:
        return _queue_page(request, session, staff, errors={f"{prefix}reason": "rights.err.reason"}, status=400)
    try:
        if action == "decline":
            api.decline_correction(request_id=request_id, body=api.CorrectionDecline(reason=reason), session=session,
                                   staff=staff)
        else:
            fields = {k: str(form.get(k) or "").strip() for k in _CORRECTABLE}
            fields = {k: v for k, v in fields.items() if v and len(v) <= 200}
            correction = AchievementCorrection(**fields, reason=reason)
            api.resolve_correction(request_id=request_id, body=api.CorrectionResolve(correction=correction),
                                   session=session, staff=staff)
    except ValidationError:
        return _queue_page(request, session, staff, errors={f"{prefix}reason": "rights.err.fields"}, status=400)
    except NodeError as exc:
        session.commit()  # the refusal's audit entry
        return _queue_page(request, session, staff, errors={f"{prefix}reason": f"err.{exc.code}"},
                           status=exc.status_code)
    return redirect(request, f"/staff/corrections?done={request_id}")

