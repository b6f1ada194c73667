"""The mock peer: the harness as a federation member, on a small HTTP server on 127.0.0.1 (a free port).

It has its own Ed25519 key and a `did:web` document (served at `/.well-known/did.json`), signs the requests
it sends (`sign`), and serves the inbox the node calls back: every delivery is verified the way the protocol
says a receiver must (signature by a key of the node's DID document, window, digest, destination, fresh nonce)
and recorded with the verdict and what the harness answered. `fail_next(n)` makes the next n deliveries get a
`503` (a peer down for a while); answers are otherwise signed responses bound to the request's nonce.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from conformance import PROTOCOL
from conformance.origin import MockOrigin
from crypto import httpsig
from crypto.did import VerificationMethodSpec, build_did_document, did_web_from_url
from crypto.keys import Ed25519Key

__all__ = ["Delivery", "MockPeer"]

INBOX_PATH = "/federation/v1/inbox"
RELEASE_PATH = "/federation/v1/records/release"
CONSISTENCY_PATH = "/api/v1/ledger/proof/consistency"


@dataclass
class Delivery:
    """One request the node sent to the harness's inbox."""

    received_at: float
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    problem: str | None
    key_id: str | None
    answered: int
    envelope: dict | None = None


@dataclass
class MockPeer:
    # unique per run: what a node keeps of an earlier run's harness (its agreements, the checkpoints of its
    # transfers, which a new harness's fresh log could not extend) cannot interfere with this run
    node_id: str = field(default_factory=lambda: f"conformance-harness-{secrets.token_hex(3)}")
    key: Ed25519Key = field(default_factory=Ed25519Key.generate)
    host: str = "127.0.0.1"
    deliveries: list[Delivery] = field(default_factory=list)
    other_posts: list[tuple[str, bytes]] = field(default_factory=list)  # POSTs outside the inbox (path, body)
    releases: list[Delivery] = field(default_factory=list)  # release requests (the harness as origin)
    # (key id) -> public key of the node under test, and its node id: set by the harness
    resolve_node_key: Callable[[str], Any] | None = None
    node_under_test: str | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._fail = 0
        self._nonces: set[str] = set()
        self._server = ThreadingHTTPServer((self.host, 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"
        self.did = did_web_from_url(self.base_url)
        self.key_id = f"{self.did}#key-1"
        self._thread: threading.Thread | None = None
        self.origin = MockOrigin(self.node_id, self.base_url, self.did, self.key_id, self.key)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> MockPeer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="mock-peer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever: only when it runs
            self._server.shutdown()
        self._server.server_close()

    # -- identity ----------------------------------------------------------------------------------

    def did_document(self) -> dict:
        return build_did_document(self.did, [VerificationMethodSpec(fragment="key-1",
                                                                    public_multikey=self.key.public_multikey)])

    def member(self) -> dict:
        return {"node_id": self.node_id, "name_en": "Conformance harness", "name_zh": "一致性测试",
                "did": self.did, "base_url": self.base_url, "roles": ["conformance"]}

    def sign(self, request: httpx.Request, *, key: Ed25519Key | None = None, key_id: str | None = None,
             nonce: str | None = None, created: int | None = None, expires_in: int = 60) -> str:
        """Sign `request` in place as the protocol says; returns the nonce used."""
        nonce = nonce or secrets.token_urlsafe(18)
        httpsig.sign_request(request, key=key or self.key, key_id=key_id or self.key_id, tag=PROTOCOL,
                             nonce=nonce, created=created, expires_in=expires_in)
        return nonce

    # -- inbox behaviour ---------------------------------------------------------------------------

    def fail_next(self, count: int) -> None:
        with self._lock:
            self._fail = count

    def deliveries_of(self, message_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.envelope and d.envelope.get("id") == message_id]

    def deliveries_of_type(self, message_type: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.envelope and d.envelope.get("type") == message_type]

    def _receive(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        verified, problem, key_id, nonce = self._verify(path, headers, body)
        envelope = None
        try:
            parsed = json.loads(body)
            envelope = parsed if isinstance(parsed, dict) else None
        except ValueError:
            pass
        with self._lock:
            failing = self._fail > 0
            if failing:
                self._fail -= 1
        if failing:
            status, payload, signed = 503, {"code": "unavailable", "message": "harness is down"}, False
        elif not verified:
            status, payload, signed = 401, {"code": problem or "bad_signature", "message": problem or ""}, True
        else:
            status, payload, signed = 200, {"received": envelope.get("id") if envelope else None}, True
        data = json.dumps(payload).encode()
        out = {"content-type": "application/json"}
        if signed:
            out.update(httpsig.sign_response(status=status, headers=out, body=data, key=self.key,
                                             key_id=self.key_id, tag=PROTOCOL, request_nonce=nonce))
        with self._lock:
            self.deliveries.append(Delivery(time.time(), path, headers, body, verified, problem, key_id, status,
                                            envelope))
        return status, out, data

    def _release(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """`POST /federation/v1/records/release`: the harness as the origin of a transfer."""
        verified, problem, key_id, nonce = self._verify(path, headers, body)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not verified:
            status, payload = 401, {"code": problem or "bad_signature", "message": problem or ""}
        else:
            status, payload = self.origin.release(self.node_under_test or "", parsed)
        with self._lock:
            self.releases.append(Delivery(time.time(), path, headers, body, verified, problem, key_id, status,
                                          parsed if isinstance(parsed, dict) else None))
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        out = {"content-type": "application/json"}
        out.update(httpsig.sign_response(status=status, headers=out, body=data, key=self.key, key_id=self.key_id,
                                         tag=PROTOCOL, request_nonce=nonce))
        return status, out, data

    def _verify(self, path: str, headers: dict[str, str], body: bytes) -> tuple[bool, str | None, str | None,
                                                                                 str | None]:
        if self.resolve_node_key is None:
            return False, "no node key resolver", None, None
        try:
            v = httpsig.verify_request(method="POST", url=self.base_url + path, headers=headers, body=body,
                                       resolve_key=self.resolve_node_key, now=int(time.time()),
                                       required_tag=PROTOCOL)
        except httpsig.HttpSignatureError as exc:
            return False, exc.code, None, None
        if v.target_uri != self.base_url + path:
            return False, "wrong_destination", v.key_id, v.nonce
        with self._lock:
            if v.nonce in self._nonces:
                return False, "replayed", v.key_id, v.nonce
            self._nonces.add(v.nonce or "")
        return True, None, v.key_id, v.nonce


def _handler(peer: MockPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith(CONSISTENCY_PATH + "?"):  # the origin's public proof endpoint
                query = parse_qs(urlsplit(self.path).query)
                try:
                    proof = peer.origin.consistency(int(query["first"][0]), int(query["second"][0]))
                except (KeyError, ValueError) as exc:
                    self._send(400, {"content-type": "application/json"},
                               json.dumps({"code": "invalid_request", "message": str(exc)}).encode())
                    return
                self._send(200, {"content-type": "application/json"}, json.dumps({"proof": proof}).encode())
            elif self.path == "/.well-known/did.json":
                body = json.dumps(peer.did_document()).encode()
                self._send(200, {"content-type": "application/did+json"}, body)
            elif self.path == "/status/0":
                body = json.dumps(peer.origin.status_list()).encode()
                self._send(200, {"content-type": "application/ld+json"}, body)
            elif self.path == "/.well-known/credit-node":
                body = json.dumps({"node_id": peer.node_id, "did": peer.did, "base_url": peer.base_url,
                                   "protocol_versions": [PROTOCOL], "features": [],
                                   "endpoints": {"inbox": INBOX_PATH, "did": "/.well-known/did.json"}}).encode()
                self._send(200, {"content-type": "application/json"}, body)
            else:
                self._send(404, {"content-type": "application/json"}, b'{"code":"not_found"}')

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path != INBOX_PATH:
                with peer._lock:
                    peer.other_posts.append((self.path, body))
                if self.path == RELEASE_PATH:
                    self._send(*peer._release(self.path, headers, body))
                else:
                    self._send(404, {"content-type": "application/json"}, b'{"code":"not_found"}')
                return
            status, out, data = peer._receive(self.path, headers, body)
            self._send(status, out, data)

    return Handler
