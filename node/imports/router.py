"""HTTP: upload a bulk-deposit file (a background job imports it), follow the job, download its report.

An institution's uploaders (people or API keys) deposit for their own institution and see only its jobs;
centre staff (node_admin, centre_reviewer) name the institution and see every job. Creating, resuming and
downloading a report are audited; so are refusals.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse
from sqlmodel import Session, select

from node.audit.service import record
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.errors import BadRequest, Conflict, NodeError, NotFound
from node.imports.schemas import ImportJobPublic
from node.imports.results import progress_of, report_csv, report_expired, time_left
from node.imports.service import create_job, discard_upload, institution_for, store_upload
from node.imports.worker import EXTRA_KEY, ImportWorker, worker_of
from node.models import ImportJob, Organisation
from node.roles import Role
from node.models.types import Int64

__all__ = ["router"]


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx = app.state.ctx
    worker = ImportWorker(ctx)
    ctx.extras[EXTRA_KEY] = worker
    worker.start()
    try:
        yield
    finally:
        worker.stop()
        ctx.extras.pop(EXTRA_KEY, None)


router = APIRouter(prefix="/api/v1/imports", tags=["imports"], lifespan=_lifespan)

_CENTRE = frozenset({Role.NODE_ADMIN, Role.CENTRE_REVIEWER})


class ReportExpired(NodeError):
    status_code = 410
    code = "report_expired"


Uploader = Annotated[Principal, Depends(require_roles(Role.INSTITUTION_UPLOADER, *_CENTRE))]
Reader = Annotated[Principal, Depends(require_roles(Role.INSTITUTION_UPLOADER, Role.AUDITOR, *_CENTRE))]


def _public(session: Session, job: ImportJob) -> ImportJobPublic:
    org = session.get(Organisation, job.organisation_id)
    total, percent = progress_of(job)
    return ImportJobPublic(
        id=job.id, institution_code=org.code if org else "", filename=job.filename, format=job.format,
        encoding=job.encoding, status=job.status, rows_read=job.rows_read, deposited=job.deposited,
        updated=job.updated, duplicates=job.duplicates, rejected=job.rejected, rows_committed=job.rows_committed,
        total_rows=total, percent=percent, seconds_left=time_left(job), learners_created=job.learners_created,
        error=job.error, created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        report_url=f"/api/v1/imports/{job.id}/report",
    )


def _visible_job(session: Session, principal: Principal, job_id: str) -> ImportJob:
    """A job the principal may see; another institution's job is reported as absent."""
    job = session.get(ImportJob, job_id)
    if job is None:
        raise NotFound("no such import job")
    if not principal.has_any(_CENTRE | {Role.AUDITOR}) and job.organisation_id != principal.organisation_id:
        record(session, actor=principal, action="import.read", outcome="denied", target_type="import_job",
               target_id=job_id, detail={"reason": "another institution's job"})
        session.commit()
        raise NotFound("no such import job")
    return job


@router.post("", response_model=ImportJobPublic, status_code=202)
def upload(
    ctx: CtxDep,
    session: SessionDep,
    principal: Uploader,
    file: Annotated[UploadFile, File(description="Shanghai template (CSV or XLSX) or JSON Lines")],
    format_: Annotated[str | None, Form(alias="format", description="shanghai-csv | shanghai-xlsx | jsonl; "
                                                                      "default: by file extension")] = None,
    institution_code: Annotated[str | None, Form(max_length=32)] = None,
) -> ImportJobPublic:
    """Upload a bulk-deposit file for an institution (the uploader's own; centre staff name it by
    `institution_code`); a background job imports it (202, the job). Audited, refusals too."""
    filename = file.filename or "upload"
    try:
        institution = institution_for(session, principal=principal, institution_code=institution_code)
        sha, path = store_upload(ctx, file.file, filename)
        try:
            job = create_job(session, ctx, institution=institution, path=path, sha256=sha, filename=filename,
                             requested_format=format_, actor=principal)
        except BaseException:
            discard_upload(path)
            raise
    except NodeError as exc:
        session.rollback()
        record(session, actor=principal, action="import.create",
               outcome="denied" if exc.status_code == 403 else "failed",
               detail={"code": exc.code, "institution": institution_code, "filename": filename[:100]})
        session.commit()
        raise
    # The job must be visible to the worker before it is handed over: this request's boundary comes early.
    session.commit()
    worker_of(ctx).submit(job.id)
    session.refresh(job)
    return _public(session, job)


@router.get("", response_model=list[ImportJobPublic])
def list_jobs(session: SessionDep, principal: Reader, limit: Int64 = 50,
              after: Annotated[str | None, Query(max_length=36, description="the id of the previous page's last "
                                                                            "job (keyset paging)")] = None,
              ) -> list[ImportJobPublic]:
    """Import jobs, newest first (`limit` at most 500): an institution's uploaders see only their
    institution's, centre staff and auditors every job. `after`: the next page, after that job."""
    stmt = select(ImportJob).order_by(ImportJob.created_at.desc(), ImportJob.id.desc())  # type: ignore[attr-defined]
    if not principal.has_any(_CENTRE | {Role.AUDITOR}):
        stmt = stmt.where(ImportJob.organisation_id == principal.organisation_id)
    if after is not None:
        last = session.get(ImportJob, after)
        if last is None or (not principal.has_any(_CENTRE | {Role.AUDITOR})
                            and last.organisation_id != principal.organisation_id):
            raise BadRequest("`after` names no import job", code="invalid_query")
        stmt = stmt.where(sa.or_(ImportJob.created_at < last.created_at,
                                 sa.and_(ImportJob.created_at == last.created_at, ImportJob.id < last.id)))
    return [_public(session, job) for job in session.exec(stmt.limit(max(1, min(limit, 500))))]


@router.get("/{job_id}", response_model=ImportJobPublic)
def job_status(job_id: str, session: SessionDep, principal: Reader) -> ImportJobPublic:
    """One import job's status and progress; another institution's job is reported as missing (the
    denial audited)."""
    return _public(session, _visible_job(session, principal, job_id))


@router.post("/{job_id}/resume", response_model=ImportJobPublic, status_code=202)
def resume(job_id: str, ctx: CtxDep, session: SessionDep, principal: Uploader) -> ImportJobPublic:
    """Run a failed job again: it skips the rows its committed batches hold."""
    job = _visible_job(session, principal, job_id)
    if job.status != "failed":
        raise Conflict(f"only a failed job can be resumed; this one is {job.status}", code="illegal_transition")
    record(session, actor=principal, action="import.resume", target_type="import_job", target_id=job.id,
           detail={"rows_committed": job.rows_committed})
    session.commit()
    worker_of(ctx).submit(job.id)
    session.refresh(job)
    return _public(session, job)


@router.get("/{job_id}/report")
def report(job_id: str, ctx: CtxDep, session: SessionDep, principal: Reader) -> StreamingResponse:
    """The rejected rows as CSV: row, column, value, reason (ID numbers and names masked, cells that a
    spreadsheet would evaluate neutralised). 410 `report_expired` once the retention period has passed."""
    job = _visible_job(session, principal, job_id)
    if report_expired(ctx, job):
        raise ReportExpired(f"the report of this job was deleted {ctx.settings.imports.report_retention_days} days after "
                   "the job ended", code="report_expired")
    record(session, actor=principal, action="import.report", target_type="import_job", target_id=job.id,
           detail={"rejected": job.rejected})
    session.commit()

    def lines() -> Iterator[bytes]:
        buf = io.StringIO()
        buf.write("\ufeff")  # BOM: spreadsheet programs then read UTF-8
        for _ in report_csv(ctx, job.id, buf):
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="import-{job.id}-report.csv"'})
