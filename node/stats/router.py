"""Statistics over HTTP: the centre's report (auditors and node administrators; every read audited), its
exports, a refresh of the counters, and the public report (anyone; small groups suppressed)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from node.audit.service import record
from node.deps import CtxDep, Principal, SessionDep, public, require_roles
from node.models import utcnow
from node.roles import Role
from node.stats import counting
from node.stats.export import report_csv, report_xlsx
from node.stats.metrics import REPORT_TZ
from node.stats.service import Report, centre_report, check_range, public_report

__all__ = ["EXPORT_ACTION", "READ_ACTION", "READ_ROLES", "REFRESH_ACTION", "router"]

router = APIRouter(tags=["statistics"])
READ_ROLES = (Role.AUDITOR, Role.NODE_ADMIN)
READ_ACTION, EXPORT_ACTION, REFRESH_ACTION = "stats.read", "stats.export", "stats.refresh"  # audit actions
Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
Admin = Annotated[Principal, Depends(require_roles(Role.NODE_ADMIN))]
FromQ = Annotated[dt.date | None, Query(alias="from", description="first day, inclusive (default: 1 January)")]
ToQ = Annotated[dt.date | None, Query(description="last day, inclusive (default: today)")]
LangQ = Annotated[Literal["zh", "en"], Query(description="language of the export's texts")]


class TablePublic(BaseModel):
    key: str
    columns: list[str]
    labels: int
    rows: list[list[Any]]
    total: list[Any] | None


class ReportPublic(BaseModel):
    from_: dt.date = Field(serialization_alias="from")
    to: dt.date
    public: bool
    min_group: int | None
    counted_to: int
    ledger_size: int
    counted_at: dt.datetime | None
    tables: list[TablePublic]


class RefreshResult(BaseModel):
    counted: int
    more: bool = False
    skipped: str | None = None


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def report_public(report: Report) -> ReportPublic:
    return ReportPublic(
        from_=report.start, to=report.end, public=report.public, min_group=report.min_group,
        counted_to=report.counted_to, ledger_size=report.ledger_size, counted_at=report.counted_at,
        tables=[TablePublic(key=t.key, columns=t.columns, labels=t.labels,
                            rows=[[_plain(v) for v in r] for r in t.rows],
                            total=[_plain(v) for v in t.total] if t.total else None) for t in report.tables])


def _today() -> dt.date:
    return dt.datetime.now(REPORT_TZ).date()


def _file(report: Report, fmt: str, lang: str, ctx: Any, name: str) -> Response:
    region = ctx.settings.region
    label = region.name_zh if lang == "zh" else region.name_en
    stem = f"{name}-{report.start.isoformat()}-{report.end.isoformat()}"
    if fmt == "csv":
        return Response(report_csv(report, lang=lang, region=label, now=utcnow()), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})
    return Response(report_xlsx(report, lang=lang, region=label, now=utcnow()),
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'})


@router.get("/api/v1/admin/statistics", response_model=ReportPublic)
def read_statistics(session: SessionDep, reader: Reader, from_: FromQ = None, to: ToQ = None) -> ReportPublic:
    """The centre's figures over [from, to] (local days, China Standard Time), exact. Read from summary
    counters; `counted_to` of `ledger_size` ledger events are counted (the `stats.refresh` job)."""
    start, end = check_range(from_, to, today=_today())
    report = centre_report(session, start, end)
    record(session, actor=reader, action=READ_ACTION, target_type="statistics",
           detail={"from": start.isoformat(), "to": end.isoformat()})
    return report_public(report)


@router.get("/api/v1/admin/statistics/export.{fmt}")
def export_statistics(session: SessionDep, ctx: CtxDep, reader: Reader, fmt: Literal["csv", "xlsx"],
                      from_: FromQ = None, to: ToQ = None, lang: LangQ = "zh") -> Response:
    """The report to the education commission: a header block (region, period, generated at), then each table
    (CSV), or one sheet per table (XLSX)."""
    start, end = check_range(from_, to, today=_today())
    report = centre_report(session, start, end)
    record(session, actor=reader, action=EXPORT_ACTION, target_type="statistics",
           detail={"from": start.isoformat(), "to": end.isoformat(), "format": fmt})
    return _file(report, fmt, lang, ctx, "statistics")


@router.post("/api/v1/admin/statistics/refresh", response_model=RefreshResult)
def refresh_statistics(session: SessionDep, ctx: CtxDep, admin: Admin) -> RefreshResult:
    """Count ledger events not yet counted, now (at most 100,000 per call; `more` says whether some are left —
    the `stats.refresh` job does the same on a schedule)."""
    result = counting.refresh(ctx.engine, max_chunks=5)
    record(session, actor=admin, action=REFRESH_ACTION, target_type="statistics", detail=result)
    return RefreshResult(counted=result.get("counted", 0), more=bool(result.get("more")),
                         skipped=result.get("skipped"))


@router.get("/api/v1/statistics", response_model=ReportPublic,
            dependencies=[Depends(public)])
def read_public_statistics(session: SessionDep, ctx: CtxDep, from_: FromQ = None, to: ToQ = None) -> ReportPublic:
    """The public figures: whole months (the range is widened to the months it touches), counts only; no group
    below `stats.public_min_group` is shown, nor any figure that would give one back (docs/statistics.md)."""
    start, end = check_range(from_, to, today=_today())
    return report_public(public_report(session, start, end, k=ctx.settings.stats.public_min_group))


@router.get("/api/v1/statistics/export.{fmt}", dependencies=[Depends(public)])
def export_public_statistics(session: SessionDep, ctx: CtxDep, fmt: Literal["csv", "xlsx"], from_: FromQ = None,
                             to: ToQ = None, lang: LangQ = "zh") -> Response:
    """The public figures as a file: the same header block and tables as the centre's export, whole months,
    small groups suppressed."""
    start, end = check_range(from_, to, today=_today())
    report = public_report(session, start, end, k=ctx.settings.stats.public_min_group)
    return _file(report, fmt, lang, ctx, "statistics-public")
