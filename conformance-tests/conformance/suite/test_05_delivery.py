"""Reliable delivery in both directions (docs/federation.md §4): the node retries with backoff and delivers
exactly once; the node processes a duplicate once; a gap is answered with the expected seq."""

from __future__ import annotations

import uuid

import pytest

F4 = "docs/federation.md §4"
pytestmark = pytest.mark.requires("signed_exchange")


def _send(harness, token: str) -> str:
    queued = harness.node.admin_ok("POST", "/api/v1/testing/outbox",
                                   {"peer": harness.peer.node_id, "type": "conformance.ping",
                                    "body": {"token": token}})
    return queued["message_id"]


def _flush(harness, advance: int = 0, *, at: str | None = None) -> dict:
    payload: dict = {"advance_seconds": advance}
    if at is not None:
        payload["at"] = at
    return harness.node.admin_ok("POST", "/api/v1/testing/outbox/flush", payload)


def _row(harness, message_id: str) -> dict:
    rows = harness.node.admin_ok("GET", "/api/v1/testing/outbox", peer=harness.peer.node_id)
    return next(r for r in rows if r["message_id"] == message_id)


@pytest.mark.rule(f"{F4} the node sends a signed envelope to the member's inbox, once")
@pytest.mark.provides("outbound")
def test_node_delivers_signed_envelope(harness) -> None:
    message_id = _send(harness, "outbound")
    _flush(harness)
    _flush(harness, advance=3600)  # nothing more may be sent for a delivered message
    got = harness.peer.deliveries_of(message_id)
    assert len(got) == 1, f"{len(got)} deliveries of one message"
    delivery = got[0]
    assert delivery.verified, f"the node's request does not verify: {delivery.problem}"
    assert delivery.key_id.startswith(harness.facts["discovery"]["did"] + "#")
    env = delivery.envelope
    assert env["origin"] == harness.node.node_id and env["destination"] == harness.peer.node_id
    assert env["type"] == "conformance.ping" and env["body"] == {"token": "outbound"} and env["seq"] >= 1
    assert _row(harness, message_id)["state"] == "delivered"


@pytest.mark.rule(f"{F4} peer down: retries with exponential backoff, then exactly one delivery")
@pytest.mark.requires("outbound")
def test_retry_with_backoff_exactly_once(harness) -> None:
    harness.peer.fail_next(3)
    message_id = _send(harness, "retried")
    t0 = _flush(harness, 0)["clock"]  # attempt 1 at t0: 503; next at t0 + 2 s (one clock: t0 + n)
    assert len(harness.peer.deliveries_of(message_id)) == 1
    assert _row(harness, message_id)["state"] == "pending", "gave up after one failure"
    _flush(harness, 1, at=t0)  # within the backoff: no attempt
    assert len(harness.peer.deliveries_of(message_id)) == 1, "retried before the backoff elapsed"
    _flush(harness, 3, at=t0)  # attempt 2: 503; next at t0 + 3 + 4
    _flush(harness, 5, at=t0)  # still within the (longer) backoff
    assert len(harness.peer.deliveries_of(message_id)) == 2, "the backoff does not grow"
    _flush(harness, 8, at=t0)  # attempt 3: 503; next at t0 + 8 + 8
    _flush(harness, 17, at=t0)  # attempt 4: the peer is back
    _flush(harness, 7200, at=t0)
    got = harness.peer.deliveries_of(message_id)
    answered = [d.answered for d in got]
    assert answered == [503, 503, 503, 200], f"attempts answered {answered}"
    assert all(d.verified for d in got)
    assert _row(harness, message_id)["state"] == "delivered"


@pytest.mark.rule(f"{F4} duplicate delivery: deduped on (origin, id), the first response returned, one effect")
def test_duplicate_delivery_one_effect(harness) -> None:
    message_id = f"urn:uuid:{uuid.uuid4()}"
    envelope, first = harness.ping("duplicate 1", token="dup", message_id=message_id)
    assert first.status == 200, first.body
    second = harness.node.send_signed("duplicate 2", envelope, sign=harness.peer.sign)
    assert (second.status, second.body) == (first.status, first.body), "a duplicate got another answer"
    rows = harness.node.admin_ok("GET", "/api/v1/testing/inbox", origin=harness.peer.node_id)
    mine = [r for r in rows if r["message_id"] == message_id]
    assert len(mine) == 1 and mine[0]["effects"] == 1, mine


@pytest.mark.rule(f"{F4} sequence_gap: a message ahead of the stream gets 409 with expected_seq")
def test_sequence_gap(harness) -> None:
    expected = harness.seq + 1
    _envelope, ex = harness.ping("gap", seq=expected + 3)
    assert (ex.status, ex.code) == (409, "sequence_gap"), ex.body
    assert ex.body.get("expected_seq", (ex.body.get("detail") or {}).get("expected_seq")) == expected
    assert ex.response_signed
