"""Issue 11.8 (federation part): documents that RFC 8785 cannot canonicalise — integers past 2^53, NaN,
Infinity, exponents that overflow a double — are refused with a documented 4xx code wherever a peer or an
admin hands the node a document (inbox messages, membership and agreement admin endpoints, consent documents),
never a 500."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from federation.agreements.document import AgreementInvalid, agreement_hash
from federation.errors import MembershipRefused
from federation.membership import held_membership, membership_hash, next_version
from federation.transfers.consent import document_hash
from federation.transfers.errors import TransferRefused
from federation.transport.outbound import PeerClient
from node.models import InboxMessage, PeerStream
from tests.federation.test_agreements import BASE, draft
from tests.federation.test_delivery import _admin
from tests.federation.test_transport import INBOX, envelope, refusal, signed

BIG = 2**53  # the first integer RFC 8785 (I-JSON) cannot represent exactly
# raw JSON number texts Python's json module accepts but RFC 8785 cannot canonicalise
BAD_NUMBERS = [str(BIG), str(-BIG), "99999999999999999999999", "1e400", "-1e400", "NaN", "Infinity", "-Infinity"]


def _with(template: dict, key: str, raw: str) -> bytes:
    """`template` as JSON with `key` set to the raw number text `raw` (json.dumps cannot write 1e400)."""
    text = json.dumps({**template, key: "@@"}, ensure_ascii=False)
    return text.replace('"@@"', raw).encode()


def _post(node, path: str, body: bytes, headers: dict):
    return node.client.post(path, content=body, headers={**headers, "content-type": "application/json"})


# -- pure functions: a domain error, not CanonicalizationError ------------------------------------------


def test_hashes_refuse_unrepresentable_numbers_with_a_domain_code() -> None:
    with pytest.raises(MembershipRefused) as membership:
        membership_hash({"version": BIG})
    assert membership.value.code == "invalid_membership" and membership.value.status_code == 409
    with pytest.raises(AgreementInvalid) as agreement:
        agreement_hash({"version": float("nan")})
    assert agreement.value.code == "agreement_invalid" and agreement.value.status_code == 400
    with pytest.raises(TransferRefused) as consent:
        document_hash({"validUntil": float("inf")})
    assert consent.value.code == "consent_invalid" and consent.value.status_code == 400


# -- admin endpoints ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", BAD_NUMBERS)
def test_membership_admin_endpoints_refuse_unrepresentable_numbers(joined, raw) -> None:
    headers = _admin(joined.a)
    with joined.a.session() as s:
        held = held_membership(s).document
    proposal = next_version(held)
    r = _post(joined.a, "/api/v1/federation/membership/proposals", _with(proposal, "note", raw), headers)
    assert r.status_code == 409 and r.json()["code"] == "invalid_membership", r.text
    install = json.dumps({"document": "@@"}).replace('"@@"', _with(proposal, "note", raw).decode()).encode()
    r = _post(joined.a, "/api/v1/federation/membership/install", install, headers)
    assert r.status_code == 409 and r.json()["code"] == "invalid_membership", r.text
    with joined.a.session() as s:
        assert held_membership(s).version == 1


@pytest.mark.parametrize("raw", BAD_NUMBERS)
def test_agreement_admin_endpoints_refuse_unrepresentable_numbers(joined, raw) -> None:
    headers = _admin(joined.a, "agreementadmin")
    r = _post(joined.a, BASE, _with(draft(), "note", raw), headers)
    assert r.status_code == 400 and r.json()["code"] == "agreement_invalid", r.text
    r = joined.a.client.post(BASE, json=draft(), headers=headers)
    assert r.status_code == 200, r.text
    base = r.json()["hash"]
    changes = json.dumps({"base": base, "changes": "@@"}).replace('"@@"', _with({}, "note", raw).decode())
    r = _post(joined.a, f"{BASE}/{draft()['agreement']}/counter", changes.encode(), headers)
    assert r.status_code == 400 and r.json()["code"] == "agreement_invalid", r.text


@pytest.mark.parametrize("raw", [str(BIG), "1e400", "NaN"])
def test_a_consent_document_with_unrepresentable_numbers_is_refused(joined, raw) -> None:
    from tests.federation.test_transfers import Person, negotiate_agreement

    negotiate_agreement(joined, automatic=True)
    person = Person(joined)
    consent = person.consent()
    body = json.dumps({"consent": "@@"}).replace('"@@"', _with(consent, "validUntil", raw).decode()).encode()
    r = _post(joined.b, "/api/v1/me/transfers", body, person.at_dest)
    assert r.status_code == 400 and r.json()["code"] == "consent_invalid", r.text


# -- peers: the inbox --------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", BAD_NUMBERS)
def test_an_inbox_body_with_unrepresentable_numbers_is_refused_and_consumes_nothing(joined, raw) -> None:
    """Refused by the transport (400 invalid_json, I-JSON: RFC 7493) before the envelope is looked at: no
    handler runs, the stream does not move, nothing is stored; the connection stays usable."""
    a_url = joined.a.base_url + INBOX
    for message in (envelope(type="membership.update"), envelope(type="agreement.propose")):
        body = _with({**message, "body": {}}, "body", '{"document": {"version": %s}}' % raw)
        r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, body))
        assert r.status_code == 400 and refusal(r, joined.a.ctx.identity) == "invalid_json", r.text
    # the envelope's own numbers too
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, _with(envelope(), "seq", raw)))
    assert r.status_code == 400 and refusal(r, joined.a.ctx.identity) == "invalid_json", r.text
    with joined.a.session() as s:
        assert s.exec(select(InboxMessage)).all() == []
        stream = s.get(PeerStream, "zhejiang")
        assert stream is None or stream.next_in_seq == 1
    # the next real message is processed normally
    answer = PeerClient(joined.b.ctx).post("shanghai", INBOX, envelope())
    assert answer.status_code == 400 and answer.code == "unknown_message_type"


def test_an_inbox_body_with_duplicate_keys_is_refused(joined) -> None:
    a_url = joined.a.base_url + INBOX
    body = json.dumps(envelope())[:-1] + ', "seq": 2}'
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, body.encode()))
    assert r.status_code == 400 and refusal(r, joined.a.ctx.identity) == "invalid_json", r.text


def test_floats_that_rfc8785_can_write_still_pass_the_transport(joined) -> None:
    a_url = joined.a.base_url + INBOX
    body = _with(envelope(), "body", '{"ratio": 1.5, "small": 1e-7, "int": 9007199254740991}')
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, body))
    assert r.status_code == 400 and refusal(r, joined.a.ctx.identity) == "unknown_message_type", r.text


def test_the_codes_are_documented() -> None:
    from pathlib import Path

    errors = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text(encoding="utf-8")
    for code in ("invalid_json", "invalid_membership", "agreement_invalid", "consent_invalid"):
        assert f"`{code}`" in errors, code


def test_a_signed_consent_whose_validuntil_is_not_a_date_time_is_not_valid_forever(joined) -> None:
    """A number where a date-time belongs was a 500 (str.replace on an int) and a malformed validUntil was
    read as no end at all: both fail the dates check now."""
    from node.credentials.verify import verify_document

    identity = joined.a.ctx.identity
    for until in (5, "not a date"):
        document = identity.sign({"@context": ["https://www.w3.org/ns/credentials/v2"], "id": "urn:uuid:1",
                                  "type": ["VerifiableCredential", "TransferConsent"], "issuer": identity.did,
                                  "validFrom": "2026-01-01T00:00:00Z", "validUntil": until,
                                  "credentialSubject": {"id": "urn:uuid:learner"}})
        report = verify_document(document, resolve_did=lambda did: identity.did_document())
        dates = [c for c in report.checks if c.check == "dates"]
        assert dates and dates[0].ok is False and "validUntil" in dates[0].reason, report.checks
