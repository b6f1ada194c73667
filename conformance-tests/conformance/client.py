"""The node under test, seen over HTTP: public documents, the admin calls of the test contract, and signed
peer requests (built by the mock peer, optionally broken on purpose) whose signed responses are verified and
kept, so one test can check that every federation response the node gave was signed by it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance import PROTOCOL
from crypto import httpsig
from crypto.did import resolve_verification_method

__all__ = ["Exchange", "NodeClient", "NodeContractError"]


class NodeContractError(AssertionError):
    """The node did not answer a call of the test contract as documented."""


@dataclass
class Exchange:
    """A signed request sent to the node and its answer, with the verdict on the response signature."""

    label: str
    status: int
    body: Any
    nonce: str | None
    response_signed: bool
    response_problem: str | None
    response_key_id: str | None = None
    response_bound: bool = False  # the response signature carries this request's nonce
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


class NodeClient:
    def __init__(self, target: str, admin_token: str, *, timeout: float = 20.0) -> None:
        self.base = target.rstrip("/")
        self.token = admin_token
        self.http = httpx.Client(timeout=timeout, follow_redirects=False)
        self.exchanges: list[Exchange] = []
        self._did_document: dict | None = None
        self._discovery: dict | None = None

    def close(self) -> None:
        self.http.close()

    # -- public documents ----------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(self.base + path, params=params or None)

    def discovery(self, *, refresh: bool = False) -> dict:
        if self._discovery is None or refresh:
            r = self.get("/.well-known/credit-node")
            if r.status_code != 200:
                raise NodeContractError(f"GET /.well-known/credit-node answered {r.status_code}")
            self._discovery = r.json()
        return self._discovery

    @property
    def node_id(self) -> str:
        return self.discovery()["node_id"]

    def did_document(self, *, refresh: bool = False) -> dict:
        if self._did_document is None or refresh:
            r = self.get("/.well-known/did.json")
            if r.status_code != 200:
                raise NodeContractError(f"GET /.well-known/did.json answered {r.status_code}")
            self._did_document = r.json()
        return self._did_document

    def resolver(self, purpose: str = "assertionMethod") -> Callable[[str], Any]:
        """Resolve the node's verification methods (re-fetching its DID document once for an unknown one)."""

        def resolve(key_id: str) -> Any:
            for refresh in (False, True):
                doc = self.did_document(refresh=refresh)
                if key_id.split("#", 1)[0] != doc.get("id"):
                    return None
                try:
                    return resolve_verification_method(doc, key_id, purpose)
                except (KeyError, ValueError, LookupError):
                    continue
            return None

        return resolve

    # -- the test contract (admin token) ------------------------------------------------------------

    def admin(self, method: str, path: str, payload: Any = None, **params: Any) -> httpx.Response:
        return self.http.request(method, self.base + path, json=payload, params=params or None,
                                 headers={"authorization": f"Bearer {self.token}"})

    def admin_ok(self, method: str, path: str, payload: Any = None, **params: Any) -> Any:
        r = self.admin(method, path, payload, **params)
        if not 200 <= r.status_code < 300:
            raise NodeContractError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    def sign_in(self, username: str, password: str) -> str:
        """A bearer token for an account (the fixture learner of the test contract)."""
        r = self.http.post(self.base + "/api/v1/auth/token", data={"username": username, "password": password})
        if r.status_code != 200:
            raise NodeContractError(f"sign-in of {username} answered {r.status_code}: {r.text[:200]}")
        return r.json()["access_token"]

    def as_user(self, token: str, method: str, path: str, payload: Any = None) -> httpx.Response:
        return self.http.request(method, self.base + path, json=payload,
                                 headers={"authorization": f"Bearer {token}"})

    # -- signed peer requests -------------------------------------------------------------------------

    def envelope(self, origin: str, seq: int, *, type: str = "conformance.ping", body: dict | None = None,
                 message_id: str | None = None) -> dict:
        return {"id": message_id or f"urn:uuid:{uuid.uuid4()}", "origin": origin, "destination": self.node_id,
                "seq": seq, "type": type, "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "body": body or {}}

    def send_signed(self, label: str, payload: Any, *, sign: Callable[[httpx.Request], str | None] | None,
                    path: str = "/federation/v1/inbox", url: str | None = None,
                    tamper: Callable[[httpx.Request], httpx.Request] | None = None,
                    raw: bytes | None = None) -> Exchange:
        """POST `payload` (JSON) to the node, signed by `sign(request) -> nonce` (None: unsigned), the request
        first built for `url` (default: the node's own URL); `tamper` may alter it after signing. The
        response's signature is verified against the node's DID document and the exchange is kept."""
        content = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        request = self.http.build_request("POST", url or self.base + path, content=content,
                                          headers={"content-type": "application/json"})
        nonce = sign(request) if sign is not None else None
        if tamper is not None:
            request = tamper(request)
        if url is not None:  # deliver to the node whatever the request names (wrong destination)
            request.url = httpx.URL(self.base + path)
        response = self.http.send(request)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        signed, problem, key_id, bound = True, None, None, False
        try:
            # a refused request's nonce was never accepted, so a refusal need not echo it: check the binding
            # separately (test_02 requires it for accepted requests)
            v = httpsig.verify_response(status=response.status_code, headers=dict(response.headers.items()),
                                        body=response.content, resolve_key=self.resolver("authentication"),
                                        now=int(time.time()), required_tag=PROTOCOL)
            key_id, bound = v.key_id, nonce is not None and v.nonce == nonce
        except httpsig.HttpSignatureError as exc:
            signed, problem = False, f"{exc.code}: {exc}"
        exchange = Exchange(label, response.status_code, body, nonce, signed, problem, key_id, bound,
                            dict(response.headers.items()))
        self.exchanges.append(exchange)
        return exchange
