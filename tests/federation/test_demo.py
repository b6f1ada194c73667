"""`creditnode demo` runs once, end to end: four real nodes on 127.0.0.1, a verified transfer, the export.

The demo uses SQLite whatever the test database is, so it runs in the SQLite pass of the suite only."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_base_port() -> int:
    """Four consecutive free ports (the demo's own default 8101-8104 may be in use by a developer's demo)."""
    for _ in range(50):
        base = random.randrange(20000, 60000)
        try:
            for port in range(base, base + 4):
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no four consecutive free ports")


def test_demo_refuses_a_busy_port(tmp_path: Path) -> None:
    base = _free_base_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 2))
        busy.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")}
        done = subprocess.run(
            [sys.executable, "-c", "from node.cli import app; app()", "demo", "--base-port", str(base)],
            check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
    assert done.returncode != 0
    assert f"port {base + 2}" in done.stdout and "busy" in done.stdout
