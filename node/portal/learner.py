"""The learner's pages (issue 15, item 1): activate the account with the outlet's code, sign in with the ID number
(or account number), the archive by category with totals and a chart over time, a record's details and its signed
credential, the transcript PDF, change password, sign out, and who accessed their data (the audit log).

Every form posts to a route that calls the API's own route function or service (sign-in, activation, password
change, sign-out, archive, credential, transcript), so a rule lives in one place; the page only turns the
outcome into a page (errors next to their field, in the page's language)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import ValidationError

from node.archive.service import learner_archive
from node.audit.service import accesses_to_learner
from node.auth.router import PasswordChange, change_password, sign_in, sign_in_limit, sign_out
from node.credentials.service import achievement_credential_json, printed_transcript
from node.deps import CtxDep, Principal, SessionDep, public
from node.engage.points import points_summary
from node.errors import NodeError
from node.learners.router import activate as api_activate
from node.learners.schemas import ActivationRequest
from node.models.types import Int64
from node.portal.chart import credits_by_year, year_chart
from node.portal.web import (
    FormError,
    check_csrf,
    end_session,
    page_principal,
    redirect,
    render,
    safe_next,
    start_session,
)
from node.roles import Role

__all__ = ["router"]

# Page routes are public as HTTP endpoints: a visitor without a session gets the sign-in form (401) in the
# page's place, one with a session but not the role a 403 page (node.portal.web.page_principal).
router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])

LEARNER = frozenset({Role.LEARNER})
Field = Annotated[str, Form()]


def _learner(request: Request, session) -> Principal:
    principal = page_principal(request, session, roles=LEARNER)
    assert principal is not None
    return principal


def _form_page(request: Request, template: str, title: str, errors: dict[str, str], values: dict,
               status: int = 400) -> HTMLResponse:
    return render(request, template, status=status, title=title, errors=errors, values=values)


# -- sign in / out -------------------------------------------------------------------------------------------


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, session: SessionDep, next: str = "") -> HTMLResponse:
    page_principal(request, session, required=False)
    return render(request, "sign_in.html", title="signin.title", errors={}, values={"next": safe_next(next) or ""})


@router.post("/sign-in", response_class=HTMLResponse, dependencies=[Depends(sign_in_limit)])
def sign_in_submit(request: Request, ctx: CtxDep, session: SessionDep, username: Field = "", password: Field = "",
                   next: Field = "", csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    values = {"username": username, "next": safe_next(next) or ""}
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "signin.username_missing"
    if not password:
        errors["password"] = "signin.password_missing"
    if errors:
        return _form_page(request, "sign_in.html", "signin.title", errors, values)
    form = OAuth2PasswordRequestForm(username=username, password=password)
    try:
        token = sign_in(form=form, request=request, ctx=ctx, session=session, id_type=None)
    except NodeError as exc:
        session.commit()  # the failure's audit entry and its count towards the lockout
        key = "err.account_locked" if exc.code == "account_locked" else "err.invalid_credentials"
        return _form_page(request, "sign_in.html", "signin.title", {"password": key}, values,
                          status=exc.status_code)
    start_session(request, token.access_token)
    if Role.LEARNER not in token.roles:  # staff: their home lists what their roles can do (node.portal.staff)
        wanted = values["next"]
        return redirect(request, wanted if wanted and not wanted.startswith("/me") else "/staff")
    return redirect(request, values["next"] or "/me")


@router.post("/sign-out", response_class=HTMLResponse)
def sign_out_submit(request: Request, session: SessionDep, csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    principal = page_principal(request, session, required=False)
    if principal is not None and principal.kind in ("learner", "staff"):
        sign_out(session=session, who=principal)  # every session and token of the account ends
    end_session(request)
    return redirect(request, "/?signed_out=1")


# -- activation ----------------------------------------------------------------------------------------------


@router.get("/activate", response_class=HTMLResponse)
def activate_page(request: Request, session: SessionDep) -> HTMLResponse:
    page_principal(request, session, required=False)
    return render(request, "activate.html", title="activate.title", errors={}, values={})


_INVALID = {"id_number": "activate.invalid_id_number", "code": "activate.invalid_code"}
_ACTIVATION_FIELDS = {"id_number": "id_number", "account_no": "id_number", "code": "code",
                      "new_password": "new_password"}


@router.post("/activate", response_class=HTMLResponse, dependencies=[Depends(sign_in_limit)])
def activate_submit(request: Request, ctx: CtxDep, session: SessionDep, id_number: Field = "", code: Field = "",
                    new_password: Field = "", confirm_password: Field = "", csrf: Field = "") -> Response:
    """The learner types the ID number (or the account number on the letter), the code, a new password twice."""
    check_csrf(request, {"csrf": csrf})
    values = {"id_number": id_number, "code": code}
    try:
        body = _activation_request(id_number.strip(), code.strip(), new_password, confirm_password)
        result = api_activate(body=body, request=request, ctx=ctx, session=session)
    except FormError as exc:
        return _form_page(request, "activate.html", "activate.title", exc.errors, values)
    except NodeError as exc:
        session.commit()  # the failure's audit entry and its count towards the lockout
        field = "code" if exc.code == "invalid_activation_code" else ""
        return _form_page(request, "activate.html", "activate.title", {field: f"err.{exc.code}"}, values,
                          status=exc.status_code)
    start_session(request, result.access_token)
    return redirect(request, "/me?activated=1")


def _activation_request(name: str, code: str, password: str, confirm: str) -> ActivationRequest:
    errors: dict[str, str] = {}
    if not name:
        errors["id_number"] = "activate.id_missing"
    if not code:
        errors["code"] = "activate.code_missing"
    if password != confirm:
        errors["confirm_password"] = "password.mismatch"
    by_account = name.isdigit() and len(name) < 15  # account numbers are short; ID numbers have 15 or 18 characters
    try:
        body = ActivationRequest(account_no=name if by_account else None, id_number=None if by_account else name,
                                 code=code, new_password=password)
    except ValidationError as exc:
        for error in exc.errors():
            field = _ACTIVATION_FIELDS.get(str(error["loc"][0]) if error["loc"] else "", "")
            if field == "new_password":
                errors.setdefault(field, "password.too_short")
            elif field:
                errors.setdefault(field, _INVALID[field])
        if not errors:
            errors["id_number"] = "activate.invalid_id_number"
        body = None  # type: ignore[assignment]
    if errors:
        raise FormError(errors)
    return body


# -- the archive ---------------------------------------------------------------------------------------------


@router.get("/me", response_class=HTMLResponse)
def archive_page(request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    archive = learner_archive(session, ctx, me.id)
    items = [item for group in archive.groups for item in group.items]
    chart = year_chart(credits_by_year(items))
    return render(request, "archive.html", title="archive.title", archive=archive, chart=chart,
                  activated=request.query_params.get("activated") == "1",
                  points=points_summary(session, me.id))  # the archive's points block (node/engage)


@router.get("/me/records/{achievement_id}", response_class=HTMLResponse)
def record_page(achievement_id: Int64, request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    archive = learner_archive(session, ctx, me.id)
    for group in archive.groups:
        for item in group.items:
            if item.id == achievement_id:
                return render(request, "record.html", title="record.title", item=item, group=group)
    return render(request, "error.html", status=404, title="error.not_found", message_key="error.not_found",
                  status_code=404)


@router.get("/me/records/{achievement_id}/credential.json")
def record_credential(achievement_id: Int64, request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    """The signed credential, as the API serves it (`/api/v1/me/credentials/{id}`), saved as a file."""
    me = _learner(request, session)
    data = achievement_credential_json(session, ctx, achievement_id, learner_id=me.id, rdfc=True)
    return Response(data, media_type="application/ld+json", headers={
        "Content-Disposition": f'attachment; filename="credential-{achievement_id}.jsonld"',
        "Cache-Control": "no-store"})


@router.get("/me/transcript.pdf")
def transcript_pdf(request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    """The printed transcript (成绩证明) with its QR code, as `/api/v1/me/transcript` serves it as PDF."""
    me = _learner(request, session)
    pdf, row = printed_transcript(session, ctx, me.id)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="transcript-{row.token}.pdf"', "Cache-Control": "no-store"})


# -- the account ---------------------------------------------------------------------------------------------


@router.get("/me/password", response_class=HTMLResponse)
def password_page(request: Request, session: SessionDep) -> HTMLResponse:
    _learner(request, session)
    return render(request, "password.html", title="password.title", errors={}, values={},
                  changed=request.query_params.get("changed") == "1")


@router.post("/me/password", response_class=HTMLResponse, dependencies=[Depends(sign_in_limit)])
def password_submit(request: Request, ctx: CtxDep, session: SessionDep, current_password: Field = "",
                    new_password: Field = "", confirm_password: Field = "", csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    errors: dict[str, str] = {}
    if not current_password:
        errors["current_password"] = "password.current_missing"
    if new_password != confirm_password:
        errors["confirm_password"] = "password.mismatch"
    try:
        body = PasswordChange(current_password=current_password or "-", new_password=new_password)
    except ValidationError:
        errors.setdefault("new_password", "password.too_short")
    if errors:
        return _form_page(request, "password.html", "password.title", errors, {})
    try:
        token = change_password(body=body, request=request, ctx=ctx, session=session, who=me)
    except NodeError as exc:
        session.commit()  # the failure's audit entry and its count towards the lockout
        field = "current_password" if exc.code == "wrong_password" else ""
        return _form_page(request, "password.html", "password.title", {field: f"err.{exc.code}"}, {},
                          status=exc.status_code)
    start_session(request, token.access_token)  # every other session ended; this one goes on
    return redirect(request, "/me/password?changed=1")


@router.get("/me/accesses", response_class=HTMLResponse)
def accesses_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Who read or acted on the learner's account (PIPL: a person can know who read their record)."""
    me = _learner(request, session)
    entries = accesses_to_learner(session, learner_id=me.id)
    return render(request, "accesses.html", title="accesses.title", entries=entries)
