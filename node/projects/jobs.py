"""The projects area's scheduled job (registered in federation.jobs' one registry)."""

from __future__ import annotations

from federation.jobs import job
from node.context import NodeContext

__all__: list[str] = []


@job("projects.report_exemptions", every=3600,
     description="issue each project's signed exemption list to the appraisal centre once per period")
def _report_exemptions(ctx: NodeContext) -> dict:
    from node.projects.schedule import issue_scheduled_reports

    return issue_scheduled_reports(ctx)
