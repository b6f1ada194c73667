"""Online registration cannot take over a person: it opens no account, holds and shows nothing until the
identity is checked (at an outlet, or with an activation code), and answers the same whether or not the person
has an account (issue 12 item 1)."""

from __future__ import annotations

import datetime as dt

import pytest

import node.learners.service
import node.security.passwords as passwords
from tests.auth.conftest import audit_rows, bearer, token
from tests.conftest import valid_id


def _register(client, number: str, password: str = "squatter-pass-1", name: str = "冒名者", **extra):
    return client.post("/api/v1/learners/register",
                       json={"id_number": number, "name": name, "password": password, **extra})


def _count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = passwords._hasher

    class Counting:
        def hash(self, password: str) -> str:
            calls.append("hash")
            return real.hash(password)

        def verify(self, hash_: str, password: str) -> bool:
            calls.append("verify")
            return real.verify(hash_, password)

    monkeypatch.setattr(passwords, "_hasher", Counting())
    return calls


def test_same_answer_whether_or_not_an_account_exists(client, learner, engine, hashes) -> None:
    active, imported = learner(), learner(password=None)
    answers = []
    for number in (active.id_number, imported.id_number, valid_id(serial="999")):
        hashes.clear()
        r = _register(client, number)
        answers.append(r)
        assert hashes == ["hash"]  # the same work on every path
    assert {a.status_code for a in answers} == {202}
    shapes = {tuple(sorted(a.json())) for a in answers}
    assert shapes == {("expires_at", "message", "reference", "status")}
    assert {a.json()["status"] for a in answers} == {"pending_verification"}
    assert len({a.json()["message"] for a in answers}) == 1
    assert len({a.json()["reference"] for a in answers}) == 3
    assert _count(engine, "learner") == 2 and _count(engine, "learner_registration") == 3
    # nobody signs in with a registration's password, by ID number or otherwise
    for a, number in zip(answers, (active.id_number, imported.id_number, valid_id(serial="999")), strict=True):
        r = token(client, number, "squatter-pass-1")
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    assert [r[3] for r in audit_rows(engine, "learner.register")] == ["ok"] * 3


def test_a_squatter_never_sees_or_receives_the_holders_records(client, ctx, learner, staff_headers, engine) -> None:
    """Someone registers online with another person's ID number; an institution then deposits that person's
    grades. The records go to the person's account, which the squatter cannot open; the holder activates with
    the outlet's code and sees them; the squatter's registration is gone."""
    from decimal import Decimal

    from node.db import session_scope
    from node.learners.service import open_account
    from node.ledger.service import EventSpec, append_events
    from node.models import Achievement

    victim_number = valid_id(serial="314")
    squat = _register(client, victim_number)
    assert squat.status_code == 202
    # a bulk import opens the account (no password) and deposits into it by blind index
    with session_scope(ctx.engine) as s:
        account, created = open_account(s, ctx, id_type="resident_id", id_number=victim_number, name="真实持有人")
        assert created
        a = Achievement(learner_id=account.id, type="degree_course", issuer_code="U001", issuer_name="上海开放大学",
                        code="MATH101", title="高等数学", credits=Decimal(4), hours=Decimal(64), score_text="85",
                        score_value=Decimal(85), earned_on=dt.date(2024, 6, 30), term="202406", source="bulk")
        s.add(a)
        s.flush()
        append_events(s, [EventSpec(kind="achievement.deposited", learner_id=account.id, achievement_id=a.id,
                                    pseudonym=account.pseudonym,
                                    data={"achievement": a.id, "title": "高等数学", "credits": "4"})])
        account_id, account_no = account.id, account.account_no
    # the squatter cannot get in with the password they registered, by ID or account number
    for name in (victim_number, account_no):
        assert token(client, name, "squatter-pass-1").json()["code"] == "invalid_credentials"
    # the holder, ID card checked at the outlet, gets a code and activates
    code = client.post(f"/api/v1/learners/{account_id}/activation-code",
                       headers=staff_headers("outlet_staff")).json()["code"]
    done = client.post("/api/v1/learners/activate",
                       json={"id_number": victim_number, "code": code, "new_password": "holder-pass-1"})
    assert done.status_code == 200, done.text
    holder = {"Authorization": f"Bearer {done.json()['access_token']}"}
    archive = client.get("/api/v1/me/archive", headers=holder)
    assert archive.status_code == 200 and "高等数学" in archive.text
    assert _count(engine, "learner_registration") == 0  # the squatter's registration is closed
    staff = staff_headers("outlet_staff")
    late = client.post("/api/v1/learners/registrations/verify", headers=staff,
                       json={"reference": squat.json()["reference"], "id_number": victim_number})
    assert late.status_code == 400 and late.json()["code"] == "invalid_registration"
    assert token(client, victim_number, "squatter-pass-1").json()["code"] == "invalid_credentials"


def test_outlet_verifies_a_registration_and_the_chosen_password_works(client, staff_headers, engine) -> None:
    number = valid_id(serial="271")
    r = _register(client, number, "my-chosen-pass-1", name="李雷")
    staff = staff_headers("outlet_staff", org="OUT1")
    wrong_card = client.post("/api/v1/learners/registrations/verify", headers=staff,
                             json={"reference": r.json()["reference"], "id_number": valid_id(serial="272")})
    assert wrong_card.status_code == 400 and wrong_card.json()["code"] == "invalid_registration"
    typo = client.post("/api/v1/learners/registrations/verify", headers=staff,
                       json={"reference": "ZZZZ-ZZZZ-ZZZZ", "id_number": number})
    assert typo.status_code == 400 and typo.json()["code"] == "invalid_registration"
    ok = client.post("/api/v1/learners/registrations/verify", headers=staff,
                     json={"reference": r.json()["reference"].lower(), "id_number": number})
    assert ok.status_code == 201, ok.text
    assert ok.json()["name"] == "李雷"
    bearer(token(client, number, "my-chosen-pass-1"))
    bearer(token(client, ok.json()["account_no"], "my-chosen-pass-1"))
    assert [r[3] for r in audit_rows(engine, "learner.verify_registration")] == ["failed", "failed", "ok"]
    again = client.post("/api/v1/learners/registrations/verify", headers=staff,
                        json={"reference": r.json()["reference"], "id_number": number})
    assert again.status_code == 400  # a reference works once
    assert client.post("/api/v1/learners/registrations/verify", json={"reference": "x", "id_number": number},
                       headers=bearer(token(client, number, "my-chosen-pass-1"))).status_code == 403


def test_outlet_verification_of_an_active_account_resets_its_password(client, learner, staff_headers) -> None:
    person = learner()
    old = bearer(token(client, person.account_no))
    r = _register(client, person.id_number, "forgot-it-pass-1")
    ok = client.post("/api/v1/learners/registrations/verify", headers=staff_headers("branch_reviewer"),
                     json={"reference": r.json()["reference"], "id_number": person.id_number})
    assert ok.status_code == 200 and ok.json()["id"] == person.id
    assert client.get("/api/v1/me", headers=old).json()["code"] == "token_revoked"
    bearer(token(client, person.account_no, "forgot-it-pass-1"))


def test_registrations_expire_and_at_most_three_wait_per_number(client, staff_headers, engine,
                                                                monkeypatch) -> None:
    number = valid_id(serial="616")
    refs = [_register(client, number).json()["reference"] for _ in range(4)]
    assert _count(engine, "learner_registration") == 3
    staff = staff_headers("outlet_staff")
    oldest = client.post("/api/v1/learners/registrations/verify", headers=staff,
                         json={"reference": refs[0], "id_number": number})
    assert oldest.json()["code"] == "invalid_registration"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    monkeypatch.setattr(node.learners.service, "utcnow", lambda: later)
    expired = client.post("/api/v1/learners/registrations/verify", headers=staff,
                          json={"reference": refs[-1], "id_number": number})
    assert expired.json()["code"] == "invalid_registration"
    _register(client, valid_id(serial="617"))  # a new registration purges the expired ones
    assert _count(engine, "learner_registration") == 1


def test_registration_is_rate_limited_per_client_and_checks_the_number(client, ctx) -> None:
    good = valid_id(serial="700")
    bad = _register(client, good[:17] + ("0" if good[17] != "0" else "1"))
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_id_number"
    ctx.settings.ratelimit.registration = "2/minute"
    ctx.rate_limits.clear()
    assert [_register(client, valid_id(serial=str(s))).status_code for s in (701, 702, 703)] == [202, 202, 429]
