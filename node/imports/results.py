"""After an import job: its rejected-row report (as a formula-safe CSV), its progress, and retention — reports
deleted `report_retention_days` after the job ended, failed jobs' uploads after `failed_upload_retention_days`
(`imports.purge`). See docs/imports.md, "The report", "Stored files" and "Progress"."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sqlmodel import Session

from node.context import NodeContext
from node.db import session_scope
from node.imports import repository as repo
from node.imports.service import discard_upload
from node.models import ImportJob, utcnow
from node.security.spreadsheet import csv_writer

__all__ = ["progress_of", "purge", "report_csv", "report_expired", "report_rows", "time_left", "write_report"]


def report_rows(ctx: NodeContext, job_id: str, *, chunk: int = 5000) -> Iterator[tuple[int, str, str, str]]:
    """The rejected rows of a job, in file order, read in chunks (the report can be large)."""
    last = (0, 0)
    while True:
        with Session(ctx.engine) as session:
            rows = repo.row_errors_after(session, job_id, after=last, limit=chunk)
        if not rows:
            return
        for row in rows:
            yield row.row_no, row.column, row.value, row.reason
        last = (rows[-1].row_no, rows[-1].id)


def report_csv(ctx: NodeContext, job_id: str, out: IO[str]) -> Iterator[int]:
    """Write the report as CSV to `out` (header row, then the rows in file order), every cell through
    `node.security.spreadsheet` (no formula injection); yields the number of rows written each time about
    64 KiB have been written, and at the end, so that a caller can stream `out` on."""
    writer = csv_writer(out)
    writer.writerow(["row", "column", "value", "reason"])
    n = 0
    mark = out.tell()
    for n, row in enumerate(report_rows(ctx, job_id), start=1):
        writer.writerow(row)
        if out.tell() - mark > 1 << 16:
            yield n
            mark = out.tell()  # the caller may have drained `out`
    yield n


def write_report(ctx: NodeContext, job_id: str, target: Path | IO[str]) -> int:
    """Write the report as CSV (UTF-8 with BOM, so spreadsheet programs read the Chinese headers)."""
    def write(fh: IO[str]) -> int:
        n = 0
        for n in report_csv(ctx, job_id, fh):
            pass
        return n

    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8-sig", newline="") as fh:
            return write(fh)
    return write(target)


def progress_of(job: ImportJob) -> tuple[int | None, float | None]:
    """(total rows, percentage read): the count taken at upload until the job is done, then rows_read."""
    if job.status == "done":
        return job.rows_read, 100.0
    total = job.total_rows
    if not total:
        return total, None
    return max(total, job.rows_read), round(min(100.0, 100.0 * job.rows_read / total), 1)


def time_left(job: ImportJob, *, now: dt.datetime | None = None) -> int | None:
    """Seconds until a running job has read its file, at the rate it has read so far (0 once done; None while
    queued, failed, or before the first rows are read, when there is no rate to go by)."""
    if job.status == "done":
        return 0
    if job.status != "running" or job.started_at is None or not job.total_rows or job.rows_read <= 0:
        return None
    started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=dt.UTC)
    elapsed = ((now or utcnow()) - started).total_seconds()
    if elapsed <= 0:
        return None
    remaining = max(0, job.total_rows - job.rows_read)
    return int(round(remaining * elapsed / job.rows_read))


def report_expired(ctx: NodeContext, job: ImportJob) -> bool:
    """Whether the job's report has passed its retention (`imports.report_retention_days` after its end)."""
    if job.finished_at is None:
        return False
    finished = job.finished_at if job.finished_at.tzinfo else job.finished_at.replace(tzinfo=dt.UTC)
    return finished < utcnow() - dt.timedelta(days=ctx.settings.imports.report_retention_days)


def purge(ctx: NodeContext, *, now: dt.datetime | None = None) -> dict[str, int]:
    """`imports.purge`: delete the rejected-row reports of jobs that ended more than
    `report_retention_days` ago, and the stored uploads of failed jobs idle for `failed_upload_retention_days`
    (such a job can no longer be resumed: upload it again). Idempotent; safe in several processes."""
    now = now or utcnow()
    limits = ctx.settings.imports
    with session_scope(ctx.engine) as session:
        reports = repo.purge_reports(session, ended_before=now - dt.timedelta(days=limits.report_retention_days))
        stale = repo.failed_uploads(session,
                                    idle_before=now - dt.timedelta(days=limits.failed_upload_retention_days))
    uploads = 0
    for path in stale:
        if Path(path).is_file():
            discard_upload(Path(path))
            uploads += 1
    return {"report_rows": reports, "uploads": uploads}
