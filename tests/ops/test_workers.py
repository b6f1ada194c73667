"""Several worker processes (issue 13 item 3): `creditnode serve --workers N` refuses SQLite, shares its
rate-limit counters through the database (a limit holds across two real worker processes), sums its metrics over
the workers, and runs the scheduled jobs in one process only (the scheduler lease)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from config.settings import RateLimitSettings
from federation.jobs import JOBS, Job, SchedulerLease, _guarded
from node.db import is_sqlite, make_engine
from node.errors import TooManyRequests
from node.security.ratelimit import DatabaseStorage, RateLimits
from tests.ops.serving import wait_healthy

CREDITNODE = str(Path(sys.executable).parent / "creditnode")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CREDITNODE_", "PROMETHEUS_"))}


def _init(tmp_path: Path, database_url: str) -> tuple[Path, int]:
    port = _free_port()
    done = subprocess.run(
        [CREDITNODE, "init", "--region", "shanghai", "--data-dir", str(tmp_path / "node"),
         "--base-url", f"http://127.0.0.1:{port}", "--database-url", database_url, "--no-standards"],
        env=_clean_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return tmp_path / "node" / "creditnode.toml", port


# -- the shared rate-limit storage --------------------------------------------------------------------------


def _hits(limits: RateLimits, n: int, limit: str = "5/day") -> int:
    allowed = 0
    for _ in range(n):
        try:
            limits.hit("sign_in", "203.0.113.7", limit)
            allowed += 1
        except TooManyRequests as exc:
            assert exc.code == "rate_limited"
    return allowed


def test_database_counters_are_shared_by_every_process_using_the_database(database_url: str) -> None:
    """Two RateLimits on two engines (as two worker processes have) count against one limit."""
    first, second = make_engine(database_url), make_engine(database_url)
    try:
        a = RateLimits(RateLimitSettings(storage_uri="database"), engine=first)
        b = RateLimits(RateLimitSettings(storage_uri="database"), engine=second)
        assert a.shared and b.shared
        assert _hits(a, 3) == 3
        assert _hits(b, 5) == 2  # only what is left of the 5
        assert _hits(a, 2) == 0
        # another client is counted apart
        b.hit("sign_in", "198.51.100.9", "5/day")
        memory = RateLimits(RateLimitSettings())
        assert not memory.shared and memory.purge() == 0
    finally:
        first.dispose()
        second.dispose()


def test_concurrent_hits_never_take_more_than_the_limit(database_url: str) -> None:
    engine = make_engine(database_url)
    limits = RateLimits(RateLimitSettings(storage_uri="database"), engine=engine)
    allowed: list[int] = []

    def worker() -> None:
        allowed.append(_hits(limits, 10, "17/day"))  # a day: the test never spans a window boundary

    try:
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(allowed) == 17
    finally:
        engine.dispose()


def test_ended_windows_are_purged(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        storage = DatabaseStorage(engine)
        storage.incr("old", expiry=60)
        storage.incr("live", expiry=60)
        assert storage.get("old") == 1 and storage.check()
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE rate_limit_counter SET expires_at = 1 WHERE key = 'old'"))
        assert storage.get("old") == 0  # an ended window counts nothing even before the purge
        limits = RateLimits(RateLimitSettings(storage_uri="database"), engine=engine)
        assert limits.purge() == 1
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT key FROM rate_limit_counter")).scalars().all() == ["live"]
        storage.clear("live")
        assert storage.get("live") == 0
        assert "security.purge_rate_limits" in JOBS
    finally:
        engine.dispose()


# -- the scheduler lease ------------------------------------------------------------------------------------


def test_one_process_holds_the_scheduler_lease_and_another_takes_it_over(database_url: str) -> None:
    first, second = make_engine(database_url), make_engine(database_url)
    a, b = SchedulerLease(first), SchedulerLease(second)
    try:
        if is_sqlite(database_url):  # one process serves a SQLite node: it always runs the jobs
            assert a.holds() and b.holds()
            return
        assert a.holds()
        assert not b.holds()
        assert a.holds()  # still held, checked on its connection
        runs: list[str] = []
        job = Job("test.count", lambda ctx: runs.append("ran"), 1, "counts its runs")
        _guarded(job, None, b)()  # type: ignore[arg-type]
        assert runs == []  # b does not hold the lease: the job is skipped
        _guarded(job, None, a)()  # type: ignore[arg-type]
        assert runs == ["ran"]
        a.release()
        assert b.holds() and not a.holds()
        # the holder's connection ends (its process died): the lock goes with it
        b._conn.invalidate()  # type: ignore[union-attr]  # closes the database session itself
        b._conn = None
        # the server ends that session (and frees its locks) a moment after the client hangs up
        deadline = time.monotonic() + 30
        while not a.holds():
            assert time.monotonic() < deadline, "the lease of a closed connection was never freed"
            time.sleep(0.05)
    finally:
        a.release()
        b.release()
        first.dispose()
        second.dispose()


# -- serve --workers ----------------------------------------------------------------------------------------


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path, database_url: str) -> None:
    if not is_sqlite(database_url):
        pytest.skip("the refusal is SQLite's")
    config, _port = _init(tmp_path, database_url)
    done = subprocess.run([CREDITNODE, "serve", "--workers", "2", "--config", str(config)], env=_clean_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--workers 2 needs PostgreSQL" in done.stderr and "Traceback" not in done.stderr


def _sign_in(base: str, name: str) -> int:
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:  # a connection of its own
        return http.post("/api/v1/auth/token", data={"username": name, "password": "wrong-password"}).status_code


def test_a_rate_limit_holds_across_two_worker_processes(tmp_path: Path, database_url: str) -> None:
    """Two workers with in-memory counters would let 2 x 5 sign-ins through; shared ones let 5."""
    if is_sqlite(database_url):
        pytest.skip("several workers need PostgreSQL")
    config, port = _init(tmp_path, database_url)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = _clean_env()
    env.update(CREDITNODE_CONFIG=str(config), CREDITNODE_RATELIMIT__SIGN_IN="5/minute",
               PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    proc = subprocess.Popen([CREDITNODE, "serve", "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, trust_env=False, timeout=5) as http:
            wait_healthy(http, proc, timeout=240, interval=0.3)
        # both workers up: each answers /health from its own process once started
        time.sleep(2)
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(_sign_in(base, f"nobody-{uuid.uuid4().hex}")))
                   for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses).count(401) == 5, statuses
        assert statuses.count(429) == 11, statuses
        with httpx.Client(base_url=base, trust_env=False, timeout=10) as http:
            text = http.get("/metrics").text
        counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                      if line.startswith("creditnode_http_requests_total{") and '"/api/v1/auth/token"' in line)
        assert counted == 16  # summed over both workers, whichever answered the scrape
        # both processes answered some of the 16 (each writes its own counter file): the limit held across them
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
    assert "Traceback" not in err, err
