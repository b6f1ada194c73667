"""The exemption report on a schedule: once per project and period, for the period just ended, signed like the
one issued on request; a second run or a second worker adds nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from tests.deposits.helpers import ok


def _project(engine, state: str, title: str) -> int:
    from node.db import session_scope
    from node.models.projects import DcProject

    with session_scope(engine) as s:
        p = DcProject(institution_code="DHVC", title=title, programme_code="DHVC-MECHATRONICS",
                      certificate_code="VQ.MAINT_ELECTRICIAN", certificate_level="三级", mode="credit_recognition",
                      discipline="机电", state=state, applied_by="staff:1")
        s.add(p)
        s.flush()
        return p.id


def _reports(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT project_id, period, created_by FROM dc_exemption_report ORDER BY id"))]


@pytest.mark.parametrize(("period", "today", "label"), [
    ("week", dt.date(2026, 12, 3), "2026-W48"), ("month", dt.date(2026, 12, 3), "2026-11"),
    ("month", dt.date(2027, 1, 1), "2026-12"), ("quarter", dt.date(2026, 2, 10), "2025-Q4"),
    ("quarter", dt.date(2026, 12, 3), "2026-Q3")])
def test_the_last_period_is_named_from_today(period, today, label) -> None:
    from node.projects.schedule import last_period

    assert last_period(today, period) == label


def test_each_project_is_reported_once_per_period(client, ctx, engine) -> None:
    from federation.jobs import run_job
    from node.projects.schedule import issue_scheduled_reports

    published = _project(engine, "published", "已发布项目")
    suspended = _project(engine, "suspended", "暂停项目")
    _project(engine, "in_review", "评审中项目")
    ctx.settings.projects.report_period = "month"
    first = issue_scheduled_reports(ctx, today=dt.date(2026, 12, 3))
    assert first["period"] == "2026-11" and first["issued"] == 2
    assert issue_scheduled_reports(ctx, today=dt.date(2026, 12, 28))["issued"] == 0  # same period: nothing new
    assert issue_scheduled_reports(ctx, today=dt.date(2027, 1, 2))["issued"] == 2
    assert _reports(engine) == [(published, "2026-11", "projects.report_exemptions"),
                                (suspended, "2026-11", "projects.report_exemptions"),
                                (published, "2026-12", "projects.report_exemptions"),
                                (suspended, "2026-12", "projects.report_exemptions")]
    # the job as the scheduler runs it: today's last month is whatever it is, issued once however often it runs
    run_job("projects.report_exemptions", ctx)
    run_job("projects.report_exemptions", ctx)
    periods = [r[1] for r in _reports(engine) if r[0] == published]
    assert len(periods) == len(set(periods))
    # the scheduled report is the signed document the on-request one is, with its audit entry and ledger event
    with engine.connect() as conn:
        doc = conn.execute(sa.text("SELECT document FROM dc_exemption_report ORDER BY id LIMIT 1")).scalar()
        audited = conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'project.report' "
                                       "AND actor_kind = 'system'")).scalar()
        events = conn.execute(sa.text("SELECT count(*) FROM ledger_event "
                                      "WHERE kind = 'project.exemptions_reported'")).scalar()
    import json

    document = doc if isinstance(doc, dict) else json.loads(doc)
    assert ok(client.post("/api/v1/verify", json=document))["valid"] is True
    assert audited == events == len(_reports(engine))
    ctx.settings.projects.report_period = "off"
    assert issue_scheduled_reports(ctx)["skipped"]


def test_a_project_claimed_by_another_worker_is_skipped(ctx, engine) -> None:
    from node.projects.schedule import issue_scheduled_reports

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: one process serves a SQLite node")
    pid = _project(engine, "published", "已发布项目")
    ctx.settings.projects.report_period = "month"
    with engine.connect() as other:
        other.execute(sa.text("SELECT id FROM dc_project WHERE id = :i FOR UPDATE"), {"i": pid})
        result = issue_scheduled_reports(ctx, today=dt.date(2026, 12, 3))
        assert result["issued"] == 0 and result["skipped"] == 1
        other.rollback()
    assert issue_scheduled_reports(ctx, today=dt.date(2026, 12, 3))["issued"] == 1
