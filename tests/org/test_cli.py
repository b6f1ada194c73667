"""`creditnode org|staff|apikeys|roles`: an operator sets a region up from the shell, every change audited."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from node.cli import app as cli_app
from tests.conftest import TEST_SECURITY
from tests.org.conftest import sign_in


@pytest.fixture
def run(tmp_path: Path, database_url: str, centre, monkeypatch):
    config = tmp_path / "creditnode.toml"
    sec = "\n".join(f'{k} = "{v}"' for k, v in TEST_SECURITY.items())
    config.write_text(f'[node]\nregion = "shanghai"\ndata_dir = "{tmp_path / "cli-data"}"\nmode = "test"\n\n'
                      f'[database]\nurl = "{database_url}"\n\n[security]\n{sec}\n', encoding="utf-8")
    monkeypatch.setenv("CREDITNODE_CONFIG", str(config))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, input: str | None = None) -> str:
        result = runner.invoke(cli_app, list(args), input=input)
        assert result.exit_code == code, (args, result.output)
        return result.output

    return invoke


def _operator_actions(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT actor_kind, action, target_id, detail FROM audit_log "
                                    "WHERE actor_kind = 'operator' ORDER BY id")).all()
    return [(k, a, t, json.loads(d) if isinstance(d, str) else d) for k, a, t, d in rows]


def test_an_operator_builds_the_tree_and_the_staff(run, centre, admin, client, engine) -> None:
    kinds = run("org", "kinds")
    for word in ("centre", "branch", "outlet", "institution", "university", "exam_authority", "appraisal_centre",
                 "training_body"):
        assert word in kinds
    assert "created B01" in run("org", "add", "B01", "--name", "黄浦区分部", "--kind", "branch")
    run("org", "add", "OUT1", "--name", "某大学网点", "--kind", "outlet", "--parent", "B01")
    run("org", "add", "U001", "--name", "上海示范大学", "--kind", "institution", "--institution-type", "university")
    assert "must be a branch" in run("org", "add", "X", "--name", "x", "--kind", "outlet", code=2)
    assert "kind" in run("org", "add", "X", "--name", "x", "--kind", "shop", code=2)
    assert "control characters" in run("org", "add", "X", "--name", "a\x00b", "--kind", "branch", code=2)
    listed = run("org", "list")
    assert [line.split()[0] for line in listed.splitlines()] == ["B01", "OUT1", centre, "U001"]
    assert re.search(r"OUT1\s+outlet\s+B01\s+某大学网点", listed)

    out = run("staff", "add", "rev.b01", "--name", "王审核", "--org", "B01", "--role", "branch_reviewer")
    password = re.search(r"initial password \(shown once\): (\S+)", out).group(1)
    sign_in(client, "rev.b01", password)
    run("staff", "add", "clerk", "--name", "李柜员", "--org", "OUT1", "--role", "outlet_staff", "--prompt-password",
        input="typed-pass-123\ntyped-pass-123\n")
    sign_in(client, "clerk", "typed-pass-123")
    assert "role_not_allowed" in run("staff", "add", "x.y", "--name", "x", "--org", "B01", "--role",
                                     "centre_reviewer", code=2)
    assert "unknown roles" in run("staff", "add", "x.y", "--name", "x", "--org", "B01", "--role", "boss", code=2)
    assert "branch_reviewer" in run("staff", "roles", "rev.b01")
    assert "branch_reviewer → branch_reviewer, outlet_staff" in run("staff", "roles", "rev.b01", "--add",
                                                                    "outlet_staff")
    run("staff", "roles", "rev.b01", "--remove", "outlet_staff")
    assert "cannot hold branch_reviewer" in run("staff", "roles", "clerk", "--set", "outlet_staff", "--set",
                                                "branch_reviewer", code=2)  # first review is the branch's
    assert re.search(r"clerk\s+OUT1\s+outlet_staff\s+李柜员", run("staff", "list", "--org", "OUT1"))
    assert "rev.b01" in run("staff", "list", "--role", "branch_reviewer")

    reset = run("staff", "reset-password", "rev.b01")
    new_password = re.search(r"new password \(shown once\): (\S+)", reset).group(1)
    assert client.post("/api/v1/auth/token", data={"username": "rev.b01", "password": password}).status_code == 401
    token = sign_in(client, "rev.b01", new_password)
    run("staff", "disable", "rev.b01")
    assert client.get("/api/v1/deposit-applications", headers=token).json()["code"] == "account_disabled"
    assert "rev.b01" not in run("staff", "list") and "(disabled)" in run("staff", "list", "--all")
    run("staff", "enable", "rev.b01")
    # disabling revoked the tokens: re-enabled, the account signs in afresh (an old token never comes back)
    assert client.get("/api/v1/deposit-applications", headers=token).json()["code"] == "token_revoked"
    token = sign_in(client, "rev.b01", new_password)
    assert client.get("/api/v1/deposit-applications", headers=token).status_code == 200
    assert "last_admin" in run("staff", "disable", "admin", code=2)

    run("org", "update", "OUT1", "--name", "某大学学分银行网点")
    run("org", "add", "B02", "--name", "徐汇区分部", "--kind", "branch")
    assert re.search(r"OUT1\s+outlet\s+B02", run("org", "update", "OUT1", "--parent", "B02"))
    assert "nothing to change" in run("org", "update", "OUT1", code=2)
    assert "organisation_has_children" in run("org", "disable", "B02", code=2)
    clerk = sign_in(client, "clerk", "typed-pass-123")
    run("org", "disable", "OUT1")
    assert client.get("/api/v1/deposit-applications", headers=clerk).json()["code"] == "organisation_disabled"
    # nor can its staff sign in while it is deactivated (the same answer as a wrong password)
    assert client.post("/api/v1/auth/token", data={"username": "clerk", "password": "typed-pass-123"}).json()[
        "code"] == "invalid_credentials"
    assert "OUT1" not in run("org", "list") and "(deactivated)" in run("org", "list", "--all")
    run("org", "enable", "OUT1")

    actions = [a for _, a, _, _ in _operator_actions(engine)]
    assert actions == ["organisation.create"] * 3 + ["staff.create"] * 2 + ["staff.roles"] * 2 + [
        "staff.reset_password", "staff.disable", "staff.enable", "organisation.update", "organisation.create",
        "organisation.move", "organisation.deactivate", "organisation.activate"]
    every = json.dumps(_operator_actions(engine), ensure_ascii=False)
    assert password not in every and new_password not in every and "typed-pass-123" not in every


def test_an_operator_manages_api_keys(run, client, engine) -> None:
    run("org", "add", "U001", "--name", "上海示范大学", "--kind", "institution", "--institution-type", "university")
    out = run("apikeys", "create", "--org", "U001", "--label", "教务系统")
    key = out.strip().splitlines()[-1]
    prefix = key.split(".")[0]
    assert client.get("/api/v1/imports", headers={"X-API-Key": key}).status_code == 200
    assert re.search(rf"{prefix}\s+U001\s+active\s+教务系统", run("apikeys", "list"))
    assert f"{prefix} revoked" in run("apikeys", "revoke", prefix)
    assert "already revoked" in run("apikeys", "revoke", prefix)
    assert client.get("/api/v1/imports", headers={"X-API-Key": key}).json()["code"] == "invalid_api_key"
    assert prefix not in run("apikeys", "list") and "revoked" in run("apikeys", "list", "--all")
    assert "not_found" in run("apikeys", "revoke", "ffff", code=2)
    assert "unknown_institution" in run("apikeys", "create", "--org", "SH-CENTRE", code=2)
    assert [a for _, a, _, _ in _operator_actions(engine)] == ["organisation.create", "api_key.create",
                                                              "api_key.revoke", "api_key.revoke"]
    assert key not in json.dumps(_operator_actions(engine))


def test_roles_lists_each_role_with_what_it_may_do(run) -> None:
    out = run("roles")
    from node.roles import ROLE_DESCRIPTIONS

    for role, description in ROLE_DESCRIPTIONS.items():
        assert f"{role}: {description}" in out
    section = out.split("branch_reviewer:")[1].split("centre_reviewer:")[0]
    assert "POST   /api/v1/deposit-applications/{app_id}/decision" in section
    assert "/api/v1/admin/staff" not in section
    assert "anyone (no sign-in)" in out and "POST   /api/v1/auth/token" in out.split("anyone (no sign-in)")[1]
    short = run("roles", "--no-operations")
    assert "held in: centre" in short and "/api/v1/" not in short
