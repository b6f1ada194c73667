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

Two halves (docs/performance.md, "Peer requests"). The signature half (`check_signature`) runs first, in a
worker thread, against the signer's key as this process last resolved it (`PeerDirectory.cached_key`; no
database when it is known). The database half (`admit`) runs inside a transaction: it confirms in one small
query that the held membership and the signer's DID document are still the ones that key was read from (else it
checks the signature again against the current ones) and records the nonce (`INSERT ... ON CONFLICT DO
NOTHING`: of two concurrent requests with one nonce, exactly one inserts it; the other is `replayed`). A route
written with `peer_endpoint` admits the request in the same transaction as its own work, in the endpoint's
thread, and commits once: verification, nonce and effects commit together. Any other route gets it admitted by
`VerifiedPeer` itself, in a short transaction of its own. Either way a nonce that was admitted stays spent, also
when the route then refuses the request.

`FederationRoute` is the route class of the federation router: it renders refusals and signs every response
(`@status`, `content-type`, `content-digest`, and the request's nonce).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from crypto import httpsig
from crypto.did import resolve_did_key_method
from crypto.errors import CanonicalizationError
from crypto.jcs import canonicalize, loads_strict
from federation.errors import TransportRefused
from federation.peers import CachedKey, KeyStamp
from federation.runtime import runtime
from node.context import NodeContext
from node.deps import CtxDep
from node.errors import BadRequest, NodeError, PayloadTooLarge
from node.middleware import unstorable_json_text
from node.models import SeenNonce

__all__ = [
    "PROTOCOL_TAG",
    "CheckedRequest",
    "FederationRoute",
    "PeerHandler",
    "PeerIdentity",
    "VerifiedBody",
    "VerifiedPeer",
    "admit",
    "check_signature",
    "parse_peer_json",
    "peer_endpoint",
    "verified_body",
    "verify_peer",
]

log = logging.getLogger("creditnode.federation")

PROTOCOL_TAG = "creditnode-federation/1"
CLOCK_SKEW_SECONDS = 5
# Codes of crypto.httpsig errors → the protocol's refusal codes (docs/federation.md §3).
_CODE_MAP = {"unknown_key": "unknown_member", "missing_component": "malformed_signature",
             "wrong_tag": "malformed_signature"}
# A signature that fails against a key from the process's memory is checked again against the database's state
# before it is refused (the memory may predate a key rotation another worker has fetched).
_RECHECK = frozenset({"unknown_key", "bad_signature"})
# Bodies up to this size are checked on the event loop when the signer's key is in memory (digest and JSON
# parsing grow with the body; a bigger one goes to a worker thread).
INLINE_CHECK_BYTES = 64 * 1024


class _NeedsDatabase(Exception):
    """check_signature(memory_only=True) cannot answer from memory."""


@dataclass(frozen=True)
class PeerIdentity:
    """The authenticated sender of a peer request."""

    node_id: str
    did: str
    key_id: str
    nonce: str


@dataclass(frozen=True)
class CheckedRequest:
    """A request whose signature verified, not yet admitted: its nonce is not recorded yet. `stamp` is what the
    key was read from (None: confirm nothing, check again in the transaction)."""

    peer: PeerIdentity
    expires: int
    stamp: KeyStamp | None
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


async def _read_body(request: Request, ctx: NodeContext) -> bytes:
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
    return b"".join(chunks)


async def verify_peer(request: Request, ctx: CtxDep) -> PeerIdentity:
    peer = getattr(request.state, "federation_peer", None)
    if peer is not None:
        return peer
    body = await _read_body(request, ctx)
    request.state.federation_body = body
    deferred = getattr(request.state, "federation_admit_in_endpoint", False)
    args = dict(method=request.method, url=str(request.url), headers=dict(request.headers.items()), body=body)
    checked = None
    if deferred and len(body) <= INLINE_CHECK_BYTES:
        # on the event loop, as middleware works: a signature check with a key in memory is ~0.1 ms, less than
        # the switch to a worker thread and back
        try:
            checked = _check_and_parse(request, ctx, **args, admit_now=False, memory_only=True)
        except _NeedsDatabase:
            checked = None
    if checked is None:
        checked = await run_in_threadpool(_check_and_parse, request, ctx, **args, admit_now=not deferred)
    if deferred:
        request.state.federation_checked = checked
        return checked.peer
    request.state.federation_peer = checked.peer
    return checked.peer


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


def _parse_body(body: bytes) -> tuple[Any, Exception | None]:
    """The body as I-JSON, or the refusal to raise once the request is admitted (400 invalid_json; 422 for text
    no database stores: a NUL or an unpaired surrogate, node.middleware)."""
    try:
        value = parse_peer_json(body)
        text_error = unstorable_json_text(value)
    except (CanonicalizationError, ValueError, RecursionError) as exc:
        return None, BadRequest(f"the body is not I-JSON (RFC 7493): {exc}"[:500], code="invalid_json")
    if text_error:
        return None, RequestValidationError([text_error])
    return value, None


async def verified_body(request: Request, _peer: VerifiedPeer) -> Any:
    """The verified request body, parsed as I-JSON (`parse_peer_json`); else 400 invalid_json. (Parsed by
    `verify_peer` in its worker thread; raised here, after the request was admitted.)"""
    error = request.state.federation_json_error
    if error is not None:
        raise error
    return request.state.federation_json


VerifiedBody = Annotated[Any, Depends(verified_body)]


def _check_and_parse(request: Request, ctx: NodeContext, *, method: str, url: str, headers: dict[str, str],
                     body: bytes, admit_now: bool, memory_only: bool = False) -> CheckedRequest:
    checked = check_signature(ctx, method=method, url=url, headers=headers, body=body, memory_only=memory_only)
    request.state.federation_json, request.state.federation_json_error = _parse_body(body)
    if admit_now:
        with Session(ctx.engine, expire_on_commit=False) as session:
            admit(session, ctx, checked)
            session.commit()
    return checked


def check_signature(ctx: NodeContext, *, method: str, url: str, headers: dict[str, str], body: bytes,
                    session: Session | None = None, memory_only: bool = False) -> CheckedRequest:
    """The signature half of `VerifiedPeer` (every refusal but `replayed`). Without `session` the key comes from
    the process's memory, else from a short session of its own (which may fetch and store the signer's DID
    document); with `session`, from that session's state, without fetching. `memory_only`: raise
    `_NeedsDatabase` rather than open a session (the caller is on the event loop)."""
    directory = runtime(ctx).directory
    settings = ctx.settings
    faulty = "accept_unknown_keys" in settings.active_faults  # FAULT HOOK (test mode only; conformance-tests)
    used: list[CachedKey] = []
    from_memory = False

    def lookup(key_id: str, *, memory: bool) -> Any:
        nonlocal from_memory
        entry = directory.cached_key(key_id) if memory and session is None else None
        if entry is not None and entry.key is not None:
            from_memory = True
        elif session is not None:
            entry = directory.resolve_cached(session, key_id, fetch=False)
        elif memory_only:
            raise _NeedsDatabase
        else:
            with Session(ctx.engine, expire_on_commit=False) as own:
                entry = directory.resolve_cached(own, key_id)
                own.commit()  # keep DID documents fetched on the way
        used.append(entry)
        return entry.key or (faulty and _self_resolving(key_id)) or None

    def verify(memory: bool) -> httpsig.VerifiedRequest:
        return httpsig.verify_request(
            method=method, url=url, headers=headers, body=body,
            resolve_key=lambda key_id: lookup(key_id, memory=memory),
            now=int(time.time()), max_window=settings.federation.signature_window_seconds,
            required_tag=PROTOCOL_TAG,
        )

    try:
        try:
            verified = verify(memory=True)
        except httpsig.HttpSignatureError as exc:
            if isinstance(exc.__cause__, _NeedsDatabase):  # raised inside verify_request's key lookup
                raise _NeedsDatabase from None
            if not (from_memory and exc.code in _RECHECK):
                raise
            if memory_only:
                raise _NeedsDatabase from None
            used.clear()
            verified = verify(memory=False)
    except httpsig.HttpSignatureError as exc:
        code = _CODE_MAP.get(exc.code, exc.code)
        raise TransportRefused(code, str(exc) or code) from None
    entry = used[-1] if used else None
    member = entry.member if entry is not None else None
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
    peer = PeerIdentity(node_id=member.node_id, did=member.did, key_id=verified.key_id, nonce=verified.nonce)
    stamp = entry.stamp if entry is not None and entry.key is not None else None
    return CheckedRequest(peer, verified.expires, stamp, method, url, headers, body)


def admit(session: Session, ctx: NodeContext, checked: CheckedRequest) -> PeerIdentity:
    """The database half of `VerifiedPeer`, in `session`'s transaction: the membership and DID document the
    signature was checked against are still the held ones (else the signature is checked again against
    those), and the nonce is recorded (else 401 replayed). Returns the peer."""
    directory = runtime(ctx).directory
    if checked.stamp is None or directory.stamp(session, checked.peer.did) != checked.stamp:
        checked = check_signature(ctx, method=checked.method, url=checked.url, headers=checked.headers,
                                  body=checked.body, session=session)
    if not _record_nonce(session, ctx, checked):
        raise TransportRefused("replayed", "this nonce was seen before")
    return checked.peer


def _self_resolving(key_id: str) -> Any:
    """Fault `accept_unknown_keys` only: trust any did:key, member or not."""
    try:
        return resolve_did_key_method(key_id) if key_id.startswith("did:key:") else None
    except Exception:  # noqa: BLE001
        return None


def _record_nonce(session: Session, ctx: NodeContext, checked: CheckedRequest) -> bool:
    """Insert the nonce in the shared replay cache in `session`'s transaction; False if it is there already
    (committed by another request, or being inserted by a concurrent one that then commits: PostgreSQL makes
    the second insert wait for the first's outcome; SQLite runs one writer at a time). It is kept until the
    signature could no longer be accepted anyway (expires + clock skew)."""
    if "replay_check_off" in ctx.settings.active_faults:  # FAULT HOOK (test mode only; conformance-tests)
        return True
    until = dt.datetime.fromtimestamp(int(checked.expires) + CLOCK_SKEW_SECONDS, dt.UTC)
    connection = session.connection()
    values = {"key_id": checked.peer.key_id, "nonce": checked.peer.nonce[:128], "expires_at": until}
    return connection.execute(_nonce_insert(connection.dialect.name), values).first() is not None


@functools.cache
def _nonce_insert(dialect: str) -> Any:
    """INSERT .. ON CONFLICT (key_id, nonce) DO NOTHING RETURNING id, built once per dialect (the returned row,
    not the rowcount, tells an insert from a conflict: PostgreSQL's implicit RETURNING leaves no rowcount)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    table = SeenNonce.__table__
    return (insert(table).values(key_id=sa.bindparam("key_id"), nonce=sa.bindparam("nonce"),
                                 expires_at=sa.bindparam("expires_at", type_=table.c.expires_at.type))
            .on_conflict_do_nothing(index_elements=["key_id", "nonce"]).returning(table.c.id))  # no row: a replay


# -- routes that admit the request in their own transaction ----------------------------------------------

PeerHandler = Callable[[Session, NodeContext, PeerIdentity, Any], Any]


def peer_endpoint(handler: PeerHandler) -> Callable[..., Response]:
    """The endpoint of a peer route whose work is `handler(session, ctx, peer, body)` (body: the verified JSON;
    a dict result is answered as JSON, a Response as is). In one worker thread and one transaction: the
    request is admitted (`admit`), the handler runs, the transaction commits. When the handler refuses (or
    fails), its effects are rolled back and the nonce alone is recorded, so the refusal is final and the
    request cannot be replayed. No database lock is held across a thread switch (on SQLite every write
    transaction holds the database's write lock)."""

    def endpoint(request: Request, ctx: CtxDep, _peer: VerifiedPeer) -> Response:
        checked: CheckedRequest = request.state.federation_checked
        with Session(ctx.engine, expire_on_commit=False) as session:
            peer = admit(session, ctx, checked)
            request.state.federation_peer = peer  # the answer, refusal or not, is bound to this request
            try:
                error = request.state.federation_json_error
                if error is not None:
                    raise error
                result = handler(session, ctx, peer, request.state.federation_json)
                session.commit()
            except BaseException:
                session.rollback()
                _spend_nonce(session, ctx, checked)
                raise
        return result if isinstance(result, Response) else JSONResponse(result)

    endpoint.admits_peer = True  # type: ignore[attr-defined]  # read by FederationRoute
    endpoint.__name__ = handler.__name__
    endpoint.__qualname__ = handler.__qualname__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _spend_nonce(session: Session, ctx: NodeContext, checked: CheckedRequest) -> None:
    """After a refused or failed handler: record the nonce on its own (the request stays answered)."""
    try:
        _record_nonce(session, ctx, checked)
        session.commit()
    except Exception:  # the refusal is still sent; the nonce expires with the signature's window
        session.rollback()
        log.exception("could not record the nonce of a refused peer request")


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

        admits = bool(getattr(self.endpoint, "admits_peer", False))

        async def signed_handler(request: Request) -> Response:
            request.state.federation_admit_in_endpoint = admits  # read by verify_peer
            try:
                response = await handler(request)
            except (NodeError, RequestValidationError) as exc:
                response = _render(exc)
            return sign_federation_response(request.app.state.ctx, request, response)

        return signed_handler
