"""A consented transfer with the node as **destination**, end to end (docs/agreements.md, "Consent and transfer",
steps 1–7): an active agreement between the harness (origin) and the node, a learner at the node with a holder
binding, credentials in the harness's ledger and a consent the harness issues; the learner presents it at the
node → the node pulls exactly that consent (a signed release request), verifies what it got (a credential
altered at the origin is not recognised), recognises exactly the agreed credits, and sends the harness one
signed `transfer.receipt` that verifies with its DID document."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from conformance.agreements import agreement_hash, draft, flush_until, negotiate, new_agreement_id
from conformance.peer import RELEASE_PATH
from crypto.dataintegrity import verify as di_verify
from crypto.jcs import canonicalize

AG = "docs/agreements.md consent and transfer (destination)"
pytestmark = pytest.mark.requires("signed_exchange", "achievement", "agreement")


@pytest.fixture(scope="module")
def flow(harness) -> dict:
    if "transfers" not in harness.node.discovery(refresh=True).get("features", []):
        pytest.skip("the node does not advertise the 'transfers' feature")
    peer, node = harness.peer.node_id, harness.node.node_id
    mappings = [
        {"from": {"node": peer, "achievement_type": "degree_course", "code": "FLOW-M101"},
         "to": {"code": "FLOW-SH-M101", "title": "高等数学（一）", "credits": "4"}},
        {"from": {"node": peer, "achievement_type": "degree_course", "code": "FLOW-E201"},
         "to": {"code": "FLOW-SH-E201", "title": "大学英语", "credits": None}},
    ]
    agreement = negotiate(harness, draft(harness, new_agreement_id("transfer"), mappings=mappings,
                                         achievement_types=["degree_course"], hours_per_credit=("16", "18")))
    made = harness.node.admin_ok("POST", "/api/v1/testing/fixtures/achievement", {"code": "FLOW-LOCAL"})
    token = harness.node.sign_in(made["learner"]["account_no"], made["learner"]["password"])
    r = harness.node.as_user(token, "POST", "/api/v1/me/transfer-intents", {"origin": peer})
    assert r.status_code == 201, r.text
    pseudonym = f"urn:uuid:{uuid.uuid4()}"  # the learner's pseudonym at the origin (the harness)
    origin = harness.peer.origin
    fixed = origin.issue(pseudonym, title="高等数学（一）", credits="4", hours="64", course_code="FLOW-M101")
    by_hours = origin.issue(pseudonym, title="大学英语", credits="2.5", hours="40", course_code="FLOW-E201")
    tampered = origin.issue(pseudonym, title="线性代数", credits="2", hours="32", course_code="FLOW-M101")
    tampered["credentialSubject"]["creditBank"]["courseCode"] = "FLOW-E201"  # altered after signing
    tampered["credentialSubject"]["creditBank"]["hours"] = "400"
    # signed and included, but the event it names is another record's deposit (`fixed`'s)
    misfiled = origin.issue(pseudonym, title="概率论", credits="4", hours="64", course_code="FLOW-M101",
                            event_of=fixed)
    consent = origin.consent(pseudonym=pseudonym, destination=node, destination_did=harness.node.did_document()["id"],
                             holder_binding=r.json()["binding"], credentials=[fixed, by_hours, tampered, misfiled])
    releases_before = len(harness.peer.releases)
    r = harness.node.as_user(token, "POST", "/api/v1/me/transfers", {"consent": consent})
    return {"agreement": agreement, "token": token, "consent": consent, "response": r,
            "credentials": {"fixed": fixed["id"], "by_hours": by_hours["id"], "tampered": tampered["id"],
                            "misfiled": misfiled["id"]},
            "documents": {"fixed": fixed, "by_hours": by_hours},
            "releases": harness.peer.releases[releases_before:]}


def _items(flow) -> dict[str, dict]:
    view = flow["response"].json()
    return {item["credential_id"]: item for item in view.get("items", [])}


@pytest.mark.rule(f"{AG}: under an active agreement the learner's presented consent makes a transfer")
@pytest.mark.provides("transfer_made")
def test_transfer_made(harness, flow) -> None:
    r = flow["response"]
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["origin"] == harness.peer.node_id and view["consent_id"] == flow["consent"]["id"], view
    assert view["agreement_hash"] == flow["agreement"]["hash"], "the transfer cites another agreement version"


@pytest.mark.rule(f"{AG} step 4: the node pulls the consented records once, by a signed release request "
                  "carrying exactly the consent")
@pytest.mark.requires("transfer_made")
def test_pulls_with_the_consent(harness, flow) -> None:
    pulls = flow["releases"]
    assert len(pulls) == 1, f"{len(pulls)} release requests for one transfer"
    pull = pulls[0]
    assert pull.path == RELEASE_PATH and pull.verified, f"the release request does not verify: {pull.problem}"
    assert pull.key_id and pull.key_id.startswith(harness.node.did_document()["id"] + "#")
    assert pull.envelope is not None and set(pull.envelope) == {"consent"}, pull.envelope
    assert canonicalize(pull.envelope["consent"]) == canonicalize(flow["consent"]), "the node altered the consent"
    assert pull.answered == 200


@pytest.mark.rule(f"{AG} steps 5–6: verified records are recognised as the agreement says (fixed credits; "
                  "hours ÷ the destination's hours per credit, to thousandths)")
@pytest.mark.requires("transfer_made")
def test_recognises_the_agreed_credits(harness, flow) -> None:
    items = _items(flow)
    ids = flow["credentials"]
    assert set(items) == set(ids.values()), f"items {sorted(items)} are not the consented credentials"
    got = {name: (items[cid]["state"], (items[cid].get("recognition") or {}).get("code"),
                  (items[cid].get("recognition") or {}).get("credits")) for name, cid in ids.items()
           if name not in ("tampered", "misfiled")}
    assert got["fixed"][:2] == ("recognised", "FLOW-SH-M101") and Decimal(got["fixed"][2]) == Decimal(4), got
    # 40 h ÷ 18 h per credit = 2.222… → 2.222 (thousandths, half up)
    assert got["by_hours"][:2] == ("recognised", "FLOW-SH-E201"), got
    assert Decimal(got["by_hours"][2]) == Decimal("2.222"), got
    total = flow["response"].json()["recognised_credits"]
    assert Decimal(total) == Decimal("6.222"), f"recognised_credits {total}"


@pytest.mark.rule(f"{AG} step 5: a credential altered at the origin after signing fails verification and is not "
                  "recognised; the others go on")
@pytest.mark.requires("transfer_made")
def test_tampered_credential_not_recognised(harness, flow) -> None:
    item = _items(flow)[flow["credentials"]["tampered"]]
    assert item["state"] == "credential_invalid", item
    assert not item.get("recognition") and not item.get("achievement_id"), item
    failed = [c for c in item.get("checks") or [] if c.get("ok") is False]
    assert failed, "no failed check recorded for the altered credential"


@pytest.mark.rule(f"{AG} step 5 + docs/ledger.md: a credential whose ledger event is another record's (the leaf "
                  "does not open to this record) is not recognised")
@pytest.mark.requires("transfer_made")
def test_misfiled_credential_not_recognised(harness, flow) -> None:
    item = _items(flow)[flow["credentials"]["misfiled"]]
    assert item["state"] == "credential_invalid", item
    assert not item.get("recognition") and not item.get("achievement_id"), item
    assert [c for c in item.get("checks") or [] if c.get("ok") is False], "no failed check for the misfiled record"


@pytest.mark.rule(f"{AG} step 7: the node sends the origin one signed transfer.receipt that verifies with its "
                  "DID document and names the consent, the agreement and each item's outcome")
@pytest.mark.requires("transfer_made")
def test_signed_receipt_sent(harness, flow) -> None:
    consent_id = flow["consent"]["id"]

    def receipts() -> list:
        return [d for d in harness.peer.deliveries_of_type("transfer.receipt")
                if (((d.envelope.get("body") or {}).get("receipt") or {}).get("credentialSubject") or {})
                .get("consent") == consent_id]

    got = flush_until(harness, receipts, what="the transfer receipt")
    harness.node.admin_ok("POST", "/api/v1/testing/outbox/flush", {"advance_seconds": 3600})
    got = receipts()
    assert len(got) == 1, f"{len(got)} receipts for one transfer"
    delivery = got[0]
    assert delivery.verified, f"the node's request does not verify: {delivery.problem}"
    receipt = delivery.envelope["body"]["receipt"]
    node_did = harness.node.did_document(refresh=True)["id"]
    outcome = di_verify(receipt, harness.node.resolver("assertionMethod"))
    assert outcome.ok, f"the receipt's proof does not verify with the node's DID document: {outcome.reason}"
    assert "TransferReceipt" in receipt["type"] and receipt["issuer"] == node_did
    subject = receipt["credentialSubject"]
    assert (subject["origin"], subject["destination"]) == (harness.peer.node_id, harness.node.node_id)
    assert subject["agreement"]["hash"] == flow["agreement"]["hash"] == agreement_hash(flow["agreement"]["document"])
    outcomes = {i["credential"]: i["outcome"] for i in subject["items"]}
    ids = flow["credentials"]
    assert outcomes == {ids["fixed"]: "recognised", ids["by_hours"]: "recognised",
                        ids["tampered"]: "credential_invalid", ids["misfiled"]: "credential_invalid"}, outcomes
    assert flow["response"].json()["receipt"] == receipt, "the receipt sent is not the one the learner sees"


REVOKED = "docs/agreements.md revocation after a transfer"


def _transfer_now(harness, flow) -> dict:
    r = harness.node.as_user(flow["token"], "GET", f"/api/v1/me/transfers/{flow['response'].json()['id']}")
    assert r.status_code == 200, r.text
    return {item["credential_id"]: item for item in r.json()["items"]} | {"_credits": r.json()["recognised_credits"]}


@pytest.mark.rule(f"{REVOKED}: a record.revoked notice is believed only if the origin's signed status list shows "
                  "the credential's bit set; otherwise it is refused (revocation_invalid) and nothing changes")
@pytest.mark.requires("transfer_made")
def test_revocation_notice_without_the_bit_refused(harness, flow) -> None:
    fixed = flow["credentials"]["fixed"]
    envelope = harness.node.envelope(harness.peer.node_id, harness.next_seq(), type="record.revoked",
                                     body={"credential": fixed, "status_list": harness.peer.origin.status_list()})
    answer = harness.node.send_signed("record.revoked (bit not set)", envelope, sign=harness.peer.sign)
    assert answer.status == 400 and (answer.body or {}).get("code") == "revocation_invalid", answer.body
    assert _transfer_now(harness, flow)[fixed]["state"] == "recognised"


@pytest.mark.rule(f"{REVOKED}: after the origin revokes a recognised record and says so (record.revoked with its "
                  "signed status list), the node no longer recognises it: the item is credential_revoked and the "
                  "transfer's recognised credits drop by its credits")
@pytest.mark.requires("transfer_made")
def test_revocation_notice_revokes_the_recognised_record(harness, flow) -> None:
    fixed = flow["credentials"]["fixed"]
    origin = harness.peer.origin
    origin.revoke_credential(flow["documents"]["fixed"])
    envelope = harness.node.envelope(harness.peer.node_id, harness.next_seq(), type="record.revoked",
                                     body={"credential": fixed, "status_list": origin.status_list()})
    answer = harness.node.send_signed("record.revoked", envelope, sign=harness.peer.sign)
    assert answer.status == 200, answer.body
    now = _transfer_now(harness, flow)
    assert now[fixed]["state"] == "credential_revoked", now[fixed]
    assert now[flow["credentials"]["by_hours"]]["state"] == "recognised"
    assert Decimal(now["_credits"]) == Decimal("2.222"), f"recognised_credits {now['_credits']}"
