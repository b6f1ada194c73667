"""Jobs named `area.verb`, in one registry: runnable once (`creditnode jobs run NAME`) and scheduled with
APScheduler only when `settings.federation.scheduler_enabled`. Each job opens its own session scope.

Several worker processes (`creditnode serve --workers N`, or several `serve` units) against one PostgreSQL each
start a scheduler, but only the process holding the `SchedulerLease` (a session-level PostgreSQL advisory lock
on a connection of its own) runs the jobs; the others skip each tick and take the lease over within one tick
after the holder's connection closes (the process ended or crashed). The jobs are also safe to run concurrently,
as a second line (and for `creditnode jobs run` beside a serving node): outbox rows and witness peers are
claimed (`FOR UPDATE SKIP LOCKED`), purges are idempotent deletes, key refresh and membership pull converge."""

from __future__ import annotations

import datetime as dt
import logging
import threading
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

__all__ = ["JOBS", "Job", "SchedulerLease", "job", "run_job", "start_scheduler"]

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


@job("security.purge_rate_limits", every=600, description="drop ended windows' shared rate-limit counters")
def _purge_rate_limits(ctx: NodeContext) -> dict:
    return {"purged": ctx.rate_limits.purge()}


@job("stats.refresh", every=60, description="count new ledger events into the statistics' summary counters")
def _refresh_statistics(ctx: NodeContext) -> dict:
    from node.stats.counting import refresh

    return refresh(ctx.engine)


# The advisory lock's key: one per database (PostgreSQL scopes advisory locks to the database), so two nodes
# sharing a server do not contend. "cn-sched" in ASCII.
LEASE_KEY = 0x636E2D7363686564


class SchedulerLease:
    """Whether this process is the one that runs the scheduled jobs.

    PostgreSQL: held while this process keeps a session-level advisory lock (`pg_try_advisory_lock`) on a
    connection of its own, in autocommit (no transaction stays open). PostgreSQL releases the lock when that
    connection ends, so when the holding process exits or dies another process's next `holds()` takes it. A
    holder whose connection broke (database restart) finds out at its next check and tries again. SQLite: one
    process serves a SQLite node (`serve --workers` refuses more), so it always holds the lease."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._conn: sa.Connection | None = None
        self._lock = threading.Lock()

    def holds(self) -> bool:
        if self._sqlite:
            return True
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute(sa.text("SELECT 1"))
                    return True
                except sa.exc.DBAPIError:
                    log.warning("scheduler lease: its database connection broke; trying to take it again")
                    self._drop()
            try:
                conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except sa.exc.DBAPIError:
                return False
            try:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": LEASE_KEY}).scalar()
            except sa.exc.DBAPIError:
                got = False
            if not got:
                conn.close()
                return False
            self._conn = conn
            log.info("scheduler lease taken: this process runs the scheduled jobs")
            return True

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LEASE_KEY})
                except (sa.exc.DBAPIError, sa.exc.ResourceClosedError, sa.exc.PendingRollbackError):  # the connection already ended: so did its lock
                    pass
                self._drop()

    def _drop(self) -> None:
        try:
            self._conn.invalidate()  # type: ignore[union-attr]  # never back to the pool: the lock is the session's
            self._conn.close()  # type: ignore[union-attr]
        except (sa.exc.DBAPIError, sa.exc.ResourceClosedError, sa.exc.PendingRollbackError):  # the connection already ended: so did its lock
            pass
        self._conn = None


def start_scheduler(ctx: NodeContext) -> Any:
    """A started BackgroundScheduler running every job at its interval while this process holds the
    `SchedulerLease`, or None when not enabled. Its shutdown releases the lease."""
    if not ctx.settings.federation.scheduler_enabled:
        return None
    from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
    from apscheduler.schedulers.background import BackgroundScheduler

    lease = SchedulerLease(ctx.engine)
    scheduler = BackgroundScheduler(timezone=dt.UTC)
    for item in JOBS.values():
        scheduler.add_job(_guarded(item, ctx, lease), "interval", seconds=item.interval_seconds, id=item.name,
                          name=item.name, max_instances=1, coalesce=True)
    scheduler.add_listener(lambda _event: lease.release(), EVENT_SCHEDULER_SHUTDOWN)
    scheduler.start()
    return scheduler


def _guarded(item: Job, ctx: NodeContext, lease: SchedulerLease) -> Callable[[], None]:
    def run() -> None:
        if not lease.holds():
            log.debug("job %s: another process holds the scheduler lease", item.name)
            return
        try:
            result = item.fn(ctx)
            log.debug("job %s: %s", item.name, result)
        except Exception:
            log.exception("job %s failed", item.name)

    return run


import federation.witness  # noqa: F401  (registers ledger.witness; it imports `job` from here)
import node.engage.jobs  # noqa: E402, F401  (registers engage.*; it imports `job` from here)
import node.projects.jobs  # noqa: E402, F401  (registers projects.report_exemptions)
