"""Jobs named `area.verb`, in one registry: runnable once (`creditnode jobs run NAME`) and scheduled with
APScheduler only when `settings.federation.scheduler_enabled`. Each job opens its own session scope and is safe
when several worker processes run it against one PostgreSQL (outbox rows are claimed; the others are
idempotent)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from federation.outbox import flush_outbox
from federation.runtime import runtime
from federation.service import pull_membership
from node.context import NodeContext
from node.db import session_scope
from node.models import SeenNonce

__all__ = ["JOBS", "Job", "job", "run_job", "start_scheduler"]

log = logging.getLogger("creditnode.jobs")


@dataclass(frozen=True)
class Job:
    name: str
    fn: Callable[[NodeContext], Any]
    interval_seconds: int
    description: str


JOBS: dict[str, Job] = {}


def job(name: str, *, every: int, description: str) -> Callable[[Callable[[NodeContext], Any]], Callable]:
    """Register a job (`area.verb`) run every `every` seconds when the scheduler is on."""
    if "." not in name:
        raise ValueError("job names are area.verb")

    def add(fn: Callable[[NodeContext], Any]) -> Callable[[NodeContext], Any]:
        JOBS[name] = Job(name, fn, every, description)
        return fn

    return add


def run_job(name: str, ctx: NodeContext) -> Any:
    try:
        target = JOBS[name]
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known: {', '.join(sorted(JOBS))}") from None
    return target.fn(ctx)


@job("federation.flush_outbox", every=5, description="deliver due outbox messages to peers")
def _flush_outbox(ctx: NodeContext) -> dict:
    return flush_outbox(ctx).to_dict()


@job("federation.refresh_keys", every=3600, description="re-fetch members' DID documents")
def _refresh_keys(ctx: NodeContext) -> dict:
    with session_scope(ctx.engine) as session:
        return runtime(ctx).directory.refresh_all(session)


@job("federation.pull_membership", every=900, description="install newer membership versions other members hold")
def _pull_membership(ctx: NodeContext) -> dict:
    return pull_membership(ctx)


@job("federation.purge_nonces", every=600, description="drop expired entries of the replay cache")
def _purge_nonces(ctx: NodeContext) -> dict:
    with session_scope(ctx.engine) as session:
        result = session.execute(sa.delete(SeenNonce).where(SeenNonce.expires_at < dt.datetime.now(dt.UTC)))
        return {"purged": result.rowcount or 0}


@job("imports.purge", every=3600, description="delete expired import reports and failed jobs' stored uploads")
def _purge_imports(ctx: NodeContext) -> dict:
    from node.imports.results import purge

    return purge(ctx)


def start_scheduler(ctx: NodeContext) -> Any:
    """A started BackgroundScheduler running every job at its interval, or None when not enabled."""
    if not ctx.settings.federation.scheduler_enabled:
        return None
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone=dt.UTC)
    for item in JOBS.values():
        scheduler.add_job(_guarded(item, ctx), "interval", seconds=item.interval_seconds, id=item.name,
                          name=item.name, max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler


def _guarded(item: Job, ctx: NodeContext) -> Callable[[], None]:
    def run() -> None:
        try:
            result = item.fn(ctx)
            log.debug("job %s: %s", item.name, result)
        except Exception:
            log.exception("job %s failed", item.name)

    return run


import federation.witness  # noqa: F401  (registers ledger.witness; it imports `job` from here)
