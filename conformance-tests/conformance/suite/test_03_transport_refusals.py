"""Negative security: each broken request is refused with the documented status and code, and the refusal
is itself a signed response (docs/federation.md §3). Every test first builds a request the node would
accept, then breaks exactly one thing."""

from __future__ import annotations

import base64
import json
import secrets
import time

import httpx
import pytest

from conformance import PROTOCOL
from crypto import httpsig
from crypto.keys import Ed25519Key

F3 = "docs/federation.md §3"
pytestmark = pytest.mark.requires("signed_exchange")


def _refused(ex, status: int, code: str) -> None:
    assert (ex.status, ex.code) == (status, code), f"expected {status} {code}, got {ex.status} {ex.body}"
    assert ex.response_signed, f"the refusal is not a signed response: {ex.response_problem}"


COVERED = ["@method", "@target-uri", "content-type", "content-digest"]


def _sign_covering(harness, request: httpx.Request, covered: list[str], *, digest: str | None = None) -> str:
    """Sign by hand: exactly `covered`, over `digest` as the Content-Digest (default: the true one)."""
    request.headers["content-digest"] = digest or httpsig.content_digest(request.content)
    now = int(time.time())
    nonce = secrets.token_urlsafe(18)
    fields = httpsig.sign_message(covered=covered, key=harness.peer.key, key_id=harness.peer.key_id,
                                  headers=request.headers, method="POST", url=str(request.url), created=now,
                                  expires=now + 60, nonce=nonce, tag=PROTOCOL)
    request.headers["signature-input"] = fields["Signature-Input"]
    request.headers["signature"] = fields["Signature"]
    return nonce


def _envelope(harness) -> dict:
    # never processed: the seq the node expects next is not consumed
    return harness.node.envelope(harness.peer.node_id, harness.seq + 1, body={"token": "refused"})


@pytest.mark.rule(f"{F3} unsigned")
def test_unsigned(harness) -> None:
    _refused(harness.node.send_signed("unsigned", _envelope(harness), sign=None), 401, "unsigned")


@pytest.mark.rule(f"{F3} bad_signature (signature bytes altered)")
def test_bad_signature(harness) -> None:
    def flip(request: httpx.Request) -> httpx.Request:
        label, _, value = request.headers["signature"].partition("=:")
        raw = bytearray(base64.b64decode(value.rstrip(":")))
        raw[0] ^= 0x01
        request.headers["signature"] = f"{label}=:{base64.b64encode(bytes(raw)).decode()}:"
        return request

    ex = harness.node.send_signed("bad signature", _envelope(harness), sign=harness.peer.sign, tamper=flip)
    _refused(ex, 401, "bad_signature")


@pytest.mark.rule(f"{F3} bad_signature (a covered header changed after signing)")
def test_covered_header_changed(harness) -> None:
    def retype(request: httpx.Request) -> httpx.Request:
        request.headers["content-type"] = "application/json; charset=latin-1"
        return request

    ex = harness.node.send_signed("covered header", _envelope(harness), sign=harness.peer.sign, tamper=retype)
    _refused(ex, 401, "bad_signature")


@pytest.mark.rule(f"{F3} unknown_member (a key outside the membership: did:key)")
def test_unknown_member_did_key(harness) -> None:
    stranger = Ed25519Key.generate()
    key_id = f"{stranger.did_key}#{stranger.public_multikey}"
    ex = harness.node.send_signed("unknown member", _envelope(harness),
                                  sign=lambda r: harness.peer.sign(r, key=stranger, key_id=key_id))
    _refused(ex, 401, "unknown_member")


@pytest.mark.rule(f"{F3} unknown_member (a key the member's DID document does not list)")
def test_unknown_key_of_member(harness) -> None:
    stranger = Ed25519Key.generate()
    ex = harness.node.send_signed("unlisted key", _envelope(harness),
                                  sign=lambda r: harness.peer.sign(r, key=stranger,
                                                                   key_id=f"{harness.peer.did}#key-99"))
    _refused(ex, 401, "unknown_member")


@pytest.mark.rule(f"{F3} expired (expires in the past)")
def test_expired(harness) -> None:
    created = int(time.time()) - 400
    ex = harness.node.send_signed("expired", _envelope(harness),
                                  sign=lambda r: harness.peer.sign(r, created=created, expires_in=300))
    _refused(ex, 401, "expired")


@pytest.mark.rule(f"{F3} expired (window expires - created over 300 s)")
def test_window_too_long(harness) -> None:
    ex = harness.node.send_signed("window too long", _envelope(harness),
                                  sign=lambda r: harness.peer.sign(r, expires_in=3600))
    _refused(ex, 401, "expired")


@pytest.mark.rule(f"{F3} expired (created in the future)")
def test_created_in_future(harness) -> None:
    created = int(time.time()) + 120
    ex = harness.node.send_signed("future", _envelope(harness), sign=lambda r: harness.peer.sign(r, created=created))
    _refused(ex, 401, "expired")


@pytest.mark.rule(f"{F3} replayed (the same signed request sent twice)")
def test_replayed_nonce(harness) -> None:
    envelope = harness.node.envelope(harness.peer.node_id, harness.next_seq(), body={"token": "once"})
    sent: dict = {}

    def sign_and_keep(request: httpx.Request) -> str:
        nonce = harness.peer.sign(request)
        sent["headers"] = dict(request.headers.items())
        sent["nonce"] = nonce
        return nonce

    first = harness.node.send_signed("replay original", envelope, sign=sign_and_keep)
    assert first.status == 200, first.body

    def same_signature(request: httpx.Request) -> str:
        for name in ("content-digest", "signature-input", "signature"):
            request.headers[name] = sent["headers"][name]
        return sent["nonce"]

    _refused(harness.node.send_signed("replay", envelope, sign=same_signature), 401, "replayed")


@pytest.mark.rule(f"{F3} digest_mismatch (body tampered after signing)")
def test_tampered_body(harness) -> None:
    envelope = _envelope(harness)

    def tamper(request: httpx.Request) -> httpx.Request:
        body = json.dumps({**envelope, "body": {"token": "tampered"}}, ensure_ascii=False).encode()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        return httpx.Request("POST", request.url, content=body, headers=headers)

    _refused(harness.node.send_signed("tampered", envelope, sign=harness.peer.sign, tamper=tamper),
             401, "digest_mismatch")


@pytest.mark.rule(f"{F3} digest_mismatch (signed Content-Digest wrong for the body)")
def test_digest_mismatch(harness) -> None:
    wrong = "sha-256=:" + base64.b64encode(b"\0" * 32).decode() + ":"
    ex = harness.node.send_signed("digest mismatch", _envelope(harness),
                                  sign=lambda r: _sign_covering(harness, r, COVERED, digest=wrong))
    _refused(ex, 401, "digest_mismatch")


@pytest.mark.rule(f"{F3} wrong_destination (@target-uri names another host)")
def test_wrong_destination(harness) -> None:
    port = httpx.URL(harness.node.base).port or 80
    ex = harness.node.send_signed("wrong destination", _envelope(harness), sign=harness.peer.sign,
                                  url=f"http://elsewhere.invalid:{port}/federation/v1/inbox")
    _refused(ex, 401, "wrong_destination")


@pytest.mark.rule(f"{F3} malformed_signature (content-digest not covered)")
def test_component_not_covered(harness) -> None:
    ex = harness.node.send_signed("partial", _envelope(harness),
                                  sign=lambda r: _sign_covering(harness, r, COVERED[:3]))
    _refused(ex, 401, "malformed_signature")


@pytest.mark.rule(f"{F3} payload_too_large (body over 1 MiB, refused before parsing)")
def test_oversized_body(harness) -> None:
    envelope = _envelope(harness)
    envelope["body"] = {"padding": "x" * (1024 * 1024)}
    ex = harness.node.send_signed("oversized", envelope, sign=harness.peer.sign)
    _refused(ex, 413, "payload_too_large")


@pytest.mark.rule(f"{F3} every federation response of this run was signed by the node")
def test_every_response_signed(harness) -> None:
    assert harness.node.exchanges, "no exchange to check"
    unsigned = [(e.label, e.status, e.response_problem) for e in harness.node.exchanges if not e.response_signed]
    assert unsigned == []
    unbound = [(e.label, e.status) for e in harness.node.exchanges if e.status < 400 and not e.response_bound]
    assert unbound == [], "accepted requests whose response is not bound to their nonce"
