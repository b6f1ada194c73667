"""Many GETs at once against a real SQLite node while writes happen: no server error, no "database is locked".

Before reads began their SQLite transactions as reads (node/db.py), every GET took the write lock with
`BEGIN IMMEDIATE` and held it across worker-thread hops; with more than ~40 requests in flight all worker threads
waited (on the lock, on a pool connection, or for a thread to commit in) until the 30 s busy timeout, and requests
failed with 500 "database is locked" (issue 13). Not timed: it only must not fail.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conformance.nodes import _settings, start_node
from tests.conftest import valid_id

pytestmark = pytest.mark.slow

READERS = 64
READS_EACH = 4
WRITERS = 4
WRITES_EACH = 6


def _learner(env: dict[str, str]) -> tuple[int, str]:
    from node.context import NodeContext
    from node.db import session_scope
    from node.learners.service import open_account

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        ctx = NodeContext.build(_settings(env))
        with session_scope(ctx.engine) as s:
            learner, _ = open_account(s, ctx, id_type="resident_id", id_number=valid_id(serial="731"), name="并发",
                                      password="learner-pass-1")
            found = learner.id, learner.account_no
        ctx.engine.dispose()
        return found
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_sixty_concurrent_reads_with_writes_never_fail(tmp_path: Path) -> None:
    node = start_node(tmp_path / "node", f"sqlite:///{tmp_path / 'node.db'}", test_mode=False, timeout=90)
    stuck = True
    try:
        learner_id, account_no = _learner(node.env)
        with httpx.Client(timeout=30, trust_env=False) as http:
            r = http.post(node.url + "/api/v1/auth/token", data={"username": account_no, "password": "learner-pass-1"})
            assert r.status_code == 200, r.text
        learner = {"Authorization": f"Bearer {r.json()['access_token']}"}
        staff = {"Authorization": f"Bearer {node.token}"}  # a centre reviewer: its archive reads are audited
        reads = [("/api/v1/me/archive", learner), (f"/api/v1/learners/{learner_id}/archive", staff),
                 ("/.well-known/credit-node", {}), ("/api/v1/me/deposit-applications", learner)]
        statuses: Counter[int] = Counter()
        failures: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(READERS + WRITERS)

        def note(r: httpx.Response | None, what: str, error: str = "") -> None:
            with lock:
                if r is None:
                    failures.append(f"{what}: {error}")
                    return
                statuses[r.status_code] += 1
                if r.status_code >= 500 or r.status_code == 422 or "database is locked" in r.text:
                    failures.append(f"{what}: {r.status_code} {r.text[:200]}")

        def reader(i: int) -> None:
            with httpx.Client(timeout=120, trust_env=False) as http:
                start.wait()
                for k in range(READS_EACH):
                    path, headers = reads[(i + k) % len(reads)]
                    try:
                        note(http.get(node.url + path, headers=headers), path)
                    except httpx.HTTPError as exc:
                        note(None, path, repr(exc))

        def writer(i: int) -> None:
            with httpx.Client(timeout=120, trust_env=False) as http:
                start.wait()
                for k in range(WRITES_EACH):
                    body = {"achievement": {"type": "degree_course", "issuer_code": "10280", "issuer_name": "上海大学",
                                            "code": f"W{i}{k}", "title": f"并发写入 {i}-{k}", "credits": "1", "score": "85",
                                            "earned_on": "2024-01-15"}}
                    try:
                        note(http.post(node.url + "/api/v1/me/deposit-applications", json=body, headers=learner),
                             "POST draft")
                    except httpx.HTTPError as exc:
                        note(None, "POST draft", repr(exc))

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
        threads += [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        stuck = any(t.is_alive() for t in threads)
    finally:
        log = node.stop()
        Path(os.environ.get("CONCURRENT_READS_LOG", "/dev/null")).write_text(log)
    assert not stuck, "requests still waiting after 10 minutes"
    assert not failures, (failures[:10], log[-3000:])
    assert statuses[200] == READERS * READS_EACH and statuses[201] == WRITERS * WRITES_EACH, statuses
    assert "database is locked" not in log
