"""Per-peer message streams: their state, and the re-sync that recovers a wedged one (docs/federation.md §4.1).

A stream (origin → destination) is *wedged* when the destination has used sequence numbers the origin's
undelivered messages carry — messages injected with a stolen key, or a node restored from a backup — so its
next real message is refused `409 sequence_reused` forever; or when the destination expects a seq the origin
no longer holds. The re-sync, run at the origin by a federation admin (API or CLI), recovers it without losing
or duplicating a message:

1. *snapshot* (origin): the undelivered messages to the peer (pending or dead), in seq order; none may be held
   by a live worker's claim (`stream_busy`);
2. *query* (signed request `POST /federation/v1/streams/resync`, signed response): the origin lists those
   messages' ids and seqs; the destination answers — changing nothing — its `next_in_seq`, which of the ids it
   has already consumed (with the answer it stored for each), and what it consumed from the origin's lowest
   undelivered seq on;
3. *apply* (origin, one transaction, the stream locked and the snapshot checked unchanged, else
   `stream_changed` and the procedure starts again, at most three times): the messages the destination has are
   marked delivered (its signed answer and its stored response are the receipt); those the admin discards are
   `discarded`; the rest — and any message marked delivered whose seq the destination has not reached (it lost
   them: restored from a backup) — are numbered again from the destination's `next_in_seq`, in their order,
   pending with fresh attempts; `next_out_seq` follows them. Message ids never change, so the destination's
   dedupe on (origin, id) keeps every effect single.
4. What the destination consumed that is not in the origin's outbox (injected with the origin's key, or sent by
   the origin before it was restored from a backup) is reported, audited at both ends, and announced to the
   destination by a `stream.foreign` message.

Audit: `federation.stream.resync` at the origin (actor: the admin or the CLI user; detail: the receiver's
next seq, every renumbering, the messages confirmed, discarded, and the foreign ones), its refusals
(`outcome` failed); `federation.stream.resync_query` and `federation.stream.foreign_messages` at the
destination (actor: the peer).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, select

from federation.errors import EnvelopeInvalid, OriginMismatch, PeerUnavailable, ResyncFailed
from federation.inbox import InboxEnvelope, register_handler
from federation.outbox import enqueue
from federation.transport.inbound import PeerIdentity
from federation.transport.outbound import PeerClient
from federation.workers import current_worker, gone_workers
from node.audit.service import record
from node.context import NodeContext
from node.db import session_scope
from node.deps import Principal
from node.errors import Conflict, NotFound
from node.models import InboxMessage, OutboxMessage, PeerStream

__all__ = [
    "FOREIGN_MESSAGES",
    "MAX_MESSAGES",
    "RESYNC_PATH",
    "ResyncReport",
    "answer_resync",
    "resync_stream",
    "stream_status",
]

log = logging.getLogger("creditnode.federation.streams")

RESYNC_PATH = "/federation/v1/streams/resync"
FOREIGN_MESSAGES = "stream.foreign"
MAX_MESSAGES = 1000  # ids per query (the origin sends several queries for a longer backlog)
ATTEMPTS = 3
UNDELIVERED = ("pending", "dead")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _peer_actor(peer: PeerIdentity) -> Principal:
    return Principal(kind="peer", id=0, name=peer.node_id, roles=())


# -- status -------------------------------------------------------------------------------------------------


def stream_status(session: Session) -> list[dict]:
    """Per peer: the counters, the outbound messages by state, and the head (lowest undelivered message)."""
    counts: dict[str, dict[str, int]] = {}
    for peer, state, n in session.exec(select(OutboxMessage.peer, OutboxMessage.state, sa.func.count())
                                       .group_by(OutboxMessage.peer, OutboxMessage.state)).all():
        counts.setdefault(peer, {})[state] = n
    streams = {s.peer: s for s in session.exec(select(PeerStream)).all()}
    out = []
    for peer in sorted(set(counts) | set(streams)):
        head = session.exec(select(OutboxMessage).where(OutboxMessage.peer == peer,
                                                        OutboxMessage.state.in_(UNDELIVERED))
                            .order_by(OutboxMessage.seq).limit(1)).first()
        stream = streams.get(peer)
        out.append({
            "peer": peer, "next_out_seq": stream.next_out_seq if stream else 1,
            "next_in_seq": stream.next_in_seq if stream else 1, "outbound": counts.get(peer, {}),
            "head": None if head is None else {"message_id": head.message_id, "seq": head.seq, "state": head.state,
                                               "attempts": head.attempts, "last_error": head.last_error},
            "wedged": head is not None and head.state == "dead",
        })
    return out


# -- the destination's side ---------------------------------------------------------------------------------


class _Listed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1)


class ResyncQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resync_id: str = Field(min_length=1, max_length=64)
    origin: str = Field(min_length=1, max_length=64)
    destination: str = Field(min_length=1, max_length=64)
    from_seq: int = Field(ge=1)
    messages: list[_Listed] = Field(default_factory=list, max_length=MAX_MESSAGES)


def answer_resync(session: Session, ctx: NodeContext, peer: PeerIdentity, body: Any) -> dict:
    """The destination's answer to a re-sync query from `peer` (step 2). Changes nothing but the audit log."""
    try:
        query = ResyncQuery.model_validate(body)
    except ValidationError as exc:
        raise EnvelopeInvalid("the re-sync query is not valid", detail={"errors": [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]}) from None
    if query.origin != peer.node_id:
        raise OriginMismatch(f"the query's origin {query.origin!r} is not the signer {peer.node_id!r}")
    if query.destination != ctx.node_id:
        raise OriginMismatch(f"the query is for {query.destination!r}, not {ctx.node_id!r}", code="wrong_destination")
    stream = session.get(PeerStream, peer.node_id)
    next_in = stream.next_in_seq if stream is not None else 1
    ids = [m.id for m in query.messages]
    received = session.exec(select(InboxMessage).where(InboxMessage.origin == peer.node_id,
                                                       InboxMessage.message_id.in_(ids))).all() if ids else []
    consumed = session.exec(select(InboxMessage).where(InboxMessage.origin == peer.node_id,
                                                       InboxMessage.seq >= query.from_seq)
                            .order_by(InboxMessage.seq).limit(MAX_MESSAGES)).all()
    record(session, actor=_peer_actor(peer), action="federation.stream.resync_query", target_type="stream",
           target_id=peer.node_id, detail={"resync_id": query.resync_id, "next_in_seq": next_in,
                                           "asked": len(ids), "received": sorted(m.message_id for m in received),
                                           "consumed_from": query.from_seq, "consumed": len(consumed)})
    return {
        "resync_id": query.resync_id, "origin": peer.node_id, "destination": ctx.node_id, "next_in_seq": next_in,
        "received": [{"id": m.message_id, "seq": m.seq, "status": m.status_code, "response": m.response}
                     for m in sorted(received, key=lambda m: m.seq)],
        "consumed": [{"id": m.message_id, "seq": m.seq, "type": m.type, "status": m.status_code,
                      "received_at": m.received_at.isoformat()} for m in consumed],
    }


def handle_foreign(session: Session, ctx: NodeContext, peer: PeerIdentity, message: InboxEnvelope) -> dict:
    """`stream.foreign`: the origin says these messages this node consumed under its name are not in its outbox
    (injected with its key, or sent before a restore of the origin). Audited for the admins to look into."""
    listed = message.body.get("messages")
    listed = [m for m in listed if isinstance(m, dict)][:MAX_MESSAGES] if isinstance(listed, list) else []
    ids = [str(m.get("id"))[:64] for m in listed]
    found = session.exec(select(InboxMessage).where(InboxMessage.origin == peer.node_id,
                                                    InboxMessage.message_id.in_(ids))).all() if ids else []
    detail = {"resync_id": str(message.body.get("resync_id"))[:64],
              "messages": [{"id": m.message_id, "seq": m.seq, "type": m.type,
                            "received_at": m.received_at.isoformat()} for m in found]}
    record(session, actor=_peer_actor(peer), action="federation.stream.foreign_messages", target_type="stream",
           target_id=peer.node_id, detail=detail)
    if found:
        log.warning("%s says %d message(s) consumed under its name were not sent by it: %s", peer.node_id,
                    len(found), ", ".join(f"seq {m.seq} {m.type}" for m in found))
    return {"flagged": len(found)}


register_handler(FOREIGN_MESSAGES, handle_foreign)


# -- the origin's side --------------------------------------------------------------------------------------


@dataclass
class ResyncReport:
    peer: str
    resync_id: str
    receiver_next_seq: int = 0
    confirmed: list[dict] = field(default_factory=list)  # already consumed by the peer: marked delivered
    discarded: list[dict] = field(default_factory=list)
    renumbered: list[dict] = field(default_factory=list)  # {message_id, type, from, to}
    foreign: list[dict] = field(default_factory=list)  # consumed by the peer under our name, not in our outbox
    next_out_seq: int = 0

    def to_dict(self) -> dict:
        return {"peer": self.peer, "resync_id": self.resync_id, "receiver_next_seq": self.receiver_next_seq,
                "confirmed": self.confirmed, "discarded": self.discarded, "renumbered": self.renumbered,
                "foreign": self.foreign, "next_out_seq": self.next_out_seq}


class _Changed(Exception):
    """The stream moved between the snapshot and the apply step."""


def _lock(query: Any, session: Session) -> Any:
    # SQLite ignores FOR UPDATE, but node.db takes the write lock before such a read (node/db.py)
    return query.with_for_update()


def _undelivered(session: Session, peer: str, *, lock: bool = False) -> list[OutboxMessage]:
    query = (select(OutboxMessage).where(OutboxMessage.peer == peer, OutboxMessage.state.in_(UNDELIVERED))
             .order_by(OutboxMessage.seq))
    return list(session.exec(_lock(query, session) if lock else query).all())


def _check_not_busy(ctx: NodeContext, session: Session, rows: list[OutboxMessage], now: dt.datetime) -> None:
    """A row a live worker holds is being sent right now: renumbering it could race with that send."""
    held = {r.claimed_by for r in rows if r.state == "pending" and r.claimed_by is not None
            and (r.next_attempt_at if r.next_attempt_at.tzinfo else r.next_attempt_at.replace(tzinfo=dt.UTC)) > now}
    if held - set(gone_workers(session, current_worker(), now,
                               ctx.settings.federation.outbox_worker_stale_seconds)):
        raise Conflict("a worker is sending on this stream right now; try again in a moment", code="stream_busy")


def _snapshot(ctx: NodeContext, peer: str, discard: set[str], now: dt.datetime) -> tuple[list[tuple], int]:
    with session_scope(ctx.engine) as session:
        rows = _undelivered(session, peer)
        unknown = discard - {r.message_id for r in rows}
        if unknown:
            raise NotFound(f"no undelivered message to {peer} with the id(s) {', '.join(sorted(unknown))}")
        _check_not_busy(ctx, session, rows, now)
        stream = session.get(PeerStream, peer)
        next_out = stream.next_out_seq if stream is not None else 1
    return [(r.message_id, r.seq, r.state) for r in rows], next_out


def _query(ctx: NodeContext, client: PeerClient, peer: str, resync_id: str, listed: list[tuple],
           from_seq: int) -> tuple[int, dict[str, dict], list[dict], dict]:
    """Ask the peer (step 2), in batches. Returns (its next_in_seq, received by id, consumed, last receipt)."""
    next_in: int | None = None
    received: dict[str, dict] = {}
    consumed: list[dict] = []
    receipt: dict = {}
    batches = [listed[i:i + MAX_MESSAGES] for i in range(0, len(listed), MAX_MESSAGES)] or [[]]
    for batch in batches:
        answer = client.post(peer, RESYNC_PATH, {
            "resync_id": resync_id, "origin": ctx.node_id, "destination": peer, "from_seq": from_seq,
            "messages": [{"id": mid, "seq": seq} for mid, seq, _state in batch]})
        body = answer.body if isinstance(answer.body, dict) else {}
        if not answer.ok:
            raise ResyncFailed(f"{peer} refused the re-sync query: {answer.status_code} {answer.code or ''}".strip(),
                               detail={"status": answer.status_code, "code": answer.code,
                                       "message": body.get("message")})
        value = body.get("next_in_seq")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1 \
                or body.get("resync_id") != resync_id or not isinstance(body.get("received"), list) \
                or not isinstance(body.get("consumed"), list):
            raise ResyncFailed(f"{peer}'s answer to the re-sync query is not well formed")
        if next_in is not None and value != next_in:
            raise _Changed()
        next_in = value
        asked = {mid for mid, _seq, _state in batch}
        for item in body["received"]:
            if isinstance(item, dict) and item.get("id") in asked:
                received[item["id"]] = item
        if not consumed:
            consumed = [c for c in body["consumed"] if isinstance(c, dict)]
        receipt = answer.receipt
    assert next_in is not None
    return next_in, received, consumed, receipt


def resync_stream(ctx: NodeContext, peer: str, *, actor: Principal, discard: list[str] | tuple[str, ...] = (),
                  client: PeerClient | None = None) -> ResyncReport:
    """Re-sync this node's stream to `peer` (module docstring). Audited; refusals are audited as failed."""
    try:
        client = client or PeerClient(ctx)
        try:
            client.member(peer)
        except PeerUnavailable as exc:  # not a member: the caller named the wrong node, not a peer failure
            raise NotFound(exc.message, code="unknown_peer") from None
        for attempt in range(ATTEMPTS):
            try:
                return _resync_once(ctx, peer, actor=actor, discard=set(discard), client=client)
            except _Changed:
                log.info("re-sync of the stream to %s: it moved meanwhile (attempt %d)", peer, attempt + 1)
        raise Conflict("the stream kept changing during the re-sync; try again", code="stream_changed")
    except Exception as exc:
        from node.errors import NodeError

        if isinstance(exc, NodeError):
            with session_scope(ctx.engine) as session:
                record(session, actor=actor, action="federation.stream.resync", outcome="failed",
                       target_type="stream", target_id=peer, detail={"code": exc.code, "message": exc.message[:300],
                                                                     "discard": sorted(discard)})
        raise


def _resync_once(ctx: NodeContext, peer: str, *, actor: Principal, discard: set[str],
                 client: PeerClient) -> ResyncReport:
    report = ResyncReport(peer=peer, resync_id=f"urn:uuid:{uuid.uuid4()}")
    snapshot, next_out = _snapshot(ctx, peer, discard, _now())
    from_seq = snapshot[0][1] if snapshot else next_out
    next_in, received, consumed, receipt = _query(ctx, client, peer, report.resync_id, snapshot, from_seq)
    report.receiver_next_seq = next_in
    now = _now()
    with session_scope(ctx.engine) as session:
        stream = session.exec(_lock(select(PeerStream).where(PeerStream.peer == peer), session)).first()
        if stream is None:
            stream = PeerStream(peer=peer, next_out_seq=1, next_in_seq=1)
            session.add(stream)
            session.flush()
        rows = _undelivered(session, peer, lock=True)
        if [(r.message_id, r.seq, r.state) for r in rows] != snapshot:
            raise _Changed()
        _check_not_busy(ctx, session, rows, now)
        # delivered rows the peer has not reached: it lost them (restored from a backup); they go again
        lost = list(session.exec(_lock(select(OutboxMessage).where(
            OutboxMessage.peer == peer, OutboxMessage.state == "delivered", OutboxMessage.seq >= next_in)
            .order_by(OutboxMessage.seq), session)).all())
        to_send: list[OutboxMessage] = []
        for row in sorted(rows + lost, key=lambda r: r.seq):
            if row.message_id in received:
                got = received[row.message_id]
                row.state, row.delivered_at, row.claimed_by = "delivered", now, None
                row.response = {**receipt, "resync": {"resync_id": report.resync_id, "status": got.get("status"),
                                                      "response": got.get("response")}}
                row.last_error = f"confirmed by re-sync {report.resync_id}"
                report.confirmed.append({"message_id": row.message_id, "seq": row.seq, "peer_seq": got.get("seq")})
                if row.seq >= next_in:  # (renumbered before) out of the way of the new numbers
                    row.seq = -row.id
            elif row.message_id in discard:
                row.state, row.claimed_by = "discarded", None
                row.last_error = f"discarded by re-sync {report.resync_id} ({row.last_error or ''})"[:500]
                report.discarded.append({"message_id": row.message_id, "seq": row.seq, "type": row.type})
                row.seq = -row.id  # a discarded message leaves the stream
            else:
                to_send.append(row)
            session.add(row)
        session.flush()
        _renumber(session, to_send, next_in, report, now)
        stream.next_out_seq = next_in + len(to_send)
        session.add(stream)
        session.flush()
        ours = set(session.exec(select(OutboxMessage.message_id).where(
            OutboxMessage.peer == peer, OutboxMessage.message_id.in_([c.get("id") for c in consumed]))).all()) \
            if consumed else set()
        report.foreign = [{k: c.get(k) for k in ("id", "seq", "type", "received_at")}
                          for c in consumed if c.get("id") not in ours]
        if report.foreign:
            enqueue(session, peer, FOREIGN_MESSAGES, {"resync_id": report.resync_id, "messages": report.foreign},
                    now=now)
            log.warning("re-sync of the stream to %s: it consumed %d message(s) under this node's name that this "
                        "node's outbox does not hold (injected with its key, or sent before a restore)",
                        peer, len(report.foreign))
        report.next_out_seq = session.get(PeerStream, peer).next_out_seq
        record(session, actor=actor, action="federation.stream.resync", target_type="stream", target_id=peer,
               detail=report.to_dict())
    return report


def _renumber(session: Session, rows: list[OutboxMessage], start: int, report: ResyncReport,
              now: dt.datetime) -> None:
    """Give `rows` (in seq order) the seqs start, start+1, ...: pending, fresh attempts. Two steps through
    negative seqs, so that the unique (peer, seq) holds after every single row update."""
    if not rows:
        return
    old_seqs = [row.seq for row in rows]
    for row in rows:
        row.seq = -row.id
        session.add(row)
    session.flush()
    for offset, (row, old) in enumerate(zip(rows, old_seqs, strict=True)):
        new = start + offset
        report.renumbered.append({"message_id": row.message_id, "type": row.type, "from": old, "to": new})
        row.seq, row.state, row.attempts, row.claimed_by = new, "pending", 0, None
        row.next_attempt_at, row.delivered_at, row.response = now, None, None
        row.last_error = f"re-sync {report.resync_id}: seq {old} → {new}"
        session.add(row)
    session.flush()
