"""Counselling: outlet staff run a what-if for a learner with the learner's one-time consent code."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from tests.deposits.helpers import ok, refused, register_learner

SUES = "SUES-CE-MECHATRONICS"


def test_a_what_if_needs_the_learners_code_once(client, staff_headers, seeded, outcome, engine) -> None:
    me = register_learner(client)
    other = register_learner(client, serial="102", name="李四")
    outcome(me.id, type="vocational_qualification", code="VQ.CNC_MILLING", title="数控铣工（三级）",
            issuer_code="SH-OSTA", level="三级", score="合格", earned_on=dt.date(2023, 3, 1))
    outlet = staff_headers("outlet_staff", org="O01")
    body = {"account_no": me.account_no, "code": "ABCD-EFGH", "programme": SUES}
    refused(client.post("/api/v1/counselling/sessions", json=body, headers=outlet), 400, "invalid_consent_code")
    code = ok(client.post("/api/v1/me/counselling-consents", headers=me.headers), 201)["code"]
    other_code = ok(client.post("/api/v1/me/counselling-consents", headers=other.headers), 201)["code"]
    refused(client.post("/api/v1/counselling/sessions", json={**body, "code": other_code}, headers=outlet),
            400, "invalid_consent_code")  # another learner's code
    refused(client.post("/api/v1/counselling/sessions", json={**body, "code": code}, headers=me.headers),
            403, "forbidden")
    session = ok(client.post("/api/v1/counselling/sessions", json={**body, "code": code.lower()}, headers=outlet),
                 201)
    [proposal] = session["result"]["proposals"]
    assert proposal["rule_id"] == "SUES-CR-2016-CNCMILL-3" and proposal["credits"] == "4"
    refused(client.post("/api/v1/counselling/sessions", json={**body, "code": code}, headers=outlet),
            400, "invalid_consent_code")  # used once
    assert ok(client.get(f"/api/v1/counselling/sessions/{session['id']}", headers=outlet))["id"] == session["id"]
    elsewhere = staff_headers("outlet_staff", org="O02")
    refused(client.get(f"/api/v1/counselling/sessions/{session['id']}", headers=elsewhere), 404, "not_found")
    with engine.connect() as conn:
        actions = conn.execute(sa.text("SELECT action, outcome FROM audit_log WHERE action LIKE 'counselling.%' "
                                       "ORDER BY id")).all()
    assert ("counselling.consent", "ok") in actions and ("counselling.what_if", "ok") in actions
    assert ("counselling.what_if", "failed") in actions and ("counselling.read", "ok") in actions


def test_a_new_code_replaces_the_old_one_and_codes_expire(client, staff_headers, seeded, engine) -> None:
    me = register_learner(client)
    outlet = staff_headers("outlet_staff", org="O01")
    first = ok(client.post("/api/v1/me/counselling-consents", headers=me.headers), 201)["code"]
    second = ok(client.post("/api/v1/me/counselling-consents", headers=me.headers), 201)["code"]
    body = {"account_no": me.account_no, "programme": SUES}
    refused(client.post("/api/v1/counselling/sessions", json={**body, "code": first}, headers=outlet),
            400, "invalid_consent_code")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE counselling_consent SET expires_at = :t"),
                     {"t": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)})
    refused(client.post("/api/v1/counselling/sessions", json={**body, "code": second}, headers=outlet),
            400, "invalid_consent_code")
    refused(client.post("/api/v1/counselling/sessions", json={**body, "code": "x" * 21}, headers=outlet),
            422, "validation_error")
