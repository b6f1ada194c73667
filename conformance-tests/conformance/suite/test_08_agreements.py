"""Agreement negotiation with the harness as counterparty (docs/agreements.md, "Agreements"; issue 6 item 3):
the harness proposes by a signed `agreement.propose` to the node's inbox, the node's admin sees and verifies the
chain and counter-proposes (the node sends the harness `agreement.propose` for version 2 chained to version 1),
versions and signatures on a stale base are refused 409 `stale_base` (admin API and peer message), the harness
signs the node's version and the node holds it complete and in force; and the two-message happy path (harness
proposes, node signs), whose signed `agreement.sign` verifies with the node's DID document."""

from __future__ import annotations

import pytest

from conformance.agreements import (
    ADMIN,
    agreement_hash,
    draft,
    flush_until,
    messages_for,
    negotiate,
    new_agreement_id,
    send,
    sign,
    verify_node_proof,
)

AG = "docs/agreements.md agreements"
pytestmark = pytest.mark.requires("signed_exchange")


def _mappings(harness, credits: str = "4") -> list[dict]:
    return [{"from": {"node": harness.peer.node_id, "achievement_type": "degree_course", "code": "CONF-M101"},
             "to": {"code": "CONF-SH-M101", "title": "高等数学", "credits": credits}}]


@pytest.fixture(scope="module")
def negotiation(harness) -> dict:
    if "agreements" not in harness.node.discovery(refresh=True).get("features", []):
        pytest.skip("the node does not advertise the 'agreements' feature")
    agreement_id = new_agreement_id("negotiation")
    return {"id": agreement_id, "v1": sign(harness, draft(harness, agreement_id, mappings=_mappings(harness),
                                                          achievement_types=["degree_course"]))}


def _history(harness, agreement_id: str) -> dict:
    return harness.node.admin_ok("GET", f"{ADMIN}/{agreement_id}")


def _refused_stale(status: int, body, current: str) -> None:
    assert (status, (body or {}).get("code")) == (409, "stale_base"), (status, body)
    detail = body.get("detail") or {}
    assert detail.get("current") == current, f"detail.current is {detail.get('current')}, the head is {current}"


@pytest.mark.rule(f"{AG}: agreement.propose from a party is verified and stored; the admin sees the version "
                  "and a verifying chain")
@pytest.mark.provides("agreement_proposed")
def test_harness_proposal_received(harness, negotiation) -> None:
    v1 = negotiation["v1"]
    ex = send(harness, "agreement.propose", v1, "agreement.propose v1")
    assert ex.status == 200, ex.body
    assert ex.response_signed and ex.response_bound
    assert ex.body.get("hash") == agreement_hash(v1) and ex.body.get("complete") is False, ex.body
    got = _history(harness, negotiation["id"])
    [version] = got["history"]
    assert (version["version"], version["hash"], version["complete"]) == (1, agreement_hash(v1), False)
    assert got["verification"]["ok"], got["verification"]
    assert got["verification"]["versions"][0]["signers"] == [harness.peer.node_id]


@pytest.mark.rule(f"{AG}: a counter-proposal is version n+1 chained to the head's hash, sent to the other "
                  "party as a signed agreement.propose carrying the node's proof")
@pytest.mark.requires("agreement_proposed")
@pytest.mark.provides("agreement_countered")
def test_node_counter_proposal(harness, negotiation) -> None:
    v1_hash = agreement_hash(negotiation["v1"])
    r = harness.node.admin("POST", f"{ADMIN}/{negotiation['id']}/counter",
                           {"base": v1_hash, "changes": {"mappings": _mappings(harness, credits="3.5")}})
    assert r.status_code == 200, r.text
    view = r.json()
    assert (view["version"], view["previous"], view["complete"]) == (2, v1_hash, False), view
    got = flush_until(harness, lambda: messages_for(harness, "agreement.propose", negotiation["id"]),
                      what="the counter-proposal")
    assert len(got) == 1, f"{len(got)} deliveries of one counter-proposal"
    delivery = got[0]
    assert delivery.verified, f"the node's request does not verify: {delivery.problem}"
    body = delivery.envelope["body"]
    v2 = body["document"]
    assert (v2["version"], v2["previous"], v2["proposer"]) == (2, v1_hash, harness.node.node_id), v2
    assert v2["mappings"][0]["to"]["credits"] == "3.5" and v2["agreement"] == negotiation["id"]
    assert body["hash"] == agreement_hash(v2) == view["hash"], "the message's hash is not its document's"
    assert body["version"] == 2 and body["agreement"] == negotiation["id"]
    problems = verify_node_proof(harness, v2)
    assert not problems, problems
    negotiation["v2"] = v2


@pytest.mark.rule(f"{AG}: a version or a signature not on the head is refused 409 stale_base (admin API)")
@pytest.mark.requires("agreement_countered")
def test_stale_base_admin(harness, negotiation) -> None:
    v1_hash, v2_hash = agreement_hash(negotiation["v1"]), agreement_hash(negotiation["v2"])
    r = harness.node.admin("POST", f"{ADMIN}/{negotiation['id']}/counter", {"base": v1_hash, "changes": {}})
    _refused_stale(r.status_code, r.json(), v2_hash)
    r = harness.node.admin("POST", f"{ADMIN}/{negotiation['id']}/sign", {"hash": v1_hash})
    _refused_stale(r.status_code, r.json(), v2_hash)


@pytest.mark.rule(f"{AG}: a peer's version or signature on a stale base is refused 409 stale_base (inbox)")
@pytest.mark.requires("agreement_countered")
def test_stale_base_peer_message(harness, negotiation) -> None:
    v1 = negotiation["v1"]
    v2_hash = agreement_hash(negotiation["v2"])
    rival = {k: v for k, v in v1.items() if k != "proof"}
    rival.update(version=2, previous=agreement_hash(v1), mappings=_mappings(harness, credits="5"))
    ex = send(harness, "agreement.propose", sign(harness, rival), "agreement.propose on a stale base")
    _refused_stale(ex.status, ex.body, v2_hash)
    assert ex.response_signed
    ex = send(harness, "agreement.sign", v1, "agreement.sign of a superseded version")
    _refused_stale(ex.status, ex.body, v2_hash)
    history = _history(harness, negotiation["id"])["history"]
    assert [v["hash"] for v in history] == [agreement_hash(v1), v2_hash], "a stale version was stored"


@pytest.mark.rule(f"{AG}: agreement.sign completes the head: every party's proof verifies, the version is "
                  "in force")
@pytest.mark.requires("agreement_countered")
def test_harness_signs_node_version(harness, negotiation) -> None:
    v2 = sign(harness, negotiation["v2"])
    ex = send(harness, "agreement.sign", v2, "agreement.sign v2")
    assert ex.status == 200, ex.body
    assert ex.body.get("complete") is True and ex.body.get("hash") == agreement_hash(v2), ex.body
    got = _history(harness, negotiation["id"])
    assert got["verification"]["ok"], got["verification"]
    head = got["verification"]["versions"][-1]
    assert head["complete"] and sorted(head["signers"]) == sorted([harness.peer.node_id, harness.node.node_id])
    listed = {a["agreement"]: a for a in harness.node.admin_ok("GET", ADMIN)}
    in_force = listed[negotiation["id"]]["in_force"]
    assert in_force and in_force["hash"] == agreement_hash(v2) and in_force["status"] == "active", in_force


@pytest.mark.rule(f"{AG}: two parties, happy path: the proposer's agreement.propose and the counterparty's "
                  "agreement.sign (its proof verifies with its DID document) complete the version")
@pytest.mark.provides("agreement")
def test_two_message_approval(harness, negotiation) -> None:
    agreement_id = new_agreement_id("approval")
    inbound = len(harness.node.exchanges)
    outbound = len(harness.peer.deliveries)
    done = negotiate(harness, draft(harness, agreement_id, mappings=_mappings(harness),
                                    achievement_types=["degree_course"]))
    document = done["document"]
    assert agreement_hash(document) == done["hash"], "the node signed another document"
    problems = verify_node_proof(harness, document)
    assert not problems, problems
    assert len(document["proof"]) == 2, "the signed version should carry both parties' proofs"
    listed = {a["agreement"]: a for a in harness.node.admin_ok("GET", ADMIN)}
    assert (listed[agreement_id]["in_force"] or {}).get("hash") == done["hash"]
    harness.facts["approval"] = {"id": agreement_id, "inbound": inbound, "outbound": outbound}


@pytest.mark.rule(f"{AG}: two parties, happy path: exactly two signed messages, one each way")
@pytest.mark.requires("agreement")
def test_approval_takes_two_messages(harness) -> None:
    approval = harness.facts["approval"]
    harness.node.admin_ok("POST", "/api/v1/testing/outbox/flush", {"advance_seconds": 3600})
    sent = [e.label for e in harness.node.exchanges[approval["inbound"]:]
            if e.label.startswith("agreement.")]
    received = [d.envelope.get("type") for d in harness.peer.deliveries[approval["outbound"]:]
                if d.envelope and (d.envelope.get("body") or {}).get("agreement") == approval["id"]]
    harness.facts["agreement_approval_messages"] = {"harness_to_node": sent, "node_to_harness": received}
    assert (sent, received) == (["agreement.propose"], ["agreement.sign"]), (sent, received)
