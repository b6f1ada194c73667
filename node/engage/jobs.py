"""The engagement area's scheduled jobs (registered in federation.jobs' one registry; each opens its own
session scope and is safe when two processes run it: cursor row locked, claimed rows, unique keys)."""

from __future__ import annotations

from federation.jobs import job
from node.context import NodeContext

__all__: list[str] = []


@job("engage.award_points", every=60, description="award incentive points for new ledger events")
def _award_points(ctx: NodeContext) -> dict:
    from node.engage.points import award_from_ledger

    total = {"awarded": 0, "cursor": 0}
    for _ in range(20):  # up to 20 batches a tick
        result = award_from_ledger(ctx)
        total["awarded"] += result["awarded"]
        if result["cursor"] == total["cursor"]:
            break
        total["cursor"] = result["cursor"]
    return total


@job("engage.expire_points", every=86_400, description="record incentive points past their validity")
def _expire_points(ctx: NodeContext) -> dict:
    from node.engage.points import expire_points

    return expire_points(ctx)


@job("engage.deadline_notices", every=3600, description="notify learners of certificates about to expire")
def _deadline_notices(ctx: NodeContext) -> dict:
    from node.engage.notices import deadline_notices

    return deadline_notices(ctx)


@job("engage.window_notices", every=86_400,
     description="warn learners of records about to leave a conversion window (a rule's years, its end)")
def _window_notices(ctx: NodeContext) -> dict:
    from node.engage.windows import window_notices

    return window_notices(ctx)


@job("engage.deliver_notices", every=15, description="send due e-mail and SMS notices (retry, dead-letter)")
def _deliver_notices(ctx: NodeContext) -> dict:
    from node.engage.delivery import flush_deliveries

    return flush_deliveries(ctx)
