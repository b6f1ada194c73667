"""100 MB sent to anonymous `POST /api/v1/verify` of a real node (a uvicorn subprocess) is refused with 413 and the
server's peak RSS stays flat (issue 11.7): measured from /proc in the server process, not timed."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import pytest

from tests.conformance.nodes import start_node

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")]

HUNDRED_MB = 100 * 1024 * 1024
CHUNK = b"x" * 65536


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _send_and_read(port: int, head: bytes, body_chunks) -> tuple[bytes, int]:
    """Send the head, stream the body from a thread (stopping when the server closes), read the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0

    def pump() -> None:
        nonlocal sent
        try:
            sock.sendall(head)
            for chunk in body_chunks:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server answered and closed the connection without reading the rest

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    thread.join(timeout=60)
    sock.close()
    return answer, sent


def test_a_hundred_megabytes_are_refused_with_flat_memory(tmp_path: Path) -> None:
    node = start_node(tmp_path / "node", f"sqlite:///{tmp_path / 'node.db'}", test_mode=False)
    try:
        port = int(node.url.rsplit(":", 1)[1])
        before = _peak_rss_kib(node.process.pid)
        head = (f"POST /api/v1/verify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {HUNDRED_MB}\r\n\r\n").encode()
        answer, sent = _send_and_read(port, head, (CHUNK for _ in range(HUNDRED_MB // len(CHUNK))))
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < HUNDRED_MB

        def chunked():
            for _ in range(HUNDRED_MB // len(CHUNK)):
                yield b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
            yield b"0\r\n\r\n"

        head = (f"POST /api/v1/verify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        answer, sent = _send_and_read(port, head, chunked())
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < HUNDRED_MB
        after = _peak_rss_kib(node.process.pid)
        assert after - before < 20 * 1024, f"peak RSS grew by {(after - before) // 1024} MiB"
    finally:
        node.stop()
