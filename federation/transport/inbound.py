"""Inbound peer requests: the one dependency that verifies them, and signed responses.

`VerifiedPeer` (used by every `/federation/v1/*` route) refuses, in this order: a body over
`settings.federation.max_body_bytes` (413 payload_too_large, before anything is parsed); a request without
`Signature`/`Signature-Input` (unsigned), that cannot be parsed or does not cover the required components
(malformed_signature), whose `keyid` is not a key of a current member (unknown_member), whose signature does not
verify (bad_signature), outside its window or with a window over `signature_window_seconds` (expired), whose
`Content-Digest` is missing or wrong (digest_mismatch), whose `@target-uri` is not this node's base URL
(wrong_destination), or whose nonce was seen before (replayed; the cache is the `seen_nonce` table, shared by
all workers). It returns a `PeerIdentity`; handlers never see the signature headers. `VerifiedBody` is the
verified body, parsed as JSON.

`FederationRoute` is the route class of the federation router: it renders refusals and signs every response
(`@status`, `content-type`, `content-digest`, and the request's nonce).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from crypto import httpsig
from crypto.did import resolve_did_key_method
from crypto.errors import CanonicalizationError
from crypto.jcs import canonicalize, loads_strict
from federation.errors import TransportRefused
from federation.runtime import runtime
from node.context import NodeContext
from node.deps import CtxDep
from node.errors import BadRequest, NodeError, PayloadTooLarge
from node.middleware import unstorable_json_text
from node.models import SeenNonce

__all__ = [
    "PROTOCOL_TAG",
    "FederationRoute",
    "PeerIdentity",
    "VerifiedBody",
    "VerifiedPeer",
    "parse_peer_json",
    "verified_body",
    "verify_peer",
]

PROTOCOL_TAG = "creditnode-federation/1"
CLOCK_SKEW_SECONDS = 5
# Codes of crypto.httpsig errors → the protocol's refusal codes (docs/federation.md §3).
_CODE_MAP = {"unknown_key": "unknown_member", "missing_component": "malformed_signature",
             "wrong_tag": "malformed_signature"}


@dataclass(frozen=True)
class PeerIdentity:
    """The authenticated sender of a peer request."""

    node_id: str
    did: str
    key_id: str
    nonce: str


async def verify_peer(request: Request, ctx: CtxDep) -> PeerIdentity:
    peer = getattr(request.state, "federation_peer", None)
    if peer is not None:
        return peer
    limit = ctx.settings.federation.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request.state.federation_body = body
    peer = await run_in_threadpool(
        _verify, ctx, method=request.method, url=str(request.url), headers=dict(request.headers.items()),
        body=body,
    )
    request.state.federation_peer = peer
    return peer


verify_peer.peer_only = True  # type: ignore[attr-defined]  # read by node.ops.openapi (x-roles: ["peer"])
VerifiedPeer = Annotated[PeerIdentity, Depends(verify_peer)]


def parse_peer_json(data: bytes) -> Any:
    """`data` parsed as I-JSON (RFC 7493), the JSON every federation body must be: valid UTF-8, no duplicate
    keys, no NaN/Infinity, and only numbers RFC 8785 can write (integers within ±(2**53-1), finite doubles),
    so that any document in it can be canonicalised, hashed and stored. Raises CanonicalizationError
    (a ValueError) saying what is wrong."""
    value = loads_strict(data)
    canonicalize(value)  # refuses big integers and the infinities an overflowing exponent parses to
    return value


def verified_body(request: Request, _peer: VerifiedPeer) -> Any:
    """The verified request body, parsed as I-JSON (`parse_peer_json`); else 400 invalid_json."""
    try:
        body = parse_peer_json(request.state.federation_body)
        text_error = unstorable_json_text(body)
    except (CanonicalizationError, ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not I-JSON (RFC 7493): {exc}"[:500], code="invalid_json") from None
    if text_error:  # a NUL or an unpaired surrogate: no database stores it (node.middleware)
        raise RequestValidationError([text_error])
    return body


VerifiedBody = Annotated[Any, Depends(verified_body)]


def _verify(ctx: NodeContext, *, method: str, url: str, headers: dict[str, str], body: bytes) -> PeerIdentity:
    directory = runtime(ctx).directory
    settings = ctx.settings
    faulty = "accept_unknown_keys" in settings.active_faults  # FAULT HOOK (test mode only; conformance-tests)
    with Session(ctx.engine, expire_on_commit=False) as session:
        try:
            verified = httpsig.verify_request(
                method=method, url=url, headers=headers, body=body,
                        resolve_key=lambda key_id: directory.resolve_key(session, key_id, purpose="authentication")
                        or (faulty and _self_resolving(key_id)) or None,
                now=int(time.time()), max_window=settings.federation.signature_window_seconds,
                required_tag=PROTOCOL_TAG,
            )
        except httpsig.HttpSignatureError as exc:
            session.commit()  # keep DID documents fetched on the way
            code = _CODE_MAP.get(exc.code, exc.code)
            raise TransportRefused(code, str(exc) or code) from None
        member = directory.member_for_key(session, verified.key_id)
        session.commit()
    if member is None and faulty:  # FAULT HOOK: an unknown signer passes as a peer "unknown"
        from federation.membership import Member
        member = Member(node_id="unknown", did="did:web:unknown", base_url="http://unknown")
    if member is None:  # pragma: no cover - resolve_key only resolves members' keys
        raise TransportRefused("unknown_member", "the key is not a key of a current member")
    if "content-type" not in verified.covered:
        raise TransportRefused("malformed_signature", "the signature must cover content-type")
    target = verified.target_uri
    base = settings.base_url.rstrip("/")
    if not (target == base or target.startswith(base + "/") or target.startswith(base + "?")):
        raise TransportRefused("wrong_destination", f"the request is addressed to {target}, not to this node")
    if not verified.nonce:
        raise TransportRefused("malformed_signature", "the signature has no nonce")
    _record_nonce(ctx, verified.key_id, verified.nonce, verified.expires)
    return PeerIdentity(node_id=member.node_id, did=member.did, key_id=verified.key_id, nonce=verified.nonce)


def _self_resolving(key_id: str) -> Any:
    """Fault `accept_unknown_keys` only: trust any did:key, member or not."""
    try:
        return resolve_did_key_method(key_id) if key_id.startswith("did:key:") else None
    except Exception:  # noqa: BLE001
        return None


def _record_nonce(ctx: NodeContext, key_id: str, nonce: str, expires: int) -> None:
    """Insert the nonce in the shared replay cache, in a transaction of its own; a duplicate is a replay.
    It is kept until the signature could no longer be accepted anyway (expires + clock skew)."""
    until = dt.datetime.fromtimestamp(int(expires) + CLOCK_SKEW_SECONDS, dt.UTC)
    if "replay_check_off" in ctx.settings.active_faults:  # FAULT HOOK (test mode only; conformance-tests)
        return
    try:
        with Session(ctx.engine) as session:
            session.add(SeenNonce(key_id=key_id, nonce=nonce[:128], expires_at=until))
            session.commit()
    except IntegrityError:
        raise TransportRefused("replayed", "this nonce was seen before") from None


# -- signed responses --------------------------------------------------------------------------------


def _render(exc: Exception) -> Response:
    if isinstance(exc, NodeError):
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]  # type: ignore[attr-defined]
    return JSONResponse({"code": "validation_error", "message": "the request is not valid",
                         "detail": {"errors": errors}}, status_code=422)


def sign_federation_response(ctx: NodeContext, request: Request, response: Response) -> Response:
    """Add `Content-Digest`, `Signature-Input` and `Signature` (binding the request's nonce) to `response`."""
    peer = getattr(request.state, "federation_peer", None)
    nonce = peer.nonce if peer is not None else None
    body = bytes(response.body)
    content_type = response.headers.get("content-type")
    headers = httpsig.sign_response(
        status=response.status_code, headers={"content-type": content_type} if content_type else {},
        body=body, key=ctx.identity.signing_key, key_id=ctx.identity.key_id, request_nonce=nonce,
        tag=PROTOCOL_TAG, created=int(time.time()),
    )
    for name, value in headers.items():
        response.headers[name] = value
    return response


class FederationRoute(APIRoute):
    """Route class for `/federation/v1/*`: refusals are rendered here and every response is signed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def signed_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except (NodeError, RequestValidationError) as exc:
                response = _render(exc)
            return sign_federation_response(request.app.state.ctx, request, response)

        return signed_handler
