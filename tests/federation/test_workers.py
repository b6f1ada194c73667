"""Issue 11.13: outbox rows claimed by a process that is gone are claimed again at once, not after the 300 s
lease — and a live worker's claims are never taken (docs/federation.md §4, federation/workers.py).

No test sleeps for a lease: a real process is killed with SIGKILL while it holds a claim; the other cases
drive the outbox clock."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

import federation.outbox as outbox
from federation.outbox import enqueue, flush_outbox
from federation.transport.outbound import PeerClient
from federation.workers import Worker, current_worker, gone_workers
from node.models import OutboxMessage, OutboxWorker
from tests.federation.test_delivery import _aware, _outbox, handled  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
ELSEWHERE = Worker(id="other-host-1-abc", host="another-host|0123", pid=1)


def _queue(node, n: int, now: dt.datetime) -> list[str]:
    with node.session() as s:
        return [enqueue(s, "shanghai", "test.record", {"n": i}, now=now).message_id for i in range(n)]


def _posts(joined) -> Counter:
    return Counter(p["id"] for p in joined.network.inbox_posts(joined.a.base_url))


def test_a_crashed_process_s_claims_are_taken_back_at_the_next_flush(joined, handled) -> None:  # noqa: F811
    ids = _queue(joined.b, 3, dt.datetime.now(dt.UTC))
    settings = joined.b.settings
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.federation.claiming_worker", settings.database_url,
         str(settings.node.data_dir), "zhejiang"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in process.stdout:  # warnings first, perhaps; then the line it prints as it sends
            seen.append(line)
            if line.startswith("{"):
                break
        sending = json.loads(seen[-1]) if seen and seen[-1].startswith("{") else None
        assert sending is not None, "".join(seen)
        assert sending["sending"] == ["shanghai", 1]
        rows = _outbox(joined.b)
        assert {r.claimed_by for r in rows} == {sending["worker"]}
        leased_until = min(_aware(r.next_attempt_at) for r in rows)
        assert leased_until > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=200)  # the 300 s lease
        # while it lives (same host, its pid running), its claim holds
        assert flush_outbox(joined.b.ctx).sent == 0
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    # it is gone: the next flush (another process in real life: this test's) takes the rows back at once
    report = flush_outbox(joined.b.ctx)
    assert report.delivered == [("shanghai", 1), ("shanghai", 2), ("shanghai", 3)]
    assert [c[1] for c in handled] == [1, 2, 3]
    posts = _posts(joined)
    assert set(posts) == set(ids) and set(posts.values()) == {1}
    assert all(r.state == "delivered" and r.claimed_by is None for r in _outbox(joined.b))
    with joined.b.session() as s:  # the gone worker, holding nothing now, is forgotten
        workers = s.exec(select(OutboxWorker.id)).all()
    assert sending["worker"] not in workers and current_worker().id in workers


def test_a_worker_elsewhere_loses_its_claims_only_when_its_heartbeat_is_stale(joined, handled) -> None:  # noqa: F811
    t0 = dt.datetime.now(dt.UTC)
    ids = _queue(joined.b, 2, t0)
    claimed = outbox._claim(joined.b.ctx, t0, 10, outbox.LEASE_SECONDS, ELSEWHERE)
    assert [m.seq for m in claimed["shanghai"]] == [1, 2]
    stale = joined.b.ctx.settings.federation.outbox_worker_stale_seconds
    # within the stale period its claims hold (another host: no pid to look at)
    assert flush_outbox(joined.b.ctx, now=t0 + dt.timedelta(seconds=stale - 1)).sent == 0
    # then it is gone: its rows are claimed again long before their lease ends
    report = flush_outbox(joined.b.ctx, now=t0 + dt.timedelta(seconds=stale + 1))
    assert report.delivered == [("shanghai", 1), ("shanghai", 2)]
    assert [c[1] for c in handled] == [1, 2] and set(_posts(joined)) == set(ids)


def test_a_paused_worker_whose_run_was_taken_over_sends_no_more(joined, handled, monkeypatch) -> None:  # noqa: F811
    """Worker A (another host) sends seq 1, then stays silent past the stale period (a frozen VM): worker B
    takes over seq 2-4 and sends them; when A resumes, its heartbeat check finds the rows are no longer its
    own and it stops. Each message is posted once."""
    clock = [dt.datetime.now(dt.UTC)]
    monkeypatch.setattr("federation.outbox._now", lambda: clock[0])
    ids = _queue(joined.b, 4, clock[0])
    stale = joined.b.ctx.settings.federation.outbox_worker_stale_seconds
    taken_over: list = []
    real_still_mine = outbox._still_mine

    def paused_then_checks(ctx, worker, rows, now):
        if worker == ELSEWHERE and not taken_over:
            clock[0] += dt.timedelta(seconds=stale + 10)  # A froze here
            taken_over.append(flush_outbox(joined.b.ctx))  # B, in the meantime
        return real_still_mine(ctx, worker, rows, clock[0])

    class OneSlowSend(PeerClient):
        def post(self, peer, path, payload):
            answer = super().post(peer, path, payload)
            clock[0] += dt.timedelta(seconds=outbox.HEARTBEAT_SECONDS)  # a send that takes a while
            return answer

    monkeypatch.setattr("federation.outbox._still_mine", paused_then_checks)
    report = flush_outbox(joined.b.ctx, lambda: OneSlowSend(joined.b.ctx), batch=4, worker=ELSEWHERE)
    assert report.delivered == [("shanghai", 1)]
    assert taken_over[0].delivered == [("shanghai", 2), ("shanghai", 3), ("shanghai", 4)]
    posts = _posts(joined)
    assert set(posts) == set(ids) and set(posts.values()) == {1}, posts
    assert [c[1] for c in handled] == [1, 2, 3, 4]


def test_a_live_worker_keeps_its_claims_past_the_stale_period_by_its_heartbeat(joined, handled,  # noqa: F811
                                                                               monkeypatch) -> None:
    """A long run renews the heartbeat before its sends: another worker flushing meanwhile takes nothing."""
    clock = [dt.datetime.now(dt.UTC)]
    monkeypatch.setattr("federation.outbox._now", lambda: clock[0])
    ids = _queue(joined.b, 4, clock[0])
    stale = joined.b.ctx.settings.federation.outbox_worker_stale_seconds
    others: list = []

    class Slow(PeerClient):
        def post(self, peer, path, payload):
            clock[0] += dt.timedelta(seconds=stale / 2)  # each send takes half the stale period
            others.append(flush_outbox(joined.b.ctx))  # B flushes during every send of A
            return super().post(peer, path, payload)

    report = flush_outbox(joined.b.ctx, lambda: Slow(joined.b.ctx), batch=4, worker=ELSEWHERE)
    assert report.delivered == [("shanghai", n) for n in (1, 2, 3, 4)]
    assert all(o.sent == 0 for o in others), [o.delivered for o in others]
    posts = _posts(joined)
    assert set(posts) == set(ids) and set(posts.values()) == {1}


def test_which_workers_are_gone(joined) -> None:
    now = dt.datetime.now(dt.UTC)
    me = current_worker()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    try:
        rows = {
            "live-here": (me.host, sleeper.pid, now),
            "dead-here": (me.host, finished.pid, now),
            "earlier-me": (me.host, os.getpid(), now),  # this pid under another id: a previous incarnation
            "fresh-elsewhere": ("another-host|1", finished.pid, now),  # a pid elsewhere means nothing here
            "stale-elsewhere": ("another-host|1", 1, now - dt.timedelta(seconds=120)),
        }
        with joined.b.session() as s:
            for name, (host, pid, beat) in rows.items():
                s.add(OutboxWorker(id=name, host=host, pid=pid, started_at=beat, heartbeat_at=beat))
        with joined.b.session() as s:
            gone = gone_workers(s, me, now, 60)
        assert sorted(gone) == ["dead-here", "earlier-me", "stale-elsewhere"]
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("stale", [0, 29])
def test_the_stale_period_cannot_be_shorter_than_a_send(stale) -> None:
    from pydantic import ValidationError

    from config.settings import FederationSettings

    with pytest.raises(ValidationError):
        FederationSettings(outbox_worker_stale_seconds=stale)


def test_failures_and_releases_clear_the_claim(joined, handled) -> None:  # noqa: F811
    t0 = dt.datetime.now(dt.UTC)
    _queue(joined.b, 2, t0)
    joined.network.down.add(joined.a.base_url)
    report = flush_outbox(joined.b.ctx, now=t0)
    assert [f[:2] for f in report.failed] == [("shanghai", 1)]
    rows = _outbox(joined.b)
    assert [r.claimed_by for r in rows] == [None, None]
    assert _aware(rows[0].next_attempt_at) == t0 + dt.timedelta(seconds=2)  # its backoff, not a lease
    with joined.b.session() as s:
        assert s.exec(select(sa.func.count()).select_from(OutboxMessage)
                      .where(OutboxMessage.claimed_by.is_not(None))).one() == 0
