"""Federation use cases shared by the admin endpoints, the message handlers and the jobs: installing a
membership version (and telling the other members), the `membership.update` handler, discovery."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from federation.errors import MembershipRefused
from federation.inbox import InboxEnvelope, register_handler
from federation.membership import (
    held_membership,
    install_membership,
    membership_hash,
    parse_document,
)
from federation.outbox import INBOX_PATH, enqueue
from federation.runtime import runtime
from federation.transport.inbound import PROTOCOL_TAG, PeerIdentity
from node.context import NodeContext
from node.models import MembershipVersion

__all__ = [
    "FEATURES",
    "MEMBERSHIP_UPDATE",
    "announce_membership",
    "discovery_document",
    "handle_membership_update",
    "install_and_announce",
    "register_feature",
]

MEMBERSHIP_UPDATE = "membership.update"
# Features this node advertises in discovery; each area registers its own when it is implemented.
FEATURES: list[str] = []


def register_feature(name: str) -> None:
    if name not in FEATURES:
        FEATURES.append(name)


def discovery_document(session: Session, ctx: NodeContext) -> dict:
    held = held_membership(session)
    settings = ctx.settings
    return {
        "node_id": ctx.node_id,
        "did": ctx.identity.did,
        "name_zh": settings.region.name_zh,
        "name_en": settings.region.name_en,
        "base_url": settings.base_url,
        "protocol_versions": [PROTOCOL_TAG],
        "features": list(FEATURES),
        "endpoints": {"inbox": INBOX_PATH, "records": "/federation/v1/records/release",
                      "checkpoint": "/api/v1/ledger/checkpoint", "did": "/.well-known/did.json"},
        "membership": {"version": held.version, "hash": held.hash} if held is not None else None,
    }


def announce_membership(session: Session, ctx: NodeContext, row: MembershipVersion) -> list[str]:
    """Queue `membership.update` with the version to every other member of it. Returns the peers."""
    peers = [m.node_id for m in parse_document(row.document).members if m.node_id != ctx.node_id]
    for peer in peers:
        enqueue(session, peer, MEMBERSHIP_UPDATE, {"document": row.document})
    return peers


def install_and_announce(session: Session, ctx: NodeContext, document: dict) -> tuple[MembershipVersion, bool, list[str]]:
    directory = runtime(ctx).directory
    row, installed = install_membership(session, document, resolve_did=directory.resolver(session))
    peers = announce_membership(session, ctx, row) if installed else []
    return row, installed, peers


def handle_membership_update(session: Session, ctx: NodeContext, peer: PeerIdentity,
                             message: InboxEnvelope) -> dict[str, Any]:
    """A member sends a newer membership version: install it if it chains to ours and is signed."""
    document = message.body.get("document")
    if not isinstance(document, dict):
        raise MembershipRefused([{"code": "invalid_membership", "message": "body.document is missing"}])
    held = held_membership(session)
    digest = membership_hash(document)
    version = document.get("version")
    if held is not None and digest == held.hash:
        return {"status": "current", "version": held.version, "hash": held.hash}
    if held is not None and isinstance(version, int) and version <= held.version:
        return {"status": "stale", "version": held.version, "hash": held.hash}
    directory = runtime(ctx).directory
    row, _installed = install_membership(session, document, resolve_did=directory.resolver(session))
    return {"status": "installed", "version": row.version, "hash": row.hash}


register_handler(MEMBERSHIP_UPDATE, handle_membership_update)
