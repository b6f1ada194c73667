"""did:web identifiers and DID documents with Multikey verification methods, key rotation and revocation.

Choices (key rotation without breaking old signatures):

* ``verificationMethod`` lists **every** key the node ever used, with ``expires`` (rotated out at that time) and/or
  ``revoked`` (compromised, from that time) when set.
* ``assertionMethod`` lists every key that is **not revoked**, including rotated-out (expired) keys, so that
  credentials and agreements signed before the rotation still verify. A verifier that cares compares the
  proof's ``created`` with the key's ``expires`` (``ResolvedKey.status_at``).
* ``authentication`` lists only keys that are currently valid (not revoked, not expired at ``now``): those may
  authenticate live requests.
* A revoked key is resolvable (so the verifier can report "revoked" rather than "unknown"), but
  ``resolve_verification_method`` marks it ``status="revoked"``; callers must refuse it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from crypto.errors import DidError, KeyFormatError, UnknownVerificationMethod
from crypto.keys import PublicKey, public_key_from_did_key

__all__ = [
    "DID_CONTEXT",
    "MULTIKEY_CONTEXT",
    "ResolvedKey",
    "VerificationMethodSpec",
    "build_did_document",
    "did_web_from_url",
    "did_web_to_url",
    "format_datetime",
    "parse_datetime",
    "resolve_verification_method",
]

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"


def parse_datetime(value: str | dt.datetime | None) -> dt.datetime | None:
    """An aware UTC datetime from an ISO 8601 / XML Schema dateTime string (naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise DidError(f"not an ISO 8601 date-time: {value!r}") from exc
    else:
        raise DidError(f"expected a date-time, not {type(value).__name__}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def format_datetime(value: str | dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds)."""
    parsed = parse_datetime(value)
    assert parsed is not None
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def did_web_from_url(base_url: str) -> str:
    """``https://host:8443/a/b`` → ``did:web:host%3A8443:a:b`` (host lowercased; the scheme is dropped)."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        raise DidError(f"no host in {base_url!r}")
    if parts.query or parts.fragment:
        raise DidError("a did:web base URL has no query or fragment")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    authority = quote(host, safe="[]") + (f"%3A{parts.port}" if parts.port else "")
    segments = [quote(unquote(s), safe="") for s in parts.path.split("/") if s]
    return ":".join(["did:web", authority, *segments])


def did_web_to_url(did: str, *, scheme: str = "https") -> str:
    """The URL of the DID document: ``https://host/.well-known/did.json`` or ``https://host/a/b/did.json``."""
    if not isinstance(did, str) or not did.startswith("did:web:"):
        raise DidError("not a did:web")
    body = did[len("did:web:"):].split("#", 1)[0]
    parts = body.split(":")
    if not parts[0] or any(not p for p in parts):
        raise DidError(f"malformed did:web {did!r}")
    host = unquote(parts[0])
    if "/" in host or "@" in host:
        raise DidError(f"malformed did:web host {host!r}")
    path = "/".join(quote(unquote(p), safe="") for p in parts[1:])
    if any(unquote(p) in (".", "..") for p in parts[1:]):
        raise DidError("path traversal in did:web")
    return f"{scheme}://{host}/" + (f"{path}/did.json" if path else ".well-known/did.json")


@dataclass(frozen=True)
class VerificationMethodSpec:
    """One key of a DID document: the id fragment (``key-1``), its public Multikey, optional expiry/revocation."""

    fragment: str
    public_multikey: str
    expires: str | dt.datetime | None = None
    revoked: str | dt.datetime | None = None


def _vm_id(did: str, fragment: str) -> str:
    fragment = fragment.removeprefix("#")
    if not fragment or "#" in fragment:
        raise DidError(f"bad verification method fragment {fragment!r}")
    return f"{did}#{fragment}"


def build_did_document(
    did: str,
    keys: Sequence[VerificationMethodSpec],
    *,
    now: dt.datetime | None = None,
    services: Sequence[dict] = (),
) -> dict:
    """A DID document with ``Multikey`` verification methods (see the module docstring for which key goes where)."""
    if not isinstance(did, str) or not did.startswith("did:"):
        raise DidError(f"not a DID: {did!r}")
    now = parse_datetime(now) if now is not None else dt.datetime.now(dt.UTC)
    methods, assertion, authentication = [], [], []
    seen = set()
    for spec in keys:
        vm_id = _vm_id(did, spec.fragment)
        if vm_id in seen:
            raise DidError(f"duplicate verification method {vm_id}")
        seen.add(vm_id)
        PublicKey.from_multikey(spec.public_multikey)  # validates
        method = {"id": vm_id, "type": "Multikey", "controller": did, "publicKeyMultibase": spec.public_multikey}
        expires = parse_datetime(spec.expires)
        revoked = parse_datetime(spec.revoked)
        if expires is not None:
            method["expires"] = format_datetime(expires)
        if revoked is not None:
            method["revoked"] = format_datetime(revoked)
        methods.append(method)
        if revoked is None or revoked > now:
            assertion.append(vm_id)
            if expires is None or expires > now:
                authentication.append(vm_id)
    doc: dict = {
        "@context": [DID_CONTEXT, MULTIKEY_CONTEXT],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": assertion,
        "authentication": authentication,
    }
    if services:
        doc["service"] = [dict(s) for s in services]
    return doc


@dataclass(frozen=True)
class ResolvedKey:
    """A verification method found in a DID document.

    ``status``: ``"valid"``, ``"expired"`` (rotated out before ``at``) or ``"revoked"`` (revoked at or before
    ``at``; also when revoked and ``at`` is unknown).
    """

    id: str
    public_key: PublicKey
    controller: str | None
    expires: dt.datetime | None
    revoked: dt.datetime | None
    status: str

    def status_at(self, when: str | dt.datetime | None) -> str:
        at = parse_datetime(when) if when is not None else None
        return _status(self.expires, self.revoked, at)


def _status(expires: dt.datetime | None, revoked: dt.datetime | None, at: dt.datetime | None) -> str:
    if revoked is not None and (at is None or revoked <= at):
        return "revoked"
    if expires is not None and at is not None and expires <= at:
        return "expired"
    return "valid"


def _ids(relation: object, base: str) -> list[str]:
    if relation is None:
        return []
    if not isinstance(relation, list):
        raise DidError("a verification relationship must be a list")
    out = []
    for item in relation:
        if isinstance(item, str):
            out.append(base + item if item.startswith("#") else item)
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            out.append(base + item["id"] if item["id"].startswith("#") else item["id"])
    return out


def resolve_verification_method(
    did_document: dict,
    vm_id: str,
    purpose: str | None = "assertionMethod",
    at: str | dt.datetime | None = None,
) -> ResolvedKey:
    """Find ``vm_id`` (absolute, or ``#frag`` relative to the document id) in a DID document.

    The method must be listed in ``verificationMethod`` (or embedded in the relationship) and, unless revoked,
    be referenced from ``purpose`` (``None`` skips that check). ``at`` (e.g. the proof's ``created``) decides
    ``status``; without it, a revoked key is "revoked" and an expired one "valid" (for old signatures).
    Raises UnknownVerificationMethod (a LookupError) with a clear message.
    """
    if not isinstance(did_document, dict) or not isinstance(did_document.get("id"), str):
        raise DidError("a DID document is a JSON object with an id")
    did = did_document["id"]
    if not isinstance(vm_id, str) or not vm_id:
        raise UnknownVerificationMethod("no verification method id")
    full = did + vm_id if vm_id.startswith("#") else vm_id
    if full.split("#", 1)[0] != did:
        raise UnknownVerificationMethod(f"{full} is not a key of {did}")
    candidates = list(did_document.get("verificationMethod") or [])
    if purpose:
        candidates += [m for m in did_document.get(purpose) or [] if isinstance(m, dict)]
    method = None
    for m in candidates:
        if isinstance(m, dict) and isinstance(m.get("id"), str):
            mid = did + m["id"] if m["id"].startswith("#") else m["id"]
            if mid == full:
                method = m
                break
    if method is None:
        raise UnknownVerificationMethod(f"{full} is not listed in the DID document of {did}")
    try:
        if method.get("type") == "Multikey" or "publicKeyMultibase" in method:
            public = PublicKey.from_multikey(method.get("publicKeyMultibase"))
        else:
            raise UnknownVerificationMethod(f"{full} has unsupported type {method.get('type')!r}")
    except KeyFormatError as exc:
        raise UnknownVerificationMethod(f"{full}: {exc}") from exc
    expires = parse_datetime(method.get("expires"))
    revoked = parse_datetime(method.get("revoked"))
    at_dt = parse_datetime(at) if at is not None else None
    status = _status(expires, revoked, at_dt)
    if status != "revoked" and purpose and full not in _ids(did_document.get(purpose), did):
        raise UnknownVerificationMethod(f"{full} is not authorised for {purpose} by {did}")
    return ResolvedKey(full, public, method.get("controller"), expires, revoked, status)


def resolve_did_key_method(vm_id: str) -> ResolvedKey:
    """A ResolvedKey for a ``did:key:<mk>#<mk>`` verification method (no document needed)."""
    try:
        public = public_key_from_did_key(vm_id)
    except KeyFormatError as exc:
        raise UnknownVerificationMethod(str(exc)) from exc
    return ResolvedKey(vm_id, public, vm_id.split("#", 1)[0], None, None, "valid")


__all__ += ["resolve_did_key_method"]
