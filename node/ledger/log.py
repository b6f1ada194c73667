"""The ledger as a transparency log: signed checkpoints, inclusion and consistency proofs, self-check.

Leaf i of the RFC 9162 Merkle tree is ledger event i (its `hash` column is the leaf hash). Checkpoints are
C2SP signed notes whose origin line names this node's log; they are stored so that any two can later be proven
consistent. `verify_log` recomputes every leaf hash from the stored leaf text, the `prev` chain, every stored
checkpoint's root and every private opening against its leaf's commitment: editing one ledger row in the
database is detected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlmodel import Session, select

from crypto.errors import LeafError
from crypto.leaf import commitment
from crypto.merkle import CompactRange, consistency_proof, inclusion_proof, leaf_hash, root_from_leaf_hashes
from crypto.note import NoteSigner, add_signatures, format_checkpoint, sign_note
from node.errors import BadRequest, NotFound
from node.ledger.service import lock_tip
from node.models import Checkpoint, LedgerEvent, LedgerHead
from node.models.witness import CheckpointCosignature

__all__ = [
    "LogProblem",
    "checkpoint_origin",
    "consistency",
    "inclusion",
    "latest_checkpoint",
    "leaf_hashes",
    "note_signer",
    "served_note",
    "verify_log",
    "witness_name",
]

_events = LedgerEvent.__table__


def checkpoint_origin(base_url: str, node_id: str) -> str:
    """The log's origin line, e.g. `127.0.0.1:8101/creditnode/shanghai/ledger`."""
    parts = urlsplit(base_url)
    return f"{parts.netloc}{parts.path.rstrip('/')}/creditnode/{node_id}/ledger"


def witness_name(base_url: str, node_id: str) -> str:
    """The name this node cosigns peers' checkpoints under (a `cosignature/v1` key name), e.g.
    `127.0.0.1:8101/creditnode/shanghai/witness`; its key is the node's signing key (DID document)."""
    parts = urlsplit(base_url)
    return f"{parts.netloc}{parts.path.rstrip('/')}/creditnode/{node_id}/witness"


def served_note(session: Session, checkpoint: Checkpoint) -> str:
    """The checkpoint's signed note with the witnesses' cosignatures collected for it appended (C2SP:
    verifiers ignore signature lines of keys they do not know, so old clients are unaffected)."""
    lines = session.execute(
        sa.select(CheckpointCosignature.__table__.c.line)
        .where(CheckpointCosignature.__table__.c.checkpoint_size == checkpoint.size,
               CheckpointCosignature.__table__.c.root_hash == checkpoint.root_hash)
        .order_by(CheckpointCosignature.__table__.c.witness_id)
    ).scalars().all()
    return add_signatures(checkpoint.note, lines) if lines else checkpoint.note


def note_signer(ctx) -> NoteSigner:
    return NoteSigner(checkpoint_origin(ctx.settings.base_url, ctx.node_id), ctx.identity.signing_key)


def leaf_hashes(session: Session, size: int) -> list[bytes]:
    rows = session.execute(sa.select(_events.c.hash).where(_events.c.seq < size).order_by(_events.c.seq))
    return [bytes(r[0]) for r in rows]


def latest_checkpoint(session: Session, ctx) -> Checkpoint:
    """The newest checkpoint, signing a new one first if the ledger has grown since."""
    head = session.get(LedgerHead, 1)
    last = session.exec(select(Checkpoint).order_by(Checkpoint.size.desc()).limit(1)).first()
    if last is not None and last.size >= head.size:
        return last
    tip = lock_tip(session)
    if last is not None and last.size >= tip.size:
        return last
    signer = note_signer(ctx)
    body = format_checkpoint(signer.name, tip.size, tip.root)
    checkpoint = Checkpoint(size=tip.size, root_hash=tip.root, note=sign_note(body, [signer]),
                            key_id=ctx.identity.ring.current)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def _tree_size(session: Session) -> int:
    return session.get(LedgerHead, 1).size


def inclusion(session: Session, *, seq: int, size: int | None = None) -> dict:
    tree_size = size if size is not None else _tree_size(session)
    if not 0 <= seq < tree_size <= _tree_size(session):
        raise BadRequest("need 0 <= seq < size <= the ledger's size", code="invalid_proof_request")
    hashes = leaf_hashes(session, tree_size)
    return {
        "seq": seq,
        "tree_size": tree_size,
        "leaf_hash": hashes[seq].hex(),
        "root_hash": root_from_leaf_hashes(hashes).hex(),
        "proof": [h.hex() for h in inclusion_proof(hashes, seq, tree_size)],
    }


def consistency(session: Session, *, first: int, second: int) -> dict:
    if not 0 < first <= second <= _tree_size(session):
        raise BadRequest("need 0 < first <= second <= the ledger's size", code="invalid_proof_request")
    hashes = leaf_hashes(session, second)
    return {
        "first": first,
        "second": second,
        "first_root": root_from_leaf_hashes(hashes[:first]).hex(),
        "second_root": root_from_leaf_hashes(hashes).hex(),
        "proof": [h.hex() for h in consistency_proof(hashes, first, second)],
    }


@dataclass(frozen=True)
class LogProblem:
    seq: int | None
    problem: str


def verify_log(session: Session) -> list[LogProblem]:
    """Recompute the log from the stored leaves; return every inconsistency found (empty: intact).

    One pass over the events in order with a running compact range: when the range reaches a stored
    checkpoint's size its root is compared, so memory stays O(log n) and each root costs O(log n) instead of
    recomputing the tree from all leaf hashes per checkpoint."""
    problems: list[LogProblem] = []
    checkpoints = iter(list(session.execute(
        sa.select(Checkpoint.__table__.c.size, Checkpoint.__table__.c.root_hash).order_by(Checkpoint.__table__.c.size)
    )))
    pending = next(checkpoints, None)
    frontier = CompactRange()

    def check_due() -> None:
        nonlocal pending
        while pending is not None and pending.size <= frontier.size:
            if pending.size == frontier.size and frontier.root() != bytes(pending.root_hash):
                problems.append(LogProblem(None, f"recomputed root differs from signed checkpoint at size "
                                                 f"{pending.size}"))
            pending = next(checkpoints, None)

    check_due()  # a checkpoint of the empty log
    prev = b"\x00" * 32
    rows = session.execute(
        sa.select(_events.c.seq, _events.c.leaf, _events.c.hash, _events.c.salt, _events.c.opening)
        .order_by(_events.c.seq).execution_options(yield_per=5000)
    )
    for expected_seq, (seq, leaf, stored, salt, opening) in enumerate(rows):
        if seq != expected_seq:
            problems.append(LogProblem(seq, f"sequence gap: expected {expected_seq}"))
        computed = leaf_hash(leaf.encode("utf-8"))
        if computed != bytes(stored):
            problems.append(LogProblem(seq, "leaf text does not match its stored hash"))
        try:
            data = json.loads(leaf)
            if data.get("prev") != prev.hex() or data.get("seq") != seq:
                problems.append(LogProblem(seq, "broken chain: prev or seq does not match"))
            problem = _opening_problem(data, salt, opening)
            if problem:
                problems.append(LogProblem(seq, problem))
        except ValueError:
            problems.append(LogProblem(seq, "leaf is not JSON"))
        prev = bytes(stored)
        frontier.append(computed)
        check_due()
    head = session.get(LedgerHead, 1)
    if head.size != frontier.size:
        problems.append(LogProblem(None, f"head says {head.size} events, the table holds {frontier.size}"))
    while pending is not None:
        problems.append(LogProblem(None, f"checkpoint at size {pending.size} is beyond the ledger"))
        pending = next(checkpoints, None)
    return problems


def _opening_problem(leaf: dict, salt: bytes | None, opening: str | None) -> str | None:
    """A v2 committed leaf's private opening must match its commitment (both NULL: erased, allowed)."""
    if "commitment" not in leaf:
        return None if salt is None and opening is None else "a leaf without a commitment has an opening"
    if salt is None and opening is None:
        return None
    if salt is None or opening is None:
        return "half an opening: salt or committed body missing"
    try:
        if commitment(bytes(salt), opening.encode("utf-8")) == leaf["commitment"]:
            return None
    except LeafError:
        pass
    return "the private opening does not match the leaf's commitment"


def event_by_seq(session: Session, seq: int) -> LedgerEvent:
    event = session.get(LedgerEvent, seq)
    if event is None:
        raise NotFound("no ledger event with that sequence number")
    return event
