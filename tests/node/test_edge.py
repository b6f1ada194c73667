"""The HTTP edge (node/middleware.py): body limits, text no database stores, bad JSON, security headers,
integers past 64 bits, and the validation gaps of issue 11 (items 7, 8, 9, 15, 19)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from node.middleware import MAX_JSON_DEPTH
from tests.conftest import make_settings
from tests.federation.conftest import federation, joined, make_database, network  # noqa: F401 - fixtures
from tests.federation.test_transport import INBOX, envelope, refusal, signed
from tests.deposits.helpers import claim, decide, ok, register_learner, submitted

BIG = "99999999999999999999999"


def _refused(r, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["code"] == code, body
    return body


# -- 11.7 body limits ---------------------------------------------------------------------------------------


def test_a_declared_length_over_the_limit_is_refused_before_reading(client) -> None:
    r = client.post("/api/v1/learners/register", content=b"{" + b" " * (1024 * 1024) + b"}",
                    headers={"content-type": "application/json"})
    body = _refused(r, 413, "payload_too_large")
    assert body["detail"]["max_bytes"] == 1024 * 1024
    assert r.headers["connection"] == "close"


def test_a_chunked_body_is_counted_while_it_streams(client) -> None:
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    r = client.post("/api/v1/learners/register", content=chunks(),
                    headers={"content-type": "application/octet-stream"})
    _refused(r, 413, "payload_too_large")
    r = client.post("/api/v1/learners/register", content=chunks(), headers={"content-type": "application/json"})
    _refused(r, 413, "payload_too_large")


def test_verification_takes_a_transcript_pdf_beyond_the_default_limit(client) -> None:
    """A printed transcript (PDF) may be over node.max_body_bytes: the verify routes have the PDF's limit at the
    edge (one limit, node.credentials.pdf.MAX_PDF_BYTES), not the default one."""
    from node.credentials.pdf import MAX_PDF_BYTES

    two_mib = b"%PDF-1.7\n" + b"0" * (2 * 1024 * 1024)
    r = client.post("/api/v1/verify", content=two_mib, headers={"content-type": "application/pdf"})
    assert r.status_code != 413 and r.json()["code"] != "payload_too_large", r.text
    r = client.post("/api/v1/verify", content=b"%PDF-" + b"0" * (MAX_PDF_BYTES + 128 * 1024),
                    headers={"content-type": "application/pdf"})
    _refused(r, 413, "payload_too_large")


def test_uploads_and_the_inbox_have_their_own_limits(database_url, engine, tmp_path) -> None:
    from node.app import create_app

    settings = make_settings(database_url, tmp_path / "data", max_body_bytes=1000)
    settings.federation.max_body_bytes = 2000
    with TestClient(create_app(settings, engine=engine)) as c:
        big = b"x" * 1500
        _refused(c.post("/api/v1/learners/register", content=big), 413, "payload_too_large")
        # the import upload may be larger: refused for want of a sign-in, not for its size
        assert c.post("/api/v1/imports", files={"file": ("a.csv", big)}).status_code == 401
        # the inbox has its own limit, enforced (and its refusal signed) by the route
        assert c.post("/federation/v1/inbox", content=big, headers={"content-type": "application/json"}
                      ).json()["code"] == "unsigned"
        r = c.post("/federation/v1/inbox", content=big * 2)
        _refused(r, 413, "payload_too_large")
        assert "signature" in r.headers


# -- 11.9 text no database stores ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["名\x00字", "\ud800", "a\udfffb"])
def test_nul_and_lone_surrogates_are_refused_in_json(client, staff_headers, bad: str) -> None:
    admin = staff_headers("node_admin")
    raw = json.dumps({"code": "B01", "name": bad, "kind": "branch"})  # ensure_ascii: \u0000, \ud800 escapes
    r = client.post("/api/v1/admin/organisations", content=raw,
                    headers={**admin, "content-type": "application/json"})
    body = _refused(r, 422, "validation_error")
    assert body["detail"]["errors"][0]["loc"] == ["body", "name"]
    assert body["detail"]["errors"][0]["type"] == "invalid_text"
    r = client.post("/api/v1/admin/organisations", json={"code": "U01", "name": "大学", "kind": "institution"},
                    headers=admin)
    assert r.status_code == 201, r.text


def test_nul_is_refused_in_keys_path_query_and_forms(client, staff_headers) -> None:
    admin = staff_headers("node_admin")
    r = client.post("/api/v1/admin/staff", headers=admin,
                    content=json.dumps({"username": "x", "roles": ["auditor"], "k\x00": 1}),
                    )
    assert r.status_code in (400, 415, 422)
    _refused(client.get("/api/v1/learners/search?name=%00", headers=admin), 422, "validation_error")
    _refused(client.get("/api/v1/standards/rules/a%00b/versions/1", headers=admin), 422, "validation_error")
    _refused(client.post("/api/v1/auth/token", data={"username": "a\x00", "password": "x"}),
             422, "validation_error")
    r = client.post("/api/v1/imports", headers=admin, files={"file": ("a\x00.csv", b"x")},
                    data={"institution_code": "U\x00"})
    _refused(r, 422, "validation_error")


def test_an_uploaded_file_name_fits_its_column(client, staff_headers) -> None:
    admin = staff_headers("node_admin")
    r = client.post("/api/v1/imports", headers=admin, files={"file": ("名" * 252 + ".csv", b"x")},
                    data={"institution_code": "U001"})
    body = _refused(r, 422, "validation_error")
    assert body["detail"]["errors"][0]["type"] == "string_too_long"


def test_a_deposit_cannot_become_stuck(client, staff_headers) -> None:
    """A title with NUL never gets in; a title at every limit (non-BMP characters included) goes through
    both reviews to `deposited` (the achievement row takes what the application accepted)."""
    learner = register_learner(client)
    r = client.post("/api/v1/me/deposit-applications", json={"achievement": claim(title="高等\x00数学")},
                    headers=learner.headers)
    _refused(r, 422, "validation_error")
    app = submitted(client, learner, title="𝔸" * 200, issuer_name="大" * 200, code="C" * 64, score="优",
                    issuer_code="I" * 32)
    branch, centre = staff_headers("branch_reviewer"), staff_headers("centre_reviewer")
    app = ok(decide(client, branch, app, "approve"))
    app = ok(decide(client, centre, app, "approve"))
    assert app["state"] == "deposited"


# -- 11.19 bad JSON, -0, year 0001 --------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b'{"a": "\xff\xfe"}', b'{"a": ', b"[" * 100_000 + b"]" * 100_000,
                                 b"[" * (MAX_JSON_DEPTH + 2) + b"]" * (MAX_JSON_DEPTH + 2)])
def test_unparsable_json_is_invalid_json(client, raw: bytes) -> None:
    r = client.post("/api/v1/learners/register", content=raw, headers={"content-type": "application/json"})
    _refused(r, 400, "invalid_json")


def test_credits_minus_zero_is_zero_and_year_one_is_refused(client) -> None:
    learner = register_learner(client)
    r = client.post("/api/v1/me/deposit-applications",
                    json={"achievement": claim(type="community", credits="-0")}, headers=learner.headers)
    assert r.status_code == 201, r.text
    assert r.json()["achievement"]["credits"] == "0"
    r = client.post("/api/v1/me/deposit-applications", json={"achievement": claim(earned_on="0001-01-01")},
                    headers=learner.headers)
    _refused(r, 422, "validation_error")


# -- 11.8 integers past 64 bits -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"/api/v1/ledger/events/{BIG}", f"/status/{BIG}",
                                  f"/.well-known/credit-node/membership/{BIG}",
                                  f"/api/v1/ledger/proof/inclusion?seq={BIG}&size=1"])
def test_integers_past_64_bits_are_validation_errors(client, path: str) -> None:
    _refused(client.get(path), 422, "validation_error")


def test_every_integer_a_request_carries_is_bounded(app) -> None:
    """Walks the OpenAPI: an integer without a maximum within BIGINT (path, query or body) would reach a
    column unchecked and fail where the database binds it."""
    schema = app.openapi()
    unbounded = [where for where, node in _request_schemas(schema) if node.get("type") == "integer"
                 and not (node.get("minimum", -(2**64)) >= -(2**63)
                          and (node.get("maximum", 2**64) < 2**63 or node.get("exclusiveMaximum", 2**64) <= 2**63))]
    assert unbounded == []


def _request_schemas(schema: dict):
    components = schema["components"]["schemas"]

    def walk(node: dict, where: str, seen: frozenset):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                yield from walk(components[name], where, seen | {name})
            return
        yield where, node
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                yield from walk(sub, where, seen)
        for name, sub in node.get("properties", {}).items():
            yield from walk(sub, f"{where}.{name}", seen)
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{where}[]", seen)
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{where}{{}}", seen)

    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                yield from walk(param["schema"], f"{method.upper()} {path} {param['in']}:{param['name']}",
                                frozenset())
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                yield from walk(content.get("schema", {}), f"{method.upper()} {path} body({media})", frozenset())


# -- 11.15 security headers ---------------------------------------------------------------------------------


def test_security_headers_on_every_response(client) -> None:
    for r in (client.get("/.well-known/did.json"), client.get("/no/such/path"), client.get("/api/v1/me")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "strict-transport-security" not in r.headers  # http base URL
    html = client.get("/docs")
    assert html.headers["content-type"].startswith("text/html")
    csp = html.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp.split(
        "style-src")[0]


def test_hsts_when_the_base_url_is_https(database_url, engine, tmp_path) -> None:
    from node.app import create_app

    settings = make_settings(database_url, tmp_path / "data", base_url="https://creditnode.example.gov.cn")
    with TestClient(create_app(settings, engine=engine)) as c:
        assert c.get("/.well-known/did.json").headers["strict-transport-security"].startswith("max-age=")



# -- the federation inbox: malformed envelope and text no database stores, refused signed -----------------


def test_peer_bodies_are_checked_and_refused_signed(joined) -> None:
    a_url = joined.a.base_url + INBOX

    bad = envelope()
    del bad["seq"]
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, json.dumps(bad).encode()))
    assert r.status_code == 422 and refusal(r, joined.a.ctx.identity) == "validation_error"
    nul = envelope()
    nul["body"] = {"note": "a\x00b"}
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, json.dumps(nul).encode()))
    assert r.status_code == 422 and refusal(r, joined.a.ctx.identity) == "validation_error"
    assert r.json()["detail"]["errors"][0]["loc"] == ["body", "body", "note"]


# -- 11.19 the OpenAPI documents the node's error body ------------------------------------------------------


def test_the_openapi_documents_the_error_body(app, client, staff_headers) -> None:
    import jsonschema

    schema = app.openapi()
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components and "ErrorBody" in components
    text = json.dumps(schema)
    assert "HTTPValidationError" not in text
    ops = [(p, m, op) for p, ms in schema["paths"].items() for m, op in ms.items()]
    for path, method, op in ops:
        assert {"422", "4XX", "500"} <= set(op["responses"]), (method, path)
        for status, entry in op["responses"].items():
            if status[0] in "45":
                assert entry["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    deposit = schema["paths"]["/api/v1/me/deposit-applications"]["post"]["responses"]
    assert {"400", "401", "403", "413", "422"} <= set(deposit)
    # a real 422 body validates against the documented schema
    r = client.post("/api/v1/admin/organisations", json={"code": ""}, headers=staff_headers("node_admin"))
    assert r.status_code == 422
    jsonschema.validate(r.json(), components["ErrorBody"])


# -- 11.19 datetimes in responses carry their offset ---------------------------------------------------------


def test_datetimes_in_responses_are_utc_with_an_offset(client) -> None:
    import datetime as dt

    learner = register_learner(client)
    r = client.post("/api/v1/me/deposit-applications", json={"achievement": claim()}, headers=learner.headers)
    assert r.status_code == 201, r.text
    for name in ("created_at", "updated_at"):
        value = dt.datetime.fromisoformat(r.json()[name])
        assert value.utcoffset() == dt.timedelta(0), (name, r.json()[name])
    listed = client.get("/api/v1/me/deposit-applications", headers=learner.headers).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    assert dt.datetime.fromisoformat(items[0]["created_at"]).utcoffset() == dt.timedelta(0)


def test_an_unexpected_error_is_a_500_that_keeps_the_connection(app, client) -> None:
    """The edge answers an unhandled error itself and does not re-raise it (Starlette's error middleware
    re-raises after answering, and uvicorn then drops the keep-alive connection): the test client, which
    raises whatever reaches the server, gets a plain 500."""
    from fastapi import Depends

    from node.deps import public

    def boom() -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    app.add_api_route("/api/v1/boom", boom, dependencies=[Depends(public)])
    with TestClient(app) as strict:  # raise_server_exceptions=True
        r = strict.get("/api/v1/boom")
    _refused(r, 500, "internal_error")
    assert r.headers["x-content-type-options"] == "nosniff" and "connection" not in r.headers


def test_values_past_what_postgresql_binds_are_refused_not_500(client, staff_headers) -> None:
    """Found by the fuzz run on PostgreSQL: a rule version past 32 bits (an INTEGER column) and a refused
    membership document holding an integer past 2^53 (its hash cannot be computed for the audit entry)."""
    admin = staff_headers("standards_admin", "federation_admin")
    _refused(client.get("/api/v1/standards/rules/r1/versions/9223372036854775806", headers=admin),
             422, "validation_error")
    r = client.post("/api/v1/federation/membership/install", json={"document": {"version": 2**60}},
                    headers=admin)
    assert r.status_code == 409, r.text
