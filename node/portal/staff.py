"""Pages for outlet and branch staff (issue 15, item 2): the staff home, opening a learner's account at the desk
(ID card checked), the printable activation-code letter, a deposit on a learner's behalf with evidence, the review
queue (the reviewer's own branch only, as the API scopes it) with filters and keyset paging, an application with
its evidence and the two-stage decisions (初审 branch_reviewer, 复审 centre_reviewer), and corrections of a
deposited outcome.

Every action calls the API's own route function (node.learners.router, node.deposits.router,
node.evidence.router), so the roles, the scope of a queue, the ID-number check and the audit entries are the
API's; the page turns the outcome into a page, with errors next to their field (docs/staff-portal.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from node.audit.service import record, refusals_recorded
from node.deposits.router import (
    apply_on_behalf,
    correct_achievement,
    decide_application,
    list_applications,
    read_application,
    submit_on_behalf,
)
from node.deposits.schemas import (
    ACHIEVEMENT_TYPES,
    CERTIFICATE_LEVELS,
    AchievementCorrection,
    ApplicationStaffCreate,
    ReviewDecision,
    SubmitRequest,
)
from node.deposits.service import achievement_public, review_refusal
from node.deposits.workflow import State
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError, NotFound
from node.evidence.router import download_evidence, upload_evidence_for_learner
from node.learners.router import issue_code, open_learner_account, read_learner, search_learner
from node.learners.schemas import LearnerCreate
from node.models import Achievement, DepositApplication
from node.models.types import Int64
from node.portal.applications import _claim, _FormInvalid
from node.portal.i18n import translator
from node.portal.web import check_csrf, display_name, page_language, page_principal, redirect, render
from node.roles import ALL_STAFF_ROLES, Role
from node.security.idnumbers import ID_TYPES

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
Field = Annotated[str, Form()]

# The same role sets as the API routes these pages call (node.learners.router, node.deposits.router).
FRONT = frozenset({Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER})
DESK = frozenset({Role.OUTLET_STAFF, Role.BRANCH_REVIEWER})
OUTLET = frozenset({Role.OUTLET_STAFF})
REVIEWERS = frozenset({Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER})
CENTRE = frozenset({Role.CENTRE_REVIEWER})
QUEUE_STATES = tuple(s.value for s in State)
OPEN_STATES = frozenset({State.PENDING_FIRST, State.PENDING_SECOND, State.APPEALED_FIRST, State.APPEALED_SECOND})
PAGE_SIZE = 25


def _staff(request: Request, session, roles: frozenset[str]) -> Principal:
    principal = page_principal(request, session, roles=roles)
    assert principal is not None
    return principal


def error_key(request: Request, code: str) -> str:
    """The page's text for an API error code: this part's own (`staff.err.<code>`), else the portal's."""
    own = f"staff.err.{code}"
    return own if translator(page_language(request)).has(own) else f"err.{code}"


# -- the staff home ------------------------------------------------------------------------------------------


@router.get("/staff", response_class=HTMLResponse)
def staff_home(request: Request, session: SessionDep) -> HTMLResponse:
    """What the signed-in roles can do, one section per role held."""
    me = _staff(request, session, ALL_STAFF_ROLES)
    more = [(href, key) for href, key, allowed in OTHER_WORKSPACES if allowed & set(me.roles)]
    return render(request, "staff/home.html", title="staff.home_title", roles=list(me.roles), more=more,
                  greeting_name=display_name(session, me))


# The other areas' home pages (their own title texts), linked from the staff home for the roles they serve.
OTHER_WORKSPACES: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("/centre", "centre.home.title",
     frozenset({Role.STANDARDS_ADMIN, Role.CENTRE_REVIEWER, Role.NODE_ADMIN, Role.AUDITOR})),
    ("/centre/statistics", "stats.centre.title", frozenset({Role.AUDITOR, Role.NODE_ADMIN})),
    ("/federation", "fed.home.title", frozenset({Role.FEDERATION_ADMIN})),
    ("/projects", "project.hub_title", frozenset({Role.EXPERT, Role.ASSESSOR, Role.INSTITUTION_UPLOADER,
                                                   Role.STANDARDS_ADMIN, Role.CENTRE_REVIEWER})),
    ("/staff/counselling", "counsel.title", frozenset({Role.OUTLET_STAFF})),
    ("/staff/corrections", "rights.queue_title", frozenset({Role.CENTRE_REVIEWER})),
)


# -- learners: open an account, find one, the activation-code letter -------------------------------------------


def _open_form(request: Request, errors: dict[str, str], values: dict, status: int = 200) -> HTMLResponse:
    return render(request, "staff/open_account.html", status=status, title="staff.open_title", errors=errors,
                  values=values, id_types=list(ID_TYPES))


@router.get("/staff/learners/new", response_class=HTMLResponse)
def open_account_page(request: Request, session: SessionDep) -> HTMLResponse:
    _staff(request, session, FRONT)
    return _open_form(request, {}, {"id_type": "resident_id"})


@router.post("/staff/learners/new", response_class=HTMLResponse)
def open_account_submit(request: Request, ctx: CtxDep, session: SessionDep, id_type: Field = "resident_id",
                        id_number: Field = "", name: Field = "", csrf: Field = "") -> Response:
    """Open (or find) the person's account, the ID number checked exactly as the API checks it."""
    check_csrf(request, {"csrf": csrf})
    me = _staff(request, session, FRONT)
    values = {"id_type": id_type, "name": name}  # the ID number is never echoed back into a page
    errors: dict[str, str] = {}
    if id_type not in ID_TYPES:
        errors["id_type"] = "staff.err.id_type"
    if not id_number.strip():
        errors["id_number"] = "staff.err.id_number_missing"
    if not name.strip():
        errors["name"] = "staff.err.name_missing"
    elif len(name.strip()) > 100:
        errors["name"] = "staff.err.name_long"
    if len(id_number) > 40:
        errors["id_number"] = "staff.err.invalid_id_number"
    if errors:
        return _open_form(request, errors, values, status=400)
    body = LearnerCreate(id_type=id_type, id_number=id_number, name=name.strip())
    response = Response(status_code=201)  # the route sets 200 when the person already has an account
    try:
        with refusals_recorded(session, actor=me, action="learner.open", target_type="learner"):
            learner = open_learner_account(body=body, response=response, ctx=ctx, session=session, staff=me)
    except NodeError as exc:
        field = "id_number" if exc.code in ("invalid_id_number", "invalid_id_type") else ""
        return _open_form(request, {field: error_key(request, exc.code)}, values, status=exc.status_code)
    flag = "opened" if response.status_code == 201 else "existing"
    return redirect(request, f"/staff/learners/{learner.id}?{flag}=1")


@router.get("/staff/learners", response_class=HTMLResponse)
def find_learner_page(request: Request, ctx: CtxDep, session: SessionDep, id_type: str = "resident_id",
                      q: str = "") -> Response:
    """Find a learner by ID number or account number (the API's search, audited as `learner.search`)."""
    me = _staff(request, session, FRONT)
    q = q.strip()
    errors: dict[str, str] = {}
    if q:
        by_account = q.isdigit() and len(q) < 15  # account numbers are short; ID numbers have 15 or 18 characters
        if len(q) > 40 or id_type not in ID_TYPES:
            errors["q"] = "staff.err.query"
        else:
            try:
                found = search_learner(ctx=ctx, session=session, staff=me, id_type=id_type,
                                       id_number=None if by_account else q, account_no=q if by_account else None)
                return redirect(request, f"/staff/learners/{found.id}")
            except NodeError as exc:
                session.commit()  # the search's audit entry (a miss too)
                errors["q"] = "staff.err.not_found" if exc.code == "not_found" else error_key(request, exc.code)
    return render(request, "staff/find.html", status=400 if errors else 200, title="staff.find_title",
                  errors=errors, values={"id_type": id_type}, id_types=list(ID_TYPES))


@router.get("/staff/learners/{learner_id}", response_class=HTMLResponse)
def learner_page(learner_id: Int64, request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _staff(request, session, FRONT)
    learner = read_learner(learner_id=learner_id, ctx=ctx, session=session, staff=me)
    return render(request, "staff/learner.html", title="staff.learner_title", learner=learner,
                  can_code=me.has_any(DESK), can_deposit=me.has_any(OUTLET),
                  opened=request.query_params.get("opened") == "1",
                  existing=request.query_params.get("existing") == "1")


@router.post("/staff/learners/{learner_id}/activation-code", response_class=HTMLResponse)
def activation_letter_page(learner_id: Int64, request: Request, ctx: CtxDep, session: SessionDep,
                           csrf: Field = "") -> HTMLResponse:
    """A new one-time code and its letter, shown once, printable (the code is never stored in clear)."""
    check_csrf(request, {"csrf": csrf})
    me = _staff(request, session, DESK)
    issued = issue_code(learner_id=learner_id, ctx=ctx, session=session, staff=me)
    return render(request, "staff/letter.html", title="staff.letter_title", issued=issued, learner_id=learner_id)


# -- a deposit on a learner's behalf ---------------------------------------------------------------------------


def _deposit_form(request: Request, learner, errors: dict[str, str], values: dict,
                  status: int = 200) -> HTMLResponse:
    return render(request, "staff/deposit.html", status=status, title="staff.deposit_title", errors=errors,
                  values=values, learner=learner, types=ACHIEVEMENT_TYPES, levels=CERTIFICATE_LEVELS)


@router.get("/staff/learners/{learner_id}/deposit", response_class=HTMLResponse)
def deposit_page(learner_id: Int64, request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _staff(request, session, OUTLET)
    learner = read_learner(learner_id=learner_id, ctx=ctx, session=session, staff=me)
    return _deposit_form(request, learner, {}, {"type": "vocational_qualification"})


@router.post("/staff/learners/{learner_id}/deposit", response_class=HTMLResponse)
def deposit_submit(
    learner_id: Int64, request: Request, ctx: CtxDep, session: SessionDep, type: Field = "", title: Field = "",
    issuer_code: Field = "", issuer_name: Field = "", code: Field = "", level: Field = "",
    certificate_no: Field = "", credits: Field = "", hours: Field = "", score: Field = "", earned_on: Field = "",
    csrf: Field = "", evidence: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """The outcome and its evidence, through the API's three steps (apply, upload, submit) in one transaction:
    a refusal at any step leaves nothing behind but its audit entry."""
    check_csrf(request, {"csrf": csrf})
    me = _staff(request, session, OUTLET)
    learner = read_learner(learner_id=learner_id, ctx=ctx, session=session, staff=me)
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
        return _deposit_form(request, learner, errors, values, status=400)
    try:
        app = apply_on_behalf(body=ApplicationStaffCreate(achievement=claim, learner_id=learner_id),
                              session=session, staff=me)
        upload_evidence_for_learner(app_id=app.id, file=evidence, response=Response(), ctx=ctx, session=session,
                                    staff=me)
        app = read_application(app_id=app.id, session=session, staff=me)
        submit_on_behalf(app_id=app.id, body=SubmitRequest(version=app.version), session=session, staff=me)
    except NodeError as exc:
        session.rollback()
        field = "evidence" if exc.code.startswith(("evidence", "unsupported", "payload")) else ""
        return _deposit_form(request, learner, {field: error_key(request, exc.code)}, values,
                             status=exc.status_code)
    return redirect(request, f"/staff/applications/{app.id}?submitted=1")


# -- the review queue ----------------------------------------------------------------------------------------


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        raise _FormInvalid({}) from None


@router.get("/staff/queue", response_class=HTMLResponse)
def queue_page(request: Request, session: SessionDep, state: str = "", type: str = "", submitted_from: str = "",
               submitted_to: str = "", cursor: str = "", order: str = "newest") -> HTMLResponse:
    """The queue as the API scopes it (a branch reviewer: their branch; the centre: every branch; outlet staff:
    what they started), filtered by state, type and day of submission, PAGE_SIZE at a time (keyset)."""
    me = _staff(request, session, FRONT)
    values = {"state": state, "type": type, "submitted_from": submitted_from, "submitted_to": submitted_to,
              "order": order}
    errors: dict[str, str] = {}
    if state and state not in QUEUE_STATES:
        errors["state"] = "staff.err.filter"
    if type and type not in ACHIEVEMENT_TYPES:
        errors["type"] = "staff.err.filter"
    days: dict[str, dt.date | None] = {}
    for name in ("submitted_from", "submitted_to"):
        try:
            days[name] = _day(values[name][:10] if len(values[name]) <= 10 else "x")
        except _FormInvalid:
            errors[name] = "staff.err.date"
    if not errors and days["submitted_from"] and days["submitted_to"] \
            and days["submitted_to"] < days["submitted_from"]:
        errors["submitted_to"] = "staff.err.date_order"
    after = int(cursor) if cursor.isdigit() and len(cursor) < 19 else None
    page = None
    if not errors:
        page = list_applications(session=session, staff=me, state=[State(state)] if state else None, branch=None,
                                 learner_id=None, type=[type] if type else None,  # type: ignore[list-item]
                                 submitted_from=days["submitted_from"], submitted_to=days["submitted_to"],
                                 order="oldest" if order == "oldest" else "newest", cursor=after, limit=PAGE_SIZE)
    query = urlencode({k: v for k, v in values.items() if v})
    return render(request, "staff/queue.html", status=400 if errors else 200, title="staff.queue_title",
                  errors=errors, values=values, page=page, states=QUEUE_STATES, types=ACHIEVEMENT_TYPES,
                  query=query, paged=after is not None)


@router.get("/staff/applications/{app_id}", response_class=HTMLResponse)
def application_page(app_id: Int64, request: Request, session: SessionDep) -> HTMLResponse:
    me = _staff(request, session, FRONT)
    return _application(request, session, me, app_id, {})


def _application(request: Request, session, me: Principal, app_id: int, errors: dict[str, str],
                 status: int = 200, reason: str = "") -> HTMLResponse:
    app = read_application(app_id=app_id, session=session, staff=me)
    refusal = None
    if me.has_any(REVIEWERS) and app.state in OPEN_STATES:
        refusal = review_refusal(session.get(DepositApplication, app_id), me)
    return render(request, "staff/application.html", status=status, title="staff.application_title", app=app,
                  errors=errors, reason=reason, can_review=me.has_any(REVIEWERS), refusal=refusal and (
                      f"staff.cannot.{refusal}" if translator(page_language(request)).has(f"staff.cannot.{refusal}")
                      else "staff.cannot.other"),
                  may_decide=me.has_any(REVIEWERS) and app.state in OPEN_STATES and refusal is None,
                  can_correct=me.has_any(CENTRE), submitted=request.query_params.get("submitted") == "1",
                  decided=request.query_params.get("decided") == "1")


@router.get("/staff/applications/{app_id}/evidence/{sha256}")
def evidence_download(app_id: Int64, sha256: str, request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    """The evidence file, decrypted as it streams (the API's download: scoped, audited)."""
    me = _staff(request, session, REVIEWERS)
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise NotFound("no such evidence file on this application")
    return download_evidence(app_id=app_id, sha256=sha256, ctx=ctx, session=session, reviewer=me)


@router.post("/staff/applications/{app_id}/decision", response_class=HTMLResponse)
def decision_submit(app_id: Int64, request: Request, session: SessionDep, decision: Field = "", reason: Field = "",
                    version: Field = "", csrf: Field = "") -> Response:
    """初审 or 复审 (or the decision on an appeal): the stage and who may take it are the workflow's rules."""
    check_csrf(request, {"csrf": csrf})
    me = _staff(request, session, REVIEWERS)
    errors: dict[str, str] = {}
    if decision not in ("approve", "reject"):
        errors["decision"] = "staff.err.decision_missing"
    if decision == "reject" and not reason.strip():
        errors["reason"] = "staff.err.reason_missing"
    if len(reason) > 1000:
        errors["reason"] = "staff.err.reason_long"
    if not errors:
        try:
            body = ReviewDecision(decision=decision, reason=reason.strip() or None,  # type: ignore[arg-type]
                                  version=int(version) if version.isdigit() and len(version) < 10 else -1)
            decide_application(app_id=app_id, body=body, session=session, reviewer=me)
            return redirect(request, f"/staff/applications/{app_id}?decided=1")
        except NodeError as exc:
            field = "reason" if exc.code == "reason_required" else ""
            errors[field] = error_key(request, exc.code)
        except ValidationError:
            errors[""] = "error.bad_request"
    return _application(request, session, me, app_id, errors, status=400, reason=reason)


# -- corrections of a deposited outcome ------------------------------------------------------------------------

CORRECTABLE = ("title", "code", "credits", "hours", "score", "level", "earned_on", "expires_on")


def _achievement(session, me: Principal, achievement_id: int):
    row = session.get(Achievement, achievement_id)
    if row is None:
        raise NotFound("no such achievement")
    record(session, actor=me, action="achievement.read", target_type="achievement", target_id=achievement_id)
    return achievement_public(row)


def _correction_form(request: Request, achievement, errors: dict[str, str], values: dict,
                     status: int = 200, done: dict | None = None) -> HTMLResponse:
    return render(request, "staff/correct.html", status=status, title="staff.correct_title",
                  achievement=achievement, errors=errors, values=values, levels=CERTIFICATE_LEVELS,
                  fields=CORRECTABLE, done=done)


def _current(achievement) -> dict[str, str]:
    values = {}
    for name in CORRECTABLE:
        value = getattr(achievement, name)
        values[name] = "" if value is None else (value.isoformat() if isinstance(value, dt.date)
                                                 else format(value.normalize(), "f")
                                                 if hasattr(value, "normalize") else str(value))
    return values


@router.get("/staff/achievements/{achievement_id}/correct", response_class=HTMLResponse)
def correction_page(achievement_id: Int64, request: Request, session: SessionDep) -> HTMLResponse:
    me = _staff(request, session, CENTRE)
    achievement = _achievement(session, me, achievement_id)
    return _correction_form(request, achievement, {}, _current(achievement),
                            done={} if request.query_params.get("corrected") == "1" else None)


_CORRECTION_ERRORS = {"title": "staff.err.title", "code": "staff.err.code", "credits": "apply.err.number",
                      "hours": "apply.err.number", "score": "apply.err.score_value", "level": "apply.err.level",
                      "earned_on": "apply.err.earned_on", "expires_on": "staff.err.date", "reason": "staff.err.reason_long"}


@router.post("/staff/achievements/{achievement_id}/correct", response_class=HTMLResponse)
def correction_submit(achievement_id: Int64, request: Request, session: SessionDep, title: Field = "",
                      code: Field = "", credits: Field = "", hours: Field = "", score: Field = "", level: Field = "",
                      earned_on: Field = "", expires_on: Field = "", reason: Field = "",
                      csrf: Field = "") -> Response:
    """Only the fields that differ from the outcome as it stands are sent (the API changes those, with a reason,
    as a new `achievement.corrected` ledger event)."""
    check_csrf(request, {"csrf": csrf})
    me = _staff(request, session, CENTRE)
    achievement = _achievement(session, me, achievement_id)
    values = dict(title=title, code=code, credits=credits, hours=hours, score=score, level=level,
                  earned_on=earned_on, expires_on=expires_on)
    current = _current(achievement)
    changed = {k: v.strip() for k, v in values.items() if v.strip() != current[k]}
    errors: dict[str, str] = {}
    if not reason.strip():
        errors["reason"] = "staff.err.reason_missing"
    body = None
    try:
        body = AchievementCorrection(**{k: (v or None) for k, v in changed.items()}, reason=reason.strip() or None)
    except ValidationError as exc:
        for error in exc.errors():
            loc = str(error["loc"][0]) if error.get("loc") else ""
            errors.setdefault(loc if loc in _CORRECTION_ERRORS else "", _CORRECTION_ERRORS.get(loc, "error.generic"))
    if not errors and body is not None:
        try:
            correct_achievement(achievement_id=achievement_id, body=body, session=session, staff=me)
            return redirect(request, f"/staff/achievements/{achievement_id}/correct?corrected=1")
        except NodeError as exc:
            errors["" if exc.code != "reason_required" else "reason"] = error_key(request, exc.code)
    return _correction_form(request, achievement, errors, {**values, "reason": reason}, status=400)
