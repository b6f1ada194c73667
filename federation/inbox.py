"""Inbound one-way messages (docs/federation.md §4): dedupe, in-order processing, handler registry.

`receive_message` runs in the request's transaction: the handler's effects, the `inbox_message` row with the
response, and the stream's advance commit together (exactly-once effect). A duplicate (origin, id) gets the
first response again (and, when it comes at exactly the next seq under another seq than the one it was
consumed with — its origin numbered it again in a re-sync — that seq is used up by it); a message ahead of the
stream gets `409 sequence_gap` with `expected_seq`. A handler's
refusal (a `NodeError`) or an unknown type is a final answer: its effects are rolled back (savepoint), the
refusal is recorded and returned, and the stream advances so later messages are not blocked.

Register a handler with `register_handler("agreement.sign", fn)` (or as a decorator);
`fn(session, ctx, peer, message) -> dict` gets the verified `PeerIdentity` and the `InboxEnvelope`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from federation.errors import OriginMismatch, SequenceGap, UnknownMessageType
from federation.transport.inbound import PeerIdentity
from node.context import NodeContext
from node.errors import NodeError
from node.models import InboxMessage, PeerStream, utcnow

__all__ = [
    "Handler",
    "InboxEnvelope",
    "handler_for",
    "receive_message",
    "register_handler",
    "registered_types",
    "unregister_handler",
]

Handler = Callable[[Session, NodeContext, PeerIdentity, "InboxEnvelope"], dict]
_HANDLERS: dict[str, Handler] = {}


class InboxEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    origin: str = Field(min_length=1, max_length=64)
    destination: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1)
    type: str = Field(min_length=1, max_length=60)
    sent_at: str
    body: dict = Field(default_factory=dict)


def register_handler(message_type: str, fn: Handler | None = None) -> Any:
    """Register `fn` for `message_type`; usable as `@register_handler("x.y")`. Re-registering replaces."""

    def add(handler: Handler) -> Handler:
        _HANDLERS[message_type] = handler
        return handler

    return add(fn) if fn is not None else add


def unregister_handler(message_type: str) -> None:
    _HANDLERS.pop(message_type, None)


def handler_for(message_type: str) -> Handler | None:
    return _HANDLERS.get(message_type)


def registered_types() -> list[str]:
    return sorted(_HANDLERS)


# Statements built once (their cache keys are memoised on them); run on the session's connection, in its
# transaction. The stream row is locked first: it serialises every message of one origin.
_STREAMS = PeerStream.__table__
_INBOX = InboxMessage.__table__
_LOCK_STREAM = (sa.select(_STREAMS.c.next_in_seq).where(_STREAMS.c.peer == sa.bindparam("peer"))
                .with_for_update())
_SEEN = sa.select(_INBOX.c.seq, _INBOX.c.status_code, _INBOX.c.response).where(
    _INBOX.c.origin == sa.bindparam("origin"), _INBOX.c.message_id == sa.bindparam("message_id"))
_ADVANCE = (sa.update(_STREAMS).where(_STREAMS.c.peer == sa.bindparam("stream"))
            .values(next_in_seq=_STREAMS.c.next_in_seq + 1))
_RECORD = sa.insert(_INBOX)


def _lock_stream(connection: sa.Connection, origin: str) -> int:
    """Lock `origin`'s stream row (creating it at seq 1) and return the next seq expected from it."""
    expected = connection.execute(_LOCK_STREAM, {"peer": origin}).scalar()
    if expected is None:
        if connection.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        connection.execute(insert(_STREAMS).values(peer=origin, next_out_seq=1, next_in_seq=1)
                           .on_conflict_do_nothing(index_elements=["peer"]))
        expected = connection.execute(_LOCK_STREAM, {"peer": origin}).scalar_one()
    return expected


def receive_message(session: Session, ctx: NodeContext, peer: PeerIdentity,
                    envelope: InboxEnvelope) -> tuple[int, dict]:
    """Process one envelope from `peer`. Returns (status code, response body)."""
    if envelope.origin != peer.node_id:
        raise OriginMismatch(f"the envelope's origin {envelope.origin!r} is not the signer {peer.node_id!r}")
    if envelope.destination != ctx.node_id:
        raise OriginMismatch(f"the envelope is for {envelope.destination!r}, not {ctx.node_id!r}",
                             code="wrong_destination")
    session.flush()  # whatever the caller has pending goes first; below, SQL runs on the connection
    connection = session.connection()
    next_in_seq = _lock_stream(connection, peer.node_id)
    seen = connection.execute(_SEEN, {"origin": peer.node_id, "message_id": envelope.id}).first()
    if seen is not None:
        if envelope.seq == next_in_seq and seen.seq != envelope.seq:
            # a message consumed before under another seq, now sent at the next one: its origin numbered it
            # again (a stream re-sync, docs/federation.md §4.1). The seq is used up by it, with no second
            # effect, so the origin's next message is not taken for a gap that would send this one forever.
            connection.execute(_ADVANCE, {"stream": peer.node_id})
        return seen.status_code, seen.response
    if envelope.seq > next_in_seq:
        raise SequenceGap(next_in_seq, envelope.seq)
    if envelope.seq < next_in_seq:
        raise _SequenceReused(envelope.seq, next_in_seq)

    status, response = 200, {}
    handler = handler_for(envelope.type)
    if handler is None:
        exc = UnknownMessageType(f"no handler for message type {envelope.type!r}")
        status, response = exc.status_code, exc.to_dict()
    else:
        savepoint = session.begin_nested()
        try:
            response = handler(session, ctx, peer, envelope)
            savepoint.commit()
        except NodeError as exc:
            savepoint.rollback()
            status, response = exc.status_code, exc.to_dict()
        if not isinstance(response, dict):
            response = {"result": response}
        session.flush()
    connection.execute(_RECORD, {"origin": peer.node_id, "message_id": envelope.id, "seq": envelope.seq,
                                 "type": envelope.type, "body": envelope.body, "response": response,
                                 "status_code": status, "received_at": utcnow()})
    connection.execute(_ADVANCE, {"stream": peer.node_id})
    return status, response


class _SequenceReused(NodeError):
    status_code = 409
    code = "sequence_reused"

    def __init__(self, seq: int, expected: int) -> None:
        super().__init__(f"seq {seq} was already used by another message; expected {expected}",
                         detail={"expected_seq": expected})
