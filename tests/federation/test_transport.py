"""Signed transport: every refusal code of docs/federation.md §3 from crafted requests, signed responses,
discovery."""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest

from crypto import httpsig
from federation.transport.inbound import PROTOCOL_TAG
from federation.transport.outbound import PeerClient, encode_json
from tests.federation.conftest import fake_identity

INBOX = "/federation/v1/inbox"


def envelope(seq: int = 1, *, origin: str = "zhejiang", destination: str = "shanghai",
             type: str = "test.unknown") -> dict:
    return {"id": f"urn:uuid:{secrets.token_hex(8)}", "origin": origin, "destination": destination, "seq": seq,
            "type": type, "sent_at": "2026-11-23T01:02:03Z", "body": {}}


def signed(identity, url: str, body: bytes, *, created: int | None = None, expires_in: int = 60,
           key=None, key_id: str | None = None, nonce: str | None = None) -> httpx.Request:
    request = httpx.Request("POST", url, content=body, headers={"content-type": "application/json"})
    httpsig.sign_request(request, key=key or identity.signing_key, key_id=key_id or identity.key_id,
                         tag=PROTOCOL_TAG, nonce=nonce or secrets.token_urlsafe(16),
                         created=int(time.time()) if created is None else created, expires_in=expires_in)
    return request


def refusal(response: httpx.Response, a_identity) -> str:
    """The refusal code, after checking the refusal itself is signed by the node."""
    httpsig.verify_response(status=response.status_code, headers=response.headers, body=response.content,
                            resolve_key=lambda _k: a_identity.signing_key.public_key,
                            required_tag=PROTOCOL_TAG)
    body = response.json()
    assert set(body) >= {"code", "message"}
    return body["code"]


@pytest.fixture
def a_url(joined) -> str:
    return joined.a.base_url + INBOX


def test_a_signed_request_from_a_member_is_accepted_and_the_response_signed(joined) -> None:
    client = PeerClient(joined.b.ctx)
    answer = client.post("shanghai", INBOX, envelope())
    assert answer.status_code == 400 and answer.code == "unknown_message_type"
    assert answer.signature.key_id == joined.a.ctx.identity.key_id
    assert answer.signature.nonce and answer.receipt["request_nonce"] == answer.signature.nonce
    assert set(answer.receipt["headers"]) == {"content-type", "content-digest", "signature", "signature-input"}


def test_unsigned(joined, a_url) -> None:
    r = joined.a.client.post(a_url, content=encode_json(envelope()), headers={"content-type": "application/json"})
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "unsigned"


def test_malformed_signature(joined, a_url) -> None:
    request = signed(joined.b.ctx.identity, a_url, encode_json(envelope()))
    request.headers["Signature-Input"] = "sig1=garbage(("
    r = joined.a.client.send(request)
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "malformed_signature"


def test_bad_signature(joined, a_url) -> None:
    impostor = fake_identity("http://127.0.0.1:9999", b"x" * 32)
    # signed with another key but naming Zhejiang's key
    request = signed(joined.b.ctx.identity, a_url, encode_json(envelope()), key=impostor.signing_key)
    r = joined.a.client.send(request)
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "bad_signature"


def test_unknown_member(joined, a_url) -> None:
    stranger = fake_identity("http://127.0.0.1:9999", b"x" * 32)
    r = joined.a.client.send(signed(stranger, a_url, encode_json(envelope())))
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "unknown_member"
    # a member's DID, but a key its DID document does not list
    jiangsu = joined.fakes["jiangsu"]
    r = joined.a.client.send(signed(jiangsu, a_url, encode_json(envelope()), key_id=jiangsu.did + "#key-9"))
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "unknown_member"


def test_no_membership_held_means_no_member(federation) -> None:
    url = federation.a.base_url + INBOX
    r = federation.a.client.send(signed(federation.b.ctx.identity, url, encode_json(envelope())))
    assert r.status_code == 401 and r.json()["code"] == "unknown_member"


def test_expired(joined, a_url) -> None:
    old = signed(joined.b.ctx.identity, a_url, encode_json(envelope()), created=int(time.time()) - 400)
    r = joined.a.client.send(old)
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "expired"
    future = signed(joined.b.ctx.identity, a_url, encode_json(envelope()), created=int(time.time()) + 60)
    assert joined.a.client.send(future).json()["code"] == "expired"
    too_long = signed(joined.b.ctx.identity, a_url, encode_json(envelope()), expires_in=3600)
    assert joined.a.client.send(too_long).json()["code"] == "expired"


def test_replayed(joined, a_url) -> None:
    request = signed(joined.b.ctx.identity, a_url, encode_json(envelope()))
    first = joined.a.client.send(request)
    assert first.status_code == 400  # accepted by the transport; the message type is unknown
    again = joined.a.client.send(request)
    assert again.status_code == 401 and refusal(again, joined.a.ctx.identity) == "replayed"


def test_digest_mismatch(joined, a_url) -> None:
    request = signed(joined.b.ctx.identity, a_url, encode_json(envelope()))
    tampered = httpx.Request("POST", a_url, content=encode_json(envelope(seq=2)), headers=request.headers)
    r = joined.a.client.send(tampered)
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "digest_mismatch"
    no_digest = signed(joined.b.ctx.identity, a_url, encode_json(envelope()))
    del no_digest.headers["content-digest"]
    assert joined.a.client.send(no_digest).json()["code"] in ("digest_mismatch", "malformed_signature")


def test_wrong_destination(joined) -> None:
    # a request signed for Zhejiang, replayed to Shanghai as is
    request = signed(joined.b.ctx.identity, joined.b.base_url + INBOX, encode_json(envelope()))
    r = joined.a.client.send(request)
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "wrong_destination"


def test_payload_too_large(joined, a_url) -> None:
    body = json.dumps({"pad": "x" * (joined.a.settings.federation.max_body_bytes + 1)}).encode()
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, body))
    assert r.status_code == 413 and refusal(r, joined.a.ctx.identity) == "payload_too_large"

    def chunks():
        for _ in range(20):
            yield b"x" * 65536

    streamed = httpx.Request("POST", a_url, content=chunks(), headers={"content-type": "application/json"})
    r = joined.a.client.send(streamed)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_envelope_origin_must_be_the_signer(joined, a_url) -> None:
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, encode_json(envelope(origin="jiangsu"))))
    assert r.status_code == 403 and refusal(r, joined.a.ctx.identity) == "origin_mismatch"


def test_a_response_for_another_request_is_refused(joined) -> None:
    client = PeerClient(joined.b.ctx)
    answer = client.post("shanghai", INBOX, envelope())
    with pytest.raises(httpsig.HttpSignatureError) as info:
        httpsig.verify_response(status=answer.status_code, headers=answer.headers,
                                body=answer.receipt["body"].encode(),
                                resolve_key=lambda _k: joined.a.ctx.identity.signing_key.public_key,
                                expected_request_nonce="another-nonce")
    assert info.value.code == "request_mismatch"


def test_discovery_document(joined) -> None:
    doc = joined.a.client.get("/.well-known/credit-node").json()
    assert doc["node_id"] == "shanghai" and doc["did"] == "did:web:127.0.0.1%3A8101"
    assert doc["base_url"] == "http://127.0.0.1:8101" and doc["name_zh"] == "上海市终身教育学分银行"
    assert doc["protocol_versions"] == ["creditnode-federation/1"]
    assert doc["endpoints"] == {"inbox": "/federation/v1/inbox", "records": "/federation/v1/records/release",
                                "checkpoint": "/api/v1/ledger/checkpoint", "did": "/.well-known/did.json",
                                "membership": "/.well-known/credit-node/membership/{version}"}
    assert doc["membership"]["version"] == 1 and len(doc["membership"]["hash"]) == 64
    assert sorted(doc["features"]) == ["agreements", "transfers", "witnessing"]  # docs/federation.md §1


def test_a_malformed_envelope_is_422_validation_error(joined, a_url) -> None:
    """docs/errors.md: 422 only for payload validation, `validation_error` with `detail.errors` (it was 400)."""
    bad = {k: v for k, v in envelope().items() if k != "seq"}
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, encode_json(bad)))
    assert r.status_code == 422 and refusal(r, joined.a.ctx.identity) == "validation_error"
    assert [e["loc"] for e in r.json()["detail"]["errors"]] == [["seq"]]
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, encode_json([envelope()])))
    assert r.status_code == 422 and refusal(r, joined.a.ctx.identity) == "validation_error"
