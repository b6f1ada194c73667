"""Waiting for a `creditnode serve` process started by a test (tests/ops)."""

from __future__ import annotations

import contextlib
import subprocess
import time

import httpx


def wait_healthy(http: httpx.Client, proc: subprocess.Popen, *, timeout: float, interval: float = 0.2) -> None:
    """Until `/health` answers 200; fails with the server's stderr if it exits, or when `timeout` (a bound for a
    busy machine, not a speed check) runs out."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with contextlib.suppress(httpx.TransportError):
            if http.get("/health").status_code == 200:
                return
        assert time.monotonic() < deadline, "the node did not come up"
        time.sleep(interval)
