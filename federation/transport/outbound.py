"""Outgoing peer requests: `FederationAuth` signs every request (RFC 9421 + RFC 9530), `PeerClient` posts
JSON to a member and verifies its signed response, which it keeps as a receipt."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlmodel import Session

from crypto import httpsig
from federation.errors import PeerUnavailable
from federation.membership import Member
from federation.runtime import runtime
from federation.transport.inbound import PROTOCOL_TAG, parse_peer_json
from node.context import NodeContext

__all__ = ["FederationAuth", "PeerClient", "PeerResponse", "encode_json"]

NONCE_EXTENSION = "creditnode.nonce"
SIGNATURE_TTL_SECONDS = 60


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


class FederationAuth(httpx.Auth):
    """Signs each request with the node's current key: fresh nonce, `created` now, `expires` = created + 60."""

    requires_request_body = True

    def __init__(self, identity: Any, *, expires_in: int = SIGNATURE_TTL_SECONDS) -> None:
        self.identity = identity
        self.expires_in = expires_in

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        nonce = secrets.token_urlsafe(24)
        if "content-type" not in request.headers:
            request.headers["content-type"] = "application/json"
        httpsig.sign_request(
            request, key=self.identity.signing_key, key_id=self.identity.key_id, tag=PROTOCOL_TAG,
            nonce=nonce, created=int(time.time()), expires_in=self.expires_in,
        )
        request.extensions = {**request.extensions, NONCE_EXTENSION: nonce}
        yield request


@dataclass
class PeerResponse:
    """A verified peer response. `receipt` is what the outbox stores: status, raw body, signature headers."""

    status_code: int
    body: Any
    headers: dict[str, str]
    signature: Any  # crypto.httpsig's verified response signature
    receipt: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


_RECEIPT_HEADERS = ("content-type", "content-digest", "signature", "signature-input")


class PeerClient:
    """Posts signed JSON to members of the held membership and verifies their signed responses."""

    def __init__(self, ctx: NodeContext, *, http: httpx.Client | None = None) -> None:
        self.ctx = ctx
        self._http = http

    @property
    def http(self) -> httpx.Client:
        return self._http or runtime(self.ctx).client()

    def member(self, node_id: str) -> Member:
        with Session(self.ctx.engine) as session:
            member = runtime(self.ctx).directory.member(session, node_id)
        if member is None:
            raise PeerUnavailable(f"{node_id} is not a member of the held membership", code="unknown_peer")
        return member

    def post(self, peer: str | Member, path: str, payload: Any) -> PeerResponse:
        """POST `payload` to `peer` (a node id or a Member) at `path`; raises PeerUnavailable when the peer
        cannot be reached or its response is not signed by it."""
        member = peer if isinstance(peer, Member) else self.member(peer)
        url = member.base_url.rstrip("/") + path
        request = self.http.build_request("POST", url, content=encode_json(payload),
                                          headers={"content-type": "application/json"})
        try:
            response = self.http.send(request, auth=FederationAuth(self.ctx.identity))
        except httpx.HTTPError as exc:
            raise PeerUnavailable(f"{member.node_id}: {type(exc).__name__}: {exc}") from None
        nonce = response.request.extensions.get(NONCE_EXTENSION)
        return self._verified(member, response, nonce)

    def _verified(self, member: Member, response: httpx.Response, nonce: str | None) -> PeerResponse:
        directory = runtime(self.ctx).directory
        body_bytes = response.content

        def resolve_key(key_id: str) -> Any:
            if key_id.split("#", 1)[0] != member.did:
                return None
            with Session(self.ctx.engine) as session:
                key = directory.resolve_key(session, key_id, purpose="authentication")
                session.commit()
            return key

        if nonce is None:
            raise PeerUnavailable("the request was not signed (no nonce to bind the response to)")
        try:
            signature = httpsig.verify_response(
                status=response.status_code, headers=dict(response.headers.items()), body=body_bytes,
                resolve_key=resolve_key, expected_request_nonce=nonce, now=int(time.time()),
                max_window=self.ctx.settings.federation.signature_window_seconds, required_tag=PROTOCOL_TAG,
            )
        except httpsig.HttpSignatureError as exc:
            raise PeerUnavailable(
                f"{member.node_id} answered {response.status_code} without a valid response signature "
                f"({exc.code})"
            ) from None
        try:  # what is not I-JSON is no answer (a document in it could not be hashed or stored)
            body = parse_peer_json(body_bytes) if body_bytes else None
        except ValueError:
            body = None
        headers = {k: v for k, v in response.headers.items()}
        receipt = {
            "status": response.status_code,
            "body": body_bytes.decode("utf-8", "replace"),
            "headers": {k: headers[k] for k in _RECEIPT_HEADERS if k in headers},
            "request_nonce": nonce,
            "peer": member.node_id,
        }
        return PeerResponse(response.status_code, body, headers, signature, receipt)
