"""The learner's deposit applications (issue 15, item 1): apply to deposit an outcome with an evidence file, follow
it through both reviews (branch, then centre), appeal a rejection once.

One form creates the draft, uploads the evidence and submits it, through the API's own route functions
(node.deposits.router, node.evidence.router) in the request's one transaction: a refusal at any step leaves
nothing behind but its audit entry, and the form comes back with the error next to its field."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from node.deposits.router import (
    appeal_my_application,
    apply_for_deposit,
    list_my_applications,
    read_my_application,
    submit_my_application,
)
from node.deposits.schemas import (
    ACHIEVEMENT_TYPES,
    CERTIFICATE_LEVELS,
    AchievementCreate,
    AppealCreate,
    ApplicationCreate,
    SubmitRequest,
)
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError
from node.evidence.router import upload_own_evidence
from node.models.types import Int64
from node.portal.web import check_csrf, page_principal, redirect, render
from node.roles import Role

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
Field = Annotated[str, Form()]
LEARNER = frozenset({Role.LEARNER})
FIELDS = ("type", "title", "issuer_code", "issuer_name", "code", "level", "certificate_no", "credits", "hours",
          "score", "earned_on")
# The schema's per-type rules speak English (node.deposits.schemas._check_rules): which field each is about.
_RULE_FIELDS = (("needs credits", "credits", "apply.err.credits"), ("needs a score", "score", "apply.err.score"),
                ("score", "score", "apply.err.score_value"), ("level", "level", "apply.err.level"),
                ("certificate number", "certificate_no", "apply.err.certificate_no"),
                ("hours or credits", "hours", "apply.err.hours_or_credits"), ("hours", "hours", "apply.err.hours"),
                ("earned_on", "earned_on", "apply.err.earned_on"), ("expires_on", "earned_on", "apply.err.earned_on"))
_FIELD_ERRORS = {"type": "apply.err.type", "title": "apply.err.title", "issuer_code": "apply.err.issuer_code",
                 "credits": "apply.err.number", "hours": "apply.err.number", "earned_on": "apply.err.earned_on",
                 "score": "apply.err.score_value", "level": "apply.err.level"}


def _learner(request: Request, session) -> Principal:
    principal = page_principal(request, session, roles=LEARNER)
    assert principal is not None
    return principal


@router.get("/me/applications", response_class=HTMLResponse)
def applications_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    apps = list_my_applications(session=session, me=me, cursor=None, limit=200)
    return render(request, "applications.html", title="apply.list_title", applications=apps)


def _form(request: Request, errors: dict[str, str], values: dict, status: int = 200) -> HTMLResponse:
    return render(request, "apply.html", status=status, title="apply.title", errors=errors, values=values,
                  types=ACHIEVEMENT_TYPES, levels=CERTIFICATE_LEVELS, today=dt.date.today().isoformat())


@router.get("/me/applications/new", response_class=HTMLResponse)
def new_application_page(request: Request, session: SessionDep) -> HTMLResponse:
    _learner(request, session)
    return _form(request, {}, {"type": "vocational_qualification"})


def _claim(values: dict[str, str]) -> AchievementCreate:
    data = {k: v.strip() for k, v in values.items() if v and v.strip()}
    errors: dict[str, str] = {}
    try:
        return AchievementCreate(**data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = error.get("loc") or ()
            if loc and loc[0] in _FIELD_ERRORS:
                errors.setdefault(str(loc[0]), _FIELD_ERRORS[str(loc[0])] if error["type"] != "missing"
                                  else f"apply.err.{loc[0]}_missing" if loc[0] in ("title", "issuer_code",
                                                                                  "earned_on") else
                                  _FIELD_ERRORS[str(loc[0])])
            elif not loc:
                message = str(error.get("msg", ""))
                field, key = next(((f, k) for text, f, k in _RULE_FIELDS if text in message), ("", "error.generic"))
                errors.setdefault(field, key)
        raise _FormInvalid(errors or {"": "error.generic"}) from None


class _FormInvalid(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


@router.post("/me/applications/new", response_class=HTMLResponse)
def new_application_submit(
    request: Request, ctx: CtxDep, session: SessionDep, type: Field = "", title: Field = "", issuer_code: Field = "",
    issuer_name: Field = "", code: Field = "", level: Field = "", certificate_no: Field = "", credits: Field = "",
    hours: Field = "", score: Field = "", earned_on: Field = "", csrf: Field = "",
    evidence: Annotated[UploadFile | None, File()] = None,
) -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    values = dict(type=type, title=title, issuer_code=issuer_code, issuer_name=issuer_name, code=code, level=level,
                  certificate_no=certificate_no, credits=credits, hours=hours, score=score, earned_on=earned_on)
    errors: dict[str, str] = {}
    try:
        claim = _claim(values)
    except _FormInvalid as exc:
        errors, claim = exc.errors, None
    if evidence is None or not evidence.filename:
        errors.setdefault("evidence", "apply.err.evidence_missing")
    if errors or claim is None:
        return _form(request, errors, values, status=400)
    try:
        app = apply_for_deposit(body=ApplicationCreate(achievement=claim), session=session, me=me)
        upload_own_evidence(app_id=app.id, file=evidence, response=Response(), ctx=ctx, session=session, me=me)
        app = read_my_application(app_id=app.id, session=session, me=me)
        submit_my_application(app_id=app.id, body=SubmitRequest(version=app.version), session=session, me=me)
    except NodeError as exc:
        session.rollback()
        field = "evidence" if exc.code.startswith(("evidence", "unsupported", "payload")) else ""
        return _form(request, {field: f"err.{exc.code}"}, values, status=exc.status_code)
    return redirect(request, f"/me/applications/{app.id}?submitted=1")


@router.get("/me/applications/{app_id}", response_class=HTMLResponse)
def application_page(app_id: Int64, request: Request, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    app = read_my_application(app_id=app_id, session=session, me=me)
    return render(request, "application.html", title="apply.detail_title", app=app, errors={},
                  submitted=request.query_params.get("submitted") == "1",
                  appealed=request.query_params.get("appealed") == "1")


@router.post("/me/applications/{app_id}/appeal", response_class=HTMLResponse)
def appeal_submit(app_id: Int64, request: Request, session: SessionDep, reason: Field = "", version: Field = "",
                  csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    errors: dict[str, str] = {}
    if not reason.strip():
        errors["reason"] = "apply.err.reason_missing"
    elif len(reason) > 1000:
        errors["reason"] = "apply.err.reason_long"
    if not errors:
        try:
            body = AppealCreate(reason=reason.strip(), version=int(version) if version.isdigit() else -1)
            appeal_my_application(app_id=app_id, body=body, session=session, me=me)
            return redirect(request, f"/me/applications/{app_id}?appealed=1")
        except NodeError as exc:
            session.rollback()
            errors[""] = f"err.{exc.code}"
        except ValidationError:
            errors[""] = "error.bad_request"
    app = read_my_application(app_id=app_id, session=session, me=me)
    return render(request, "application.html", status=400, title="apply.detail_title", app=app, errors=errors,
                  submitted=False, appealed=False, reason=reason)
