"""Outbox workers: which process holds a claim, and whether that process is gone (docs/federation.md §4).

Each process that flushes the outbox is a `Worker` (`current_worker()`: a random id, its host key and pid),
registered in `outbox_worker` with a heartbeat (`beat`), renewed at each claim and, during a long run, before
a send. `gone_workers` names the workers whose claims may be taken back at once, lease or not:

- its heartbeat is older than `federation.outbox_worker_stale_seconds` (any host), or
- it ran on this host (same host name, boot id and pid namespace: `_host_key`) and its pid is no longer
  running, is a zombie, or is this very process under another worker id (an earlier incarnation that had the
  same pid: a container restarted, a pid reused).

A restarted node therefore resumes delivery at its first flush instead of waiting out the lease (300 s). The
pid test is only made where a pid means the same process (same kernel boot, same pid namespace); a worker of
another host or container is judged by its heartbeat alone. Clocks of the workers sharing a database are
assumed to agree within a few seconds (NTP), as the leases already assume.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import socket
from dataclasses import dataclass

from sqlmodel import Session, select

from node.db import is_sqlite
from node.models import OutboxWorker

__all__ = ["HEARTBEAT_SECONDS", "Worker", "beat", "current_worker", "gone_workers", "process_gone"]

HEARTBEAT_SECONDS = 5


@dataclass(frozen=True)
class Worker:
    """A process that flushes the outbox. `host` says where `pid` names a process (see `_host_key`)."""

    id: str
    host: str
    pid: int


_current: Worker | None = None


def _host_key() -> str:
    """The host name, plus what makes a pid meaningful there: the kernel's boot id and this process's pid
    namespace (a container restarted under the same host name gets a new namespace, so its old pids are not
    mistaken for processes of ours; its old claims wait for its heartbeat to go stale)."""
    parts = []
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
        parts.append(boot.read().strip())
    with contextlib.suppress(OSError, AttributeError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    name = socket.gethostname()[:160]
    return f"{name}|{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:32]}" if parts else name


def current_worker() -> Worker:
    """This process as an outbox worker (a new identity after a fork)."""
    global _current
    if _current is None or _current.pid != os.getpid():
        pid = os.getpid()
        _current = Worker(id=f"{socket.gethostname()[:32]}-{pid}-{secrets.token_hex(8)}", host=_host_key(), pid=pid)
    return _current


def process_gone(pid: int, me: Worker) -> bool:
    """On this host: is `pid` no longer a running process (not running, a zombie, or this very process —
    which then ran under another worker id before: an earlier incarnation with the same pid)?"""
    if pid == me.pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: running
        return False
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat", encoding="ascii",
                                                         errors="replace") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # zombie or dead
    return False


def beat(session: Session, worker: Worker, now: dt.datetime) -> None:
    """Register `worker` or renew its heartbeat, in the caller's transaction."""
    if is_sqlite(session.get_bind()):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    session.execute(insert(OutboxWorker.__table__).values(
        id=worker.id, host=worker.host, pid=worker.pid, started_at=now, heartbeat_at=now)
        .on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now}))


def gone_workers(session: Session, me: Worker, now: dt.datetime, stale_seconds: int) -> list[str]:
    """The ids of the registered workers other than `me` that are gone (see the module's docstring)."""
    stale = now - dt.timedelta(seconds=stale_seconds)
    gone = []
    for row in session.exec(select(OutboxWorker).where(OutboxWorker.id != me.id)).all():
        heartbeat = row.heartbeat_at if row.heartbeat_at.tzinfo else row.heartbeat_at.replace(tzinfo=dt.UTC)
        if heartbeat < stale or (row.host == me.host and process_gone(row.pid, me)):
            gone.append(row.id)
    return gone
