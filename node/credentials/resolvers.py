"""What verification needs from outside the document: DID documents, status lists and inclusion checks — this
node's own, and (through the federation's `PeerLookup`) every member's, so any member's credential verifies at
any node. `node` does not import `federation`: the federation registers its lookup with `use_peer_lookup`."""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from sqlmodel import Session, select

from crypto.did import did_web_to_url
from crypto.errors import DidError
from crypto.jsonld import ContextLoader
from crypto.merkle import MerkleError, verify_inclusion
from node.credentials.context import context_loader
from node.credentials.verify import ledger_event_check
from node.ledger.log import event_by_seq, inclusion, latest_checkpoint
from node.models import MembershipVersion

__all__ = ["DidLookup", "PeerLookup", "bounded_body", "issuer_names", "local_resolvers", "membership_pins", "use_peer_lookup",
           "web_resolvers"]


class PeerLookup(Protocol):
    """Members' public artefacts (registered by the federation; docs/credentials.md, "Verifying")."""

    def did_document(self, session: Session, ctx: Any, did: str, *, refresh: bool = False) -> dict | None:
        """A member's DID document (cached with the membership), None if `did` is not a member's."""

    def status_list(self, session: Session, ctx: Any, url: str) -> dict | None:
        """The status list credential at `url` if it is a member's `/status/{n}`, else None."""

    def inclusion(self, session: Session, ctx: Any, credential: dict) -> tuple[bool, str] | None:
        """Inclusion of a member's credential in its log (its signed checkpoint), None if not checkable."""


_PEERS: list[PeerLookup] = []


def use_peer_lookup(lookup: PeerLookup) -> None:
    _PEERS[:] = [lookup]


class DidLookup:
    """`resolve_did(did)` for `verify_document`: this node's document, else a member's; `refresh(did)` re-fetches
    a member's document when a proof names a key its cached copy lacks (a peer rotated)."""

    def __init__(self, session: Session, ctx: Any) -> None:
        self._session, self._ctx = session, ctx

    def __call__(self, did: str) -> dict | None:
        if did == self._ctx.identity.did:
            return self._ctx.identity.did_document()
        return _PEERS[0].did_document(self._session, self._ctx, did) if _PEERS else None

    def refresh(self, did: str) -> dict | None:
        if did == self._ctx.identity.did or not _PEERS:
            return None
        return _PEERS[0].did_document(self._session, self._ctx, did, refresh=True)


def _held(session: Session) -> dict:
    row = session.exec(select(MembershipVersion).order_by(MembershipVersion.version.desc()).limit(1)).first()
    return row.document if row is not None and isinstance(row.document, dict) else {}


def issuer_names(session: Session, ctx: Any) -> dict[str, tuple[str, str]]:
    """DID → (name_zh, name_en) of this node and every member of the held membership."""
    names = {ctx.identity.did: (ctx.settings.region.name_zh, ctx.settings.region.name_en)}
    for member in _held(session).get("members") or []:
        if isinstance(member, dict) and isinstance(member.get("did"), str):
            names.setdefault(member["did"], (str(member.get("name_zh") or member.get("node_id") or ""),
                                             str(member.get("name_en") or member.get("node_id") or "")))
    return names


def membership_pins(session: Session) -> dict[str, str]:
    """The JSON-LD context pins of the held membership (`context`: URL → digestSRI)."""
    pin = _held(session).get("context")
    if isinstance(pin, dict) and isinstance(pin.get("id"), str) and isinstance(pin.get("digestSRI"), str):
        return {pin["id"]: pin["digestSRI"]}
    return {}


def local_resolvers(session: Session, ctx) -> dict:
    base = ctx.settings.base_url

    def fetch_status(url: str) -> dict | None:
        from node.credentials.status import status_list_credential

        prefix = f"{base}/status/"
        if url.startswith(prefix) and url[len(prefix):].isdigit() and len(url) - len(prefix) < 10:
            return status_list_credential(session, ctx, int(url[len(prefix):]))
        return _PEERS[0].status_list(session, ctx, url) if _PEERS else None

    def check_inclusion(doc: dict) -> tuple[bool, str] | None:
        record = (doc.get("credentialSubject") or {}).get("creditBank") or {}
        seq, leaf = record.get("ledgerSequence"), record.get("ledgerLeafHash")
        if not isinstance(seq, int) or not isinstance(leaf, str) or not isinstance(record.get("ledgerLog"), str):
            return None
        if not record["ledgerLog"].startswith(base):
            return _PEERS[0].inclusion(session, ctx, doc) if _PEERS else None
        checkpoint = latest_checkpoint(session, ctx)
        if seq < 0 or seq >= checkpoint.size:
            return False, "the ledger event is not covered by the latest checkpoint"
        proof = inclusion(session, seq=seq, size=checkpoint.size)
        try:
            verify_inclusion(bytes.fromhex(leaf), seq, checkpoint.size, [bytes.fromhex(h) for h in proof["proof"]],
                             bytes(checkpoint.root_hash))
        except (MerkleError, ValueError) as exc:
            return False, f"not included in the issuer's log: {exc}"
        event = ledger_event_check(doc, event_by_seq(session, seq).leaf)
        if not event.ok:
            return False, f"included, but {event.reason}"
        return True, f"included in the issuer's log at checkpoint size {checkpoint.size}; {event.reason}"

    loader: ContextLoader = context_loader(membership_pins(session))
    return {"resolve_did": DidLookup(session, ctx), "fetch_status": fetch_status,
            "check_inclusion": check_inclusion, "loader": loader}


MAX_FETCH_BYTES = 2 * 1024 * 1024


def _loopback(host: str | None) -> bool:
    if host in ("localhost", None):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bounded_body(response: httpx.Response, limit: int) -> bytes | None:
    """A streamed 200 response's body, or None for another status or a body over `limit` bytes (read no
    further than the limit: a member's artefact, or a did:web document, of any size cannot fill memory)."""
    if response.status_code != 200:
        return None
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _bounded_get(http: httpx.Client, url: str) -> Any:
    with http.stream("GET", url, headers={"accept": "application/json, application/did+json, */*"}) as response:
        body = bounded_body(response, MAX_FETCH_BYTES)
    if body is None:
        return None
    try:
        return httpx.Response(200, content=body).json()
    except ValueError:
        return None


def web_resolvers(http: httpx.Client, *, allow_http: bool = False) -> dict:
    """Resolvers for verifying anywhere (`creditnode verify` without `--did-document`): `did:web` resolved over
    https (http too for loopback hosts, or with `allow_http` for a private network); a status list fetched only
    from the origin of a DID resolved here. No inclusion check (that needs the issuer's log: use a node)."""
    origins: set[str] = set()

    def resolve_did(did: str) -> dict | None:
        try:
            url = did_web_to_url(did)
        except DidError:
            return None
        parts = urlsplit(url)
        schemes = ["https", "http"] if allow_http or _loopback(parts.hostname) else ["https"]
        for scheme in schemes:
            candidate = f"{scheme}://{parts.netloc}{parts.path}"
            try:
                document = _bounded_get(http, candidate)
            except httpx.HTTPError:
                continue
            if isinstance(document, dict) and document.get("id") == did:
                origins.add(f"{scheme}://{parts.netloc}")
                return document
        return None

    def fetch_status(url: str) -> dict | None:
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" not in origins:
            return None
        try:
            listing = _bounded_get(http, url)
        except httpx.HTTPError:
            return None
        return listing if isinstance(listing, dict) else None

    return {"resolve_did": resolve_did, "fetch_status": fetch_status}
