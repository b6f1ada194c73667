"""Peer keys: a key id (`did:web:…#key-N`) maps to a public key only if its DID is a member of the held
membership, using that member's DID document (fetched from `{base_url}/.well-known/did.json`, cached in
`peer_did_document`, refreshed by the job `federation.refresh_keys`).

`MemberArtefacts` gives credential verification (`POST /api/v1/verify`, `GET /verify`) the same members' DID
documents, their signed status lists and their logs' checkpoints and inclusion proofs, so any member's credential
verifies at any node; it is registered with `node.credentials.resolvers.use_peer_lookup`.

The HTTP client is injectable: tests hand in a client whose transport routes to the peer apps.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Session

from crypto.did import resolve_verification_method
from crypto.merkle import MerkleError, verify_inclusion
from crypto.note import NoteError, NoteVerifier, parse_checkpoint, verify_note
from federation.membership import DidResolver, Member, held_document, held_stamp
from node.credentials.resolvers import bounded_body, use_peer_lookup
from node.db import is_sqlite
from node.ledger.log import checkpoint_origin
from node.models import MembershipVersion, PeerDidDocument, utcnow

__all__ = ["DID_PATH", "CachedKey", "KeyStamp", "MemberArtefacts", "PeerDirectory"]

log = logging.getLogger("creditnode.federation.peers")

DID_PATH = "/.well-known/did.json"
# A key id missing from a cached document triggers a re-fetch, at most this often per DID.
REFETCH_AFTER = dt.timedelta(seconds=60)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class KeyStamp:
    """What a resolved key was read from: the held membership's hash and the signer's cached DID document (None
    for this node's own DID). The same stamp means the same answer. (The document itself, not its `fetched_at`:
    that has a precision of one second, and two refreshes within a second must not look alike.)"""

    membership: str | None
    document: dict | None


@dataclass(frozen=True)
class CachedKey:
    key: Any  # crypto.did.ResolvedKey, or None: the key id names no usable key of a member
    member: Member | None
    stamp: KeyStamp


class PeerDirectory:
    """Resolves members' DID documents and keys. Every method takes the caller's session.

    Resolved peer keys are kept per process with the `KeyStamp` they were read from: `cached_key` answers from
    memory (no database), `stamp` reads the current stamp in one small query, so a caller can check a signature
    first and confirm, inside its own transaction, that the membership and the DID document it used are still
    the held ones (federation.transport.inbound)."""

    _MAX_KEYS = 1024

    def __init__(self, *, own_did: str, own_document: Callable[[], dict], http: Callable[[], httpx.Client]) -> None:
        self._own_did = own_did
        self._own_document = own_document
        self._http = http
        self._keys: dict[tuple[str, str], CachedKey] = {}
        self._lock = threading.Lock()

    # -- members -------------------------------------------------------------------------------------

    def member_for_did(self, session: Session, did: str) -> Member | None:
        doc = held_document(session)
        return doc.member_by_did(did) if doc is not None else None

    def member_for_key(self, session: Session, key_id: str) -> Member | None:
        return self.member_for_did(session, key_id.split("#", 1)[0])

    def member(self, session: Session, node_id: str) -> Member | None:
        doc = held_document(session)
        return doc.member(node_id) if doc is not None else None

    # -- documents -----------------------------------------------------------------------------------

    def did_document(self, session: Session, member: Member, *, refresh: bool = False) -> dict | None:
        """`member`'s DID document: our own, the cached copy, or fetched (and cached) when missing."""
        if member.did == self._own_did:
            return self._own_document()
        row = session.get(PeerDidDocument, member.did)
        if row is not None and not refresh:
            return row.document
        fetched = self._fetch(member)
        if fetched is None:
            return row.document if row is not None else None
        self._store(session, member, fetched)
        return fetched

    def resolver(self, session: Session) -> DidResolver:
        """A `resolve_did(member)` for membership checks (documents of members named by a version)."""
        return lambda member: self.did_document(session, member)

    def resolve_key(self, session: Session, key_id: str, *, purpose: str = "authentication",
                    fetch: bool = True) -> Any:
        """The key (`crypto.did.ResolvedKey`) named by `key_id`, or None when its DID is not a current
        member or its DID document does not list it for `purpose` (live requests and responses:
        "authentication", i.e. keys neither expired nor revoked). A key missing from the cached document makes
        it fetch the document again (at most every REFETCH_AFTER), unless `fetch` is False."""
        return self.resolve_cached(session, key_id, purpose=purpose, fetch=fetch).key

    def resolve_cached(self, session: Session, key_id: str, *, purpose: str = "authentication",
                       fetch: bool = True) -> CachedKey:
        """`resolve_key` with what it was read from; answered from the process's cache when the stamp is the
        current one (one query), else read from the database (and fetched when missing) and cached."""
        did = key_id.split("#", 1)[0]
        current = self.stamp(session, did)
        if did == self._own_did:  # from the key ring, which a rotation changes in place: never cached
            member = self.member_for_did(session, did)
            key = _resolve(self._own_document(), key_id, purpose) if member is not None else None
            return CachedKey(key, member, current)
        hit = self._keys.get((key_id, purpose))
        if hit is not None and hit.key is not None and hit.stamp == current:
            return hit  # (a key not found is looked up again: whether to re-fetch depends on the time)
        member = self.member_for_did(session, did)
        key = None
        if member is not None:
            document = self.did_document(session, member)
            key = _resolve(document, key_id, purpose)
            if key is None and fetch and member.did != self._own_did:
                row = session.get(PeerDidDocument, member.did)
                if row is None or utcnow() - _aware(row.fetched_at) >= REFETCH_AFTER:
                    key = _resolve(self.did_document(session, member, refresh=True), key_id, purpose)
                    current = self.stamp(session, did)
        entry = CachedKey(key, member, current)
        with self._lock:
            if len(self._keys) >= self._MAX_KEYS:
                self._keys.clear()
            self._keys[(key_id, purpose)] = entry
        return entry

    def cached_key(self, key_id: str, *, purpose: str = "authentication") -> CachedKey | None:
        """The last resolution of `key_id` in this process (no database), or None. Confirm its stamp."""
        return self._keys.get((key_id, purpose))

    def stamp(self, session: Session, did: str) -> KeyStamp:
        """The current `KeyStamp` for keys of `did`: one query, no document loaded."""
        if did == self._own_did:  # our own keys come from the key ring, not from the table
            held = held_stamp(session)
            return KeyStamp(held[1] if held is not None else None, None)
        row = session.connection().execute(_STAMP, {"did": did}).first()
        if row is None:
            return KeyStamp(None, None)
        return KeyStamp(row[0], row[1])

    def refresh_all(self, session: Session) -> dict[str, str]:
        """Re-fetch every member's DID document. Returns {node_id: "ok" | "unreachable"}."""
        doc = held_document(session)
        report: dict[str, str] = {}
        for member in doc.members if doc is not None else []:
            if member.did == self._own_did:
                continue
            fetched = self._fetch(member)
            if fetched is None:
                report[member.node_id] = "unreachable"
                continue
            self._store(session, member, fetched)
            report[member.node_id] = "ok"
        return report

    # -- internals -----------------------------------------------------------------------------------

    def _fetch(self, member: Member) -> dict | None:
        url = member.base_url.rstrip("/") + DID_PATH
        try:
            response = self._http().get(url, headers={"accept": "application/did+json, application/json"})
        except httpx.HTTPError as exc:
            log.warning("cannot fetch the DID document of %s: %s", member.node_id, type(exc).__name__)
            return None
        if response.status_code != 200:
            log.warning("DID document of %s: HTTP %s", member.node_id, response.status_code)
            return None
        try:
            document = response.json()
        except ValueError:
            return None
        if not isinstance(document, dict) or document.get("id") != member.did:
            log.warning("DID document served by %s does not describe %s", member.base_url, member.did)
            return None
        return document

    def _store(self, session: Session, member: Member, document: dict) -> None:
        values = {"did": member.did, "node_id": member.node_id, "document": document, "fetched_at": utcnow()}
        table = PeerDidDocument.__table__
        if is_sqlite(session.get_bind()):
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["did"],
            set_={"node_id": stmt.excluded.node_id, "document": stmt.excluded.document,
                  "fetched_at": stmt.excluded.fetched_at},
        )
        session.execute(stmt)
        # the row may sit in the session's identity map with the old document: reload it
        session.get(PeerDidDocument, member.did, populate_existing=True)


# built once (the statement's cache key is memoised on it): the held hash and the signer's cached DID document
_STAMP = (sa.select(MembershipVersion.hash,
                    sa.select(PeerDidDocument.document).where(PeerDidDocument.did == sa.bindparam("did"))
                    .scalar_subquery())
          .order_by(MembershipVersion.version.desc()).limit(1))


def _resolve(document: dict | None, key_id: str, purpose: str) -> Any:
    if document is None:
        return None
    try:
        return resolve_verification_method(document, key_id, purpose)
    except (KeyError, ValueError, LookupError):
        return None



# -- members' public artefacts for credential verification -----------------------------------------------------

STATUS_PATH = "/status/"
CHECKPOINT_PATH = "/api/v1/ledger/checkpoint"
INCLUSION_PATH = "/api/v1/ledger/proof/inclusion"
MAX_ARTEFACT_BYTES = 2 * 1024 * 1024  # a status list credential is ~25 KB; a proof a few KB
ARTEFACT_TTL = 60.0  # seconds a fetched status list or checkpoint is reused


class MemberArtefacts:
    """`node.credentials.resolvers.PeerLookup` over the held membership: a DID is looked up only if it is a
    member's, a URL is fetched only if it is that member's public endpoint (no other host is ever contacted),
    answers are bounded in size; status lists are kept for `ARTEFACT_TTL` seconds (a small cache per node)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @staticmethod
    def _cache_of(ctx: Any) -> dict[str, tuple[float, bytes]]:
        return ctx.extras.setdefault("federation.artefacts", {})

    def did_document(self, session: Session, ctx: Any, did: str, *, refresh: bool = False) -> dict | None:
        from federation.runtime import runtime

        directory = runtime(ctx).directory
        member = directory.member_for_did(session, did)
        if member is None:
            return None
        if refresh:
            row = session.get(PeerDidDocument, member.did)
            if row is not None and utcnow() - _aware(row.fetched_at) < REFETCH_AFTER:
                return None  # fetched a moment ago: a key it lacks is not there
        return directory.did_document(session, member, refresh=refresh)

    def status_list(self, session: Session, ctx: Any, url: str) -> dict | None:
        member = self._member_of_url(session, url, STATUS_PATH)
        if member is None or not url[len(member.base_url.rstrip("/") + STATUS_PATH):].isdigit():
            return None
        answer = self._get_json(ctx, url)
        return answer if isinstance(answer, dict) else None

    def inclusion(self, session: Session, ctx: Any, credential: dict) -> tuple[bool, str] | None:
        issuer = credential.get("issuer")
        issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
        from federation.runtime import runtime

        member = runtime(ctx).directory.member_for_did(session, issuer) if isinstance(issuer, str) else None
        if member is None:
            return None
        record = (credential.get("credentialSubject") or {}).get("creditBank") or {}
        seq, leaf = record.get("ledgerSequence"), record.get("ledgerLeafHash")
        base = member.base_url.rstrip("/")
        if not str(record.get("ledgerLog", "")).startswith(base):
            return False, f"the credential names a log that is not its issuer's ({member.node_id})"
        document = self.did_document(session, ctx, member.did)
        note = self._get_text(ctx, base + CHECKPOINT_PATH)  # never cached: the log grows
        if document is None or note is None:
            return None
        name = checkpoint_origin(member.base_url, member.node_id)
        try:
            checkpoint = parse_checkpoint(verify_note(note, _note_verifiers(document, name)).text)
            if checkpoint.origin != name:
                return False, f"{member.node_id}'s checkpoint names log {checkpoint.origin!r}"
            if not isinstance(seq, int) or seq < 0 or seq >= checkpoint.size:
                return False, f"the ledger event is not covered by {member.node_id}'s latest checkpoint"
            answer = self._get_json(ctx, f"{base}{INCLUSION_PATH}?seq={seq}&size={checkpoint.size}", cache=False)
            if not isinstance(answer, dict):
                return None
            verify_inclusion(bytes.fromhex(leaf), seq, checkpoint.size,
                             [bytes.fromhex(h) for h in answer.get("proof") or []], checkpoint.root_hash)
        except (NoteError, MerkleError, ValueError, TypeError) as exc:
            return False, f"not included in {member.node_id}'s signed log: {exc}"
        return True, f"included in {member.node_id}'s log at its signed checkpoint of size {checkpoint.size}"

    # -- internals -------------------------------------------------------------------------------------

    @staticmethod
    def _member_of_url(session: Session, url: str, path: str) -> Member | None:
        doc = held_document(session)
        for member in doc.members if doc is not None else []:
            if url.startswith(member.base_url.rstrip("/") + path):
                return member
        return None

    def _fetch(self, ctx: Any, url: str, *, cache: bool = True) -> bytes | None:
        from federation.runtime import runtime

        now = time.monotonic()
        store = self._cache_of(ctx)
        with self._lock:
            hit = store.get(url)
            if cache and hit is not None and now - hit[0] < ARTEFACT_TTL:
                return hit[1]
        try:
            with runtime(ctx).client().stream("GET", url) as response:
                body = bounded_body(response, MAX_ARTEFACT_BYTES)
            if body is None:
                return None
        except httpx.HTTPError as exc:
            log.warning("cannot fetch %s: %s", url, type(exc).__name__)
            return None
        if cache:
            with self._lock:
                if len(store) > 256:
                    store.clear()
                store[url] = (now, body)
        return body

    def _get_json(self, ctx: Any, url: str, *, cache: bool = True) -> Any:
        body = self._fetch(ctx, url, cache=cache)
        try:
            return None if body is None else httpx.Response(200, content=body).json()
        except ValueError:
            return None

    def _get_text(self, ctx: Any, url: str) -> str | None:
        body = self._fetch(ctx, url, cache=False)
        try:
            return None if body is None else body.decode("utf-8")
        except UnicodeDecodeError:
            return None


def _note_verifiers(did_document: dict, name: str) -> list[NoteVerifier]:
    verifiers = []
    for method in did_document.get("verificationMethod") or []:
        try:
            key = resolve_verification_method(did_document, method["id"], purpose=None)
        except (KeyError, LookupError, ValueError, TypeError):
            continue
        if key.revoked is None:
            verifiers.append(NoteVerifier(name, key.public_key))
    return verifiers


use_peer_lookup(MemberArtefacts())
