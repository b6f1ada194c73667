"""Peer keys: a key id (`did:web:…#key-N`) maps to a public key only if its DID is a member of the held
membership, using that member's DID document (fetched from `{base_url}/.well-known/did.json`, cached in
`peer_did_document`, refreshed by the job `federation.refresh_keys`).

The HTTP client is injectable: tests hand in a client whose transport routes to the peer apps.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import httpx
from sqlmodel import Session

from crypto.did import resolve_verification_method
from federation.membership import DidResolver, Member, held_document
from node.db import is_sqlite
from node.models import PeerDidDocument, utcnow

__all__ = ["DID_PATH", "PeerDirectory"]

log = logging.getLogger("creditnode.federation.peers")

DID_PATH = "/.well-known/did.json"
# A key id missing from a cached document triggers a re-fetch, at most this often per DID.
REFETCH_AFTER = dt.timedelta(seconds=60)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class PeerDirectory:
    """Resolves members' DID documents and keys. Every method takes the caller's session."""

    def __init__(self, *, own_did: str, own_document: Callable[[], dict], http: Callable[[], httpx.Client]) -> None:
        self._own_did = own_did
        self._own_document = own_document
        self._http = http

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

    def resolve_key(self, session: Session, key_id: str, *, purpose: str = "authentication") -> Any:
        """The key (`crypto.did.ResolvedKey`) named by `key_id`, or None when its DID is not a current
        member or its DID document does not list it for `purpose` (live requests and responses:
        "authentication", i.e. keys neither expired nor revoked)."""
        member = self.member_for_key(session, key_id)
        if member is None:
            return None
        document = self.did_document(session, member)
        key = _resolve(document, key_id, purpose)
        if key is None and member.did != self._own_did:
            row = session.get(PeerDidDocument, member.did)
            if row is None or utcnow() - _aware(row.fetched_at) >= REFETCH_AFTER:
                key = _resolve(self.did_document(session, member, refresh=True), key_id, purpose)
        return key

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


def _resolve(document: dict | None, key_id: str, purpose: str) -> Any:
    if document is None:
        return None
    try:
        return resolve_verification_method(document, key_id, purpose)
    except (KeyError, ValueError, LookupError):
        return None

