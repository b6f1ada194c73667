"""Activation codes: issued by outlet staff or the CLI, stored hashed, single use, expiring, replaced by a newer
one, every issue and use audited; the learner sets the password; resets work the same way (issue 12 item 1)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

import node.learners.service
from tests.auth.conftest import PASSWORD, audit_rows, bearer, token


def _issue(client, headers, learner_id: int):
    return client.post(f"/api/v1/learners/{learner_id}/activation-code", headers=headers)


def _activate(client, code: str, password: str = "my-own-pass-9", **who: str):
    return client.post("/api/v1/learners/activate", json={"code": code, "new_password": password, **who})


@pytest.fixture
def outlet(staff_headers):
    return staff_headers("outlet_staff", org="OUT1")


def test_an_account_opened_without_password_is_activated_with_a_code(client, learner, outlet, engine) -> None:
    person = learner(password=None)
    assert token(client, person.account_no, "my-own-pass-9").json()["code"] == "invalid_credentials"
    r = _issue(client, outlet, person.id)
    assert r.status_code == 201, r.text
    issued = r.json()
    assert issued["purpose"] == "activation" and issued["account_no"] == person.account_no
    letter = issued["letter"]
    assert letter.index("激活码") < letter.index("One-time code")  # Chinese first, then English
    assert issued["code"] in letter and person.account_no in letter and person.id_number not in letter
    assert person.id_number[:6] + "********" + person.id_number[-4:] in letter
    done = _activate(client, issued["code"], id_number=person.id_number)
    assert done.status_code == 200, done.text
    assert done.json()["account_no"] == person.account_no
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {done.json()['access_token']}"})
    assert me.json()["id"] == person.id
    bearer(token(client, person.id_number, "my-own-pass-9"))
    again = _activate(client, issued["code"], "another-pass-9", id_number=person.id_number)
    assert again.status_code == 400 and again.json()["code"] == "invalid_activation_code"
    # audited, and the code itself is nowhere in the database
    assert [r[3] for r in audit_rows(engine, "learner.activation_code")] == ["ok"]
    assert [r[3] for r in audit_rows(engine, "learner.activate")] == ["ok", "denied"]
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                assert issued["code"] not in repr(tuple(row)), table
                assert issued["code"].replace("-", "") not in repr(tuple(row)), table


def test_codes_are_typed_loosely_but_checked_exactly(client, learner, outlet) -> None:
    person = learner(password=None)
    code = _issue(client, outlet, person.id).json()["code"]
    typed = " " + code.lower().replace("-", "").replace("0", "o").replace("1", "l") + " "
    wrong = code[:-1] + ("2" if code[-1] != "2" else "3")
    assert _activate(client, wrong, account_no=person.account_no).status_code == 400
    assert _activate(client, typed, account_no=person.account_no).status_code == 200


def test_a_newer_code_replaces_the_older_and_codes_expire(client, learner, outlet, monkeypatch) -> None:
    person = learner(password=None)
    first = _issue(client, outlet, person.id).json()["code"]
    second = _issue(client, outlet, person.id).json()
    assert _activate(client, first, account_no=person.account_no).json()["code"] == "invalid_activation_code"
    expires = dt.datetime.fromisoformat(second["expires_at"])
    days = (expires - dt.datetime.now(dt.UTC)).days
    assert 29 <= days <= 30  # accounts.activation_code_ttl_days, default 30
    later = expires + dt.timedelta(seconds=1)
    monkeypatch.setattr(node.learners.service, "utcnow", lambda: later)
    assert _activate(client, second["code"], account_no=person.account_no).json()["code"] == \
        "invalid_activation_code"


def test_a_reset_code_keeps_the_old_password_until_used_then_revokes_tokens(client, learner, outlet) -> None:
    person = learner()
    old = bearer(token(client, person.account_no))
    issued = _issue(client, outlet, person.id).json()
    assert issued["purpose"] == "reset" and "密码重置" in issued["letter"]
    bearer(token(client, person.account_no))  # still works until the code is used
    assert _activate(client, issued["code"], "reset-pass-77", account_no=person.account_no).status_code == 200
    assert client.get("/api/v1/me", headers=old).json()["code"] == "token_revoked"
    assert token(client, person.account_no).status_code == 401
    bearer(token(client, person.account_no, "reset-pass-77"))


def test_guessing_codes_locks_activation_but_not_sign_in(client, learner, outlet) -> None:
    person = learner()
    unknown = {"account_no": "SH9999999999"}
    for who in ({"account_no": person.account_no}, unknown):
        answers = [_activate(client, "AAAA-BBBB-CCCC", **who) for _ in range(6)]
        assert [a.status_code for a in answers] == [400] * 5 + [429]
        assert {a.json()["message"] for a in answers[:5]} == {answers[0].json()["message"]}
        assert answers[5].json()["code"] == "account_locked" and "Retry-After" in answers[5].headers
    bearer(token(client, person.account_no))  # the sign-in is not locked by someone guessing codes
    code = _issue(client, outlet, person.id).json()["code"]
    assert _activate(client, code, account_no=person.account_no).status_code == 429  # until the lock ends


def test_only_outlet_and_branch_staff_issue_codes(client, learner, staff_headers) -> None:
    person = learner(password=None)
    for role in ("centre_reviewer", "auditor", "institution_uploader", "node_admin"):
        assert _issue(client, staff_headers(role), person.id).status_code == 403, role
    me = bearer(token(client, learner().account_no))
    assert _issue(client, me, person.id).status_code == 403
    assert _issue(client, {}, person.id).status_code == 401
    assert _issue(client, staff_headers("branch_reviewer"), person.id).status_code == 201
    assert _issue(client, staff_headers("branch_reviewer"), 987654).status_code == 404
    assert _issue(client, staff_headers("branch_reviewer"), 2**70).status_code == 422


def test_outlet_sets_the_password_at_the_desk_or_refuses_to_overwrite_one(client, learner, outlet,
                                                                          engine) -> None:
    imported = learner(password=None)
    body = {"id_number": imported.id_number, "name": "测试学员", "password": "typed-at-desk-1"}
    r = client.post("/api/v1/learners", json=body, headers=outlet)
    assert r.status_code == 200 and r.json()["id"] == imported.id
    bearer(token(client, imported.account_no, "typed-at-desk-1"))
    again = client.post("/api/v1/learners", json={**body, "password": "someone-else-2"}, headers=outlet)
    assert again.status_code == 409 and again.json()["code"] == "account_already_active"
    bearer(token(client, imported.account_no, "typed-at-desk-1"))
    details = [json.loads(r[4]) if isinstance(r[4], str) else r[4] for r in audit_rows(engine, "learner.open")]
    assert [{k: v for k, v in d.items() if k != "request_id"} for d in details] == [
        {"created": False, "activated": True}]


def test_cli_prints_a_code_and_letter_that_work(client, ctx, learner, settings, tmp_path, monkeypatch,
                                                engine) -> None:
    from typer.testing import CliRunner

    from node.cli import app as cli_app

    person = learner(password=None)
    config = tmp_path / "creditnode.toml"
    config.write_text("", encoding="utf-8")
    for key, value in {"NODE__DATA_DIR": str(settings.node.data_dir), "DATABASE__URL": settings.database_url,
                       "SECURITY__DATABASE_KEY": settings.security.database_key.get_secret_value(),
                       "SECURITY__DATABASE_KEY_ID": settings.security.database_key_id,
                       "SECURITY__BLIND_INDEX_KEY": settings.security.blind_index_key.get_secret_value(),
                       "SECURITY__TOKEN_SECRET": settings.security.token_secret.get_secret_value()}.items():
        monkeypatch.setenv(f"CREDITNODE_{key}", value)
    result = CliRunner().invoke(cli_app, ["learners", "activation-code", person.account_no, "--config", str(config)])
    assert result.exit_code == 0, result.output
    code = result.output.split("code: ", 1)[1].split()[0]
    assert "激活码" in result.output and "One-time code" in result.output and "测试学员" in result.output
    assert _activate(client, code, account_no=person.account_no).status_code == 200
    operator = audit_rows(engine, "learner.activation_code")
    assert operator[0][0] == "operator" and operator[0][2] == str(person.id)
    missing = CliRunner().invoke(cli_app, ["learners", "activation-code", "SH0000000000", "--config", str(config)])
    assert missing.exit_code == 2 and "no learner" in missing.output


def test_nul_bytes_are_refused_not_a_server_error(client, staff_headers) -> None:
    r = _activate(client, "AAAA-BBBB-CCCC", account_no="SH\x00001")
    assert r.status_code == 422 and r.json()["detail"]["errors"][0]["type"] == "invalid_text"  # at the edge
    r = client.get("/api/v1/learners/search", params={"account_no": "SH\x00001"},
                   headers=staff_headers("outlet_staff"))
    assert r.status_code == 422 and r.json()["detail"]["errors"][0]["type"] == "invalid_text", r.text
