"""RFC 9421 HTTP Message Signatures (Ed25519) and RFC 9530 ``Content-Digest`` for node-to-node messages.

The signature base is built here (it is small) and reproduces RFC 9421 B.2.6 byte for byte; structured fields
are parsed with ``http-sf``. Supported derived components: ``@method``, ``@target-uri``, ``@authority``,
``@scheme``, ``@path``, ``@query``, ``@request-target``, ``@status``; header fields by lower-case name (values
trimmed, repeated fields joined with ", "). Component parameters (``;sf``, ``;key``, ``;req``, ``;bs``) are not
supported and are refused as ``malformed_signature``.

Requests (``sign_request`` / ``verify_request``): label ``sig1`` covering ``@method``, ``@target-uri``,
``content-type`` (when present) and ``content-digest`` (when there is a body); parameters ``created``,
``expires``, ``nonce``, ``keyid``, ``alg="ed25519"``, ``tag``. The verifier requires those components, checks
the time window and the digest, and returns the nonce and the covered ``@target-uri``: the replay cache and the
destination check (target URI is ours) are the caller's job.

Responses (``sign_response`` / ``verify_response``): cover ``@status``, ``content-type`` (when present),
``content-digest`` (when there is a body). **Binding to the request**: the response signature's ``nonce``
parameter is the *request's* nonce (echoed), so it is covered by ``@signature-params``; ``verify_response`` with
``expected_request_nonce`` refuses a response signed for another request (``request_mismatch``).

Errors are ``HttpSignatureError`` subclasses with a stable ``.code`` (see ``crypto.errors``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import http_sf
import httpx

from crypto.did import ResolvedKey
from crypto.errors import (
    BadSignature,
    DigestMismatch,
    HttpSignatureError,
    MalformedSignature,
    MissingComponent,
    RequestMismatch,
    SignatureExpired,
    UnknownKey,
    UnsignedMessage,
    WrongTag,
)
from crypto.keys import Ed25519Key, PublicKey

__all__ = [
    "CLOCK_SKEW",
    "HttpSignatureAuth",
    "HttpSignatureError",
    "VerifiedMessage",
    "VerifiedRequest",
    "VerifiedResponse",
    "content_digest",
    "serialize_signature_params",
    "sign_message",
    "sign_request",
    "sign_response",
    "signature_base",
    "verify_content_digest",
    "verify_message",
    "verify_request",
    "verify_response",
]

CLOCK_SKEW = 5  # seconds a `created` may lie in the future
_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
_DERIVED = {"@method", "@target-uri", "@authority", "@scheme", "@path", "@query", "@request-target", "@status"}
_DEFAULT_PORTS = {"http": 80, "https": 443}

KeyLookup = Callable[[str], "PublicKey | ResolvedKey | None"]


# ---------------------------------------------------------------- RFC 9530
def content_digest(body: bytes, alg: str = "sha-256") -> str:
    """The ``Content-Digest`` field value, e.g. ``sha-256=:X48E…=:``."""
    try:
        fn = _DIGESTS[alg]
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {alg!r} (sha-256, sha-512)") from None
    return f"{alg}=:{base64.b64encode(fn(bytes(body)).digest()).decode()}:"


def verify_content_digest(header: str | None, body: bytes) -> bool:
    """True when every sha-256/sha-512 member of the header matches ``body`` and there is at least one."""
    if not header:
        return False
    try:
        parsed = http_sf.parse(header.encode("ascii"), tltype="dictionary")
    except (http_sf.StructuredFieldError, UnicodeEncodeError, ValueError):
        return False
    checked = False
    for alg, (value, _params) in parsed.items():
        fn = _DIGESTS.get(alg)
        if fn is None:
            continue
        if not isinstance(value, bytes) or not secrets.compare_digest(value, fn(bytes(body)).digest()):
            return False
        checked = True
    return checked


# ---------------------------------------------------------------- signature base
def _lower_headers(headers: Mapping[str, str] | Any) -> dict[str, str]:
    out: dict[str, str] = {}
    items = headers.multi_items() if hasattr(headers, "multi_items") else headers.items()
    for name, value in items:
        name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        key = name.lower()
        value = value.strip()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _sf_string(value: str) -> str:
    if not isinstance(value, str) or any(not (0x20 <= ord(c) < 0x7F) for c in value):
        raise ValueError(f"not a printable ASCII string: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sf_param(value: Any) -> str:
    if isinstance(value, bool):
        return "" if value else "=?0"
    if isinstance(value, int):
        return f"={value}"
    if isinstance(value, str):
        return "=" + _sf_string(value)
    raise ValueError(f"unsupported signature parameter value {value!r}")


def serialize_signature_params(covered: Sequence[str], params: Sequence[tuple[str, Any]]) -> str:
    """The inner list ``("a" "b");created=…;keyid="…"`` (used both in Signature-Input and the base)."""
    inner = " ".join(_sf_string(c) for c in covered)
    return f"({inner})" + "".join(f";{k}{_sf_param(v)}" for k, v in params)


def _component(name: str, *, method: str | None, url: str | None, status: int | None,
               headers: dict[str, str]) -> str:
    if name in _DERIVED:
        if name == "@status":
            if status is None:
                raise MissingComponent("@status is only for responses")
            return str(int(status))
        if name == "@method":
            if not method:
                raise MissingComponent("no method to sign")
            return method
        if not url:
            raise MissingComponent(f"no target URI for {name}")
        if name == "@target-uri":
            return url
        parts = urlsplit(url)
        if name == "@scheme":
            return parts.scheme.lower()
        if name == "@authority":
            host = (parts.hostname or "").lower()
            if ":" in host:
                host = f"[{host}]"
            port = parts.port
            return host if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()) else f"{host}:{port}"
        path = parts.path or "/"
        if name == "@path":
            return path
        if name == "@query":
            return "?" + parts.query
        return path + (f"?{parts.query}" if parts.query else "")  # @request-target
    if name.startswith("@"):
        raise MalformedSignature(f"unsupported derived component {name}")
    if name != name.lower():
        raise MalformedSignature(f"component names are lower case: {name}")
    if name not in headers:
        raise MissingComponent(f"covered header {name} is not in the message")
    return headers[name]


def signature_base(
    *,
    covered: Sequence[str],
    params_value: str,
    headers: Mapping[str, str],
    method: str | None = None,
    url: str | None = None,
    status: int | None = None,
) -> str:
    """The RFC 9421 §2.5 signature base (no trailing newline)."""
    lower = _lower_headers(headers)
    seen = set()
    lines = []
    for name in covered:
        if name in seen:
            raise MalformedSignature(f"component {name} covered twice")
        seen.add(name)
        value = _component(name, method=method, url=url, status=status, headers=lower)
        if "\n" in value or "\r" in value:
            raise MalformedSignature(f"component {name} contains a newline")
        lines.append(f'"{name}": {value}')
    lines.append(f'"@signature-params": {params_value}')
    return "\n".join(lines)


def sign_message(
    *,
    covered: Sequence[str],
    key: Ed25519Key,
    key_id: str,
    headers: Mapping[str, str],
    method: str | None = None,
    url: str | None = None,
    status: int | None = None,
    label: str = "sig1",
    created: int | None = None,
    expires: int | None = None,
    nonce: str | None = None,
    alg: str | None = "ed25519",
    tag: str | None = None,
) -> dict[str, str]:
    """``{"Signature-Input": …, "Signature": …}`` for the given components and parameters (in the order
    created, expires, nonce, keyid, alg, tag; ``None`` ones omitted)."""
    if created is None:
        created = int(time.time())
    params: list[tuple[str, Any]] = [("created", int(created))]
    if expires is not None:
        params.append(("expires", int(expires)))
    if nonce is not None:
        params.append(("nonce", nonce))
    params.append(("keyid", key_id))
    if alg is not None:
        params.append(("alg", alg))
    if tag is not None:
        params.append(("tag", tag))
    params_value = serialize_signature_params(covered, params)
    base = signature_base(covered=covered, params_value=params_value, headers=headers, method=method, url=url,
                          status=status)
    sig = key.sign(base.encode("utf-8"))
    return {
        "Signature-Input": f"{label}={params_value}",
        "Signature": f"{label}=:{base64.b64encode(sig).decode()}:",
    }


# ---------------------------------------------------------------- verification
@dataclass(frozen=True)
class VerifiedMessage:
    label: str
    key_id: str
    created: int
    expires: int | None
    nonce: str | None
    tag: str | None
    alg: str | None
    covered: tuple[str, ...]
    target_uri: str | None
    key: PublicKey


@dataclass(frozen=True)
class VerifiedRequest:
    key_id: str
    created: int
    expires: int
    nonce: str | None
    tag: str | None
    covered: tuple[str, ...]
    target_uri: str
    method: str
    label: str = "sig1"


@dataclass(frozen=True)
class VerifiedResponse:
    key_id: str
    created: int
    expires: int
    nonce: str | None
    tag: str | None
    covered: tuple[str, ...]
    status: int
    label: str = "sig1"


def _parse_dict(value: str, field: str) -> dict:
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (http_sf.StructuredFieldError, UnicodeEncodeError, ValueError) as exc:
        raise MalformedSignature(f"{field} is not a structured-field dictionary: {exc}") from exc
    if not isinstance(parsed, dict) or not parsed:
        raise MalformedSignature(f"{field} is empty")
    return parsed


def _choose(inputs: dict, label: str | None, required_tag: str | None) -> str:
    if label is not None:
        if label not in inputs:
            raise UnsignedMessage(f"no signature labelled {label}")
        return label
    if required_tag is not None:
        for name, member in inputs.items():
            if isinstance(member, tuple) and isinstance(member[1], dict) and member[1].get("tag") == required_tag:
                return name
        raise WrongTag(f"no signature has tag {required_tag!r}")
    return "sig1" if "sig1" in inputs else next(iter(inputs))


def _as_public(resolved: Any) -> PublicKey | None:
    if isinstance(resolved, ResolvedKey):
        return None if resolved.status == "revoked" else resolved.public_key
    if isinstance(resolved, PublicKey):
        return resolved
    if isinstance(resolved, Ed25519Key):
        return resolved.public_key
    return None


def verify_message(
    *,
    headers: Mapping[str, str],
    resolve_key: KeyLookup,
    method: str | None = None,
    url: str | None = None,
    status: int | None = None,
    body: bytes | None = None,
    now: int | None = None,
    max_window: int = 300,
    required_components: Sequence[str] = (),
    required_tag: str | None = None,
    label: str | None = None,
    require_expires: bool = True,
    require_nonce: bool = False,
) -> VerifiedMessage:
    """Verify one signature of a message (request or response); see verify_request / verify_response."""
    lower = _lower_headers(headers)
    sig_input, sig_field = lower.get("signature-input"), lower.get("signature")
    if not sig_input or not sig_field:
        raise UnsignedMessage("the message has no Signature / Signature-Input")
    inputs = _parse_dict(sig_input, "Signature-Input")
    signatures = _parse_dict(sig_field, "Signature")
    label = _choose(inputs, label, required_tag)
    member = inputs[label]
    if label not in signatures:
        raise MalformedSignature(f"Signature has no member {label}")
    if not (isinstance(member, tuple) and isinstance(member[0], list)):
        raise MalformedSignature(f"Signature-Input {label} is not an inner list")
    items, params = member
    covered = []
    for item, item_params in items:
        if not isinstance(item, str) or item_params:
            raise MalformedSignature("covered components must be plain strings without parameters")
        covered.append(item)
    sig_value, _ = signatures[label]
    if not isinstance(sig_value, bytes) or len(sig_value) != 64:
        raise MalformedSignature("the signature must be a 64-byte byte sequence")
    created, expires = params.get("created"), params.get("expires")
    nonce, key_id, alg, tag = params.get("nonce"), params.get("keyid"), params.get("alg"), params.get("tag")
    if isinstance(created, bool) or not isinstance(created, int):
        raise MalformedSignature("created must be an integer")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
        raise MalformedSignature("expires must be an integer")
    for pname, pval in (("nonce", nonce), ("keyid", key_id), ("alg", alg), ("tag", tag)):
        if pval is not None and not isinstance(pval, str):
            raise MalformedSignature(f"{pname} must be a string")
    if not key_id:
        raise MalformedSignature("keyid is required")
    if alg is not None and alg != "ed25519":
        raise MalformedSignature(f"unsupported alg {alg!r}")
    if require_expires and expires is None:
        raise MalformedSignature("expires is required")
    if require_nonce and not nonce:
        raise MalformedSignature("nonce is required")
    if required_tag is not None and tag != required_tag:
        raise WrongTag(f"tag is {tag!r}, expected {required_tag!r}")
    missing = [c for c in required_components if c not in covered]
    if missing:
        raise MissingComponent(f"required component(s) not covered: {', '.join(missing)}")
    now = int(time.time()) if now is None else int(now)
    if created > now + CLOCK_SKEW:
        raise SignatureExpired(f"created {created} is in the future (now {now})")
    if expires is not None:
        if expires < created:
            raise MalformedSignature("expires is before created")
        if expires < now:
            raise SignatureExpired(f"the signature expired at {expires} (now {now})")
        if expires - created > max_window:
            raise SignatureExpired(f"validity window {expires - created}s exceeds {max_window}s")
    elif now - created > max_window:
        raise SignatureExpired(f"created {created} is older than {max_window}s")
    params_value = serialize_signature_params(covered, list(params.items()))
    base = signature_base(covered=covered, params_value=params_value, headers=lower, method=method, url=url,
                          status=status)
    try:
        resolved = resolve_key(key_id)
    except Exception as exc:
        raise UnknownKey(f"cannot resolve key {key_id!r}: {exc}") from exc
    public = _as_public(resolved)
    if public is None:
        raise UnknownKey(f"unknown or revoked key {key_id!r}")
    if not public.verify(sig_value, base.encode("utf-8")):
        raise BadSignature("the signature does not verify")
    if body:
        if "content-digest" not in lower:
            raise DigestMismatch("Content-Digest is required with a body")
        if not verify_content_digest(lower["content-digest"], body):
            raise DigestMismatch("Content-Digest does not match the body")
    elif "content-digest" in lower and not verify_content_digest(lower["content-digest"], body or b""):
        raise DigestMismatch("Content-Digest does not match the (empty) body")
    return VerifiedMessage(label, key_id, created, expires, nonce, tag, alg, tuple(covered), url, public)


# ---------------------------------------------------------------- requests
def _request_body(request: httpx.Request) -> bytes:
    try:
        return request.content
    except httpx.RequestNotRead:
        return request.read()


def sign_request(
    request: httpx.Request,
    *,
    key: Ed25519Key,
    key_id: str,
    tag: str,
    nonce: str | None = None,
    created: int | None = None,
    expires_in: int = 60,
    label: str = "sig1",
) -> None:
    """Add Content-Digest (when there is a body), Signature-Input and Signature to an httpx.Request in place."""
    body = _request_body(request)
    if body:
        request.headers["Content-Digest"] = content_digest(body)
    covered = ["@method", "@target-uri"]
    if "content-type" in request.headers:
        covered.append("content-type")
    if "content-digest" in request.headers:
        covered.append("content-digest")
    created = int(time.time()) if created is None else int(created)
    fields = sign_message(
        covered=covered, key=key, key_id=key_id, headers=request.headers, method=request.method,
        url=str(request.url), label=label, created=created, expires=created + expires_in,
        nonce=nonce if nonce is not None else secrets.token_urlsafe(18), tag=tag,
    )
    request.headers["Signature-Input"] = fields["Signature-Input"]
    request.headers["Signature"] = fields["Signature"]


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    resolve_key: KeyLookup,
    now: int | None = None,
    max_window: int = 300,
    required_tag: str | None = None,
    require_nonce: bool = True,
) -> VerifiedRequest:
    """Verify a signed request: ``@method``, ``@target-uri`` and (with a body) ``content-digest`` and
    ``content-type`` must be covered; ``created``/``expires`` within the window; digest must match.
    Raises HttpSignatureError subclasses. The caller checks the nonce (replay) and the target URI."""
    lower = _lower_headers(headers)
    required = ["@method", "@target-uri"]
    if body:
        required.append("content-digest")
        if "content-type" in lower:
            required.append("content-type")
    v = verify_message(headers=lower, resolve_key=resolve_key, method=method, url=url, body=body, now=now,
                       max_window=max_window, required_components=required, required_tag=required_tag,
                       require_expires=True, require_nonce=require_nonce)
    assert v.expires is not None
    return VerifiedRequest(v.key_id, v.created, v.expires, v.nonce, v.tag, v.covered, url, method, v.label)


class HttpSignatureAuth(httpx.Auth):
    """httpx auth that signs every request with ``sign_request``."""

    requires_request_body = True

    def __init__(self, key: Ed25519Key, key_id: str, tag: str, *, expires_in: int = 60) -> None:
        self.key, self.key_id, self.tag, self.expires_in = key, key_id, tag, expires_in

    def auth_flow(self, request: httpx.Request):
        sign_request(request, key=self.key, key_id=self.key_id, tag=self.tag, expires_in=self.expires_in)
        yield request


# ---------------------------------------------------------------- responses
def sign_response(
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    key: Ed25519Key,
    key_id: str,
    tag: str,
    request_nonce: str | None,
    created: int | None = None,
    expires_in: int = 60,
) -> dict[str, str]:
    """Headers to add to a response: Content-Digest (with a body), Signature-Input, Signature (label sig1)
    covering ``@status``, ``content-type`` (if present), ``content-digest``; ``nonce`` = the request's nonce."""
    out: dict[str, str] = {}
    lower = _lower_headers(headers)
    if body:
        out["Content-Digest"] = content_digest(body)
        lower["content-digest"] = out["Content-Digest"]
    covered = ["@status"]
    if "content-type" in lower:
        covered.append("content-type")
    if "content-digest" in lower:
        covered.append("content-digest")
    created = int(time.time()) if created is None else int(created)
    out.update(sign_message(covered=covered, key=key, key_id=key_id, headers=lower, status=status,
                            created=created, expires=created + expires_in, nonce=request_nonce, tag=tag))
    return out


def verify_response(
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    resolve_key: KeyLookup,
    expected_request_nonce: str | None = None,
    now: int | None = None,
    max_window: int = 300,
    required_tag: str | None = None,
) -> VerifiedResponse:
    """Verify a signed response; with ``expected_request_nonce`` the signature's nonce must equal it."""
    lower = _lower_headers(headers)
    required = ["@status"]
    if body:
        required.append("content-digest")
        if "content-type" in lower:
            required.append("content-type")
    v = verify_message(headers=lower, resolve_key=resolve_key, status=status, body=body, now=now,
                       max_window=max_window, required_components=required, required_tag=required_tag,
                       require_expires=True)
    if expected_request_nonce is not None and (
        v.nonce is None or not secrets.compare_digest(v.nonce.encode(), expected_request_nonce.encode())
    ):
        raise RequestMismatch("the response is not bound to this request (nonce differs)")
    assert v.expires is not None
    return VerifiedResponse(v.key_id, v.created, v.expires, v.nonce, v.tag, v.covered, status, v.label)
