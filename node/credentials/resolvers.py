"""What verification needs from this node: its own DID document and status lists, and inclusion checks
against its own log. (Peers' documents come from the federation layer once it is wired in.)"""

from __future__ import annotations

from sqlmodel import Session

from crypto.merkle import MerkleError, verify_inclusion
from node.credentials.verify import ledger_event_check
from node.ledger.log import event_by_seq, inclusion, latest_checkpoint

__all__ = ["local_resolvers"]


def local_resolvers(session: Session, ctx) -> dict:
    did_doc = ctx.identity.did_document()
    base = ctx.settings.base_url

    def resolve_did(did: str) -> dict | None:
        if did == ctx.identity.did:
            return did_doc
        peer = ctx.extras.get("resolve_peer_did")
        return peer(did) if peer else None

    def fetch_status(url: str) -> dict | None:
        from node.credentials.status import status_list_credential

        prefix = f"{base}/status/"
        if url.startswith(prefix) and url[len(prefix):].isdigit():
            return status_list_credential(session, ctx, int(url[len(prefix):]))
        return None

    def check_inclusion(doc: dict) -> tuple[bool, str] | None:
        record = (doc.get("credentialSubject") or {}).get("creditBank") or {}
        seq, leaf = record.get("ledgerSequence"), record.get("ledgerLeafHash")
        if not isinstance(seq, int) or not isinstance(leaf, str) or not record.get("ledgerLog", "").startswith(base):
            return None
        checkpoint = latest_checkpoint(session, ctx)
        if seq >= checkpoint.size:
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

    return {"resolve_did": resolve_did, "fetch_status": fetch_status, "check_inclusion": check_inclusion}
