"""Checkpoint witnessing: every node cosigns its peers' checkpoints and flags a peer showing a forked history.

The job `ledger.witness` (every `INTERVAL` seconds) does, for each other member of the held membership:

1. claim the peer's `witness_peer` row (`FOR UPDATE SKIP LOCKED` on PostgreSQL: with two workers each peer is
   handled by one; SQLite runs one worker) — held until the peer is done;
2. fetch the peer's latest checkpoint (public `GET /api/v1/ledger/checkpoint`) and verify its signature with the
   keys of the peer's DID document under the peer's log name;
3. compare with the last checkpoint witnessed from that peer: same size must mean the same root; a larger size
   needs an RFC 9162 consistency proof (public `GET /api/v1/ledger/proof/consistency`) from the old root to the
   new; a smaller size is a stale answer (proved consistent the other way round, not cosigned again);
4. if consistent: add a C2SP `cosignature/v1` line (name `witness_name(...)`, the node's signing key), store it,
   and send it back to the peer through the reliable outbox as an inbox message `checkpoint.cosignature`;
   the peer verifies it against the witness's DID document and serves its checkpoint with it appended;
5. if not: store the evidence (both signed notes, the proof, the error) as a `witness_alert`, audit
   `witness.alert`, and keep the old checkpoint as the base — admins see it on
   `GET /api/v1/federation/witness/alerts`.

Push (not pull) was chosen so a peer collects cosignatures without polling N-1 witnesses, and because the outbox
already gives retries, ordering and exactly-once delivery. See docs/ledger.md, Witnessing.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

import httpx
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from sqlmodel import Session, select

from crypto.did import resolve_verification_method
from crypto.merkle import EMPTY_ROOT, MerkleError, verify_consistency
from crypto.note import (
    ALG_COSIGNATURE_V1,
    NoteError,
    NoteSigner,
    NoteVerifier,
    cosign,
    parse_checkpoint,
    split_note,
    verify_cosignature,
    verify_note,
)
from federation.inbox import register_handler
from federation.jobs import job
from federation.membership import Member, held_document
from federation.outbox import enqueue
from federation.runtime import runtime
from federation.service import register_feature
from node.audit.service import record
from node.context import NodeContext
from node.db import session_scope
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.errors import BadRequest, NotFound
from node.ledger.log import checkpoint_origin, witness_name
from node.models import (
    Checkpoint,
    CheckpointCosignature,
    WitnessAlert,
    WitnessCosignature,
    WitnessPeer,
    utcnow,
)
from node.roles import Role
from node.models.types import Int64

__all__ = ["COSIGNATURE_TYPE", "INTERVAL", "handle_cosignature", "router", "witness_all", "witness_peer"]

log = logging.getLogger("creditnode.witness")

COSIGNATURE_TYPE = "checkpoint.cosignature"
INTERVAL = 300
CHECKPOINT_PATH = "/api/v1/ledger/checkpoint"
CONSISTENCY_PATH = "/api/v1/ledger/proof/consistency"
SYSTEM = Principal(kind="system", id=0, name="ledger.witness", roles=())


class _Inconsistent(Exception):
    def __init__(self, reason: str, message: str, proof: list[str] | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.proof = reason, message, proof or []


def _keys(document: dict | None) -> list[Any]:
    """The unrevoked keys of a DID document (a checkpoint signed before a rotation still verifies)."""
    keys = []
    for method in (document or {}).get("verificationMethod") or []:
        try:
            key = resolve_verification_method(document, method["id"], purpose=None)
        except (KeyError, LookupError, ValueError, TypeError):
            continue
        if key.revoked is None:
            keys.append(key)
    return keys


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _claim(session: Session, peer_id: str) -> WitnessPeer | None:
    """The peer's row, locked for this worker; None when another worker holds it."""
    table = WitnessPeer.__table__
    if _is_pg(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(table).values(peer_id=peer_id).on_conflict_do_nothing(index_elements=["peer_id"]))
    stmt = select(WitnessPeer).where(WitnessPeer.peer_id == peer_id).execution_options(populate_existing=True)
    if _is_pg(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return session.exec(stmt).first()


def _fetch_json(ctx: NodeContext, url: str, params: dict) -> dict:
    response = runtime(ctx).client().get(url, params=params)
    response.raise_for_status()
    return response.json()


def witness_peer(ctx: NodeContext, member: Member) -> str:
    """Witness one peer's latest checkpoint. Returns what happened (cosigned, unchanged, stale, busy,
    unreachable, invalid, inconsistent)."""
    with session_scope(ctx.engine) as session:
        state = _claim(session, member.node_id)
        if state is None:
            return "busy"
        result = _witness(session, ctx, member, state)
        state.checked_at = utcnow()
        state.last_result = result
        session.add(state)
        return result


def _witness(session: Session, ctx: NodeContext, member: Member, state: WitnessPeer) -> str:
    base = member.base_url.rstrip("/")
    try:
        response = runtime(ctx).client().get(base + CHECKPOINT_PATH)
    except httpx.HTTPError as exc:
        log.info("witness: %s unreachable (%s)", member.node_id, type(exc).__name__)
        return "unreachable"
    if response.status_code != 200:
        return "unreachable"
    note = response.text
    name = checkpoint_origin(member.base_url, member.node_id)
    document = runtime(ctx).directory.did_document(session, member)
    try:
        verified = verify_note(note, [NoteVerifier(name, k.public_key) for k in _keys(document)])
        checkpoint = parse_checkpoint(verified.text)
        if checkpoint.origin != name:
            raise NoteError(f"the checkpoint is for log {checkpoint.origin!r}, not {name!r}")
    except NoteError as exc:
        log.warning("witness: %s served a checkpoint that does not verify: %s", member.node_id, exc)
        return "invalid"

    try:
        status = _check(ctx, base, state, checkpoint.size, checkpoint.root_hash)
    except _Inconsistent as exc:
        _alert(session, member, state, note, checkpoint.size, checkpoint.root_hash, exc)
        return "inconsistent"
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.info("witness: no consistency proof from %s (%s)", member.node_id, type(exc).__name__)
        return "unreachable"
    if status != "extends":
        return status

    signer = NoteSigner(witness_name(ctx.settings.base_url, ctx.node_id), ctx.identity.signing_key)
    line = cosign(verified.text, signer, int(time.time()))
    session.add(WitnessCosignature(peer_id=member.node_id, size=checkpoint.size, root_hash=checkpoint.root_hash,
                                   note=note, cosignature=line))
    state.size, state.root_hash, state.note = checkpoint.size, checkpoint.root_hash, note
    enqueue(session, member.node_id, COSIGNATURE_TYPE, {
        "size": checkpoint.size, "root_hash": checkpoint.root_hash.hex(), "witness": signer.name,
        "cosignature": line.rstrip("\n"),
    })
    return "cosigned"


def _check(ctx: NodeContext, base: str, state: WitnessPeer, size: int, root: bytes) -> str:
    """extends (cosign), unchanged, stale; raises _Inconsistent with the evidence."""
    if state.size is None or state.root_hash is None:
        return "extends"
    known_size, known_root = state.size, bytes(state.root_hash)
    if size == known_size:
        if root != known_root:
            raise _Inconsistent("split_view", f"two different roots for size {size}")
        return "unchanged"
    first, second = sorted(((known_size, known_root), (size, root)))
    if first[0] == 0:  # RFC 9162 has no proof from the empty tree: every log extends it, if its root is right
        if first[1] != EMPTY_ROOT:
            raise _Inconsistent("inconsistent", "a checkpoint of size 0 whose root is not the empty tree's")
        return "extends" if size > known_size else "stale"
    answer = _fetch_json(ctx, base + CONSISTENCY_PATH, {"first": first[0], "second": second[0]})
    proof_hex = [str(h) for h in answer["proof"]]
    try:
        verify_consistency(first[0], second[0], first[1], second[1], [bytes.fromhex(h) for h in proof_hex])
    except (MerkleError, ValueError) as exc:
        raise _Inconsistent("inconsistent", f"size {first[0]} → {second[0]}: {exc}", proof_hex) from None
    return "extends" if size > known_size else "stale"


def _alert(session: Session, member: Member, state: WitnessPeer, note: str, size: int, root: bytes,
           exc: _Inconsistent) -> None:
    exists = session.exec(select(WitnessAlert.id).where(
        WitnessAlert.peer_id == member.node_id, WitnessAlert.seen_size == size,
        WitnessAlert.seen_root_hash == root)).first()
    if exists is not None:
        return
    evidence = {"witnessed_note": state.note, "presented_note": note, "consistency_proof": exc.proof,
                "error": exc.message}
    alert = WitnessAlert(peer_id=member.node_id, reason=exc.reason, known_size=state.size,
                         known_root_hash=state.root_hash, seen_size=size, seen_root_hash=root, evidence=evidence)
    session.add(alert)
    session.flush()
    log.error("witness: %s presented a checkpoint inconsistent with the one witnessed before (%s: %s)",
              member.node_id, exc.reason, exc.message)
    record(session, actor=SYSTEM, action="witness.alert", outcome="failed", target_type="peer",
           target_id=member.node_id, detail={"alert": alert.id, "reason": exc.reason, "known_size": state.size,
                                             "seen_size": size, "seen_root": root.hex()})


def witness_all(ctx: NodeContext) -> dict[str, str]:
    """Witness every other member of the held membership; {node_id: result}."""
    with Session(ctx.engine) as session:
        held = held_document(session)
        members = [m for m in (held.members if held is not None else []) if m.node_id != ctx.node_id]
    return {m.node_id: witness_peer(ctx, m) for m in members}


@job("ledger.witness", every=INTERVAL, description="fetch, check and cosign peers' checkpoints")
def _witness_job(ctx: NodeContext) -> dict:
    return witness_all(ctx)


# -- receiving cosignatures ------------------------------------------------------------------------------


def handle_cosignature(session: Session, ctx: NodeContext, peer: Any, envelope: Any) -> dict:
    """A witness's cosignature of one of this node's checkpoints: verified against the witness's DID document
    keys and stored, so the checkpoint is served with it."""
    body = envelope.body
    try:
        size, root, line = int(body["size"]), bytes.fromhex(body["root_hash"]), str(body["cosignature"])
    except (KeyError, ValueError, TypeError):
        raise BadRequest("a cosignature message needs size, root_hash and cosignature",
                         code="cosignature_invalid") from None
    cp = session.exec(select(Checkpoint).where(Checkpoint.size == size)).first()
    if cp is None or bytes(cp.root_hash) != root:
        raise NotFound(f"this node signed no checkpoint of size {size} with that root", code="unknown_checkpoint")
    member = runtime(ctx).directory.member(session, peer.node_id)
    if member is None:
        raise BadRequest("the witness is not a member", code="cosignature_invalid")
    name = witness_name(member.base_url, member.node_id)
    text = split_note(cp.note)[0]
    for key in _keys(runtime(ctx).directory.did_document(session, member)):
        try:
            verify_cosignature(text, line, NoteVerifier(name, key.public_key, ALG_COSIGNATURE_V1))
            break
        except NoteError:
            continue
    else:
        raise BadRequest(f"the cosignature does not verify as {name!r}", code="cosignature_invalid")
    table = CheckpointCosignature.__table__
    if _is_pg(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(table).values(checkpoint_size=size, root_hash=root, witness_id=member.node_id,
                                         witness_name=name, line=line, received_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["checkpoint_size", "witness_id"]))
    return {"stored": True, "size": size}


register_handler(COSIGNATURE_TYPE, handle_cosignature)
register_feature("witnessing")  # discovery lists it (docs/federation.md §1)


# -- admin -----------------------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1/federation/witness", tags=["federation admin"])
Admin = Annotated[Principal, Depends(require_roles(Role.FEDERATION_ADMIN))]


def _hex(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).hex()


@router.get("/alerts")
def alerts(session: SessionDep, principal: Admin, peer: Annotated[str | None, Query(max_length=64)] = None,
           limit: Annotated[Int64, Query(ge=1, le=500)] = 100) -> dict:
    """Peers' checkpoints found inconsistent with what this node witnessed, newest first, with the evidence."""
    stmt = select(WitnessAlert).order_by(WitnessAlert.id.desc()).limit(limit)
    if peer is not None:
        stmt = stmt.where(WitnessAlert.peer_id == peer)
    rows = session.exec(stmt).all()
    record(session, actor=principal, action="witness.alerts_read", target_type="witness_alert",
           detail={"count": len(rows), "peer": peer})
    return {"alerts": [{
        "id": a.id, "peer": a.peer_id, "reason": a.reason, "known_size": a.known_size,
        "known_root": _hex(a.known_root_hash), "seen_size": a.seen_size, "seen_root": _hex(a.seen_root_hash),
        "evidence": a.evidence, "created_at": a.created_at.isoformat(),
    } for a in rows]}


@router.get("/peers")
def peers(session: SessionDep, principal: Admin, ctx: CtxDep) -> dict:
    """Per peer: the last checkpoint witnessed and the last check's result."""
    rows = session.exec(select(WitnessPeer).order_by(WitnessPeer.peer_id)).all()
    record(session, actor=principal, action="witness.peers_read", target_type="witness_peer",
           detail={"count": len(rows)})
    cosigned = dict(session.execute(
        sa.select(CheckpointCosignature.__table__.c.witness_id,
                  sa.func.max(CheckpointCosignature.__table__.c.checkpoint_size))
        .group_by(CheckpointCosignature.__table__.c.witness_id)).all())
    return {"witness": witness_name(ctx.settings.base_url, ctx.node_id), "peers": [{
        "peer": p.peer_id, "size": p.size, "root": _hex(p.root_hash), "last_result": p.last_result,
        "checked_at": p.checked_at.isoformat() if p.checked_at else None,
        "cosigned_ours_up_to": cosigned.get(p.peer_id),
    } for p in rows]}
