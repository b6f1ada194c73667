"""Issue 11.12: a stream wedged by a foreign message (or by a restore from a backup) and the re-sync that recovers
it without losing or duplicating a message (docs/federation.md §4.1, federation/streams.py).

Zhejiang (B) sends to Shanghai (A). "Delivered exactly once" is checked on Shanghai's side: its handler's
calls, its inbox, and the accepted (2xx) posts per message id on the wire."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlmodel import select

from federation.outbox import enqueue, flush_outbox
from federation.streams import RESYNC_PATH
from federation.transport.outbound import PeerClient, encode_json
from node.models import AuditEntry, InboxMessage, OutboxMessage, PeerStream
from tests.federation.test_delivery import _admin, _outbox, handled  # noqa: F401 - the fixture
from tests.federation.test_transport import INBOX, envelope, refusal, signed
from tests.federation.test_workers import ELSEWHERE

RESYNC_API = "/api/v1/federation/streams/shanghai/resync"


def _queue(node, n: int, peer: str = "shanghai") -> list[str]:
    with node.session() as s:
        return [enqueue(s, peer, "test.record", {"n": i}).message_id for i in range(n)]


def _inject(joined, seq: int, type_: str = "test.record") -> str:
    """A message signed with Zhejiang's key (stolen) that Zhejiang never sent: it takes seq `seq`."""
    message = {**envelope(seq, type=type_), "body": {"forged": True}}
    r = joined.a.client.send(signed(joined.b.ctx.identity, joined.a.base_url + INBOX, encode_json(message)))
    assert r.status_code == 200, r.text
    return message["id"]


def _accepted(joined) -> Counter:
    """Real deliveries accepted by Shanghai, per message id (a refusal such as sequence_reused is no delivery)."""
    with joined.a.session() as s:
        return Counter(m.message_id for m in s.exec(select(InboxMessage)
                                                    .where(InboxMessage.origin == "zhejiang")).all())


def _actions(node) -> list[AuditEntry]:
    with node.session() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action.like("federation.stream%"))
                           .order_by(AuditEntry.id)).all())


def _wire_posts(joined) -> Counter:
    return Counter(p["id"] for p in joined.network.inbox_posts(joined.a.base_url))


def test_a_foreign_message_wedges_the_stream_and_the_resync_recovers_it(joined, handled) -> None:  # noqa: F811
    first, second, third = _queue(joined.b, 3)
    with joined.b.session() as s:  # only seq 1 goes out before the injection
        s.execute(sa.update(OutboxMessage).where(OutboxMessage.seq > 1).values(
            next_attempt_at=dt.datetime(2100, 1, 1, tzinfo=dt.UTC)))
    assert flush_outbox(joined.b.ctx).delivered == [("shanghai", 1)]
    foreign = _inject(joined, 2)
    with joined.b.session() as s:
        s.execute(sa.update(OutboxMessage).values(next_attempt_at=dt.datetime.now(dt.UTC)))

    # the wedge: seq 2 is refused as reused, dead-lettered, and a re-queue fails the same way
    report = flush_outbox(joined.b.ctx)
    assert [(d[1], d[2]) for d in report.dead] == [(2, "409 sequence_reused")]
    headers = _admin(joined.b)
    assert joined.b.client.post(f"/api/v1/federation/outbox/{second}/requeue", headers=headers).status_code == 200
    report = flush_outbox(joined.b.ctx)
    assert [(d[1], d[2]) for d in report.dead] == [(2, "409 sequence_reused")] and not report.delivered
    streams = joined.b.client.get("/api/v1/federation/streams", headers=headers).json()
    [stream] = [s for s in streams if s["peer"] == "shanghai"]
    assert stream["wedged"] and stream["head"]["seq"] == 2 and stream["outbound"] == {"delivered": 1, "dead": 1,
                                                                                      "pending": 1}

    # the re-sync: Shanghai expects seq 3; Zhejiang's two undelivered messages become seq 3 and 4
    r = joined.b.client.post(RESYNC_API, json={}, headers=headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["receiver_next_seq"] == 3 and got["confirmed"] == [] and got["discarded"] == []
    assert [(m["message_id"], m["from"], m["to"]) for m in got["renumbered"]] == [(second, 2, 4 - 1), (third, 3, 4)]
    assert [(f["id"], f["seq"], f["type"]) for f in got["foreign"]] == [(foreign, 2, "test.record")]
    assert got["next_out_seq"] == 6  # 3, 4, and the stream.foreign notice as 5

    report = flush_outbox(joined.b.ctx)
    assert report.delivered == [("shanghai", 3), ("shanghai", 4), ("shanghai", 5)] and not report.dead
    assert [(c[1], c[2]) for c in handled] == [(1, {"n": 0}), (2, {"forged": True}), (3, {"n": 1}), (4, {"n": 2})]
    accepted = _accepted(joined)
    assert all(accepted[m] == 1 for m in (first, second, third)) and accepted[foreign] == 1
    with joined.a.session() as s:
        assert s.get(PeerStream, "zhejiang").next_in_seq == 6
    assert all(r.state == "delivered" for r in _outbox(joined.b))
    assert flush_outbox(joined.b.ctx).sent == 0

    # audited at both ends; Shanghai learns which message was foreign
    [resynced] = [e for e in _actions(joined.b) if e.action == "federation.stream.resync"]
    assert resynced.outcome == "ok" and resynced.actor_name == "fedadmin" and resynced.target_id == "shanghai"
    assert resynced.detail["foreign"][0]["id"] == foreign and len(resynced.detail["renumbered"]) == 2
    at_a = {e.action: e for e in _actions(joined.a)}
    assert at_a["federation.stream.resync_query"].actor_name == "zhejiang"
    assert at_a["federation.stream.resync_query"].detail["next_in_seq"] == 3
    flagged = at_a["federation.stream.foreign_messages"]
    assert flagged.actor_kind == "peer" and [m["id"] for m in flagged.detail["messages"]] == [foreign]


def test_a_message_the_peer_consumed_before_the_sender_recorded_it_is_not_sent_again(joined,  # noqa: F811
                                                                                     handled) -> None:
    """Zhejiang sent seq 2 and crashed before recording the answer; then a foreign message took seq 3, so its
    seq 3 is dead. The re-sync confirms seq 2 as delivered (Shanghai's stored answer is the receipt) and
    renumbers only seq 3."""
    ids = _queue(joined.b, 3)
    flush_outbox(joined.b.ctx)
    with joined.a.session() as s:  # Shanghai never got seq 3 ...
        s.execute(sa.delete(InboxMessage).where(InboxMessage.seq == 3))
        s.execute(sa.update(PeerStream).where(PeerStream.peer == "zhejiang").values(next_in_seq=3))
    foreign = _inject(joined, 3)  # ... a foreign message took it
    with joined.b.session() as s:  # Zhejiang: seq 2's answer never recorded; seq 3 refused as reused
        s.execute(sa.update(OutboxMessage).where(OutboxMessage.seq == 2).values(state="pending", response=None))
        s.execute(sa.update(OutboxMessage).where(OutboxMessage.seq == 3).values(
            state="dead", response=None, last_error="409 sequence_reused"))
    handled.clear()
    headers = _admin(joined.b)
    got = joined.b.client.post(RESYNC_API, json={}, headers=headers).json()
    assert got["receiver_next_seq"] == 4
    assert [(c["message_id"], c["seq"], c["peer_seq"]) for c in got["confirmed"]] == [(ids[1], 2, 2)]
    assert [(m["message_id"], m["from"], m["to"]) for m in got["renumbered"]] == [(ids[2], 3, 4)]
    assert [f["id"] for f in got["foreign"]] == [foreign]
    row = next(r for r in _outbox(joined.b) if r.message_id == ids[1])
    assert row.state == "delivered" and row.response["resync"]["status"] == 200
    assert row.response["status"] == 200 and row.response["peer"] == "shanghai"  # the signed answer
    flush_outbox(joined.b.ctx)
    assert [c[1] for c in handled] == [4]  # only the renumbered message is processed; seq 2 is not sent again
    accepted = _accepted(joined)
    assert [accepted[i] for i in ids] == [1, 1, 1]


def test_a_receiver_restored_from_a_backup_gets_what_it_lost_even_what_the_sender_no_longer_holds(  # noqa: F811
        joined, handled) -> None:
    """Shanghai is restored to a backup taken after seq 1: it lost seq 2-3. Zhejiang no longer holds seq 2 (its
    outbox was cleaned), so the gap re-send cannot help: seq 4 fails `the peer expects seq 2, which this node
    cannot re-send` for ever. The re-sync numbers seq 3 and 4 as 2 and 3."""
    ids = _queue(joined.b, 3)
    flush_outbox(joined.b.ctx)
    with joined.a.session() as s:  # the restore
        s.execute(sa.delete(InboxMessage).where(InboxMessage.seq >= 2))
        s.execute(sa.update(PeerStream).where(PeerStream.peer == "zhejiang").values(next_in_seq=2))
    with joined.b.session() as s:  # the cleaning
        s.execute(sa.delete(OutboxMessage).where(OutboxMessage.seq == 2))
    [fourth] = _queue(joined.b, 1)
    report = flush_outbox(joined.b.ctx)
    assert [f[2] for f in report.failed] == ["409 sequence_gap: the peer expects seq 2, which this node cannot re-send"]
    handled.clear()
    got = joined.b.client.post(RESYNC_API, json={}, headers=_admin(joined.b)).json()
    assert got["receiver_next_seq"] == 2 and got["foreign"] == []
    assert [(m["message_id"], m["from"], m["to"]) for m in got["renumbered"]] == [(ids[2], 3, 2), (fourth, 4, 3)]
    assert flush_outbox(joined.b.ctx).delivered == [("shanghai", 2), ("shanghai", 3)]
    assert [(c[1], c[2]) for c in handled] == [(2, {"n": 2}), (3, {"n": 0})]
    assert _accepted(joined)[ids[2]] == 1 and _accepted(joined)[fourth] == 1


def test_a_sender_restored_from_a_backup_resyncs_its_stream(joined, handled) -> None:  # noqa: F811
    """Zhejiang is restored to a backup taken after seq 1: its next seq is 2 again, but Shanghai consumed seq 2
    and 3. Its new message is refused as reused; after the re-sync it goes as seq 4, and the two messages it
    sent before the restore are reported as not in its outbox."""
    old = _queue(joined.b, 3)
    flush_outbox(joined.b.ctx)
    with joined.b.session() as s:  # the restore
        s.execute(sa.delete(OutboxMessage).where(OutboxMessage.seq >= 2))
        s.execute(sa.update(PeerStream).where(PeerStream.peer == "shanghai").values(next_out_seq=2))
    [new] = _queue(joined.b, 1)
    assert [d[2] for d in flush_outbox(joined.b.ctx).dead] == ["409 sequence_reused"]
    got = joined.b.client.post(RESYNC_API, json={}, headers=_admin(joined.b)).json()
    assert got["receiver_next_seq"] == 4
    assert [(m["message_id"], m["from"], m["to"]) for m in got["renumbered"]] == [(new, 2, 4)]
    assert [f["id"] for f in got["foreign"]] == old[1:]
    flush_outbox(joined.b.ctx)
    assert [c[1] for c in handled] == [1, 2, 3, 4]
    assert [_accepted(joined)[i] for i in [*old, new]] == [1, 1, 1, 1]


def test_a_message_the_peer_can_never_accept_is_discarded_and_the_stream_closes_over_it(joined,  # noqa: F811
                                                                                        handled) -> None:
    ids = _queue(joined.b, 3)
    with joined.b.session() as s:  # seq 1 was refused for good (e.g. 413 at the peer)
        s.execute(sa.update(OutboxMessage).where(OutboxMessage.seq == 1).values(
            state="dead", last_error="413 payload_too_large"))
    assert flush_outbox(joined.b.ctx).sent == 0  # stalled behind its dead head
    headers = _admin(joined.b)
    r = joined.b.client.post(RESYNC_API, json={"discard": ["urn:uuid:not-ours"]}, headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    got = joined.b.client.post(RESYNC_API, json={"discard": [ids[0]]}, headers=headers).json()
    assert got["receiver_next_seq"] == 1
    assert [d["message_id"] for d in got["discarded"]] == [ids[0]]
    assert [(m["message_id"], m["from"], m["to"]) for m in got["renumbered"]] == [(ids[1], 2, 1), (ids[2], 3, 2)]
    assert flush_outbox(joined.b.ctx).delivered == [("shanghai", 1), ("shanghai", 2)]
    assert [(c[1], c[2]) for c in handled] == [(1, {"n": 1}), (2, {"n": 2})]
    states = {r.message_id: r.state for r in _outbox(joined.b)}
    assert states == {ids[0]: "discarded", ids[1]: "delivered", ids[2]: "delivered"}
    # a second re-sync of a healthy stream changes nothing
    again = joined.b.client.post(RESYNC_API, json={}, headers=headers).json()
    assert again["receiver_next_seq"] == 3 and again["renumbered"] == [] and again["foreign"] == []
    failed = [e for e in _actions(joined.b) if e.action == "federation.stream.resync" and e.outcome == "failed"]
    assert [e.detail["code"] for e in failed] == ["not_found"]


def test_a_stream_a_live_worker_is_sending_on_is_busy(joined, handled) -> None:  # noqa: F811
    import federation.outbox as outbox

    _queue(joined.b, 2)
    outbox._claim(joined.b.ctx, dt.datetime.now(dt.UTC), 10, outbox.LEASE_SECONDS, ELSEWHERE)
    r = joined.b.client.post(RESYNC_API, json={}, headers=_admin(joined.b))
    assert r.status_code == 409 and r.json()["code"] == "stream_busy"
    assert not any(e.action == "federation.stream.resync_query" for e in _actions(joined.a))  # nothing asked


def test_a_renumbered_message_the_peer_already_has_uses_up_its_seq(joined, handled) -> None:  # noqa: F811
    """Defence in depth at the receiver: a message consumed before under seq 2, arriving again at the next seq
    (4) under a new number, is answered with its stored response, has no second effect, and uses up seq 4, so
    the sender's next message (5) is not taken for a gap."""
    client = PeerClient(joined.b.ctx)
    messages = [envelope(seq, type="test.record") for seq in (1, 2, 3)]
    for message in messages:
        assert client.post("shanghai", INBOX, message).status_code == 200
    again = client.post("shanghai", INBOX, {**messages[1], "seq": 4})
    assert again.status_code == 200 and again.body == {"ok": True, "seq": 2}
    assert client.post("shanghai", INBOX, envelope(5, type="test.record")).status_code == 200
    assert [c[1] for c in handled] == [1, 2, 3, 5]
    # a plain duplicate (same seq) changes nothing
    assert client.post("shanghai", INBOX, messages[0]).status_code == 200
    with joined.a.session() as s:
        assert s.get(PeerStream, "zhejiang").next_in_seq == 6


def test_the_resync_query_is_a_signed_peer_request_with_its_refusals(joined) -> None:
    url = joined.a.base_url + RESYNC_PATH
    query = {"resync_id": "urn:uuid:1", "origin": "zhejiang", "destination": "shanghai", "from_seq": 1,
             "messages": [{"id": "urn:uuid:x", "seq": 1}]}
    r = joined.a.client.post(url, content=encode_json(query), headers={"content-type": "application/json"})
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "unsigned"
    r = joined.a.client.send(signed(joined.b.ctx.identity, url, encode_json({**query, "origin": "jiangsu"})))
    assert r.status_code == 403 and refusal(r, joined.a.ctx.identity) == "origin_mismatch"
    r = joined.a.client.send(signed(joined.b.ctx.identity, url, encode_json({**query, "from_seq": 0})))
    assert r.status_code == 422 and refusal(r, joined.a.ctx.identity) == "validation_error"
    many = {**query, "messages": [{"id": secrets.token_hex(4), "seq": 1}] * 1001}
    r = joined.a.client.send(signed(joined.b.ctx.identity, url, encode_json(many)))
    assert r.status_code == 422 and refusal(r, joined.a.ctx.identity) == "validation_error"
    answer = PeerClient(joined.b.ctx).post("shanghai", RESYNC_PATH, query)
    assert answer.status_code == 200 and answer.body["next_in_seq"] == 1 and answer.body["received"] == []
    with joined.a.session() as s:  # the query changed nothing
        assert s.get(PeerStream, "zhejiang") is None or s.get(PeerStream, "zhejiang").next_in_seq == 1


def test_a_peer_that_refuses_the_query_fails_the_resync_with_a_code_and_an_audit_entry(joined,
                                                                                       monkeypatch) -> None:
    from node.errors import Forbidden

    def refuse(*_args, **_kwargs):
        raise Forbidden("not now", code="not_now")

    monkeypatch.setattr("federation.router.answer_resync", refuse)  # Shanghai refuses (a signed 403)
    _queue(joined.b, 1)
    headers = _admin(joined.b)
    r = joined.b.client.post(RESYNC_API, json={}, headers=headers)
    assert r.status_code == 502 and r.json()["code"] == "resync_failed"
    assert r.json()["detail"] == {"status": 403, "code": "not_now", "message": "not now"}
    [entry] = [e for e in _actions(joined.b) if e.action == "federation.stream.resync"]
    assert entry.outcome == "failed" and entry.detail["code"] == "resync_failed"
    joined.network.down.add(joined.a.base_url)
    r = joined.b.client.post(RESYNC_API, json={}, headers=headers)
    assert r.status_code == 502 and r.json()["code"] == "peer_unavailable"
    assert [r.state for r in _outbox(joined.b)] == ["pending"]  # nothing changed


def test_the_admin_endpoints_need_the_federation_admin_role(joined) -> None:
    assert joined.b.client.post(RESYNC_API, json={}).status_code == 401
    assert joined.b.client.get("/api/v1/federation/streams").status_code == 401


def test_the_cli_resyncs_and_reports_foreign_messages(joined, handled, monkeypatch) -> None:  # noqa: F811
    from typer.testing import CliRunner

    import federation.cli
    from node.cli import app

    _queue(joined.b, 1)
    flush_outbox(joined.b.ctx)
    foreign = _inject(joined, 2)
    [mine] = _queue(joined.b, 1)
    flush_outbox(joined.b.ctx)
    monkeypatch.setattr(federation.cli, "_context", lambda _config: joined.b.ctx)
    monkeypatch.setattr(joined.b.ctx.engine, "dispose", lambda: None)  # the CLI disposes of its own engine
    status = CliRunner().invoke(app, ["federation", "streams"])
    assert status.exit_code == 0 and "shanghai" in status.output and "WEDGED" in status.output
    result = CliRunner().invoke(app, ["federation", "resync", "shanghai"])
    assert result.exit_code == 0, result.output
    assert "it expects seq 3" in result.output and f"{mine} test.record: seq 2 -> 3" in result.output
    assert "WARNING" in result.output and foreign in result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["renumbered"][0]["to"] == 3
    [entry] = [e for e in _actions(joined.b) if e.action == "federation.stream.resync"]
    assert entry.actor_kind == "system" and entry.actor_name.startswith("cli:")
    flush_outbox(joined.b.ctx)
    assert _accepted(joined)[mine] == 1
    refused = CliRunner().invoke(app, ["federation", "resync", "shanghai", "--discard", "urn:uuid:nope"])
    assert refused.exit_code == 1 and "not_found" in refused.output


@pytest.mark.parametrize("code", ["stream_busy", "stream_changed", "resync_failed"])
def test_the_codes_are_documented(code) -> None:
    from pathlib import Path

    errors = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text(encoding="utf-8")
    assert f"`{code}`" in errors


def test_a_stream_that_moves_during_the_query_is_snapshotted_again(joined, handled, monkeypatch) -> None:  # noqa: F811
    """A message queued while the peer is being asked changes the undelivered set: the apply step refuses the
    stale answer and the procedure starts again, so the new message is asked about and numbered too."""
    import federation.streams as streams

    _queue(joined.b, 1)
    flush_outbox(joined.b.ctx)
    foreign = _inject(joined, 2)
    [late_first] = _queue(joined.b, 1)
    assert [d[1] for d in flush_outbox(joined.b.ctx).dead] == [2]
    real_query = streams._query
    late: list[str] = []

    def query_then_enqueue(*args, **kwargs):
        answer = real_query(*args, **kwargs)
        if not late:
            late.extend(_queue(joined.b, 1))
        return answer

    monkeypatch.setattr(streams, "_query", query_then_enqueue)
    got = joined.b.client.post(RESYNC_API, json={}, headers=_admin(joined.b)).json()
    assert [(m["message_id"], m["to"]) for m in got["renumbered"]] == [(late_first, 3), (late[0], 4)]
    assert [f["id"] for f in got["foreign"]] == [foreign]
    flush_outbox(joined.b.ctx)
    assert [c[1] for c in handled] == [1, 2, 3, 4]
    assert _accepted(joined)[late_first] == _accepted(joined)[late[0]] == 1
