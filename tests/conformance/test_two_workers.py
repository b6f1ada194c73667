"""Issue 5, Checks: "the same scenario on PostgreSQL with two worker processes: no message sent twice, none lost".

A real node (uvicorn, test mode, its scheduler off) on a fresh PostgreSQL database, the conformance harness's
mock peer admitted with a test membership, and two **separate OS processes** (tests/conformance/outbox_worker.py)
flushing the node's outbox against that database at the same time (`flush_outbox`, what the job
`federation.flush_outbox` runs; batch 2, one claim round per call, so both compete for every run). Sixty
`conformance.ping` messages are queued to the peer while the workers run, and twice on the way the peer answers
`503` for a while (1, then 2 attempts: retries with a growing backoff). Then:

- the peer accepted each message exactly once (a 503 is a failed attempt, not a delivery) and nothing else;
- the accepted deliveries carry seq 1..60 in arrival order: no gap, no duplicate, no reordering;
- every outbox row is `delivered`; the two that met a 503 show their retries, every other row one attempt;
- what each process reports it delivered is disjoint from the other's, together all 60, and both sent some.

Skipped unless CREDITNODE_TEST_DATABASE_URL names a PostgreSQL server (SQLite runs one worker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from node.db import normalise_url
from tests.conformance.nodes import (
    CONFORMANCE_PATH,
    ROOT,
    RunningNode,
    free_port,
    node_env,
    prepare,
    subprocess_env,
    wait_ready,
)


def _is_postgres(url: str) -> bool:
    try:
        return bool(url) and sa.make_url(normalise_url(url)).get_backend_name() == "postgresql"
    except Exception:  # noqa: BLE001 - a malformed URL is not PostgreSQL
        return False


pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(not _is_postgres(os.environ.get("CREDITNODE_TEST_DATABASE_URL", "")),
                       reason="two worker processes need PostgreSQL (row claims with FOR UPDATE SKIP LOCKED; "
                              "SQLite runs one worker): set CREDITNODE_TEST_DATABASE_URL=postgresql://..."),
]

MESSAGES = 60
FAIL_AFTER = {20: 1, 40: 2}  # once n messages are delivered, the peer answers 503 to the next k attempts
DELIVERY_TIMEOUT = 90.0  # generous: a loaded 2-CPU machine; the run normally takes ~10 s of it


@pytest.fixture
def database(_db_template: object) -> Iterator[str]:
    name = _db_template.create()  # type: ignore[attr-defined]
    try:
        yield _db_template.url_of(name)  # type: ignore[attr-defined]
    finally:
        _db_template.drop(name)  # type: ignore[attr-defined]


@pytest.fixture
def node(database: str, tmp_path: Path) -> Iterator[RunningNode]:
    """`tests.conformance.nodes.launch_node` with the scheduler explicitly off (only the workers send); not
    yet ready (`wait_ready`), so the workers can start meanwhile."""
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    port = free_port()
    env = {**node_env(port=port, data_dir=data_dir, database_url=database),
           "CREDITNODE_FEDERATION__SCHEDULER_ENABLED": "false"}
    prepare(env)
    with (data_dir / "node.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "node.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=subprocess_env(env), stdout=log, stderr=subprocess.STDOUT)
    running = RunningNode(f"http://127.0.0.1:{port}", "", data_dir, process, (), env)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.syspath_prepend(str(CONFORMANCE_PATH))  # the suite's package, installed or not
    from conformance.peer import MockPeer

    made = MockPeer().start()
    try:
        yield made
    finally:
        made.stop()


def _worker(name: str, node: RunningNode, go: Path, stop: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    log = out / f"{name}.out"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.conformance.outbox_worker", "--name", name, "--go", str(go),
             "--stop", str(stop), "--batch", "2"],
            cwd=ROOT, env=subprocess_env({**node.env, "CREDITNODE_FEDERATION__SCHEDULER_ENABLED": "false"}),
            stdout=handle, stderr=subprocess.STDOUT)
    return process, log


def _lines(log: Path) -> list[dict]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def _wait(condition, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def test_two_worker_processes_send_each_message_once(node: RunningNode, peer, tmp_path: Path) -> None:
    from conformance.client import NodeClient

    go, stop = tmp_path / "go", tmp_path / "stop"
    workers = [_worker(name, node, go, stop, tmp_path) for name in ("w1", "w2")]  # start while the node does
    queued: dict[int, str] = {}  # seq -> message id
    client = NodeClient(node.url, "", timeout=30)
    try:
        client.token = wait_ready(node, timeout=60).token
        peer.resolve_node_key = client.resolver("authentication")
        peer.node_under_test = client.node_id
        client.admin_ok("POST", "/api/v1/testing/membership", {"members": [peer.member()]})
        _wait(lambda: all(any(line.get("ready") for line in _lines(log)) or p.poll() is not None
                          for p, log in workers), 60, "the workers to start")
        for p, log in workers:
            assert p.poll() is None, f"a worker exited early:\n{log.read_text(errors='replace')[-3000:]}"
        go.touch()

        def rows() -> list[dict]:
            return client.admin_ok("GET", "/api/v1/testing/outbox", peer=peer.node_id)

        def all_delivered() -> None:
            try:
                _wait(lambda: all(r["state"] == "delivered" for r in rows()), DELIVERY_TIMEOUT,
                      "every message to be delivered", interval=0.2)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; outbox states {dict(Counter(r['state'] for r in rows()))}") from None

        # queued while both workers flush, a little at a time: each run is claimed by whichever process
        # gets to it first. Before messages 21 and 41 (the stream idle) the peer goes down for 1 then 2
        # attempts: that message is retried with backoff while the ones queued after it wait behind it.
        for n in range(1, MESSAGES + 1):
            if n - 1 in FAIL_AFTER:
                all_delivered()
                peer.fail_next(FAIL_AFTER[n - 1])
            row = client.admin_ok("POST", "/api/v1/testing/outbox",
                                  {"peer": peer.node_id, "type": "conformance.ping", "body": {"token": f"m{n}"}})
            queued[row["seq"]] = row["message_id"]
            time.sleep(0.02)
        all_delivered()
        final = rows()
    finally:
        stop.touch()
        for p, _log in workers:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        client.close()

    outputs = {log.stem: _lines(log) for _p, log in workers}
    delivered = {name: [seq for line in lines for _peer, seq in line.get("delivered", [])]
                 for name, lines in outputs.items()}
    failed = {name: [seq for line in lines for _peer, seq in line.get("failed", [])] for name, lines in outputs.items()}
    summary = {name: {"delivered": len(delivered[name]), "failed_attempts": len(failed[name])} for name in outputs}
    print(f"\ntwo worker processes: {summary}")
    for p, log in workers:
        assert p.returncode == 0, f"{log.stem} exited with {p.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
    errors = [line["error"] for lines in outputs.values() for line in lines if "error" in line]
    assert not errors, errors[0]

    # the outbox: 60 rows, seq 1..60, all delivered; the ones that met a 503 were tried more than once
    assert sorted(queued) == list(range(1, MESSAGES + 1))
    assert [r["seq"] for r in final] == list(range(1, MESSAGES + 1))
    assert all(r["state"] == "delivered" for r in final), Counter(r["state"] for r in final)

    # the peer: every request verified; per message id exactly one accepted delivery; 503s only as announced
    assert all(d.verified for d in peer.deliveries), [d.problem for d in peer.deliveries if not d.verified]
    answered = Counter(d.answered for d in peer.deliveries)
    failures = sum(FAIL_AFTER.values())
    assert answered == {200: MESSAGES, 503: failures}, answered
    accepted = [d.envelope for d in peer.deliveries if d.answered == 200]
    per_id = Counter(e["id"] for e in accepted)
    assert set(per_id) == set(queued.values()), "a message was lost or an unknown one was sent"
    assert set(per_id.values()) == {1}, f"sent twice: {[i for i, c in per_id.items() if c > 1]}"
    assert all(queued[e["seq"]] == e["id"] for e in accepted), "a message arrived with another message's seq"
    # in arrival order: the stream 1..60 without gaps, duplicates or reordering
    assert [e["seq"] for e in accepted] == list(range(1, MESSAGES + 1))
    # the first message after each outage was retried (1 + k attempts), every other one sent once
    expected_attempts = {n + 1: 1 + k for n, k in FAIL_AFTER.items()}
    assert {r["seq"]: r["attempts"] for r in final if r["attempts"] > 1} == expected_attempts
    assert Counter(d.envelope["seq"] for d in peer.deliveries if d.answered == 503) == {
        seq: k - 1 for seq, k in expected_attempts.items()}
    assert sum(r["attempts"] for r in final) == MESSAGES + failures

    # the workers: what each says it delivered is disjoint, together everything, and both did some
    w1, w2 = delivered["w1"], delivered["w2"]
    assert not set(w1) & set(w2), f"both processes delivered {sorted(set(w1) & set(w2))}"
    assert sorted(w1 + w2) == list(range(1, MESSAGES + 1)), summary
    assert len(failed["w1"]) + len(failed["w2"]) == failures, summary
    assert w1 and w2, f"one process did all the work, the test proves nothing: {summary}"

