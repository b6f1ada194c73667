"""`creditnode serve` for real (uvicorn in a subprocess on a free loopback port): the access line of a URL with an
ID number is printed, masked (issue 11 item 18), and with `log_format = json` every line is one JSON object
carrying the request id."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import valid_id
from tests.ops.serving import wait_healthy

ID = valid_id(serial="718")
CREDITNODE = str(Path(sys.executable).parent / "creditnode")  # the console script, as an operator runs it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def initialised(tmp_path: Path, database_url: str) -> tuple[Path, int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")}
    done = subprocess.run(
        [CREDITNODE, "init", "--region", "shanghai", "--data-dir", str(tmp_path / "node"),
         "--base-url", f"http://127.0.0.1:{port}", "--database-url", database_url, "--no-standards"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return tmp_path / "node" / "creditnode.toml", port


def _serve(config: Path, port: int, **settings: str) -> list[str]:
    """Start `creditnode serve`, make three requests, stop it; its stderr lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")}
    env.update(CREDITNODE_CONFIG=str(config), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", **settings)
    proc = subprocess.Popen([CREDITNODE, "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, trust_env=False, timeout=5) as http:
            wait_healthy(http, proc, timeout=60)
            probe = http.get(f"/api/v1/ledger/events/{ID}", headers={"X-Request-ID": "probe-1"})
            assert 400 <= probe.status_code < 500 and probe.headers["x-request-id"] == "probe-1"
            assert http.get(f"/api/v1/learners/lookup?id_number={ID}").status_code in (401, 404)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
    return err.splitlines()


def test_access_lines_are_printed_masked(initialised: tuple[Path, int]) -> None:
    lines = _serve(*initialised)
    text = "\n".join(lines)
    assert "Logging error" not in text and "Traceback" not in text, text
    assert ID not in text
    access = [line for line in lines if "/api/v1/ledger/events/" in line]
    assert len(access) == 1, text
    assert f'"GET /api/v1/ledger/events/{ID[:6]}********{ID[-4:]} HTTP/1.1" 4' in access[0]
    assert "[probe-1]" in access[0]
    assert any("as did:web:127.0.0.1%3A" in line for line in lines), text


def test_json_logs_are_one_object_per_line(initialised: tuple[Path, int]) -> None:
    lines = _serve(*initialised, CREDITNODE_NODE__LOG_FORMAT="json")
    assert ID not in "\n".join(lines)
    objects = [json.loads(line) for line in lines]
    assert objects and all({"ts", "level", "logger", "message", "request_id"} <= obj.keys() for obj in objects)
    access = [obj for obj in objects if obj["logger"] == "creditnode.access"]
    assert len(access) == 3
    probe = next(obj for obj in access if obj["request_id"] == "probe-1")
    assert f"/api/v1/ledger/events/{ID[:6]}********{ID[-4:]}" in probe["message"]
    assert any(obj["logger"] == "uvicorn.error" and "Uvicorn running" in obj["message"] for obj in objects)
    assert any(obj["logger"] == "creditnode" and "listening on" in obj["message"] for obj in objects)
