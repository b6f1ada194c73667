"""The ledger's Merkle log: checkpoints, inclusion and consistency proofs, tamper detection."""

from __future__ import annotations

import sqlalchemy as sa

from crypto.merkle import verify_consistency, verify_inclusion
from crypto.note import NoteVerifier, parse_checkpoint, verify_note
from node.db import session_scope
from node.ledger.log import note_signer, verify_log


def test_checkpoints_at_two_times_are_consistent(client, ctx, deposit) -> None:
    deposit()
    first = client.get("/api/v1/ledger/checkpoint").text
    deposit()
    deposit()
    second = client.get("/api/v1/ledger/checkpoint").text
    verifier = NoteVerifier.from_vkey(note_signer(ctx).verifier_key())
    cp1 = parse_checkpoint(verify_note(first, [verifier]).text)
    cp2 = parse_checkpoint(verify_note(second, [verifier]).text)
    assert cp2.size > cp1.size
    proof = client.get("/api/v1/ledger/proof/consistency", params={"first": cp1.size, "second": cp2.size}).json()
    verify_consistency(cp1.size, cp2.size, cp1.root_hash, cp2.root_hash, [bytes.fromhex(h) for h in proof["proof"]])
    inc = client.get("/api/v1/ledger/proof/inclusion", params={"seq": 1, "size": cp2.size}).json()
    verify_inclusion(bytes.fromhex(inc["leaf_hash"]), 1, cp2.size, [bytes.fromhex(h) for h in inc["proof"]],
                     cp2.root_hash)


def test_leaves_hold_no_personal_data(client, ctx, deposit) -> None:
    deposit(title="大学物理")
    leaf = client.get("/api/v1/ledger/events/1").json()["leaf"]
    assert "subject" in leaf and "测试学员" not in leaf and "310101" not in leaf


def test_editing_a_ledger_row_is_detected(client, ctx, deposit) -> None:
    deposit(credits="2")
    deposit(credits="3")
    client.get("/api/v1/ledger/checkpoint")
    with session_scope(ctx.engine) as s:
        assert verify_log(s) == []
        s.execute(sa.text("UPDATE ledger_event SET leaf = replace(leaf, '\"credits\":\"2\"', '\"credits\":\"9\"') "
                          "WHERE seq = 1"))
    with session_scope(ctx.engine) as s:
        problems = verify_log(s)
    assert any(p.seq == 1 and "hash" in p.problem for p in problems)


def test_rewriting_hash_too_breaks_the_chain_and_checkpoint(client, ctx, deposit) -> None:
    from crypto.merkle import leaf_hash

    deposit()
    deposit()
    client.get("/api/v1/ledger/checkpoint")
    with session_scope(ctx.engine) as s:
        leaf = s.execute(sa.text("SELECT leaf FROM ledger_event WHERE seq = 1")).scalar()
        forged = leaf.replace('"credits":"4"', '"credits":"8"')
        s.execute(sa.text("UPDATE ledger_event SET leaf = :l, hash = :h WHERE seq = 1"),
                  {"l": forged, "h": leaf_hash(forged.encode())})
    with session_scope(ctx.engine) as s:
        problems = verify_log(s)
    reasons = " ".join(p.problem for p in problems)
    assert "broken chain" in reasons and "checkpoint" in reasons
