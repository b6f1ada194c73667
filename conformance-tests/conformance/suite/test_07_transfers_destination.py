"""Consented transfer with the node as **destination** and the harness as origin (docs/agreements.md, "Consent
and transfer"; issue 5 item 7): the node checks the consent the learner presents — the origin's proof, the
destination, the holder binding it issued — and an active agreement, before it pulls anything."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from crypto.dataintegrity import sign as di_sign

AG = "docs/agreements.md consent and transfer (destination)"
pytestmark = pytest.mark.requires("signed_exchange", "achievement")


@pytest.fixture(scope="module")
def destination(harness):
    if "transfers" not in harness.node.discovery(refresh=True).get("features", []):
        pytest.skip("the node does not advertise the 'transfers' feature")
    made = harness.node.admin_ok("POST", "/api/v1/testing/fixtures/achievement", {"code": "CONF301"})
    token = harness.node.sign_in(made["learner"]["account_no"], made["learner"]["password"])
    r = harness.node.as_user(token, "POST", "/api/v1/me/transfer-intents", {"origin": harness.peer.node_id})
    assert r.status_code == 201, r.text
    return {"token": token, "binding": r.json()["binding"]}


def _consent(harness, binding: str, **subject) -> dict:
    """A TransferConsent issued and signed by the harness as the origin node."""
    now = dt.datetime.now(dt.UTC)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    unsigned = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": f"urn:uuid:{uuid.uuid4()}",
        "type": ["VerifiableCredential", "TransferConsent"],
        "issuer": harness.peer.did,
        "validFrom": now.strftime(stamp),
        "validUntil": (now + dt.timedelta(days=1)).strftime(stamp),
        "credentialSubject": {
            "id": f"urn:uuid:{uuid.uuid4()}", "type": "TransferConsent", "origin": harness.peer.node_id,
            "destination": harness.node.node_id, "destinationDid": harness.facts["discovery"]["did"],
            "records": [f"{harness.peer.base_url}/credentials/achievements/1"], "categories": [],
            "purpose": "conformance: credit transfer", "holderBinding": binding, **subject,
        },
    }
    return di_sign(unsigned, harness.peer.key, harness.peer.key_id, proof_purpose="assertionMethod",
                   created=now.strftime(stamp))


def _present(harness, destination, consent: dict):
    return harness.node.as_user(destination["token"], "POST", "/api/v1/me/transfers", {"consent": consent})


def _refused(r, status: int, code: str) -> None:
    assert (r.status_code, r.json().get("code")) == (status, code), r.text


@pytest.mark.rule(f"{AG}: a consent altered after the origin signed it is refused (consent_invalid)")
def test_tampered_consent_refused(harness, destination) -> None:
    consent = _consent(harness, destination["binding"])
    consent["credentialSubject"]["purpose"] = "something else"
    _refused(_present(harness, destination, consent), 400, "consent_invalid")


@pytest.mark.rule(f"{AG}: a consent not issued by its origin node is refused (consent_invalid)")
def test_consent_issuer_must_be_origin(harness, destination) -> None:
    consent = _consent(harness, destination["binding"])
    consent = {**consent, "issuer": "did:web:elsewhere.invalid"}
    _refused(_present(harness, destination, consent), 400, "consent_invalid")


@pytest.mark.rule(f"{AG}: a consent naming another destination is refused (wrong_destination)")
def test_consent_for_another_destination(harness, destination) -> None:
    consent = _consent(harness, destination["binding"], destination="elsewhere")
    _refused(_present(harness, destination, consent), 403, "wrong_destination")


@pytest.mark.rule(f"{AG}: a holder binding not issued to this learner is refused (binding_mismatch)")
def test_foreign_holder_binding(harness, destination) -> None:
    consent = _consent(harness, "hb1.not-issued-by-this-node-" + uuid.uuid4().hex)
    _refused(_present(harness, destination, consent), 403, "binding_mismatch")


@pytest.mark.rule(f"{AG}: without an active agreement nothing is pulled (no_agreement)")
def test_no_agreement_nothing_pulled(harness, destination) -> None:
    before = len(harness.peer.other_posts)
    _refused(_present(harness, destination, _consent(harness, destination["binding"])), 409, "no_agreement")
    assert harness.peer.other_posts[before:] == [], "the node pulled records without an agreement"
