"""The exemption report to the skills appraisal centre on a schedule (docs/projects.md): every published or
suspended 双证融通 project gets its signed list once per period (`projects.report_period`: week, month,
quarter), for the period just ended, by the job `projects.report_exemptions`.

Once across workers and runs: each project's row is claimed (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite
writers are serial) in a transaction of its own, the report is issued only if none exists for (project,
period), and the unique key (project_id, period) refuses a second one whatever happens."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from node.db import is_sqlite, session_scope
from node.deps import Principal
from node.models.projects import DcExemptionReport, DcProject

__all__ = ["SCHEDULER", "issue_scheduled_reports", "last_period"]

SCHEDULER = Principal(kind="system", id=0, name="projects.report_exemptions", roles=())
_REPORTED_STATES = ("published", "suspended")


def last_period(today: dt.date, period: str) -> str:
    """The label of the period before the one `today` is in: `2026-W48`, `2026-11`, `2026-Q3`."""
    if period == "week":
        year, week, _ = (today - dt.timedelta(days=7)).isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        first = today.replace(day=1) - dt.timedelta(days=1)
        return f"{first.year}-{first.month:02d}"
    if period == "quarter":
        quarter = (today.month - 1) // 3  # 0..3: the current one; the last one is quarter-1
        year = today.year if quarter else today.year - 1
        return f"{year}-Q{quarter if quarter else 4}"
    raise ValueError(f"unknown report period {period!r}")


def issue_scheduled_reports(ctx: Any, *, today: dt.date | None = None) -> dict:
    """Issue the last period's report of every project that has none yet. Returns what it did."""
    from node.projects.report import issue_report

    period = ctx.settings.projects.report_period
    if period == "off":
        return {"skipped": "projects.report_period is off"}
    label = last_period(today or dt.date.today(), period)
    with session_scope(ctx.engine) as session:
        ids = list(session.execute(sa.select(DcProject.id).where(DcProject.state.in_(_REPORTED_STATES))
                                   .order_by(DcProject.id)).scalars())
    issued, skipped = [], 0
    for project_id in ids:
        with session_scope(ctx.engine) as session:
            stmt = select(DcProject).where(DcProject.id == project_id, DcProject.state.in_(_REPORTED_STATES))
            if not is_sqlite(session.get_bind()):
                stmt = stmt.with_for_update(skip_locked=True)
            project = session.exec(stmt).first()
            if project is None:  # another worker holds it, or it changed state meanwhile
                skipped += 1
                continue
            done = session.execute(sa.select(DcExemptionReport.id).where(
                DcExemptionReport.project_id == project_id, DcExemptionReport.period == label)).first()
            if done is not None:
                continue
            report = issue_report(session, ctx, project=project, admin=SCHEDULER, period=label)
            report.created_by = SCHEDULER.name
            session.add(report)
            issued.append(report.id)
    return {"period": label, "issued": len(issued), "reports": issued, "skipped": skipped}
