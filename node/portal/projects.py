"""Pages of the 双证融通 projects and of recognition of prior learning (issue 16, items 2 and 4; docs/projects.md).

`/projects` — a hub listing, per role the visitor holds, the pages below;
`/projects/mine`, `/projects/new`, `/projects/{id}` — the institution applies (one form: the application, a material
file, submission) and follows its projects; `/projects/reviews` — the expert's panels, with the vote form on the
project's page; `/centre/projects`, `/centre/projects/{id}` — the centre's queue and the steps (panel, publish,
activate, reject, suspend, reinstate, end, exemption report); `/me/rpl`, `/me/rpl/new`, `/me/rpl/{id}` — the
learner's RPL applications; `/projects/rpl`, `/projects/rpl/{id}` — the assessors' and centre reviewers' queue with
the assessment and decision forms.

Every step calls the API's own route function (node.projects.router, node.rpl.router) in the request's one
transaction; a refusal shows its message next to the field, and leaves nothing behind but its audit entry.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from node.deposits.schemas import CERTIFICATE_LEVELS
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError
from node.models.types import Int64
from node.portal.i18n import translator
from node.portal.web import check_csrf, page_language, page_principal, redirect, render
from node.projects import router as api
from node.projects import service as projects_service
from node.projects.schemas import MODES, PROJECT_STATES, PanelAssign, ProjectCreate, Reason, VersionOnly, VoteCreate
from node.roles import Role
from node.rpl import router as rpl_api
from node.rpl.schemas import Assessment, Decision, RplCreate
from node.rpl.schemas import VersionOnly as RplVersion

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
Text = Annotated[str, Form()]
INSTITUTION = frozenset({Role.INSTITUTION_UPLOADER})
CENTRE = frozenset({Role.STANDARDS_ADMIN, Role.AUDITOR})
EXPERT = frozenset({Role.EXPERT})
LEARNER = frozenset({Role.LEARNER})
RPL_STAFF = frozenset({Role.ASSESSOR, Role.CENTRE_REVIEWER, Role.AUDITOR})
ANY_PROJECT_ROLE = INSTITUTION | CENTRE | EXPERT | RPL_STAFF
PROJECT_FIELDS = ("title", "programme", "certificate", "level", "mode", "discipline", "description", "rules")
RPL_FIELDS = ("kind", "title", "description", "employer", "hours", "started_on", "ended_on")


def _who(request: Request, session: Any, roles: frozenset[str]) -> Principal:
    principal = page_principal(request, session, roles=roles)
    assert principal is not None
    return principal


def _error_key(request: Request, exc: NodeError, prefix: str) -> str:
    """The page text of an API refusal: the part's own key, else the portal's, else a generic one."""
    t = translator(page_language(request))
    for key in (f"{prefix}.err.{exc.code}", f"err.{exc.code}"):
        if t.has(key):
            return key
    return "error.generic"


def _validation_errors(exc: ValidationError, fields: tuple[str, ...], prefix: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = error.get("loc") or ()
        name = str(loc[0]) if loc and str(loc[0]) in fields else ""
        errors.setdefault(name, f"{prefix}.err.field_{name}" if name else f"{prefix}.err.form")
    return errors


# -- the hub ----------------------------------------------------------------------------------------


@router.get("/projects", response_class=HTMLResponse)
def projects_home(request: Request, session: SessionDep) -> HTMLResponse:
    me = page_principal(request, session, roles=ANY_PROJECT_ROLE | LEARNER)
    assert me is not None
    return render(request, "projects/hub.html", title="project.hub_title", roles=set(me.roles))


# -- the institution --------------------------------------------------------------------------------


@router.get("/projects/mine", response_class=HTMLResponse)
def my_projects_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, INSTITUTION)
    rows = api.my_projects(session=session, me=me, state=None)
    return render(request, "projects/list.html", title="project.mine_title", projects=rows, base="/projects",
                  can_apply=True)


def _project_form(request: Request, errors: dict[str, str], values: dict, status: int = 200) -> HTMLResponse:
    return render(request, "projects/new.html", status=status, title="project.new_title", errors=errors,
                  values=values, modes=MODES, levels=CERTIFICATE_LEVELS)


@router.get("/projects/new", response_class=HTMLResponse)
def new_project_page(request: Request, session: SessionDep) -> HTMLResponse:
    _who(request, session, INSTITUTION)
    return _project_form(request, {}, {"mode": "credit_recognition", "rules": ""})


@router.post("/projects/new", response_class=HTMLResponse)
def new_project_submit(request: Request, ctx: CtxDep, session: SessionDep, title: Text = "", programme: Text = "",
                       certificate: Text = "", level: Text = "", mode: Text = "", discipline: Text = "",
                       description: Text = "", rules: Text = "", csrf: Text = "",
                       evidence: Annotated[UploadFile | None, File()] = None) -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _who(request, session, INSTITUTION)
    values = dict(title=title, programme=programme, certificate=certificate, level=level, mode=mode,
                  discipline=discipline, description=description, rules=rules)
    errors: dict[str, str] = {}
    body = None
    try:
        parsed = json.loads(rules) if rules.strip() else None
        if isinstance(parsed, dict):
            parsed = [parsed]
        if not isinstance(parsed, list) or not all(isinstance(r, dict) for r in parsed):
            raise ValueError
    except ValueError:
        errors["rules"] = "project.err.rules_json"
        parsed = None
    try:
        body = ProjectCreate(title=title.strip(), programme=programme.strip(), certificate=certificate.strip(),
                             level=level.strip(), mode=mode, discipline=discipline.strip(), description=description,
                             rules=parsed or [])
    except ValidationError as exc:
        for name, key in _validation_errors(exc, PROJECT_FIELDS, "project").items():
            errors.setdefault(name, key)
    if evidence is None or not evidence.filename:
        errors.setdefault("evidence", "project.err.evidence_missing")
    if errors or body is None:
        return _project_form(request, errors, values, status=400)
    try:
        project = api.apply_for_project(body=body, session=session, me=me)
        api.upload_project_evidence(project_id=project.id, file=evidence, response=Response(), ctx=ctx,
                                    session=session, me=me)
        project = api.read_project(project_id=project.id, session=session, who=me)
        api.submit_project(project_id=project.id, body=VersionOnly(version=project.version), session=session, me=me)
    except NodeError as exc:
        session.rollback()
        field = "evidence" if exc.code.startswith(("evidence", "unsupported", "payload")) else (
            "rules" if exc.code == "project_invalid" else "")
        return _project_form(request, {field: _error_key(request, exc, "project")}, values, status=exc.status_code)
    return redirect(request, f"/projects/{project.id}?done=submitted")


# -- the expert -------------------------------------------------------------------------------------


@router.get("/projects/reviews", response_class=HTMLResponse)
def reviews_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, EXPERT)
    rows = api.my_panel_projects(session=session, me=me, state=None)
    return render(request, "projects/list.html", title="project.reviews_title", projects=rows, base="/projects",
                  can_apply=False)


# -- RPL: assessors and the centre (before /projects/{id}) --------------------------------------------


@router.get("/projects/rpl", response_class=HTMLResponse)
def rpl_queue_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, RPL_STAFF)
    state = request.query_params.get("state") or None
    if state not in (None, "submitted", "assessed", "confirmed", "rejected"):
        state = None
    rows = rpl_api.rpl_queue(session=session, who=me, state=state)
    return render(request, "projects/rpl_list.html", title="rpl.queue_title", applications=rows, staff=True,
                  state=state)


def _rpl_staff_page(request: Request, session: Any, me: Principal, app_id: int, *, errors: dict | None = None,
                    values: dict | None = None, status: int = 200) -> HTMLResponse:
    app = rpl_api.read_rpl(app_id=app_id, session=session, who=me)
    return render(request, "projects/rpl_detail.html", status=status, title="rpl.detail_title", app=app, staff=True,
                  roles=set(me.roles), errors=errors or {}, values=values or {},
                  done=request.query_params.get("done"))


@router.get("/projects/rpl/{app_id}", response_class=HTMLResponse)
def rpl_staff_detail(app_id: Int64, request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, RPL_STAFF)
    return _rpl_staff_page(request, session, me, app_id)


@router.post("/projects/rpl/{app_id}", response_class=HTMLResponse)
def rpl_staff_action(app_id: Int64, request: Request, session: SessionDep, action: Text = "", version: Text = "",
                     programme: Text = "", course: Text = "", credits: Text = "", comment: Text = "",
                     reason: Text = "", csrf: Text = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    values = dict(programme=programme, course=course, credits=credits, comment=comment, reason=reason)
    roles = frozenset({Role.ASSESSOR}) if action == "assess" else frozenset({Role.CENTRE_REVIEWER})
    me = _who(request, session, roles)
    number = int(version) if version.isdigit() and len(version) < 12 else -1
    try:
        if action == "assess":
            body: Any = Assessment(programme=programme.strip(), course=course.strip(), credits=credits.strip() or None,
                                   comment=comment.strip(), version=number)
            rpl_api.assess_rpl(app_id=app_id, body=body, session=session, me=me)
        else:
            body = Decision(decision=action, reason=reason.strip() or None, version=number)
            rpl_api.decide_rpl(app_id=app_id, body=body, session=session, me=me)
    except ValidationError as exc:
        errors = _validation_errors(exc, ("programme", "course", "credits", "comment", "decision", "reason"), "rpl")
        return _rpl_staff_page(request, session, me, app_id, errors=errors, values=values, status=400)
    except NodeError as exc:
        session.rollback()
        field = {"rpl_standard_unknown": "course", "rpl_credits_invalid": "credits", "reason_required": "reason"}.get(
            exc.code, "")
        return _rpl_staff_page(request, session, me, app_id, errors={field: _error_key(request, exc, "rpl")},
                               values=values, status=exc.status_code)
    return redirect(request, f"/projects/rpl/{app_id}?done={action}")


# -- a project's page (institution, panel, centre) ----------------------------------------------------


def _project_page(request: Request, session: Any, me: Principal, project_id: int, *, centre: bool,
                  errors: dict | None = None, values: dict | None = None, status: int = 200) -> HTMLResponse:
    project = api.read_project(project_id=project_id, session=session, who=me)
    reports = api.list_exemption_reports(project_id=project_id, session=session, who=me) \
        if centre and project.state in ("published", "suspended", "ended") else []
    experts = projects_service.experts(session) if centre and project.state == "submitted" else []
    voted = any(v.expert == me.id for v in project.votes)
    names = projects_service.staff_names(session, project.panel)
    return render(request, "projects/detail.html", status=status, title="project.detail_title", project=project,
                  names=names,
                  centre=centre, roles=set(me.roles), me_id=me.id, voted=voted, reports=reports, experts=experts,
                  errors=errors or {}, values=values or {}, done=request.query_params.get("done"))


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project_page(project_id: Int64, request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, INSTITUTION | EXPERT | CENTRE)
    return _project_page(request, session, me, project_id, centre=False)


@router.post("/projects/{project_id}/vote", response_class=HTMLResponse)
def vote_submit(project_id: Int64, request: Request, session: SessionDep, vote: Text = "", comment: Text = "",
                csrf: Text = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _who(request, session, EXPERT)
    values = {"vote": vote, "comment": comment}
    try:
        body = VoteCreate(vote=vote, comment=comment.strip())
        api.vote_on_project(project_id=project_id, body=body, session=session, me=me)
    except ValidationError as exc:
        errors = _validation_errors(exc, ("vote", "comment"), "project")
        return _project_page(request, session, me, project_id, centre=False, errors=errors, values=values,
                             status=400)
    except NodeError as exc:
        session.rollback()
        return _project_page(request, session, me, project_id, centre=False,
                             errors={"": _error_key(request, exc, "project")}, values=values,
                             status=exc.status_code)
    return redirect(request, f"/projects/{project_id}?done=voted")


# -- the centre -------------------------------------------------------------------------------------


@router.get("/centre/projects", response_class=HTMLResponse)
def centre_projects_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, CENTRE)
    state = request.query_params.get("state") or None
    if state is not None and state not in PROJECT_STATES:
        state = None
    rows = api.all_projects(session=session, who=me, state=state)
    return render(request, "projects/list.html", title="project.centre_title", projects=rows,
                  base="/centre/projects", can_apply=False, state=state)


@router.get("/centre/projects/{project_id}", response_class=HTMLResponse)
def centre_project_page(project_id: Int64, request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, CENTRE)
    return _project_page(request, session, me, project_id, centre=True)


_ACTIONS = {"publish": api.publish_project, "activate": api.activate_project, "reinstate": api.reinstate_project,
            "reject": api.reject_project, "suspend": api.suspend_project, "end": api.end_project}


@router.post("/centre/projects/{project_id}", response_class=HTMLResponse)
def centre_project_action(project_id: Int64, request: Request, ctx: CtxDep, session: SessionDep, action: Text = "",
                          version: Text = "", reason: Text = "", csrf: Text = "",
                          experts: Annotated[list[str] | None, Form()] = None) -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _who(request, session, frozenset({Role.STANDARDS_ADMIN}))
    number = int(version) if version.isdigit() and len(version) < 12 else -1
    values = {"reason": reason, "experts": experts or [], "action": action}
    try:
        if action == "panel":
            ids = [int(e) for e in experts or [] if e.isdigit() and len(e) < 12]
            api.assign_panel(project_id=project_id, body=PanelAssign(experts=ids, version=number), session=session,
                             admin=me)
        elif action == "report":
            api.report_exemptions(project_id=project_id, ctx=ctx, session=session, admin=me)
        elif action in ("reject", "suspend", "end"):
            _ACTIONS[action](project_id=project_id, body=Reason(reason=reason.strip(), version=number),
                             session=session, admin=me)
        elif action in _ACTIONS:
            _ACTIONS[action](project_id=project_id, body=VersionOnly(version=number), session=session, admin=me)
        else:
            return _project_page(request, session, me, project_id, centre=True,
                                 errors={"": "project.err.form"}, status=400)
    except ValidationError as exc:
        errors = _validation_errors(exc, ("reason", "experts"), "project")
        return _project_page(request, session, me, project_id, centre=True, errors=errors, values=values, status=400)
    except NodeError as exc:
        session.rollback()
        field = "experts" if exc.code == "project_panel_invalid" else ""
        return _project_page(request, session, me, project_id, centre=True,
                             errors={field: _error_key(request, exc, "project")}, values=values,
                             status=exc.status_code)
    return redirect(request, f"/centre/projects/{project_id}?done={action}")


@router.get("/centre/projects/{project_id}/reports/{report_id}.json")
def centre_report_download(project_id: Int64, report_id: Int64, request: Request, session: SessionDep) -> Response:
    """The signed exemption list as issued, to hand to the appraisal centre."""
    me = _who(request, session, CENTRE)
    document = api.read_exemption_report(project_id=project_id, report_id=report_id, session=session, who=me)
    return JSONResponse(document, headers={
        "Content-Disposition": f'attachment; filename="exemption-report-{project_id}-{report_id}.json"',
        "Cache-Control": "no-store"})


# -- RPL: the learner -------------------------------------------------------------------------------


@router.get("/me/rpl", response_class=HTMLResponse)
def my_rpl_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, LEARNER)
    rows = rpl_api.my_rpl_applications(session=session, me=me)
    return render(request, "projects/rpl_list.html", title="rpl.mine_title", applications=rows, staff=False,
                  state=None)


def _rpl_form(request: Request, errors: dict[str, str], values: dict, status: int = 200) -> HTMLResponse:
    return render(request, "projects/rpl_new.html", status=status, title="rpl.new_title", errors=errors,
                  values=values)


@router.get("/me/rpl/new", response_class=HTMLResponse)
def new_rpl_page(request: Request, session: SessionDep) -> HTMLResponse:
    _who(request, session, LEARNER)
    return _rpl_form(request, {}, {"kind": "work_based"})


@router.post("/me/rpl/new", response_class=HTMLResponse)
def new_rpl_submit(request: Request, ctx: CtxDep, session: SessionDep, kind: Text = "", title: Text = "",
                   description: Text = "", employer: Text = "", hours: Text = "", started_on: Text = "",
                   ended_on: Text = "", csrf: Text = "",
                   evidence: Annotated[UploadFile | None, File()] = None) -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _who(request, session, LEARNER)
    values = dict(kind=kind, title=title, description=description, employer=employer, hours=hours,
                  started_on=started_on, ended_on=ended_on)
    errors: dict[str, str] = {}
    body = None
    try:
        body = RplCreate(**{k: v.strip() for k, v in values.items() if v and v.strip()})
    except ValidationError as exc:
        errors = _validation_errors(exc, RPL_FIELDS, "rpl")
        if "" in errors and kind == "work_based" and not employer.strip():
            errors = {k: v for k, v in errors.items() if k} | {"employer": "rpl.err.field_employer"}
    if evidence is None or not evidence.filename:
        errors.setdefault("evidence", "rpl.err.evidence_missing")
    if errors or body is None:
        return _rpl_form(request, errors, values, status=400)
    try:
        app = rpl_api.apply_for_rpl(body=body, session=session, me=me)
        rpl_api.upload_rpl_evidence(app_id=app.id, file=evidence, response=Response(), ctx=ctx, session=session,
                                    me=me)
        app = rpl_api.my_rpl_application(app_id=app.id, session=session, me=me)
        rpl_api.submit_rpl(app_id=app.id, body=RplVersion(version=app.version), session=session, me=me)
    except NodeError as exc:
        session.rollback()
        field = "evidence" if exc.code.startswith(("evidence", "unsupported", "payload")) else ""
        return _rpl_form(request, {field: _error_key(request, exc, "rpl")}, values, status=exc.status_code)
    return redirect(request, f"/me/rpl/{app.id}?done=submitted")


@router.get("/me/rpl/{app_id}", response_class=HTMLResponse)
def my_rpl_detail(app_id: Int64, request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, LEARNER)
    app = rpl_api.my_rpl_application(app_id=app_id, session=session, me=me)
    return render(request, "projects/rpl_detail.html", title="rpl.detail_title", app=app, staff=False,
                  roles=set(me.roles), errors={}, values={}, done=request.query_params.get("done"))
