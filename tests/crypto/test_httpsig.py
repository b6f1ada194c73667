"""RFC 9421 B.2.6 reproduction, RFC 9530 digests, request/response round trips and every error code."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from crypto.errors import HttpSignatureError
from crypto.httpsig import (
    HttpSignatureAuth,
    content_digest,
    sign_message,
    sign_request,
    sign_response,
    signature_base,
    verify_content_digest,
    verify_message,
    verify_request,
    verify_response,
)
from crypto.keys import Ed25519Key
from tests.crypto.conftest import vector_path

NOW = 1_750_000_000
KEY = Ed25519Key.from_seed(b"\x07" * 32)
KID = "did:web:sh.example#key-1"
TAG = "creditnode"


def _b26():
    vec = json.loads(vector_path("rfc9421", "b26.json").read_text())
    jwk = json.loads(vector_path("rfc9421", "test-key-ed25519.json").read_text())["jwk"]
    key = Ed25519Key.from_seed(base64.urlsafe_b64decode(jwk["d"] + "="))
    assert key.public_bytes() == base64.urlsafe_b64decode(jwk["x"] + "=")
    return vec, key


def test_rfc9421_b26_exact() -> None:
    vec, key = _b26()
    req = vec["request"]
    headers = dict(req["headers"])
    out = sign_message(covered=vec["covered_components"], key=key, key_id=vec["key_id"], headers=headers,
                       method=req["method"], url=req["url"], label=vec["label"], created=vec["created"], alg=None)
    assert out["Signature-Input"] == vec["expected_signature_input"]
    assert out["Signature"] == vec["expected_signature"]
    params = vec["expected_signature_input"].split("=", 1)[1]
    base = signature_base(covered=vec["covered_components"], params_value=params, headers=headers,
                          method=req["method"], url=req["url"])
    assert base == vec["expected_signature_base"]
    headers.update(out)
    verified = verify_message(headers=headers, resolve_key=lambda k: key.public_key, method="POST",
                              url=req["url"], body=req["body"].encode(), now=vec["created"],
                              require_expires=False)
    assert verified.key_id == "test-key-ed25519" and verified.label == "sig-b26"
    # a one-byte change of a covered component fails
    tampered = dict(headers, Date=headers["Date"].replace("02:07:55", "02:07:56"))
    with pytest.raises(HttpSignatureError) as exc:
        verify_message(headers=tampered, resolve_key=lambda k: key.public_key, method="POST", url=req["url"],
                       body=req["body"].encode(), now=vec["created"], require_expires=False)
    assert exc.value.code == "bad_signature"


def test_rfc9530_digests() -> None:
    vec, _ = _b26()
    body = vec["request"]["body"].encode()
    assert content_digest(body) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    sha512 = dict(vec["request"]["headers"])["Content-Digest"]
    assert content_digest(body, "sha-512") == sha512
    assert verify_content_digest(sha512, body)
    assert verify_content_digest(content_digest(body) + ", " + sha512, body)
    assert not verify_content_digest(sha512, body + b" ")
    assert not verify_content_digest("md5=:AAAA:", body)
    assert not verify_content_digest("garbage ((", body)
    assert not verify_content_digest(None, body)


def _signed_request(body: bytes | None = b'{"a":"\xe4\xb8\xad"}', **kw) -> httpx.Request:
    req = httpx.Request("POST", "https://peer.example/federation/inbox?x=1", content=body,
                        headers={"Content-Type": "application/json"} if body else {})
    sign_request(req, key=KEY, key_id=KID, tag=TAG, nonce=kw.pop("nonce", "n-1"), created=kw.pop("created", NOW),
                 **kw)
    return req


def _verify(req: httpx.Request, **kw):
    args = dict(method=req.method, url=str(req.url), headers=req.headers, body=req.content,
                resolve_key=lambda k: KEY.public_key if k == KID else None, now=NOW, required_tag=TAG)
    args.update(kw)
    return verify_request(**args)


def _code(fn, *a, **kw) -> str:
    with pytest.raises(HttpSignatureError) as exc:
        fn(*a, **kw)
    return exc.value.code


def test_request_round_trip() -> None:
    req = _signed_request()
    v = _verify(req)
    assert (v.key_id, v.created, v.expires, v.nonce, v.tag) == (KID, NOW, NOW + 60, "n-1", TAG)
    assert v.covered == ("@method", "@target-uri", "content-type", "content-digest")
    assert v.target_uri == "https://peer.example/federation/inbox?x=1"
    assert req.headers["content-digest"].startswith("sha-256=:")
    # plain dict headers with other casing work too
    v2 = _verify(req, headers={k.title(): val for k, val in req.headers.items()})
    assert v2.nonce == "n-1"


def test_get_without_body() -> None:
    req = httpx.Request("GET", "https://peer.example/x")
    sign_request(req, key=KEY, key_id=KID, tag=TAG, created=NOW)
    v = _verify(req)
    assert "content-digest" not in req.headers and v.covered == ("@method", "@target-uri") and v.nonce


def test_httpx_auth_adapter() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        v = verify_request(method=request.method, url=str(request.url), headers=request.headers,
                           body=request.content, resolve_key=lambda k: KEY.public_key)
        seen["nonce"] = v.nonce
        return httpx.Response(200, json={"ok": True})

    with httpx.Client(transport=httpx.MockTransport(handler), auth=HttpSignatureAuth(KEY, KID, TAG)) as client:
        assert client.post("https://peer.example/x", json={"a": 1}).status_code == 200
    assert seen["nonce"]


def test_error_codes() -> None:
    req = _signed_request()
    unsigned = httpx.Request("POST", "https://peer.example/x", content=b"{}")
    assert _code(_verify, unsigned) == "unsigned"
    assert _code(_verify, req, headers=dict(req.headers, **{"signature-input": "sig1=(("})) == "malformed_signature"
    assert _code(_verify, req, headers=dict(req.headers, signature="sig1=:AAAA:")) == "malformed_signature"
    assert _code(_verify, req, resolve_key=lambda k: None) == "unknown_key"

    def boom(k):
        raise KeyError(k)

    assert _code(_verify, req, resolve_key=boom) == "unknown_key"
    assert _code(_verify, req, resolve_key=lambda k: Ed25519Key.generate().public_key) == "bad_signature"
    assert _code(_verify, req, url="https://evil.example/federation/inbox?x=1") == "bad_signature"
    assert _code(_verify, req, method="PUT") == "bad_signature"
    assert _code(_verify, req, now=NOW + 61) == "expired"
    assert _code(_verify, req, now=NOW - 6) == "expired"  # created in the future beyond 5 s skew
    assert _verify(req, now=NOW - 5).created == NOW
    long = _signed_request(expires_in=301)
    assert _code(_verify, long) == "expired"
    assert _code(_verify, req, body=req.content + b" ") == "digest_mismatch"
    no_digest = httpx.Request("POST", "https://peer.example/x", content=b"{}")
    no_digest.headers.update(sign_message(covered=["@method", "@target-uri"], key=KEY, key_id=KID,
                                          headers=no_digest.headers, method="POST", url="https://peer.example/x",
                                          created=NOW, expires=NOW + 60, nonce="n", tag=TAG))
    assert _code(_verify, no_digest) == "missing_component"
    no_ct = httpx.Request("POST", "https://peer.example/x", content=b"{}")
    no_ct.headers["content-digest"] = content_digest(b"{}")
    no_ct.headers.update(sign_message(covered=["@method", "@target-uri", "content-digest"], key=KEY, key_id=KID,
                                      headers=no_ct.headers, method="POST", url="https://peer.example/x",
                                      created=NOW, expires=NOW + 60, nonce="n", tag=TAG))
    assert _verify(no_ct).covered == ("@method", "@target-uri", "content-digest")
    no_ct.headers["content-type"] = "application/json"  # added after signing: not covered
    assert _code(_verify, no_ct) == "missing_component"
    dropped_digest = httpx.Request("POST", "https://peer.example/x", content=b"{}")
    dropped_digest.headers.update(sign_message(covered=["@method", "@target-uri"], key=KEY, key_id=KID,
                                               headers={}, method="POST", url="https://peer.example/x",
                                               created=NOW, expires=NOW + 60, nonce="n", tag=TAG))
    assert _verify(dropped_digest, body=b"").covered == ("@method", "@target-uri")  # no body: no digest needed
    assert _code(_verify, dropped_digest) == "missing_component"  # with its body: digest must be covered
    assert _code(_verify, req, required_tag="other") == "wrong_tag"
    assert _code(_verify, req, headers={k: v for k, v in req.headers.items() if k != "content-digest"}) == \
        "missing_component"


def test_empty_body_request_without_digest_verifies() -> None:
    req = httpx.Request("DELETE", "https://peer.example/x/1")
    sign_request(req, key=KEY, key_id=KID, tag=TAG, created=NOW, nonce="d")
    assert _verify(req).nonce == "d"


def test_response_round_trip_and_binding() -> None:
    body = b'{"accepted":true}'
    headers = {"Content-Type": "application/json"}
    added = sign_response(status=202, headers=headers, body=body, key=KEY, key_id=KID, tag=TAG,
                          request_nonce="n-1", created=NOW)
    assert set(added) == {"Content-Digest", "Signature-Input", "Signature"}
    all_headers = {**headers, **added}
    resolve = lambda k: KEY.public_key
    v = verify_response(status=202, headers=all_headers, body=body, resolve_key=resolve,
                        expected_request_nonce="n-1", now=NOW)
    assert v.covered == ("@status", "content-type", "content-digest") and v.nonce == "n-1"
    assert _code(verify_response, status=202, headers=all_headers, body=body, resolve_key=resolve,
                 expected_request_nonce="n-2", now=NOW) == "request_mismatch"
    assert _code(verify_response, status=200, headers=all_headers, body=body, resolve_key=resolve,
                 now=NOW) == "bad_signature"
    assert _code(verify_response, status=202, headers=all_headers, body=b"{}", resolve_key=resolve,
                 now=NOW) == "digest_mismatch"
    assert _code(verify_response, status=202, headers=headers, body=body, resolve_key=resolve,
                 now=NOW) == "unsigned"
