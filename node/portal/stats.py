"""Statistics pages (issue 16, item 1): the centre's report at `/centre/statistics` (auditors, node
administrators; exact figures over any range of days, exports, a refresh of the counters) and the public report at
`/statistics` (whole months, small groups suppressed). Both call node.stats' services, as the API does."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from node.audit.service import record
from node.deps import SessionDep, public
from node.errors import NodeError
from node.models import utcnow
from node.portal.i18n import translator
from node.portal.web import check_csrf, page_language, page_principal, redirect, render
from node.roles import Role
from node.stats import counting
from node.stats.chart import hbar_chart
from node.stats.export import LABEL_KEYS, label_text, report_csv, report_xlsx
from node.stats.metrics import REPORT_TZ
from node.stats.router import EXPORT_ACTION, READ_ACTION, READ_ROLES, REFRESH_ACTION
from node.stats.service import Report, centre_report, check_range, public_report

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
READERS = frozenset(READ_ROLES)
ADMINS = frozenset({Role.NODE_ADMIN})
DateQ = Annotated[str | None, Query(max_length=40)]
# the tables drawn as charts too (the others are tables only)
CHARTED = ("deposits_by_month", "by_type", "active", "reviews", "dualcert", "accounts")


def _parse(value: str | None, field: str, errors: dict[str, str]) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        errors[field] = "stats.err.date"
        return None


def _range(request: Request, start: str | None, end: str | None) -> tuple[dt.date, dt.date, dict, dict]:
    errors: dict[str, str] = {}
    a, b = _parse(start, "from", errors), _parse(end, "to", errors)
    today = dt.datetime.now(REPORT_TZ).date()
    if errors:
        a = b = None
    try:
        lo, hi = check_range(a, b, today=today)
    except NodeError:
        errors["to" if a and b and a > b else "from"] = "stats.err.range"
        lo, hi = check_range(None, None, today=today)
    values = {"from": start if errors else lo.isoformat(), "to": end if errors else hi.isoformat()}
    return lo, hi, errors, values


def _charts(request: Request, report: Report) -> dict[str, Any]:
    t = translator(page_language(request))
    out = {}
    for table in report.tables:
        if table.key in CHARTED and table.chart:
            chart = hbar_chart([(label_text(t, table.columns[0], label), value) for label, value in table.chart
                                if isinstance(value, (int, float)) or hasattr(value, "as_tuple")])
            if chart is not None:
                out[table.key] = chart
    return out


def _page(request: Request, template: str, report: Report, errors: dict, values: dict, **extra: Any) -> HTMLResponse:
    query = f"from={report.start.isoformat()}&to={report.end.isoformat()}"
    return render(request, template, status=400 if errors else 200, label_keys=LABEL_KEYS,
                  title="stats.public.title" if report.public else "stats.centre.title", report=report,
                  charts=_charts(request, report), errors=errors, values=values, query=query, **extra)


@router.get("/centre/statistics", response_class=HTMLResponse)
def centre_statistics_page(request: Request, session: SessionDep, start: Annotated[DateQ, Query(alias="from")] = None,
                           to: DateQ = None, refreshed: Annotated[str | None, Query(max_length=20)] = None
                           ) -> HTMLResponse:
    principal = page_principal(request, session, roles=READERS)
    lo, hi, errors, values = _range(request, start, to)
    report = centre_report(session, lo, hi)
    record(session, actor=principal, action=READ_ACTION, target_type="statistics",
           detail={"from": lo.isoformat(), "to": hi.isoformat(), "page": True})
    return _page(request, "stats/centre.html", report, errors, values,
                 may_refresh=principal.has_any(ADMINS), refreshed=refreshed)


@router.post("/centre/statistics/refresh")
def centre_statistics_refresh(request: Request, session: SessionDep, csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    principal = page_principal(request, session, roles=ADMINS)
    result = counting.refresh(request.app.state.ctx.engine, max_chunks=5)
    record(session, actor=principal, action=REFRESH_ACTION, target_type="statistics", detail=result)
    return redirect(request, f"/centre/statistics?refreshed={result.get('counted', 0)}")


def _export(request: Request, report: Report, fmt: str, name: str) -> Response:
    lang = page_language(request)
    region = request.app.state.ctx.settings.region
    label = region.name_zh if lang == "zh" else region.name_en
    stem = f"{name}-{report.start.isoformat()}-{report.end.isoformat()}"
    if fmt == "csv":
        return Response(report_csv(report, lang=lang, region=label, now=utcnow()),
                        media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})
    return Response(report_xlsx(report, lang=lang, region=label, now=utcnow()),
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'})


@router.get("/centre/statistics/report.{fmt}")
def centre_statistics_export(request: Request, session: SessionDep, fmt: str,
                             start: Annotated[DateQ, Query(alias="from")] = None, to: DateQ = None) -> Response:
    principal = page_principal(request, session, roles=READERS)
    if fmt not in ("csv", "xlsx"):
        from node.portal.web import PageRefused

        raise PageRefused(404, "error.not_found")
    lo, hi, errors, _ = _range(request, start, to)
    report = centre_report(session, lo, hi)
    record(session, actor=principal, action=EXPORT_ACTION, target_type="statistics",
           detail={"from": lo.isoformat(), "to": hi.isoformat(), "format": fmt, "page": True})
    return _export(request, report, fmt, "statistics")


def _public(request: Request, session: Any, start: str | None, to: str | None) -> tuple[Report, dict, dict]:
    lo, hi, errors, values = _range(request, start, to)
    k = request.app.state.ctx.settings.stats.public_min_group
    return public_report(session, lo, hi, k=k), errors, values


@router.get("/statistics", response_class=HTMLResponse)
def public_statistics_page(request: Request, session: SessionDep, start: Annotated[DateQ, Query(alias="from")] = None,
                           to: DateQ = None) -> HTMLResponse:
    page_principal(request, session, required=False)
    report, errors, values = _public(request, session, start, to)
    return _page(request, "stats/public.html", report, errors, values)


@router.get("/statistics/report.{fmt}")
def public_statistics_export(request: Request, session: SessionDep, fmt: str,
                             start: Annotated[DateQ, Query(alias="from")] = None, to: DateQ = None) -> Response:
    if fmt not in ("csv", "xlsx"):
        from node.portal.web import PageRefused

        raise PageRefused(404, "error.not_found")
    report, _, _ = _public(request, session, start, to)
    return _export(request, report, fmt, "statistics-public")
