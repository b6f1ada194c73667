"""Checkpoint witnessing between two in-process nodes: Shanghai cosigns Zhejiang's checkpoints, the cosignature
comes back through the outbox and is served with Zhejiang's checkpoint; a rewritten Zhejiang log is flagged."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import select

from crypto.note import ALG_COSIGNATURE_V1, NoteVerifier, split_note, verify_cosignature, verify_note
from federation.jobs import JOBS, run_job
from federation.witness import witness_peer
from node.ledger.log import checkpoint_origin, witness_name
from node.ledger.service import EventSpec, append_events
from node.models import AuditEntry, Checkpoint, LedgerEvent, LedgerHead
from node.models.witness import CheckpointCosignature, WitnessAlert, WitnessCosignature
from tests.federation.test_delivery import _admin


def _grow(node, n: int, tag: str = "x") -> None:
    with node.session() as s:
        append_events(s, [EventSpec(kind="test.event", data={"tag": tag, "i": i}) for i in range(n)])


def _served(node) -> str:
    r = node.client.get("/api/v1/ledger/checkpoint")
    assert r.status_code == 200
    return r.text


def _witness_b(joined) -> str:
    result = run_job("ledger.witness", joined.a.ctx)
    assert result["jiangsu"] == "unreachable" and result["anhui"] == "unreachable"  # fakes serve no ledger
    return result["zhejiang"]


def test_cosignatures_are_sent_back_and_served_with_the_checkpoint(joined) -> None:
    assert "ledger.witness" in JOBS
    a, b = joined.a, joined.b
    assert _witness_b(joined) == "cosigned"  # whatever the peer's log holds at first (perhaps nothing)
    _grow(b, 3)
    assert _witness_b(joined) == "cosigned"
    assert _witness_b(joined) == "unchanged"  # nothing new to cosign
    assert run_job("federation.flush_outbox", a.ctx)["delivered"]

    note = _served(b)
    text, sigs = split_note(note)
    name = witness_name(a.base_url, "shanghai")
    cosigs = [s for s in sigs if s.name == name]
    assert len(cosigs) == 1
    verifier = NoteVerifier(name, a.ctx.identity.signing_key.public_key, ALG_COSIGNATURE_V1)
    assert verify_cosignature(text, cosigs[0].line(), verifier) > 0
    # the peer's own signature still verifies; the cosignature is ignored by a verifier that does not know it
    assert verify_note(note, [NoteVerifier(checkpoint_origin(b.base_url, "zhejiang"),
                                           b.ctx.identity.signing_key.public_key)]).text == text

    # the log grows: the next checkpoint is proved consistent with the witnessed one and cosigned too
    _grow(b, 5, "more")
    assert _witness_b(joined) == "cosigned"
    run_job("federation.flush_outbox", a.ctx)
    assert any(s.name == name for s in split_note(_served(b))[1])
    with a.session() as s:
        sizes = [r.size for r in s.exec(select(WitnessCosignature).order_by(WitnessCosignature.id)).all()]
        assert len(sizes) == 3 and sizes[0] < sizes[1] < sizes[2]
        assert len(s.exec(select(WitnessAlert)).all()) == 0
    with b.session() as s:
        assert len(s.exec(select(CheckpointCosignature)).all()) == 3


def _rewrite_history(node, n: int) -> None:
    """What a dishonest node would do: drop its ledger and checkpoints and sign a different history."""
    with node.session() as s:
        s.execute(sa.delete(CheckpointCosignature))
        s.execute(sa.delete(Checkpoint))
        s.execute(sa.delete(LedgerEvent))
        s.execute(sa.update(LedgerHead).values(size=0, last_hash=b"\x00" * 32, frontier=[]))
    _grow(node, n, "forged")


def test_a_rewritten_log_is_flagged_with_evidence(joined) -> None:
    a, b = joined.a, joined.b
    _grow(b, 3)
    assert _witness_b(joined) == "cosigned"
    with a.session() as s:
        witnessed_size = s.exec(select(WitnessCosignature.size)).one()

    _rewrite_history(b, witnessed_size + 2)  # a longer log that does not extend the witnessed one
    assert _witness_b(joined) == "inconsistent"
    assert _witness_b(joined) == "inconsistent"  # still flagged, one alert per presented checkpoint
    _rewrite_history(b, witnessed_size)  # same size, another root: a split view
    assert _witness_b(joined) == "inconsistent"

    with a.session() as s:
        alerts = s.exec(select(WitnessAlert).order_by(WitnessAlert.id)).all()
        assert [(al.reason, al.known_size, al.seen_size) for al in alerts] == [
            ("inconsistent", witnessed_size, witnessed_size + 2), ("split_view", witnessed_size, witnessed_size)]
        assert alerts[0].evidence["witnessed_note"] and alerts[0].evidence["presented_note"]
        audited = s.exec(select(AuditEntry).where(AuditEntry.action == "witness.alert")).all()
        assert len(audited) == 2 and {e.target_id for e in audited} == {"zhejiang"}
        assert len(s.exec(select(WitnessCosignature)).all()) == 1  # nothing inconsistent was cosigned

    assert a.client.get("/api/v1/federation/witness/alerts").status_code == 401
    headers = _admin(a)
    body = a.client.get("/api/v1/federation/witness/alerts", headers=headers).json()
    assert [(x["peer"], x["reason"]) for x in body["alerts"]] == [("zhejiang", "split_view"),
                                                                   ("zhejiang", "inconsistent")]
    assert body["alerts"][1]["evidence"]["presented_note"].startswith(checkpoint_origin(b.base_url, "zhejiang"))
    peers = a.client.get("/api/v1/federation/witness/peers", headers=headers).json()["peers"]
    assert [(p["peer"], p["size"], p["last_result"]) for p in peers if p["peer"] == "zhejiang"] == [
        ("zhejiang", witnessed_size, "inconsistent")]


def test_a_forged_cosignature_is_refused(joined) -> None:
    """The peer stores only cosignatures that verify with the witness's DID document key."""
    from federation.outbox import enqueue

    a, b = joined.a, joined.b
    _grow(b, 2)
    witness_peer(a.ctx, _member(a, "zhejiang"))
    with a.session() as s:
        row = s.exec(select(WitnessCosignature)).one()
        enqueue(s, "zhejiang", "checkpoint.cosignature", {
            "size": row.size, "root_hash": row.root_hash.hex(), "witness": "x",
            "cosignature": row.cosignature.replace(row.cosignature.split()[-1][:8], "AAAAAAAA"),
        })
    run_job("federation.flush_outbox", a.ctx)
    with b.session() as s:
        assert len(s.exec(select(CheckpointCosignature)).all()) == 1  # only the genuine one


def _member(node, node_id: str):
    from federation.membership import held_document

    with node.session() as s:
        return held_document(s).member(node_id)
