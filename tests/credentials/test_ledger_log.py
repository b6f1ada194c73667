"""The ledger's Merkle log: checkpoints, inclusion and consistency proofs, tamper detection; public leaves that
link no one, openings for the learner, staff and the verifiers a learner chooses."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from crypto.jcs import canonicalize
from crypto.leaf import LEAF_VERSION, open_leaf
from crypto.merkle import leaf_hash, verify_consistency, verify_inclusion
from crypto.note import NoteVerifier, parse_checkpoint, verify_note
from node.credentials.verify import ledger_event_check
from node.db import session_scope
from node.ledger.log import note_signer, verify_log
from node.ledger.service import EventSpec
from node.models import AuditEntry, Learner, LedgerEvent, LedgerHead


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
    assert "测试学员" not in leaf and "310101" not in leaf and "大学物理" not in leaf


def test_editing_a_ledger_row_is_detected(client, ctx, deposit) -> None:
    deposit(credits="2")
    deposit(credits="3")
    client.get("/api/v1/ledger/checkpoint")
    with session_scope(ctx.engine) as s:
        assert verify_log(s) == []
        s.execute(sa.text("UPDATE ledger_event SET leaf = replace(leaf, 'deposited', 'corrected') WHERE seq = 1"))
    with session_scope(ctx.engine) as s:
        problems = verify_log(s)
    assert any(p.seq == 1 and "hash" in p.problem for p in problems)


def test_editing_what_an_event_says_is_detected(client, ctx, deposit) -> None:
    """The private opening is bound by the leaf's commitment: changing the credits it records is caught."""
    deposit(credits="2")
    with session_scope(ctx.engine) as s:
        s.execute(sa.text("UPDATE ledger_event SET opening = replace(opening, '\"credits\":\"2\"', "
                          "'\"credits\":\"9\"') WHERE seq = 1"))
    with session_scope(ctx.engine) as s:
        problems = verify_log(s)
    assert [(p.seq, p.problem) for p in problems] == [(1, "the private opening does not match the leaf's commitment")]


def test_rewriting_hash_too_breaks_the_chain_and_checkpoint(client, ctx, deposit) -> None:
    from crypto.leaf import commitment
    from crypto.merkle import leaf_hash

    deposit()
    deposit()
    client.get("/api/v1/ledger/checkpoint")
    with session_scope(ctx.engine) as s:  # a consistent forgery of one row: new data, salt, commitment, hash
        row = s.execute(sa.text("SELECT leaf, opening FROM ledger_event WHERE seq = 1")).one()
        opening = row.opening.replace('"credits":"4"', '"credits":"8"')
        leaf = json.loads(row.leaf)
        leaf["commitment"] = commitment(bytes(16), opening.encode())
        forged = canonicalize(leaf).decode()
        s.execute(sa.text("UPDATE ledger_event SET leaf = :l, hash = :h, salt = :s, opening = :o WHERE seq = 1"),
                  {"l": forged, "h": leaf_hash(forged.encode()), "s": bytes(16), "o": opening})
    with session_scope(ctx.engine) as s:
        problems = verify_log(s)
    reasons = " ".join(p.problem for p in problems)
    assert "broken chain" in reasons and "checkpoint" in reasons


# -- privacy: public leaves link no one (issue 11 item 5; docs/ledger.md, threat model) --------------------


def _login(client, account_no: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": account_no, "password": "learner-pass-1"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _learner(ctx, learner_id: int) -> Learner:
    with session_scope(ctx.engine) as s:
        return s.get(Learner, learner_id)


def _events_of(ctx, learner_id: int) -> list[int]:
    with session_scope(ctx.engine) as s:
        return list(s.execute(sa.select(LedgerEvent.seq).where(LedgerEvent.learner_id == learner_id)
                              .order_by(LedgerEvent.seq)).scalars())


def test_public_leaves_of_one_learner_share_nothing_and_show_no_account(client, ctx, deposit) -> None:
    learner_id, _ = deposit(title="高等数学", credits="4")
    deposit(title="大学英语", credits="2", learner_id=learner_id)
    deposit(title="线性代数", credits="3", learner_id=learner_id)
    learner = _learner(ctx, learner_id)
    seqs = _events_of(ctx, learner_id)
    assert len(seqs) == 4  # learner.opened and three deposits
    views = [client.get(f"/api/v1/ledger/events/{seq}").json() for seq in seqs]
    assert [v["kind"] for v in views] == ["learner.opened"] + ["achievement.deposited"] * 3
    leaves = [json.loads(v["leaf"]) for v in views]
    for view, leaf in zip(views, leaves, strict=True):
        assert set(leaf) == {"v", "seq", "prev", "at", "kind", "commitment"} and leaf["v"] == LEAF_VERSION
        assert leaf_hash(view["leaf"].encode()).hex() == view["leaf_hash"]
        for secret in (learner.account_no, learner.pseudonym, learner.pseudonym.removeprefix("urn:uuid:"),
                       "高等数学", "credits", "subject", "data", "U001"):
            assert secret not in json.dumps(view, ensure_ascii=False), secret
    # what could link them: no value repeats across the leaves except the format's (v, kind, at) and the
    # chain itself (prev = the previous event's hash, which links neighbours whoever they are about)
    values = [{(k, str(val)) for k, val in leaf.items() if k not in ("v", "kind", "at", "prev", "seq")}
              for leaf in leaves]
    assert all(a.isdisjoint(b) for i, a in enumerate(values) for b in values[i + 1:])


def test_the_learner_opens_their_own_events_and_no_one_elses(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit(title="大学物理", credits="3.5")
    other_id, _ = deposit()
    learner = _learner(ctx, learner_id)
    me = _login(client, learner.account_no)
    [opened_seq, deposit_seq] = _events_of(ctx, learner_id)
    view = client.get(f"/api/v1/me/ledger/events/{deposit_seq}", headers=me).json()
    event = open_leaf(view["leaf"], view["opening"])
    assert event.subject == learner.pseudonym and event.kind == "achievement.deposited"
    assert event.data == {"achievement": achievement_id, "title": "大学物理", "credits": "3.5"}
    assert view["leaf"] == client.get(f"/api/v1/ledger/events/{deposit_seq}").json()["leaf"]
    account = client.get(f"/api/v1/me/ledger/events/{opened_seq}", headers=me).json()
    assert open_leaf(account["leaf"], account["opening"]).data["account"] == learner.account_no
    for seq in [*_events_of(ctx, other_id), 10**6, 2**63 - 1]:
        r = client.get(f"/api/v1/me/ledger/events/{seq}", headers=me)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), seq
    assert client.get(f"/api/v1/me/ledger/events/{2**63}", headers=me).status_code == 422


def test_staff_open_any_event_and_it_is_audited(client, ctx, deposit, staff_headers) -> None:
    learner_id, _ = deposit(credits="2")
    [_, seq] = _events_of(ctx, learner_id)
    auditor = staff_headers("auditor")
    r = client.get(f"/api/v1/ledger/events/{seq}/opening", headers=auditor)
    assert r.status_code == 200, r.text
    assert r.json()["learner_id"] == learner_id
    assert open_leaf(r.json()["leaf"], r.json()["opening"]).subject == _learner(ctx, learner_id).pseudonym
    assert client.get("/api/v1/ledger/events/999/opening", headers=auditor).status_code == 404
    for role in ("outlet_staff", "branch_reviewer", "node_admin"):
        assert client.get(f"/api/v1/ledger/events/{seq}/opening", headers=staff_headers(role)).status_code == 403
    learner = _login(client, _learner(ctx, learner_id).account_no)
    assert client.get(f"/api/v1/ledger/events/{seq}/opening", headers=learner).status_code == 403
    with session_scope(ctx.engine) as s:
        rows = s.execute(sa.select(AuditEntry.target_id, AuditEntry.outcome, AuditEntry.detail)
                         .where(AuditEntry.action == "ledger.open").order_by(AuditEntry.id)).all()
    assert [(r.target_id, r.outcome) for r in rows] == [(str(seq), "ok"), ("999", "denied")]
    assert rows[0].detail["learner_id"] == learner_id


def test_the_credential_opens_its_leaf_for_a_verifier_the_learner_chooses(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit(title="大学英语", credits="2.5")
    me = _login(client, _learner(ctx, learner_id).account_no)
    credential = client.get(f"/api/v1/me/credentials/{achievement_id}", headers=me).json()
    bank = credential["credentialSubject"]["creditBank"]
    leaf = client.get(f"/api/v1/ledger/events/{bank['ledgerSequence']}").json()["leaf"]  # public
    event = open_leaf(leaf, {**bank["ledgerOpening"], "subject": credential["credentialSubject"]["id"]})
    assert event.data["achievement"] == achievement_id and event.data["credits"] == "2.5"
    assert ledger_event_check(credential, leaf).ok
    report = client.post("/api/v1/verify", json=credential).json()
    assert report["valid"], report
    [inclusion_check] = [c for c in report["checks"] if c["check"] == "inclusion"]
    assert inclusion_check["ok"] and "this record's deposit about the credential's subject" in inclusion_check["reason"]


def test_a_credential_naming_another_event_fails_the_ledger_check(client, ctx, deposit) -> None:
    learner_id, first = deposit(credits="2")
    _, second = deposit(credits="2", learner_id=learner_id)
    me = _login(client, _learner(ctx, learner_id).account_no)
    one, two = (client.get(f"/api/v1/me/credentials/{a}", headers=me).json() for a in (first, second))
    misfiled = json.loads(json.dumps(one))
    bank, other = misfiled["credentialSubject"]["creditBank"], two["credentialSubject"]["creditBank"]
    for name in ("ledgerSequence", "ledgerLeafHash", "ledgerOpening"):
        bank[name] = other[name]
    leaf = client.get(f"/api/v1/ledger/events/{other['ledgerSequence']}").json()["leaf"]
    check = ledger_event_check(misfiled, leaf)
    assert not check.ok and "another record" in check.reason
    stranger = json.loads(json.dumps(one))
    stranger["credentialSubject"]["id"] = "urn:uuid:someone-else"
    own_leaf = client.get(f"/api/v1/ledger/events/{one['credentialSubject']['creditBank']['ledgerSequence']}")
    assert not ledger_event_check(stranger, own_leaf.json()["leaf"]).ok
    assert not ledger_event_check(one, None).ok and not ledger_event_check(one, leaf).ok


def _append_v1(ctx, learner: Learner, kind: str, data: dict) -> int:
    """What a node that ran leaf version 1 wrote: the learner as one salted hash in every event, data in clear."""
    from crypto.leaf import v1_subject
    from node.ledger.service import lock_tip

    with session_scope(ctx.engine) as s:
        tip = lock_tip(s)
        leaf = canonicalize({"v": 1, "seq": tip.size, "prev": tip.last_hash.hex(), "at": "2026-11-23T01:02:03Z",
                             "kind": kind, "subject": v1_subject(learner.leaf_salt, learner.pseudonym),
                             "data": data})
        digest = leaf_hash(leaf)
        tip.frontier.append(digest)
        s.add(LedgerEvent(seq=tip.size, kind=kind, learner_id=learner.id, leaf=leaf.decode(), hash=digest))
        s.execute(sa.update(LedgerHead).where(LedgerHead.id == 1).values(
            size=tip.size + 1, last_hash=digest, frontier=[h.hex() for h in tip.frontier.to_list()]))
        return tip.size


def test_version_1_events_still_verify_but_are_shown_only_to_the_learner_and_staff(
        client, ctx, deposit, staff_headers) -> None:
    learner_id, _ = deposit()
    learner = _learner(ctx, learner_id)
    old = _append_v1(ctx, learner, "achievement.deposited", {"achievement": 99, "title": "旧课程", "credits": "1"})
    deposit(learner_id=learner_id)  # the log goes on in version 2 after the old event
    cp = parse_checkpoint(verify_note(client.get("/api/v1/ledger/checkpoint").text,
                                      [NoteVerifier.from_vkey(note_signer(ctx).verifier_key())]).text)
    with session_scope(ctx.engine) as s:
        assert verify_log(s) == []
    public = client.get(f"/api/v1/ledger/events/{old}").json()
    assert public["v"] == 1 and public["leaf"] is None and "withheld" in public
    proof = client.get("/api/v1/ledger/proof/inclusion", params={"seq": old, "size": cp.size}).json()
    verify_inclusion(bytes.fromhex(public["leaf_hash"]), old, cp.size, [bytes.fromhex(h) for h in proof["proof"]],
                     cp.root_hash)
    mine = client.get(f"/api/v1/me/ledger/events/{old}", headers=_login(client, learner.account_no)).json()
    assert open_leaf(mine["leaf"], mine["opening"]).subject == learner.pseudonym
    staff = client.get(f"/api/v1/ledger/events/{old}/opening", headers=staff_headers("centre_reviewer")).json()
    assert open_leaf(staff["leaf"], staff["opening"]).data["title"] == "旧课程"


def test_an_event_about_a_learner_cannot_be_appended_in_clear() -> None:
    with pytest.raises(ValueError, match="pseudonym"):
        EventSpec(kind="achievement.deposited", learner_id=1, data={})
    with pytest.raises(ValueError, match="never public"):
        EventSpec(kind="achievement.deposited", learner_id=1, pseudonym="urn:uuid:x", data={}, public=True)
