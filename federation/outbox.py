"""Reliable delivery of one-way messages (docs/federation.md §4).

`enqueue(session, peer, type, body)` stores a message in the caller's transaction with the next per-peer `seq`.
`flush_outbox(ctx)` delivers due messages:

1. **claim** (one short transaction): due pending rows, `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite
   serialises writers with BEGIN IMMEDIATE), keeping per peer only the run that starts at the peer's lowest
   undelivered seq, so a stream is sent in order by one worker at a time; the claimed rows get a lease
   (`next_attempt_at = now + lease`, `now` read at this claim, not at the start of the flush) and the claim
   commits, so another worker skips them;
2. **send** each peer's run in seq order, outside any transaction, through `PeerClient` (signed request,
   verified signed response kept as the receipt), but only within the first half of the lease: the rest of a
   slow run goes back to the queue and is claimed afresh, so no row is sent after its lease may have expired
   (another worker could have claimed it by then and sent it too);
3. **record** each outcome in its own transaction: delivered (with the receipt); a failure (attempts + 1,
   `next_attempt_at = now + min(2**attempts, 3600)` s, dead after `outbox_max_attempts`); `409 sequence_gap`
   → re-sync: the rows from `expected_seq` on are pending again and are re-sent in the next round. The rest of
   a peer's run waits behind a failed head. The backoff counts from the failed attempt.

**Workers** (`federation.workers`): each claim names the process that holds it (`claimed_by`), which keeps a
heartbeat. The rows a *gone* worker claimed (its process not running on this host, or its heartbeat stale)
are claimed again at once, lease or not, so a restarted node resumes delivery at its first flush instead of
waiting out the lease. A live worker never loses its claims this way: before a send, once `HEARTBEAT_SECONDS`
have passed since its last heartbeat, it renews it and checks the rows are still its own, and stops the run
if they are not.

A dead row stalls its peer's stream (the receiver would refuse everything after it as a gap) until an admin
re-queues it (`requeue`) or re-syncs the stream (`federation.streams`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from federation.errors import PeerUnavailable
from federation.transport.outbound import PeerClient, PeerResponse
from node.context import NodeContext
from node.db import is_sqlite, session_scope
from node.errors import NotFound
from federation.workers import HEARTBEAT_SECONDS, Worker, beat, current_worker, gone_workers
from node.models import OutboxMessage, OutboxWorker, PeerStream

__all__ = [
    "INBOX_PATH",
    "FlushReport",
    "backoff_seconds",
    "dead_letters",
    "enqueue",
    "flush_outbox",
    "requeue",
]

log = logging.getLogger("creditnode.federation.outbox")

INBOX_PATH = "/federation/v1/inbox"
MAX_BACKOFF_SECONDS = 3600
LEASE_SECONDS = 300
# Refusals that re-sending cannot cure: dead-letter at once.
_PERMANENT_CODES = frozenset({"payload_too_large", "origin_mismatch", "sequence_reused", "validation_error",
                              "invalid_json", "method_not_allowed", "unsupported_media_type"})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backoff_seconds(attempts: int) -> int:
    return min(2 ** attempts, MAX_BACKOFF_SECONDS)


def _insert(session: Session):
    if is_sqlite(session.get_bind()):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


def enqueue(session: Session, peer: str, type: str, body: dict, *, message_id: str | None = None,
            now: dt.datetime | None = None) -> OutboxMessage:
    """Queue a message for `peer` in the caller's transaction (it is sent only if the caller commits)."""
    insert = _insert(session)
    session.execute(insert(PeerStream.__table__).values(peer=peer, next_out_seq=1, next_in_seq=1)
                    .on_conflict_do_nothing(index_elements=["peer"]))
    next_seq = session.execute(
        sa.update(PeerStream).where(PeerStream.peer == peer)
        .values(next_out_seq=PeerStream.next_out_seq + 1).returning(PeerStream.next_out_seq)
    ).scalar_one()
    row = OutboxMessage(peer=peer, seq=next_seq - 1, message_id=message_id or f"urn:uuid:{uuid.uuid4()}",
                        type=type, body=body, next_attempt_at=now or _now(), created_at=now or _now())
    session.add(row)
    session.flush()
    return row


# -- flushing -----------------------------------------------------------------------------------------------


def _still_mine(ctx: NodeContext, worker: Worker, rows: list[_Claimed], now: dt.datetime) -> bool:
    """Renew the heartbeat and check that `rows` are all still claimed by `worker`."""
    with session_scope(ctx.engine) as session:
        beat(session, worker, now)
        mine = session.exec(select(sa.func.count()).select_from(OutboxMessage).where(
            OutboxMessage.id.in_([r.id for r in rows]), OutboxMessage.state == "pending",
            OutboxMessage.claimed_by == worker.id)).one()
    return mine == len(rows)


@dataclass
class FlushReport:
    delivered: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    dead: list[tuple[str, int, str]] = field(default_factory=list)
    resynced: list[tuple[str, int]] = field(default_factory=list)  # (peer, expected_seq)

    @property
    def sent(self) -> int:
        return len(self.delivered) + len(self.failed) + len(self.dead) + len(self.resynced)

    def to_dict(self) -> dict:
        return {"delivered": len(self.delivered), "failed": len(self.failed), "dead": len(self.dead),
                "resynced": len(self.resynced)}


@dataclass(frozen=True)
class _Claimed:
    id: int
    peer: str
    seq: int
    message_id: str
    type: str
    body: dict
    attempts: int


def _claim(ctx: NodeContext, now: dt.datetime, batch: int, lease: int, worker: Worker) -> dict[str, list[_Claimed]]:
    with session_scope(ctx.engine) as session:
        beat(session, worker, now)
        gone = gone_workers(session, worker, now, ctx.settings.federation.outbox_worker_stale_seconds)
        due = OutboxMessage.next_attempt_at <= now
        if gone:  # a gone worker's claims, leased or not
            due = sa.or_(due, OutboxMessage.claimed_by.in_(gone))
        query = (select(OutboxMessage)
                 .where(OutboxMessage.state == "pending", due)
                 .order_by(OutboxMessage.peer, OutboxMessage.seq).limit(batch))
        if not is_sqlite(ctx.engine):
            query = query.with_for_update(skip_locked=True)
        rows = session.exec(query).all()
        by_peer: dict[str, list[OutboxMessage]] = {}
        for row in rows:
            by_peer.setdefault(row.peer, []).append(row)
        claimed: dict[str, list[_Claimed]] = {}
        for peer, candidates in by_peer.items():
            head = session.exec(select(sa.func.min(OutboxMessage.seq)).where(
                OutboxMessage.peer == peer, OutboxMessage.state.in_(("pending", "dead")))).one()
            run: list[_Claimed] = []
            for row in candidates:
                if row.seq != head + len(run):
                    break
                run.append(_Claimed(row.id, row.peer, row.seq, row.message_id, row.type, row.body, row.attempts))
            if run:
                claimed[peer] = run
        ids = [c.id for run in claimed.values() for c in run]
        taken = sorted({row.claimed_by for row in rows if row.id in ids and row.claimed_by in gone})
        if ids:
            session.execute(sa.update(OutboxMessage).where(OutboxMessage.id.in_(ids))
                            .values(next_attempt_at=now + dt.timedelta(seconds=lease), claimed_by=worker.id))
        if gone:  # forget the gone workers that hold no claim any more
            holding = select(OutboxMessage.id).where(OutboxMessage.claimed_by == OutboxWorker.id,
                                                     OutboxMessage.state == "pending")
            session.execute(sa.delete(OutboxWorker).where(OutboxWorker.id.in_(gone), ~holding.exists()))
    if taken:
        log.warning("outbox: took back the claims of gone worker(s) %s", ", ".join(taken))
    return claimed


def _envelope(ctx: NodeContext, msg: _Claimed) -> dict:
    return {"id": msg.message_id, "origin": ctx.node_id, "destination": msg.peer, "seq": msg.seq,
            "type": msg.type, "sent_at": _now().strftime("%Y-%m-%dT%H:%M:%SZ"), "body": msg.body}


def _classify(response: PeerResponse) -> str:
    status, code = response.status_code, response.code
    if 200 <= status < 300:
        return "delivered"
    if status == 409 and code == "sequence_gap":
        return "gap"
    if status == 401 or status >= 500 or status in (404, 408, 429):
        return "retry"
    if code in _PERMANENT_CODES or status in (413, 415, 422):
        return "dead"
    return "delivered"  # the receiver recorded a final answer (e.g. unknown_message_type, a handler's refusal)


def _expected_seq(response: PeerResponse) -> int | None:
    body = response.body if isinstance(response.body, dict) else {}
    value = body.get("expected_seq", (body.get("detail") or {}).get("expected_seq"))
    return value if isinstance(value, int) and value >= 1 else None


def _mark_delivered(ctx: NodeContext, msg: _Claimed, response: PeerResponse, now: dt.datetime) -> None:
    error = None if response.ok else f"{response.status_code} {response.code or ''}".strip()
    with session_scope(ctx.engine) as session:
        session.execute(sa.update(OutboxMessage).where(OutboxMessage.id == msg.id).values(
            state="delivered", delivered_at=now, response=response.receipt, last_error=error,
            attempts=OutboxMessage.attempts + 1, claimed_by=None))


def _mark_failed(ctx: NodeContext, msg: _Claimed, error: str, now: dt.datetime, worker: Worker, *,
                 dead: bool = False) -> str:
    attempts = msg.attempts + 1
    if attempts >= ctx.settings.federation.outbox_max_attempts:
        dead = True
    if "no_retry" in ctx.settings.active_faults:  # FAULT HOOK (test mode only; conformance-tests)
        dead = True
    values: dict[str, Any] = {"attempts": attempts, "last_error": error[:500], "claimed_by": None}
    if dead:
        values["state"] = "dead"
    else:
        values["next_attempt_at"] = now + dt.timedelta(seconds=backoff_seconds(attempts))
    with session_scope(ctx.engine) as session:
        session.execute(sa.update(OutboxMessage).where(OutboxMessage.id == msg.id, OutboxMessage.state == "pending",
                                                       OutboxMessage.claimed_by == worker.id)
                        .values(**values))
    return "dead" if dead else "failed"


def _release(ctx: NodeContext, rows: list[_Claimed], now: dt.datetime, worker: Worker) -> None:
    """Unsent rows of a run go back to due; they wait behind the peer's head anyway."""
    if rows:
        with session_scope(ctx.engine) as session:
            session.execute(sa.update(OutboxMessage).where(
                OutboxMessage.id.in_([r.id for r in rows]), OutboxMessage.state == "pending",
                OutboxMessage.claimed_by == worker.id)
                .values(next_attempt_at=now, claimed_by=None))


def _resync(ctx: NodeContext, peer: str, expected: int, now: dt.datetime) -> bool:
    """Make the peer's rows from `expected` on pending again. False when we hold no such row."""
    with session_scope(ctx.engine) as session:
        exists = session.exec(select(OutboxMessage.id).where(
            OutboxMessage.peer == peer, OutboxMessage.seq == expected)).first()
        if exists is None:
            return False
        session.execute(sa.update(OutboxMessage).where(
            OutboxMessage.peer == peer, OutboxMessage.seq >= expected,
            OutboxMessage.state.in_(("pending", "delivered")))
            .values(state="pending", next_attempt_at=now, delivered_at=None, response=None, claimed_by=None))
    return True


def flush_outbox(ctx: NodeContext, client_factory: Callable[[], PeerClient] | None = None,
                 now: dt.datetime | None = None, *, batch: int = 100, lease_seconds: int = LEASE_SECONDS,
                 max_rounds: int = 20, worker: Worker | None = None) -> FlushReport:
    """Send every due message (in rounds, until none is due).

    Without `now` the clock is read afresh for each claim and each outcome, so a round's lease counts from
    its claim and a backoff from its failed attempt: a flush may run longer than the lease (a backlog, a
    slow peer), and a lease counted from the flush's start would let another worker claim, and send again,
    rows this one claimed later. An explicit `now` is a fixed clock for the whole call (tests drive the
    backoff with it). A round's run is sent only within the first half of its lease; what is left then goes
    back to the queue for the next round. `worker` is this process (`current_worker()`) unless a test
    plays another one."""
    clock: Callable[[], dt.datetime] = (lambda: now) if now is not None else _now
    worker = worker or current_worker()
    report = FlushReport()
    client: PeerClient | None = None
    for _round in range(max_rounds):
        claimed_at = clock()
        claimed = _claim(ctx, claimed_at, batch, lease_seconds, worker)
        beat_at = claimed_at
        if not claimed:
            break
        # past half the lease, the rest of the round goes back (due now) and the next round claims it afresh:
        # no row is sent once its lease may have run out (a send takes at most the client's timeout)
        renew_at = claimed_at + dt.timedelta(seconds=lease_seconds / 2)
        client = client or (client_factory or (lambda: PeerClient(ctx)))()
        runs = list(claimed.values())
        for number, run in enumerate(runs):
            index = 0
            try:
                for index, msg in enumerate(run):  # `index` is read after an exception too
                    if clock() >= renew_at:
                        _release(ctx, run[index:], clock(), worker)
                        break
                    if (clock() - beat_at).total_seconds() >= HEARTBEAT_SECONDS:
                        # long enough since the last heartbeat that another worker may have found this one
                        # gone (a pause, a frozen process): send only rows that are still ours
                        beat_at = clock()
                        if not _still_mine(ctx, worker, run[index:], beat_at):
                            log.warning("outbox: the run to %s from seq %s was taken over; not sending it",
                                        msg.peer, msg.seq)
                            break
                    outcome = _deliver(ctx, client, msg, clock, report, worker)
                    if outcome != "delivered":
                        _release(ctx, run[index + 1:], clock(), worker)
                        break
            except BaseException:
                # an unexpected error (a database error, a bug, Ctrl-C): what this worker claimed and did not
                # record goes back to the queue now rather than staying leased for the whole lease (the
                # receiver's dedupe covers a message that was sent but not recorded)
                unsent = run[index:] + [m for later in runs[number + 1:] for m in later]
                with contextlib.suppress(Exception):
                    _release(ctx, unsent, clock(), worker)
                raise
    return report


def _deliver(ctx: NodeContext, client: PeerClient, msg: _Claimed, clock: Callable[[], dt.datetime],
             report: FlushReport, worker: Worker) -> str:
    try:
        response = client.post(msg.peer, INBOX_PATH, _envelope(ctx, msg))
    except PeerUnavailable as exc:
        outcome = _mark_failed(ctx, msg, exc.message, clock(), worker)
        (report.dead if outcome == "dead" else report.failed).append((msg.peer, msg.seq, exc.message))
        return outcome
    now = clock()
    verdict = _classify(response)
    if verdict == "delivered":
        if "double_delivery" in ctx.settings.active_faults:  # FAULT HOOK (test mode only; conformance-tests)
            client.post(msg.peer, INBOX_PATH, _envelope(ctx, msg))
        _mark_delivered(ctx, msg, response, now)
        report.delivered.append((msg.peer, msg.seq))
        return "delivered"
    error = f"{response.status_code} {response.code or ''}".strip()
    if verdict == "gap":
        expected = _expected_seq(response)
        if expected is not None and expected < msg.seq and _resync(ctx, msg.peer, expected, now):
            log.info("re-sync of the stream to %s from seq %s", msg.peer, expected)
            report.resynced.append((msg.peer, expected))
            return "resynced"
        error = f"{error}: the peer expects seq {expected}, which this node cannot re-send"
    outcome = _mark_failed(ctx, msg, error, now, worker, dead=verdict == "dead")
    (report.dead if outcome == "dead" else report.failed).append((msg.peer, msg.seq, error))
    return outcome


# -- dead letters ------------------------------------------------------------------------------------


def dead_letters(session: Session, *, limit: int = 500) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).where(OutboxMessage.state == "dead")
                             .order_by(OutboxMessage.peer, OutboxMessage.seq).limit(limit)).all())


def requeue(session: Session, message_id: str, *, now: dt.datetime | None = None) -> OutboxMessage:
    """Put a dead-lettered message back in the queue with fresh attempts."""
    row = session.exec(select(OutboxMessage).where(OutboxMessage.message_id == message_id)).first()
    if row is None or row.state != "dead":
        raise NotFound("no dead-lettered message with this id")
    row.state = "pending"
    row.attempts = 0
    row.claimed_by = None
    row.next_attempt_at = now or _now()
    session.add(row)
    session.flush()
    return row
