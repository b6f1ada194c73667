"""The few cheap reads behind `/ready` and the database-backed gauges of `/metrics`.

Each is an index lookup or a grouped count over a small set: the ledger head's one row, the highest checkpoint
(unique index on `size`), outbox messages that are still `pending` or `dead` (index on `state`), import jobs
(one row per uploaded file). No `count(*)` over a table that grows with learners or records.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from node.models import Checkpoint, ImportJob, LedgerHead, OutboxMessage, PeerStream

__all__ = ["IMPORT_STATUSES", "OUTBOX_STATES", "NodeGauges", "ping", "read_gauges"]

OUTBOX_STATES = ("pending", "dead")
IMPORT_STATUSES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class NodeGauges:
    ledger_size: int
    checkpoint_size: int
    outbox: dict[tuple[str, str], int]  # (peer, state) -> messages, states pending and dead; 0 for known peers
    import_jobs: dict[str, int]  # status -> jobs


def ping(conn: Connection) -> None:
    conn.execute(sa.select(sa.literal(1))).scalar_one()


def read_gauges(conn: Connection) -> NodeGauges:
    ledger_size = conn.execute(sa.select(LedgerHead.size).where(LedgerHead.id == 1)).scalar_one_or_none()
    checkpoint_size = conn.execute(sa.select(sa.func.max(Checkpoint.size))).scalar_one_or_none()
    outbox_rows = conn.execute(
        sa.select(OutboxMessage.peer, OutboxMessage.state, sa.func.count())
        .where(OutboxMessage.state.in_(OUTBOX_STATES))
        .group_by(OutboxMessage.peer, OutboxMessage.state)
    ).all()
    # every peer the node has a stream with (one row per peer) shows, at 0 when nothing waits
    outbox = {(peer, state): 0 for peer in conn.execute(sa.select(PeerStream.peer)).scalars()
              for state in OUTBOX_STATES}
    outbox.update({(peer, state): int(n) for peer, state, n in outbox_rows})
    jobs = dict.fromkeys(IMPORT_STATUSES, 0)
    jobs.update({status: int(n) for status, n in
                 conn.execute(sa.select(ImportJob.status, sa.func.count()).group_by(ImportJob.status))})
    return NodeGauges(ledger_size=int(ledger_size or 0), checkpoint_size=int(checkpoint_size or 0), outbox=outbox,
                      import_jobs=jobs)
