"""Federation use cases shared by the admin endpoints, the message handlers and the jobs: installing a
membership version (and telling the other members), the `membership.update` handler, pulling newer versions
from the other members (`federation.pull_membership`), discovery."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import orjson
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

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
from node.audit.service import record
from node.context import NodeContext
from node.credentials.context import FEDERATION_CONTEXT_PATH, federation_context_pin
from node.db import read_mode, session_scope
from node.deps import Principal
from node.models import MembershipVersion

__all__ = [
    "DISCOVERY_PATH",
    "FEATURES",
    "MEMBERSHIP_PATH",
    "MEMBERSHIP_UPDATE",
    "announce_membership",
    "build_discovery_bytes",
    "discovery_bytes",
    "discovery_document",
    "discovery_generation",
    "handle_membership_update",
    "install_and_announce",
    "membership_version",
    "pull_membership",
    "register_feature",
]

log = logging.getLogger("creditnode.federation")

MEMBERSHIP_UPDATE = "membership.update"
DISCOVERY_PATH = "/.well-known/credit-node"
MEMBERSHIP_PATH = DISCOVERY_PATH + "/membership"  # + "/{version}": an installed version, public
SYSTEM = Principal(kind="system", id=0, name="federation.pull_membership", roles=())
# Features this node advertises in discovery; each area registers its own when it is implemented.
FEATURES: list[str] = []


def register_feature(name: str) -> None:
    if name not in FEATURES:
        FEATURES.append(name)


_DISCOVERY_TTL = 1.0  # seconds another worker process may serve a discovery document older than its membership
_discovery_generation = [0]  # bumped when this process commits a change to the membership versions


@event.listens_for(Session, "after_flush")
def _membership_flushed(session: Any, _context: Any) -> None:
    # after_flush still sees the flush's objects: a version added, changed or removed (the testing reset) counts
    if any(isinstance(obj, MembershipVersion) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info["creditnode_membership_changed"] = True


@event.listens_for(Session, "after_commit")
def _membership_committed(session: Any) -> None:
    if session.info.pop("creditnode_membership_changed", False):
        _discovery_generation[0] += 1


@event.listens_for(Session, "after_rollback")
def _membership_rolled_back(session: Any) -> None:
    session.info.pop("creditnode_membership_changed", None)


def discovery_generation() -> int:
    """How many membership versions this process has committed (a discovery document built before is stale)."""
    return _discovery_generation[0]


def discovery_bytes(ctx: NodeContext) -> bytes | None:
    """The discovery document as served, if this process built it less than a second ago and has installed no
    membership version since (None: build it with `build_discovery_bytes`)."""
    cached = ctx.extras.get("discovery")
    if cached is None:
        return None
    body, generation, features, built = cached
    if generation != _discovery_generation[0] or features != len(FEATURES) or \
            time.monotonic() - built > _DISCOVERY_TTL:
        return None
    return body


def build_discovery_bytes(ctx: NodeContext) -> bytes:
    """Read the held membership and encode the discovery document once (cached for `discovery_bytes`)."""
    generation, features = _discovery_generation[0], len(FEATURES)
    with Session(ctx.engine) as session, read_mode(session):
        body = orjson.dumps(discovery_document(session, ctx))
    ctx.extras["discovery"] = (body, generation, features, time.monotonic())
    return body


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
                      "checkpoint": "/api/v1/ledger/checkpoint", "did": "/.well-known/did.json",
                      "membership": MEMBERSHIP_PATH + "/{version}"},
        "membership": {"version": held.version, "hash": held.hash} if held is not None else None,
        # the federation JSON-LD context this node issues with, and where it mirrors the bytes
        "context": {**federation_context_pin(), "mirror": FEDERATION_CONTEXT_PATH},
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


def membership_version(session: Session, version: int) -> dict | None:
    """An installed membership version's signed document (public: members, DIDs, URLs and their proofs)."""
    row = session.exec(select(MembershipVersion).where(MembershipVersion.version == version)).first()
    return row.document if row is not None else None


def pull_membership(ctx: NodeContext) -> dict[str, str]:
    """Ask each other member which membership version it holds (discovery); install the newer versions it has,
    one by one, each checked as any version is (chained to the one held, signed by the threshold of the
    previous version's members). A node that was down while `membership.update` messages were given up on
    catches up here. Returns {node_id: "current" | "installed N" | "unreachable" | "refused N: code"}."""
    with Session(ctx.engine) as session:
        held = held_membership(session)
    if held is None:
        return {}
    http = runtime(ctx).client()
    report: dict[str, str] = {}
    for member in parse_document(held.document).members:
        if member.node_id == ctx.node_id:
            continue
        base = member.base_url.rstrip("/")
        try:
            response = http.get(base + DISCOVERY_PATH)
            theirs = int(response.json()["membership"]["version"]) if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            theirs = None
        if theirs is None:
            report[member.node_id] = "unreachable"
            continue
        report[member.node_id] = _pull_from(ctx, http, member.node_id, base, theirs)
    return report


def _pull_from(ctx: NodeContext, http: httpx.Client, node_id: str, base: str, theirs: int) -> str:
    outcome = "current"
    for _attempt in range(64):  # bounded: a member cannot keep this job busy
        with Session(ctx.engine) as session:
            ours = held_membership(session).version  # type: ignore[union-attr]
        if theirs <= ours:
            return outcome
        version = ours + 1
        try:
            response = http.get(f"{base}{MEMBERSHIP_PATH}/{version}")
            document = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            document = None
        if not isinstance(document, dict):
            return "unreachable"
        try:
            with session_scope(ctx.engine) as session:
                try:
                    row, installed = install_membership(session, document,
                                                        resolve_did=runtime(ctx).directory.resolver(session))
                except MembershipRefused as exc:
                    log.warning("membership version %s from %s refused: %s", version, node_id, exc.code)
                    record(session, actor=SYSTEM, action="federation.membership.pull", outcome="failed",
                           target_type="membership", target_id=version,
                           detail={"from": node_id, "code": exc.code, "reasons": exc.detail["reasons"]})
                    return f"refused {version}: {exc.code}"
                if not installed:  # it served the version we hold as the next one
                    return f"refused {version}: not_the_next_version"
                record(session, actor=SYSTEM, action="federation.membership.pull", target_type="membership",
                       target_id=row.version, detail={"from": node_id, "hash": row.hash})
        except IntegrityError:  # another worker installed the same version first
            continue
        outcome = f"installed {version}"
    return outcome
