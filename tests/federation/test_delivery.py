"""Reliable delivery between two real nodes: order, exactly-once effect, backoff, dedupe, re-sync, dead letters,
membership.update propagation, and two workers flushing one outbox."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlmodel import select

from crypto import httpsig
from federation.errors import MembershipRefused
from federation.inbox import register_handler, unregister_handler
from federation.membership import held_membership, next_version, sign_membership
from federation.outbox import INBOX_PATH, enqueue, flush_outbox
from federation.transport.inbound import PROTOCOL_TAG
from federation.transport.outbound import PeerClient
from node.models import AuditEntry, InboxMessage, OutboxMessage, PeerStream
from tests.federation.test_transport import envelope

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def handled(joined):
    """A `test.record` handler on Shanghai: records (origin, seq, body) and answers with the seq."""
    calls: list[tuple[str, int, dict]] = []

    def handler(session, ctx, peer, message):
        calls.append((peer.node_id, message.seq, message.body))
        if message.body.get("refuse"):
            from node.errors import Conflict

            session.add(AuditEntry(actor_kind="peer", action="test.effect", outcome="ok"))
            raise Conflict("refused by the handler", code="test_refused")
        session.add(AuditEntry(actor_kind="peer", actor_id=peer.node_id, action="test.effect", outcome="ok",
                               detail={"seq": message.seq}))
        return {"ok": True, "seq": message.seq}

    register_handler("test.record", handler)
    yield calls
    unregister_handler("test.record")


def _queue(node, n: int, type: str = "test.record", peer: str = "shanghai") -> list[str]:
    ids = []
    with node.session() as s:
        for i in range(n):
            ids.append(enqueue(s, peer, type, {"n": i}, now=T0).message_id)
    return ids


def _outbox(node) -> list[OutboxMessage]:
    with node.session() as s:
        return list(s.exec(select(OutboxMessage).order_by(OutboxMessage.seq)).all())


def _effects(node) -> int:
    with node.session() as s:
        return s.exec(select(sa.func.count()).select_from(AuditEntry).where(AuditEntry.action == "test.effect")).one()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def test_enqueue_numbers_each_peer_stream_from_one(joined) -> None:
    with joined.b.session() as s:
        seqs = [enqueue(s, p, "test.record", {}).seq for p in ("shanghai", "jiangsu", "shanghai", "shanghai")]
    assert seqs == [1, 1, 2, 3]


def test_delivered_in_order_exactly_once_with_signed_receipts(joined, handled) -> None:
    ids = _queue(joined.b, 3)
    report = flush_outbox(joined.b.ctx, now=T0)
    assert report.delivered == [("shanghai", 1), ("shanghai", 2), ("shanghai", 3)]
    assert [c[1] for c in handled] == [1, 2, 3] and _effects(joined.a) == 3
    rows = _outbox(joined.b)
    assert [r.state for r in rows] == ["delivered"] * 3 and [r.message_id for r in rows] == ids
    # the stored receipt is a response signed by Shanghai for our request nonce
    receipt = rows[1].response
    checked = httpsig.verify_response(
        status=receipt["status"], headers=receipt["headers"], body=receipt["body"].encode(),
        resolve_key=lambda _k: joined.a.ctx.identity.signing_key.public_key,
        expected_request_nonce=receipt["request_nonce"], now=int(dt.datetime.now(dt.UTC).timestamp()),
        required_tag=PROTOCOL_TAG)
    assert checked.key_id == joined.a.ctx.identity.key_id
    assert receipt["status"] == 200 and '"seq":2' in receipt["body"].replace(" ", "")
    assert flush_outbox(joined.b.ctx, now=T0 + dt.timedelta(hours=1)).sent == 0
    with joined.a.session() as s:
        assert s.get(PeerStream, "zhejiang").next_in_seq == 4


@pytest.mark.parametrize("failure", ["down", "503"])
def test_peer_down_then_recovery_with_growing_backoff(joined, handled, failure) -> None:
    a = joined.a.base_url
    (joined.network.down if failure == "down" else joined.network.unavailable).add(a)
    _queue(joined.b, 2)
    now = T0
    waits = []
    for _ in range(4):
        report = flush_outbox(joined.b.ctx, now=now)
        assert report.failed and not report.delivered
        head = _outbox(joined.b)[0]
        waits.append((_aware(head.next_attempt_at) - now).total_seconds())
        assert flush_outbox(joined.b.ctx, now=now + dt.timedelta(seconds=waits[-1] - 1)).sent == 0
        now = _aware(head.next_attempt_at)
    assert waits == [2, 4, 8, 16]
    assert _outbox(joined.b)[0].attempts == 4 and _outbox(joined.b)[1].attempts == 0
    assert handled == []
    joined.network.down.clear()
    joined.network.unavailable.clear()
    report = flush_outbox(joined.b.ctx, now=now)
    assert report.delivered == [("shanghai", 1), ("shanghai", 2)]
    assert [c[1] for c in handled] == [1, 2] and _effects(joined.a) == 2


def test_duplicate_delivery_has_one_effect_and_the_same_response(joined, handled) -> None:
    client = PeerClient(joined.b.ctx)
    message = envelope(type="test.record")
    first = client.post("shanghai", INBOX_PATH, message)
    again = client.post("shanghai", INBOX_PATH, message)
    assert first.status_code == again.status_code == 200
    assert first.receipt["body"] == again.receipt["body"] and first.body == {"ok": True, "seq": 1}
    assert first.signature.nonce != again.signature.nonce  # each receipt is bound to its own request
    assert len(handled) == 1 and _effects(joined.a) == 1
    # the outbox re-sends after a lost response: same stored answer, still one effect
    _queue(joined.b, 1)
    with joined.b.session() as s:
        s.execute(sa.update(PeerStream).values(next_out_seq=3))
        s.execute(sa.update(OutboxMessage).values(seq=2))
    flush_outbox(joined.b.ctx, now=T0)
    stored = _outbox(joined.b)[0].response["body"]
    with joined.b.session() as s:
        s.execute(sa.update(OutboxMessage).values(state="pending", response=None, next_attempt_at=T0))
    flush_outbox(joined.b.ctx, now=T0)
    assert _outbox(joined.b)[0].response["body"] == stored
    assert len(handled) == 2 and _effects(joined.a) == 2
    with joined.a.session() as s:
        assert s.exec(select(sa.func.count()).select_from(InboxMessage)).one() == 2


def test_gap_triggers_resync_from_expected_seq(joined, handled) -> None:
    _queue(joined.b, 3)
    with joined.b.session() as s:  # seq 1 believed delivered, but Shanghai never got it
        s.execute(sa.update(OutboxMessage).where(OutboxMessage.seq == 1).values(state="delivered"))
    report = flush_outbox(joined.b.ctx, now=T0)
    assert report.resynced == [("shanghai", 1)]
    assert report.delivered == [("shanghai", 1), ("shanghai", 2), ("shanghai", 3)]
    assert [c[1] for c in handled] == [1, 2, 3]
    # a message ahead of the stream is answered with the expected seq
    answer = PeerClient(joined.b.ctx).post("shanghai", INBOX_PATH, envelope(seq=9, type="test.record"))
    assert answer.status_code == 409 and answer.code == "sequence_gap" and answer.body["expected_seq"] == 4


def test_unknown_type_and_handler_refusal_are_final_recorded_answers(joined, handled) -> None:
    with joined.b.session() as s:
        enqueue(s, "shanghai", "no.such_type", {}, now=T0)
        enqueue(s, "shanghai", "test.record", {"refuse": True}, now=T0)
        enqueue(s, "shanghai", "test.record", {}, now=T0)
    report = flush_outbox(joined.b.ctx, now=T0)
    assert len(report.delivered) == 3
    rows = _outbox(joined.b)
    assert [r.last_error for r in rows] == ["400 unknown_message_type", "409 test_refused", None]
    assert [r.response["status"] for r in rows] == [400, 409, 200]
    assert _effects(joined.a) == 1  # the refused handler's write was rolled back
    with joined.a.session() as s:
        stored = {m.seq: (m.status_code, m.response["code"] if "code" in m.response else "ok")
                  for m in s.exec(select(InboxMessage)).all()}
    assert stored == {1: (400, "unknown_message_type"), 2: (409, "test_refused"), 3: (200, "ok")}


def _admin(node, username: str = "fedadmin") -> dict[str, str]:
    from node.org.service import create_staff

    with node.session() as s:
        create_staff(s, username=username, display_name=username, password="correct-horse-1",
                     roles=["federation_admin"], organisation_code=None)
    r = node.client.post("/api/v1/auth/token", data={"username": username, "password": "correct-horse-1"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_dead_letter_after_max_attempts_then_requeue(joined, handled) -> None:
    joined.b.ctx.settings.federation.outbox_max_attempts = 3
    joined.network.down.add(joined.a.base_url)
    first, _second = _queue(joined.b, 2)
    now = T0
    for _ in range(3):
        flush_outbox(joined.b.ctx, now=now)
        now += dt.timedelta(hours=2)
    rows = _outbox(joined.b)
    assert [r.state for r in rows] == ["dead", "pending"] and rows[0].attempts == 3
    joined.network.down.clear()
    assert flush_outbox(joined.b.ctx, now=now).sent == 0  # the stream is stalled behind its dead head
    headers = _admin(joined.b)
    dead = joined.b.client.get("/api/v1/federation/outbox/dead", headers=headers).json()
    assert [(d["message_id"], d["seq"], d["attempts"]) for d in dead] == [(first, 1, 3)]
    assert "ConnectError" in dead[0]["last_error"]
    r = joined.b.client.post(f"/api/v1/federation/outbox/{first}/requeue", headers=headers)
    assert r.status_code == 200 and r.json()["state"] == "pending"
    assert joined.b.client.post(f"/api/v1/federation/outbox/{first}/requeue", headers=headers).status_code == 404
    report = flush_outbox(joined.b.ctx, now=now)
    assert report.delivered == [("shanghai", 1), ("shanghai", 2)] and [c[1] for c in handled] == [1, 2]
    with joined.b.session() as s:
        actions = [e.action for e in s.exec(select(AuditEntry)).all()]
    assert "federation.outbox.requeue" in actions and "federation.outbox.dead_letters" in actions


def test_admin_endpoints_need_a_signed_in_user(joined) -> None:
    for method, path in (("GET", "/api/v1/federation/membership"), ("GET", "/api/v1/federation/outbox/dead"),
                         ("POST", "/api/v1/federation/membership/install")):
        assert joined.a.client.request(method, path).status_code == 401


def test_admin_endpoints_need_the_federation_admin_role(joined) -> None:
    from node.org.service import create_staff

    with joined.a.session() as s:
        create_staff(s, username="clerk", display_name="clerk", password="correct-horse-1",
                     roles=["outlet_staff"], organisation_code=None)
    token = joined.a.client.post("/api/v1/auth/token",
                                 data={"username": "clerk", "password": "correct-horse-1"}).json()["access_token"]
    r = joined.a.client.get("/api/v1/federation/membership", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    with joined.a.session() as s:
        denied = s.exec(select(AuditEntry).where(AuditEntry.outcome == "denied")).all()
    assert [e.action for e in denied] == ["http.get /api/v1/federation/membership"]


def test_membership_ceremony_over_the_admin_api_and_propagation(joined) -> None:
    headers = _admin(joined.a)
    current = joined.a.client.get("/api/v1/federation/membership", headers=headers).json()
    assert current["version"] == 1
    # version 2 raises the threshold to 4 of 4
    proposal = next_version(current["document"], threshold=4)
    r = joined.a.client.post("/api/v1/federation/membership/proposals", json=proposal, headers=headers)
    assert r.status_code == 201, r.text
    digest = r.json()["hash"]
    assert r.json()["check"]["refusals"][0]["code"] == "below_threshold"
    r = joined.a.client.post(f"/api/v1/federation/membership/proposals/{digest}/signature", headers=headers)
    assert r.json()["check"]["signers"] == ["shanghai"]
    refused = joined.a.client.post("/api/v1/federation/membership/install", json={"hash": digest}, headers=headers)
    assert refused.status_code == 409 and refused.json()["code"] == "below_threshold"
    # the other members sign elsewhere; their proofs are merged into the proposal
    others = proposal
    for name in ("zhejiang", "jiangsu", "anhui"):
        others = sign_membership(others, joined.identity(name))
    r = joined.a.client.post("/api/v1/federation/membership/proposals", json=others, headers=headers)
    assert r.json()["check"]["ok"] and r.json()["check"]["signers"] == ["anhui", "jiangsu", "shanghai", "zhejiang"]
    r = joined.a.client.post("/api/v1/federation/membership/install", json={"hash": digest}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["announced_to"] == ["jiangsu", "zhejiang", "anhui"]
    # Shanghai tells Zhejiang (the fakes are unreachable and stay queued)
    report = flush_outbox(joined.a.ctx)
    assert report.delivered == [("zhejiang", 1)]
    with joined.b.session() as s:
        assert held_membership(s).version == 2 and held_membership(s).hash == digest
    receipt = [m for m in _outbox(joined.a) if m.peer == "zhejiang"][0].response
    assert '"installed"' in receipt["body"]
    with joined.a.session() as s:
        actions = [e.action for e in s.exec(select(AuditEntry)).all()]
        outcomes = {(e.action, e.outcome) for e in s.exec(select(AuditEntry)).all()}
    assert {"federation.membership.propose", "federation.membership.sign"} <= set(actions)
    assert ("federation.membership.install", "failed") in outcomes
    assert ("federation.membership.install", "ok") in outcomes


def test_membership_update_that_does_not_chain_is_a_recorded_refusal(joined) -> None:
    with joined.b.session() as s:
        held = held_membership(s).document
    skipped = {**next_version(held), "version": 3}
    for name in ("shanghai", "zhejiang", "jiangsu"):
        skipped = sign_membership(skipped, joined.identity(name))
    with joined.a.session() as s:
        enqueue(s, "zhejiang", "membership.update", {"document": skipped})
    flush_outbox(joined.a.ctx)
    row = _outbox(joined.a)[0]
    assert row.state == "delivered" and row.last_error == "409 wrong_version"
    with joined.b.session() as s:
        assert held_membership(s).version == 1
    with pytest.raises(MembershipRefused):
        joined.install(skipped, joined.b)


def test_two_workers_flushing_one_outbox_send_each_message_once(joined, handled) -> None:
    ids = _queue(joined.b, 24)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(200):
                flush_outbox(joined.b.ctx, now=T0, batch=4)
                with joined.b.session() as s:
                    left = s.exec(select(sa.func.count()).select_from(OutboxMessage)
                                  .where(OutboxMessage.state != "delivered")).one()
                if not left:
                    return
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    posts = Counter(p["id"] for p in joined.network.inbox_posts(joined.a.base_url))
    assert set(posts) == set(ids) and set(posts.values()) == {1}, posts.most_common(3)
    assert [c[1] for c in handled] == list(range(1, 25))
    assert all(r.state == "delivered" for r in _outbox(joined.b))


class _SlowPeer:
    """A PeerClient whose every post takes `step` of the (patched) outbox clock; `before(n)` runs before the
    n-th post (1-based), e.g. a second worker's flush at that moment."""

    def __init__(self, ctx, clock: list[dt.datetime], step: dt.timedelta, before=None) -> None:
        self.inner, self.clock, self.step, self.before, self.calls = PeerClient(ctx), clock, step, before, 0

    def post(self, peer, path, payload):
        self.calls += 1
        self.clock[0] += self.step
        if self.before is not None:
            self.before(self.calls)
        return self.inner.post(peer, path, payload)


def test_a_long_flush_leases_each_round_from_the_live_clock(joined, handled, monkeypatch) -> None:
    """A flush that runs longer than the lease must not hand a second worker rows it claimed late: the lease of
    each round counts from that round's claim (it used to count from the start of the flush, so a round claimed
    after `lease` seconds was due for everyone at once, and a second worker sent the same messages again)."""
    clock = [dt.datetime.now(dt.UTC)]
    monkeypatch.setattr("federation.outbox._now", lambda: clock[0])
    with joined.b.session() as s:
        ids = [enqueue(s, "shanghai", "test.record", {"n": i}, now=clock[0]).message_id for i in range(4)]
    second: list = []

    def other_worker(call: int) -> None:
        if call == 3:  # worker A, in its second round, is about to send seq 3: a second worker flushes now
            second.append(flush_outbox(joined.b.ctx, batch=2))

    # each post takes 200 s of the clock: round 1 (seq 1, 2) ends 400 s after the flush began, past the lease
    report = flush_outbox(joined.b.ctx, lambda: _SlowPeer(joined.b.ctx, clock, dt.timedelta(seconds=200),
                                                           other_worker), batch=2, lease_seconds=300)
    assert second and second[0].sent == 0, f"a second worker took rows still leased: {second[0].delivered}"
    assert report.delivered == [("shanghai", n) for n in (1, 2, 3, 4)]
    posts = Counter(p["id"] for p in joined.network.inbox_posts(joined.a.base_url))
    assert set(posts) == set(ids) and set(posts.values()) == {1}, posts
    assert [c[1] for c in handled] == [1, 2, 3, 4]


def test_backoff_counts_from_the_failed_attempt_not_the_start_of_the_flush(joined, handled, monkeypatch) -> None:
    clock = [dt.datetime.now(dt.UTC)]
    monkeypatch.setattr("federation.outbox._now", lambda: clock[0])
    with joined.b.session() as s:
        enqueue(s, "shanghai", "test.record", {}, now=clock[0])
        enqueue(s, "shanghai", "test.record", {}, now=clock[0])
    joined.network.down.add(joined.a.base_url)
    report = flush_outbox(joined.b.ctx, lambda: _SlowPeer(joined.b.ctx, clock, dt.timedelta(seconds=30)))
    assert [f[:2] for f in report.failed] == [("shanghai", 1)]
    head, second = _outbox(joined.b)
    # the attempt failed 30 s into the flush: the next one is 2 s after that (it was 2 s after the start,
    # i.e. already due for any other worker when the failure was recorded)
    assert _aware(head.next_attempt_at) == clock[0] + dt.timedelta(seconds=2)
    assert _aware(second.next_attempt_at) <= clock[0]  # released: it waits behind the head anyway
    assert handled == []


def test_a_run_outlasting_half_its_lease_goes_back_to_the_queue(joined, handled, monkeypatch) -> None:
    """One round's run can take longer than the lease (a slow peer): past half the lease the rest is released
    and claimed afresh, so a second worker flushing before any post never finds a row whose lease ran out."""
    clock = [dt.datetime.now(dt.UTC)]
    monkeypatch.setattr("federation.outbox._now", lambda: clock[0])
    with joined.b.session() as s:
        ids = [enqueue(s, "shanghai", "test.record", {"n": i}, now=clock[0]).message_id for i in range(4)]
    second: list = []
    # each post takes 100 s of the clock: the run of four (one claim, lease 300 s) would send seq 4 at 300 s
    report = flush_outbox(joined.b.ctx, lambda: _SlowPeer(joined.b.ctx, clock, dt.timedelta(seconds=100),
                                                           lambda _n: second.append(flush_outbox(joined.b.ctx))),
                          batch=4, lease_seconds=300)
    assert len(second) == 4 and all(r.sent == 0 for r in second), [r.delivered for r in second]
    assert report.delivered == [("shanghai", n) for n in (1, 2, 3, 4)]
    posts = Counter(p["id"] for p in joined.network.inbox_posts(joined.a.base_url))
    assert set(posts) == set(ids) and set(posts.values()) == {1}, posts
    assert [c[1] for c in handled] == [1, 2, 3, 4]


def test_an_unexpected_error_returns_the_claimed_rows_to_the_queue(joined, handled) -> None:
    """A worker that fails mid-run (here: a bug in the client on the second post) does not keep the rest of its
    claim leased: the next flush delivers it at once, each message once."""
    ids = _queue(joined.b, 4)

    class Broken(PeerClient):
        posts = 0

        def post(self, *args, **kwargs):
            Broken.posts += 1
            if Broken.posts == 2:
                raise RuntimeError("a bug")
            return super().post(*args, **kwargs)

    with pytest.raises(RuntimeError):
        flush_outbox(joined.b.ctx, lambda: Broken(joined.b.ctx), now=T0, batch=4)
    rows = _outbox(joined.b)
    assert [r.state for r in rows] == ["delivered", "pending", "pending", "pending"]
    assert flush_outbox(joined.b.ctx, now=T0).delivered == [("shanghai", n) for n in (2, 3, 4)]
    posts = Counter(p["id"] for p in joined.network.inbox_posts(joined.a.base_url))
    assert set(posts) == set(ids) and set(posts.values()) == {1}
