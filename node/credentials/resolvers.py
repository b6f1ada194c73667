"""What verification needs from outside the document: DID documents, status lists and inclusion checks — this
node's own, and (through the federation's `PeerLookup`) every member's, so any member's credential verifies at
any node. `node` does not import `federation`: the federation registers its lookup with `use_peer_lookup`."""

from __future__ import annotations

from typing import Any, Protocol

from sqlmodel import Session, select

from crypto.jsonld import ContextLoader
from crypto.merkle import MerkleError, verify_inclusion
from node.credentials.context import context_loader
from node.ledger.log import inclusion, latest_checkpoint
from node.models import MembershipVersion

__all__ = ["DidLookup", "PeerLookup", "local_resolvers", "membership_pins", "use_peer_lookup"]


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


def membership_pins(session: Session) -> dict[str, str]:
    """The JSON-LD context pins of the held membership (`context`: URL → digestSRI)."""
    row = session.exec(select(MembershipVersion).order_by(MembershipVersion.version.desc()).limit(1)).first()
    pin = (row.document or {}).get("context") if row is not None else None
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
        return True, f"included in the issuer's log at checkpoint size {checkpoint.size}"

    loader: ContextLoader = context_loader(membership_pins(session))
    return {"resolve_did": DidLookup(session, ctx), "fetch_status": fetch_status,
            "check_inclusion": check_inclusion, "loader": loader}
