"""Notices: every decision makes one in the same transaction, deadlines once, the learner's choices are kept;
e-mail goes through a real SMTP client to a local server, SMS through the logging sender; failures retry with
backoff and are dead after the configured attempts."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import socket

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from node.engage import delivery, notices
from node.models.engage import NoticeDelivery
from tests.deposits.helpers import decide, ok, refused, register_learner, submitted


def _notices(client, learner) -> list[dict]:
    return ok(client.get("/api/v1/me/notices", headers=learner.headers))["items"]


def test_review_decisions_and_appeal_answers_are_noticed(client, staff_headers) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    assert _notices(client, learner) == []  # the learner's own submission is no decision
    rejected = ok(decide(client, staff_headers("branch_reviewer"), app, "reject", reason="证书模糊"))
    items = _notices(client, learner)
    assert [(n["kind"], n["params"]["outcome"]) for n in items] == [("review_decided", "rejected")]
    assert items[0]["link"] == f"/me/applications/{app['id']}"
    appealed = ok(client.post(f"/api/v1/me/deposit-applications/{app['id']}/appeal",
                              json={"reason": "已补交清晰扫描件", "version": rejected["version"]},
                              headers=learner.headers))
    ok(decide(client, staff_headers("branch_reviewer"), appealed, "approve"))
    kinds = [n["kind"] for n in _notices(client, learner)]
    assert kinds == ["appeal_answered", "review_decided"]
    page = ok(client.get("/api/v1/me/notices", headers=learner.headers))
    assert page["unread"] == 2
    r = client.post(f"/api/v1/me/notices/{page['items'][0]['id']}/read", headers=learner.headers)
    assert r.status_code == 204
    assert ok(client.get("/api/v1/me/notices", headers=learner.headers))["unread"] == 1
    other = register_learner(client, serial="102", name="李四")
    refused(client.post(f"/api/v1/me/notices/{page['items'][1]['id']}/read", headers=other.headers), 404, "not_found")


def test_a_muted_kind_is_neither_shown_nor_sent(client, staff_headers) -> None:
    learner = register_learner(client)
    ok(client.put("/api/v1/me/notice-preferences", json={"muted_kinds": ["review_decided"]},
                  headers=learner.headers))
    app = submitted(client, learner)
    ok(decide(client, staff_headers("branch_reviewer"), app, "reject", reason="不符"))
    assert _notices(client, learner) == []


def test_preferences_need_an_address_and_refuse_bad_ones(client) -> None:
    learner = register_learner(client)
    refused(client.put("/api/v1/me/notice-preferences", json={"email_kinds": ["review_decided"]},
                       headers=learner.headers), 400, "address_required")
    refused(client.put("/api/v1/me/notice-preferences", json={"email": "not an address"},
                       headers=learner.headers), 422, "validation_error")
    refused(client.put("/api/v1/me/notice-preferences", json={"phone": "12\u0000"}, headers=learner.headers),
            422, "validation_error")
    refused(client.put("/api/v1/me/notice-preferences", json={"muted_kinds": ["nope"]}, headers=learner.headers),
            422, "validation_error")
    body = ok(client.put("/api/v1/me/notice-preferences",
                         json={"email_kinds": ["review_decided"], "email": "zhang@example.test",
                               "sms_kinds": ["certificate_expiring"], "phone": "138-0013-8000"},
                         headers=learner.headers))
    assert body["email"] == "zhang@example.test" and body["phone"] == "13800138000"
    assert ok(client.get("/api/v1/me/notice-preferences", headers=learner.headers)) == body


def test_the_address_and_phone_are_stored_encrypted(client, engine) -> None:
    learner = register_learner(client)
    ok(client.put("/api/v1/me/notice-preferences", json={"email": "zhang@example.test", "phone": "13800138000"},
                  headers=learner.headers))
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT email_cipher, phone_cipher FROM notice_preference")).one()
    assert b"zhang" not in bytes(row.email_cipher) and b"13800138000" not in bytes(row.phone_cipher)


def _expiring(engine, learner_id: int, days: int) -> int:
    from node.models import Achievement

    with Session(engine) as s:
        a = Achievement(learner_id=learner_id, type="vocational_qualification", issuer_code="X", title="电工",
                        certificate_no="C-1", level="三级", source="individual",
                        expires_on=dt.date.today() + dt.timedelta(days=days))
        s.add(a)
        s.commit()
        return a.id


def test_certificates_about_to_expire_are_noticed_once(client, ctx, engine) -> None:
    learner = register_learner(client)
    soon = _expiring(engine, learner.id, 10)
    _expiring(engine, learner.id, 200)  # beyond the horizon
    assert notices.deadline_notices(ctx)["notices"] == 1
    assert notices.deadline_notices(ctx)["notices"] == 0
    items = _notices(client, learner)
    assert [(n["kind"], n["params"]["id"]) for n in items] == [("certificate_expiring", soon)]


class _Smtp:
    """A local SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
                outer.messages.append(envelope)
                return "250 OK"

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)


@pytest.fixture
def smtp_server():
    server = _Smtp()
    server.controller.start()
    yield server
    server.controller.stop()


def _wants_email(client, learner) -> None:
    ok(client.put("/api/v1/me/notice-preferences",
                  json={"email_kinds": ["review_decided"], "email": "zhang@example.test",
                        "sms_kinds": ["review_decided"], "phone": "13800138000"}, headers=learner.headers))


def test_email_is_delivered_over_smtp_and_sms_logged_without_personal_data(
        client, ctx, staff_headers, smtp_server, monkeypatch, caplog) -> None:
    monkeypatch.setattr(ctx.settings.engage, "email_enabled", True)
    monkeypatch.setattr(ctx.settings.engage, "smtp_host", "127.0.0.1")
    monkeypatch.setattr(ctx.settings.engage, "smtp_port", smtp_server.port)
    learner = register_learner(client)
    _wants_email(client, learner)
    app = submitted(client, learner)
    ok(decide(client, staff_headers("branch_reviewer"), app, "reject", reason="不符"))
    with caplog.at_level(logging.INFO, logger="creditnode.engage.delivery"):
        report = delivery.flush_deliveries(ctx)
    assert report == {"sent": 2, "failed": 0, "dead": 0}
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert mail.rcpt_tos == ["zhang@example.test"]
    parsed = email.message_from_bytes(mail.content, policy=email.policy.default)
    text = parsed.get_content()
    assert parsed["Subject"] == "存入申请审核结果 / Deposit application reviewed"
    assert f"/me/applications/{app['id']}" in text and f"编号 {app['id']}" in text
    assert learner.id_number not in text
    sms_lines = [r.getMessage() for r in caplog.records if "sms to" in r.getMessage()]
    assert len(sms_lines) == 1 and "13800138000" not in sms_lines[0] and "138" in sms_lines[0]
    assert learner.id_number not in caplog.text
    assert delivery.flush_deliveries(ctx) == {"sent": 0, "failed": 0, "dead": 0}  # sent once


def test_failed_deliveries_retry_with_backoff_then_die(client, ctx, staff_headers, engine, monkeypatch) -> None:
    monkeypatch.setattr(ctx.settings.engage, "email_enabled", True)
    monkeypatch.setattr(ctx.settings.engage, "smtp_host", "127.0.0.1")
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        monkeypatch.setattr(ctx.settings.engage, "smtp_port", s.getsockname()[1])
    monkeypatch.setattr(ctx.settings.engage, "delivery_max_attempts", 3)
    monkeypatch.setattr(ctx.settings.engage, "sms_sender", "off")
    learner = register_learner(client)
    ok(client.put("/api/v1/me/notice-preferences", json={"email_kinds": ["review_decided"],
                                                          "email": "zhang@example.test"}, headers=learner.headers))
    app = submitted(client, learner)
    ok(decide(client, staff_headers("branch_reviewer"), app, "reject", reason="不符"))
    now = dt.datetime.now(dt.UTC)
    assert delivery.flush_deliveries(ctx, now=now) == {"sent": 0, "failed": 1, "dead": 0}
    assert delivery.flush_deliveries(ctx, now=now) == {"sent": 0, "failed": 0, "dead": 0}  # backing off
    with Session(engine) as s:
        row = s.exec(sa.select(NoticeDelivery)).scalar_one()
        assert row.attempts == 1 and row.state == "pending" and "Connection" in (row.last_error or "")
        assert row.next_attempt_at > now
    later = now + dt.timedelta(hours=2)
    assert delivery.flush_deliveries(ctx, now=later) == {"sent": 0, "failed": 1, "dead": 0}
    assert delivery.flush_deliveries(ctx, now=later + dt.timedelta(hours=2)) == {"sent": 0, "failed": 0, "dead": 1}
    with Session(engine) as s:
        row = s.exec(sa.select(NoticeDelivery)).scalar_one()
        assert row.state == "dead" and row.attempts == 3
    # the in-portal notice is there whatever became of the e-mail
    assert [n["kind"] for n in _notices(client, learner)] == ["review_decided"]


def test_two_workers_never_claim_the_same_delivery(client, ctx, staff_headers, engine) -> None:
    learner = register_learner(client)
    _wants_email(client, learner)
    app = submitted(client, learner)
    ok(decide(client, staff_headers("branch_reviewer"), app, "reject", reason="不符"))
    now = dt.datetime.now(dt.UTC)
    first = delivery._claim(ctx, "w1", now, 10)
    second = delivery._claim(ctx, "w2", now, 10)
    assert len(first) == 2 and second == []


def test_a_conversion_decision_is_noticed_and_earns_points(client, ctx, staff_headers, seeded, outcome) -> None:
    from node.engage.points import award_from_ledger
    from tests.conversion.test_conversion import SUES as PROGRAMME, _approve_all, _confirm, _review

    learner = register_learner(client)
    outcome(learner.id, type="vocational_qualification", code="VQ.CNC_MILLING", title="数控铣工（三级）",
            issuer_code="SH-OSTA", level="三级", score="合格", earned_on=dt.date(2023, 3, 1))
    req = ok(client.post("/api/v1/me/conversions", json={"programme": PROGRAMME}, headers=learner.headers), 201)
    confirmed = ok(_confirm(client, staff_headers("outlet_staff", org="O01"), req))
    assert _notices(client, learner) == []  # the outlet's confirmation is no decision
    ok(_review(client, staff_headers("branch_reviewer", org="B01"), confirmed, _approve_all(confirmed)))
    [notice] = _notices(client, learner)
    assert notice["kind"] == "conversion_decided" and notice["params"]["id"] == req["id"]
    award_from_ledger(ctx)
    entries = ok(client.get("/api/v1/me/points", headers=learner.headers))["entries"]
    assert {e["rule_id"] for e in entries} >= {"credits-converted", "certificate-earned"}
