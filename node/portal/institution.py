"""Pages for institutions (issue 15, item 3): upload a bulk-deposit file (CSV, XLSX or JSON Lines), watch its
progress (rows read, deposited, rejected, percent, time left), download the rejected-row report, and the history
of the institution's imports (keyset paging).

Every page calls the API's own route function (node.imports.router: upload, list_jobs, job_status, report), so an
uploader sees only their institution's jobs and every upload and report download is audited as the API audits it.

Progress without JavaScript: the page refreshes itself (`<meta http-equiv="refresh">`, which the page CSP does not
govern: it is a navigation, not a script) while the job is queued or running. With JavaScript, a small file
(static/institution-progress.js, `script-src 'self'` on this page only) reads `status.json` every second and
updates the numbers in place, then reloads the page once the job has ended."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError
from node.imports.formats import FORMATS
from node.imports.router import job_status, list_jobs, report, upload
from node.portal.staff import error_key
from node.portal.web import PAGE_CSP, check_csrf, page_principal, redirect, render
from node.roles import Role

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])

# The API's roles (node.imports.router): uploaders of the institution, and the centre's staff, who name it.
CENTRE = frozenset({Role.NODE_ADMIN, Role.CENTRE_REVIEWER})
UPLOADERS = frozenset({Role.INSTITUTION_UPLOADER}) | CENTRE
READERS = UPLOADERS | {Role.AUDITOR}
PAGE_SIZE = 20
REFRESH_SECONDS = 2
# This page alone runs one script file of the node's own (and reads status.json from the node).
PROGRESS_CSP = PAGE_CSP + "; script-src 'self'; connect-src 'self'"


def _who(request: Request, session, roles: frozenset[str]) -> Principal:
    principal = page_principal(request, session, roles=roles)
    assert principal is not None
    return principal


def _job_id(job_id: str) -> str:
    return job_id if len(job_id) <= 36 else ""


@router.get("/institution", response_class=HTMLResponse)
def institution_home(request: Request, session: SessionDep) -> Response:
    _who(request, session, READERS)
    return redirect(request, "/institution/imports")


@router.get("/institution/imports", response_class=HTMLResponse)
def imports_page(request: Request, session: SessionDep, after: str = "") -> HTMLResponse:
    """The history of the institution's imports, newest first, PAGE_SIZE at a time."""
    me = _who(request, session, READERS)
    jobs = list_jobs(session=session, principal=me, limit=PAGE_SIZE + 1, after=_job_id(after) or None)
    more = len(jobs) > PAGE_SIZE
    jobs = jobs[:PAGE_SIZE]
    return render(request, "institution/imports.html", title="inst.history_title", jobs=jobs,
                  next_after=jobs[-1].id if more and jobs else None, paged=bool(after),
                  can_upload=me.has_any(UPLOADERS))


def _upload_form(request: Request, me: Principal, errors: dict[str, str], values: dict,
                 status: int = 200) -> HTMLResponse:
    return render(request, "institution/upload.html", status=status, title="inst.upload_title", errors=errors,
                  values=values, formats=sorted(FORMATS), names_institution=not me.has_any(
                      frozenset({Role.INSTITUTION_UPLOADER})))


@router.get("/institution/imports/new", response_class=HTMLResponse)
def upload_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = _who(request, session, UPLOADERS)
    return _upload_form(request, me, {}, {"format": ""})


@router.post("/institution/imports/new", response_class=HTMLResponse)
def upload_submit(request: Request, ctx: CtxDep, session: SessionDep, format: Annotated[str, Form()] = "",
                  institution_code: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
                  file: Annotated[UploadFile | None, File()] = None) -> Response:
    """Hand the file to the API's upload (stored, a background job created, audited), then show its progress."""
    check_csrf(request, {"csrf": csrf})
    me = _who(request, session, UPLOADERS)
    values = {"format": format, "institution_code": institution_code}
    errors: dict[str, str] = {}
    if file is None or not file.filename:
        errors["file"] = "inst.err.file_missing"
    if format and format not in FORMATS:
        errors["format"] = "inst.err.format"
    if len(institution_code) > 32:
        errors["institution_code"] = "inst.err.institution"
    if errors:
        return _upload_form(request, me, errors, values, status=400)
    try:
        job = upload(ctx=ctx, session=session, principal=me, file=file, format_=format or None,
                     institution_code=institution_code.strip() or None)
    except NodeError as exc:
        field = {"unknown_format": "format", "unreadable_file": "file", "upload_missing": "file",
                 "payload_too_large": "file", "unknown_institution": "institution_code",
                 "organisation_required": "institution_code"}.get(exc.code, "")
        return _upload_form(request, me, {field: error_key(request, exc.code)}, values, status=exc.status_code)
    return redirect(request, f"/institution/imports/{job.id}")


@router.get("/institution/imports/{job_id}", response_class=HTMLResponse)
def progress_page(job_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    """One job's progress; refreshes itself while the job is queued or running."""
    me = _who(request, session, READERS)
    job = job_status(job_id=_job_id(job_id), session=session, principal=me)
    running = job.status in ("queued", "running")
    response = render(request, "institution/progress.html", title="inst.progress_title", job=job,
                      running=running, refresh=REFRESH_SECONDS)
    if running:
        response.headers["Content-Security-Policy"] = PROGRESS_CSP
    return response


@router.get("/institution/imports/{job_id}/status.json")
def progress_json(job_id: str, request: Request, session: SessionDep) -> Response:
    """The API's job status (GET /api/v1/imports/{id}) for the page's script, with the session cookie."""
    me = _who(request, session, READERS)
    job = job_status(job_id=_job_id(job_id), session=session, principal=me)
    return JSONResponse(job.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.get("/institution/imports/{job_id}/report.csv")
def report_download(job_id: str, request: Request, ctx: CtxDep, session: SessionDep) -> Response:
    """The rejected rows as CSV (the API's report: masked, audited)."""
    me = _who(request, session, READERS)
    return report(job_id=_job_id(job_id), ctx=ctx, session=session, principal=me)
