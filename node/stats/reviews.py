"""Review workload and time to decision per queue (a branch's first-review queue, the centre's second review),
kept in the review workflow's own transaction: individual-deposit decisions are not all ledger events (a
rejection is not), so the ledger job cannot count them. The workflow publishes each step once
(`node.decisions`); `on_decision` counts it. The same pure step (`_step`) runs live and when the figures are
rebuilt from the audit log, so both count alike (docs/statistics.md).

A re-routing (`deposit.route`) of an application waiting for its first review moves it: it leaves the old
branch's queue (`reviews.moved` … `out`) and enters the new one (`in`), whose clock starts at the move — the
time to decision of a branch is the time the application waited in that branch's queue."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session

from node.decisions import Decision
from node.models import AuditEntry, DepositApplication, Organisation
from node.stats import repository as repo
from node.stats.metrics import REVIEW_METRICS, local_day, wait_bucket

__all__ = ["CENTRE_QUEUE", "on_decision", "rebuild_from_audit", "review_step"]

CENTRE_QUEUE = "centre"
_ACTIONS = ("deposit.submit", "deposit.approve", "deposit.reject", "deposit.appeal", "deposit.route")


class Clock(NamedTuple):
    queue: str
    stage: str
    entered_at: dt.datetime


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _step(clock: Clock | None, *, action: str, stage: str | None, to_state: str, at: dt.datetime,
          first_queue: str, deltas: dict) -> Clock | None:
    """Add what one workflow step means to `deltas`; return the application's clock after it (None: it waits
    in no queue). `first_queue` is the application's first-review queue after the step (for a re-routing: the
    queue it was moved to)."""
    at = _aware(at)
    day = local_day(at)

    def enter(queue: str, into: str) -> Clock:
        deltas[("reviews.entered", day, queue, into, "")][0] += 1
        return Clock(queue, into, at)

    if action == "deposit.submit":
        return enter(first_queue, "first")
    if action == "deposit.appeal":
        return enter(first_queue if stage == "first" else CENTRE_QUEUE, stage or "first")
    if action == "deposit.route":
        # only an application waiting in a first-review queue moves; a draft, a rejected application or one at
        # the centre's second review keeps its place (its branch counts when it next enters the first review)
        if clock is None or clock.stage != "first" or clock.queue == first_queue:
            return clock
        deltas[("reviews.moved", day, clock.queue, "first", "out")][0] += 1
        deltas[("reviews.moved", day, first_queue, "first", "in")][0] += 1
        return Clock(first_queue, "first", at)
    if action in ("deposit.approve", "deposit.reject") and stage in ("first", "second"):
        decision = action.split(".", 1)[1]
        queue = clock.queue if clock is not None and clock.stage == stage else (
            first_queue if stage == "first" else CENTRE_QUEUE)
        deltas[("reviews.decided", day, queue, stage, decision)][0] += 1
        if clock is not None and clock.stage == stage:
            seconds = max(0, int((at - _aware(clock.entered_at)).total_seconds()))
            row = deltas[("reviews.wait", day, queue, stage, wait_bucket(seconds))]
            row[0] += 1
            row[1] += seconds
        if to_state == "pending_second":
            return enter(CENTRE_QUEUE, "second")
        return None
    return clock


def _first_queue(session: Session, branch_id: int | None) -> str:
    if branch_id is None:
        return CENTRE_QUEUE
    org = session.get(Organisation, branch_id)
    return org.code if org is not None else CENTRE_QUEUE


def on_decision(session: Session, decision: Decision) -> None:
    """The statistics' listener of the workflow's steps (node.decisions): counts the deposit review's."""
    if decision.kind in _ACTIONS and isinstance(decision.subject, DepositApplication):
        review_step(session, decision.subject, action=decision.kind, at=decision.at, stage=decision.stage)


def review_step(session: Session, app: DepositApplication, *, action: str, at: dt.datetime,
                stage: str | None = None) -> None:
    """Count a workflow step of `app` (after its transition, in the caller's transaction): `action` is the
    audit action recorded for it, `at` its time."""
    row = repo.clock_of(session, app.id)
    clock = Clock(row.queue, row.stage, row.entered_at) if row is not None else None
    deltas: dict = defaultdict(lambda: [0, 0])
    after = _step(clock, action=action, stage=stage, to_state=app.state, at=at,
                  first_queue=_first_queue(session, app.branch_id), deltas=deltas)
    repo.add_deltas(session, deltas)
    if after is None:
        if clock is not None:
            repo.delete_clock(session, app.id)
    elif after != clock:
        repo.set_clock(session, app.id, queue=after.queue, stage=after.stage, entered_at=after.entered_at)


def rebuild_from_audit(session: Session) -> dict[str, Any]:
    """Recount the review figures from the audit log's successful workflow steps (in id order: one
    application's steps are serial, its row version guards them) and rebuild the clocks of applications
    still waiting."""
    log = AuditEntry.__table__
    rows = session.execute(
        sa.select(log.c.id, log.c.at, log.c.action, log.c.target_id, log.c.detail)
        .where(log.c.action.in_(_ACTIONS), log.c.outcome == "ok", log.c.target_type == "deposit_application")
        .order_by(log.c.id)).all()
    app_ids = sorted({int(r.target_id) for r in rows if (r.target_id or "").isdigit()})
    branches: dict[int, int | None] = {}
    for i in range(0, len(app_ids), 500):
        branches.update(session.execute(sa.select(DepositApplication.id, DepositApplication.branch_id)
                                        .where(DepositApplication.id.in_(app_ids[i : i + 500]))).all())
    queues: dict[int | None, str] = {}
    # an application's first-review queue as the log goes: the queue it was routed from by its first
    # re-routing, else the queue of its branch now
    current: dict[int, str] = {}
    for r in rows:
        if r.action == "deposit.route" and (r.target_id or "").isdigit():
            current.setdefault(int(r.target_id), str((r.detail or {}).get("from") or CENTRE_QUEUE))
    clocks: dict[int, Clock | None] = {}
    deltas: dict = defaultdict(lambda: [0, 0])
    for r in rows:
        if not (r.target_id or "").isdigit():
            continue
        app_id = int(r.target_id)
        detail = r.detail or {}
        if app_id not in current:
            branch = branches.get(app_id)
            if branch not in queues:
                queues[branch] = _first_queue(session, branch)
            current[app_id] = queues[branch]
        if r.action == "deposit.route":
            current[app_id] = str(detail.get("to") or CENTRE_QUEUE)
        to_state = detail.get("to") or detail.get("state") or ""
        clocks[app_id] = _step(clocks.get(app_id), action=r.action, stage=detail.get("stage"), to_state=to_state,
                               at=r.at, first_queue=current[app_id], deltas=deltas)
    repo.delete_metrics(session, REVIEW_METRICS)
    session.execute(sa.delete(repo._clock))
    repo.add_deltas(session, deltas)
    for app_id, clock in clocks.items():
        if clock is not None:
            repo.set_clock(session, app_id, queue=clock.queue, stage=clock.stage, entered_at=clock.entered_at)
    return {"steps": len(rows), "waiting": sum(1 for c in clocks.values() if c is not None)}
