"""Conversion correctness against the node: each golden case of `conformance/vectors/conversion/` (an agreement
in the real document format + the origin's records → the exact recognised credits; format in
conformance/vectors/README.md) is run for real. The harness negotiates the vector's agreement with the node (a
fresh agreement id per case, the placeholder parties replaced by the harness and the node), deposits the records
in its ledger as signed credentials, issues the consent; the learner presents it at the node; every item must
come out exactly as the vector says (code, and credits compared as normalised decimal strings)."""

from __future__ import annotations

import copy
import uuid

import pytest

from conformance.agreements import negotiate, new_agreement_id, next_valid_from
from conformance.vectors import cases, credential_fields, normalise, substitute

RULE = "docs/agreements.md recognition (recognise): the exact credits an active agreement gives each record"
pytestmark = pytest.mark.requires("signed_exchange", "achievement", "agreement")


@pytest.fixture(scope="module")
def learner(harness) -> dict:
    features = harness.node.discovery(refresh=True).get("features", [])
    missing = [f for f in ("agreements", "transfers") if f not in features]
    if missing:
        pytest.skip(f"the node does not advertise the {', '.join(missing)} feature(s)")
    made = harness.node.admin_ok("POST", "/api/v1/testing/fixtures/achievement", {"code": "VEC-LOCAL"})
    token = harness.node.sign_in(made["learner"]["account_no"], made["learner"]["password"])
    r = harness.node.as_user(token, "POST", "/api/v1/me/transfer-intents", {"origin": harness.peer.node_id})
    assert r.status_code == 201, r.text
    return {"token": token, "binding": r.json()["binding"], "pseudonym": f"urn:uuid:{uuid.uuid4()}"}


def _agreement(harness, vector: dict) -> dict:
    roles = vector["placeholders"]
    names = {roles["origin"]: harness.peer.node_id, roles["destination"]: harness.node.node_id}
    document = substitute(copy.deepcopy(vector["agreement"]), names)
    document.update(agreement=new_agreement_id("vector"), version=1, previous=None, proposer=harness.peer.node_id,
                    valid_from=next_valid_from(), valid_to=None, status="active")
    return document


@pytest.mark.rule(RULE)
@pytest.mark.parametrize(("vector", "case"), [pytest.param(v, c, id=name) for name, v, c in cases()])
def test_conversion_golden_case(harness, learner, vector: dict, case: dict) -> None:
    agreement = negotiate(harness, _agreement(harness, vector))
    origin = harness.peer.origin
    credentials = [origin.issue(learner["pseudonym"], **credential_fields(record)) for record in case["records"]]
    consent = origin.consent(pseudonym=learner["pseudonym"], destination=harness.node.node_id,
                             destination_did=harness.node.did_document()["id"], holder_binding=learner["binding"],
                             credentials=credentials)
    r = harness.node.as_user(learner["token"], "POST", "/api/v1/me/transfers", {"consent": consent})
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["agreement_hash"] == agreement["hash"], "the node applied another agreement version"
    items = {item["credential_id"]: item for item in view["items"]}
    got, want = {}, {}
    for expected in case["expected"]["recognised"]:
        want[expected["record"]] = ("recognised", expected["code"], normalise(expected["credits"]))
    for expected in case["expected"]["not_recognised"]:
        want[expected["record"]] = ("not_recognised", None, None)
    for index, credential in enumerate(credentials):
        item = items.get(credential["id"])
        assert item is not None, f"record {index} ({credential['id']}) is missing from the transfer"
        recognition = item.get("recognition") or {}
        got[index] = (item["state"], recognition.get("code"),
                      normalise(recognition["credits"]) if recognition.get("credits") is not None else None)
        if item["state"] != "recognised":
            got[index] = (item["state"], None, None)
    assert got == want, f"{case['id']}: the node recognised {got}, the vector expects {want}"
