"""Catalogue versions, the rule lifecycle (maker-checker), the seed loader and the handbook, through the API."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from node.cli import app as cli_app
from tests.conftest import TEST_SECURITY
from tests.deposits.helpers import ok

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORK = ROOT / "config/standards/framework.json"
PILOT = ROOT / "config/standards/shanghai-pilot-2016.json"

RULE = {
    "id": "TEST-GS-CNC-3", "version": 1, "kind": "guidance", "title": "测试：数控铣工（三级）→ 机械制造工艺",
    "mode": "certificate_recognition", "effective_from": "2020-01-01", "effective_to": None,
    "applies_to": {"programmes": ["SUES-CE-MECHATRONICS"]},
    "condition": {"outcome": {"type": "vocational_qualification", "catalogue_code": "VQ.CNC_MILLING",
                              "min_level": "三级"}, "as": "cert"},
    "targets": [{"course": "SUES-MFG-PROC"}], "credits": {"from": "course"}, "grade": {"record": "免考"},
}


def _config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "creditnode.toml"
    sec = "\n".join(f'{k} = "{v}"' for k, v in TEST_SECURITY.items())
    path.write_text(f'[node]\nregion = "shanghai"\ndata_dir = "{tmp_path / "cli-data"}"\nmode = "test"\n\n'
                    f'[database]\nurl = "{database_url}"\n\n[security]\n{sec}\n', encoding="utf-8")
    return path


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("catalogue_entry", "standard_rule")}


def test_cli_loads_the_seeds_idempotently_as_a_system_action(tmp_path, database_url, engine, monkeypatch) -> None:
    config = _config(tmp_path, database_url)
    monkeypatch.setenv("CREDITNODE_CONFIG", str(config))
    runner = CliRunner()
    result = runner.invoke(cli_app, ["standards", "load", str(FRAMEWORK), str(PILOT), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "rules 19 new, 0 unchanged" in result.output
    first = _counts(engine)
    # 5 reference levels + 4 level maps; 6 institutions + 10 certificates + 10 programmes; 19 rules
    assert first == {"catalogue_entry": 35, "standard_rule": 19}
    with engine.connect() as conn:
        statuses = conn.execute(sa.text("SELECT DISTINCT status, created_by, approved_by FROM standard_rule")).all()
        loads = conn.execute(sa.text("SELECT actor_kind FROM audit_log WHERE action = 'standards.rule.load'")).all()
    assert [tuple(s) for s in statuses] == [("approved", "system:standards-loader", "system:standards-loader")]
    assert len(loads) == 19 and {a for (a,) in loads} == {"system"}
    again = runner.invoke(cli_app, ["standards", "load", str(FRAMEWORK), str(PILOT), "--config", str(config)])
    assert again.exit_code == 0 and "rules 0 new, 19 unchanged" in again.output
    assert _counts(engine) == first
    # a changed body for an approved version is refused
    changed = json.loads(PILOT.read_text(encoding="utf-8"))
    changed["rules"][0]["title"] = "改过的标题"
    bad = tmp_path / "changed.json"
    bad.write_text(json.dumps(changed, ensure_ascii=False), encoding="utf-8")
    refused = runner.invoke(cli_app, ["standards", "load", str(bad), "--config", str(config)])
    assert refused.exit_code == 2 and "stored with another body" in refused.output
    assert _counts(engine) == first


def _load(ctx) -> None:
    from node.standards.cli import load_files

    load_files(ctx.engine, [FRAMEWORK, PILOT])


def test_rule_lifecycle_maker_checker_and_illegal_transitions(client, ctx, engine, staff_headers) -> None:
    _load(ctx)
    maker, checker = staff_headers("standards_admin"), staff_headers("standards_admin")
    draft = ok(client.post("/api/v1/standards/rules", json={"body": RULE}, headers=maker), 201)
    assert draft["status"] == "draft" and draft["state"] == "draft"
    base = "/api/v1/standards/rules/TEST-GS-CNC-3/versions/1"
    r = client.post(f"{base}/approve", headers=maker)
    assert r.status_code == 403 and r.json()["code"] == "rule_self_approval"
    r = client.post(f"{base}/retire", headers=checker)
    assert r.status_code == 409 and r.json()["code"] == "rule_illegal_transition"
    approved = ok(client.post(f"{base}/approve", headers=checker))
    assert approved["status"] == "approved" and approved["state"] == "effective"
    assert approved["approved_by"] != approved["created_by"]
    for path in ("approve", "reject"):
        r = client.post(f"{base}/{path}", json={"reason": "x"}, headers=checker)
        assert r.status_code == 409 and r.json()["code"] == "rule_illegal_transition"
    r = client.put(base, json={"body": {**RULE, "title": "改"}}, headers=maker)
    assert r.status_code == 409 and r.json()["code"] == "rule_immutable"
    r = client.post("/api/v1/standards/rules", json={"body": RULE}, headers=maker)
    assert r.status_code == 409 and r.json()["code"] == "rule_version_exists"
    r = client.post("/api/v1/standards/rules", json={"body": {**RULE, "version": 3}}, headers=maker)
    assert r.status_code == 409 and r.json()["code"] == "rule_version_gap"
    # version 2: drafted, edited by the checker (who becomes its maker), approved by the first admin
    ok(client.post("/api/v1/standards/rules", json={"body": {**RULE, "version": 2}}, headers=maker), 201)
    edited = ok(client.put(base.replace("/1", "/2"), json={"body": {**RULE, "version": 2, "title": "第二版"}},
                           headers=checker))
    r = client.post(base.replace("/1", "/2") + "/approve", headers=checker)
    assert r.status_code == 403 and r.json()["code"] == "rule_self_approval"
    ok(client.post(base.replace("/1", "/2") + "/approve", headers=maker))
    assert edited["title"] == "第二版"
    retired = ok(client.post(f"{base}/retire", json={"reason": "superseded by version 2"}, headers=maker))
    assert retired["status"] == "retired"
    # the old version stays readable
    assert ok(client.get(base, headers=maker))["body"]["title"] == RULE["title"]
    # invalid bodies, unauthorised writers
    r = client.post("/api/v1/standards/rules", json={"body": {"id": "X"}}, headers=maker)
    assert r.status_code == 400 and r.json()["code"] == "rule_invalid" and r.json()["detail"]["errors"]
    r = client.post("/api/v1/standards/rules", json={"body": {**RULE, "id": "T-3", "credits": {"fixed": "1.2345"}}},
                    headers=maker)
    assert r.status_code == 400 and r.json()["code"] == "rule_invalid"
    r = client.post("/api/v1/standards/rules", json={"body": {**RULE, "id": "T-2"}},
                    headers=staff_headers("outlet_staff"))
    assert r.status_code == 403
    with engine.connect() as conn:
        actions = {a for (a,) in conn.execute(sa.text("SELECT action FROM audit_log WHERE outcome = 'ok'"))}
        failed = {a for (a,) in conn.execute(sa.text("SELECT action FROM audit_log WHERE outcome != 'ok'"))}
    assert {"standards.rule.create", "standards.rule.approve", "standards.rule.update",
            "standards.rule.retire"} <= actions
    assert "standards.rule.approve" in failed


def test_institution_rule_may_not_loosen_its_guidance(client, ctx, staff_headers) -> None:
    _load(ctx)
    maker, checker = staff_headers("standards_admin"), staff_headers("standards_admin")
    loose = {"id": "SUES-TEST-LOOSE", "version": 1, "kind": "institution", "institution_code": "SUES",
             "title": "放宽上限", "effective_from": "2016-09-01", "effective_to": None,
             "based_on": {"id": "SH-GS-CR-2016-CNCMILL-3", "version": 1}, "adopt": True,
             "caps": {"max_credits_per_source": "20"}}
    ok(client.post("/api/v1/standards/rules", json={"body": loose}, headers=maker), 201)
    r = client.post("/api/v1/standards/rules/SUES-TEST-LOOSE/versions/1/approve", headers=checker)
    assert r.status_code == 409 and r.json()["code"] == "rule_loosens_base"


def test_catalogue_versions_supersede_and_stay_readable(client, ctx, staff_headers) -> None:
    _load(ctx)
    admin, reader = staff_headers("standards_admin"), staff_headers("branch_reviewer")
    current = ok(client.get("/api/v1/standards/programmes/SUES-CE-MECHATRONICS", headers=reader))
    assert current["version"] == 1 and current["data"]["graduation_credits"] == "80"
    data = copy.deepcopy(current["data"])
    data["graduation_credits"] = "90"
    r = client.put("/api/v1/standards/programmes/SUES-CE-MECHATRONICS",
                   json={"effective_from": "2016-01-01", "data": data}, headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "catalogue_version_order"
    v2 = ok(client.put("/api/v1/standards/programmes/SUES-CE-MECHATRONICS",
                       json={"effective_from": "2025-09-01", "data": data}, headers=admin))
    assert v2["version"] == 2
    old = ok(client.get("/api/v1/standards/programmes/SUES-CE-MECHATRONICS", params={"on": "2024-01-01"},
                        headers=reader))
    assert old["version"] == 1 and old["effective_to"] == "2025-08-31"
    versions = ok(client.get("/api/v1/standards/programmes/SUES-CE-MECHATRONICS/versions", headers=reader))
    assert [v["version"] for v in versions] == [1, 2]
    ended = ok(client.post("/api/v1/standards/programmes/SUES-CE-MECHATRONICS/end",
                           json={"effective_to": "2026-12-31"}, headers=admin))
    assert ended["version"] == 2 and ended["effective_to"] == "2026-12-31"
    r = client.get("/api/v1/standards/programmes/SUES-CE-MECHATRONICS", params={"on": "2027-01-01"}, headers=reader)
    assert r.status_code == 404
    r = client.post("/api/v1/standards/programmes/SUES-CE-MECHATRONICS/end", json={"effective_to": "2020-01-01"},
                    headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "catalogue_version_order"
    r = client.put("/api/v1/standards/certificates/VQ.NEW", headers=admin,
                   json={"effective_from": "2026-01-01", "data": {"code": "VQ.NEW", "name_zh": "新证书",
                                                                   "levels": ["六级"]}})
    assert r.status_code == 400 and r.json()["code"] == "catalogue_invalid"
    bad = copy.deepcopy(data)
    bad["courses"][0]["credits"] = "1.2345"
    r = client.put("/api/v1/standards/programmes/SUES-CE-MECHATRONICS",
                   json={"effective_from": "2027-01-01", "data": bad}, headers=admin)
    assert r.status_code == 400 and "three decimal places" in json.dumps(r.json()["detail"], ensure_ascii=False)
    ok(client.put("/api/v1/standards/code-lists/education_level", headers=admin,
                  json={"effective_from": "2026-01-01",
                        "data": {"name": "education_level", "entries": [{"code": "20", "label": "专科"}]}}))
    lists = ok(client.get("/api/v1/standards/code-lists", headers=reader))
    assert [c["code"] for c in lists] == ["education_level"]
    maps = ok(client.get("/api/v1/standards/level-maps", headers=reader))
    assert {m["code"] for m in maps} == {"shanghai", "jiangsu", "zhejiang", "anhui"}
    r = client.put("/api/v1/standards/programmes/X", json={"effective_from": "2026-01-01", "data": data},
                   headers=reader)
    assert r.status_code == 403
    assert client.get("/api/v1/standards/programmes").status_code == 401


def test_handbook_is_public_markdown_and_html(client, ctx) -> None:
    _load(ctx)
    md = client.get("/api/v1/standards/handbook/SUES-CE-MECHATRONICS")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert "SUES-CR-2016-CNCMILL-3" in md.text and "机械制造工艺" in md.text
    page = client.get("/api/v1/standards/handbook/SUES-CE-MECHATRONICS", params={"format": "html"})
    assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
    assert client.get("/api/v1/standards/handbook/NOPE").status_code == 404


@pytest.mark.parametrize("field, value", [
    ("validity_years", 2**60),  # past what canonical JSON (I-JSON) can carry exactly
    ("validity_years", 101),
    ("note", 2**60),  # an extra field the shape lets through
    ("note", {"deep": [1.5e308, -(2**53) - 1]}),
])
def test_catalogue_numbers_out_of_range_are_refused_with_a_code(client, ctx, staff_headers, field, value) -> None:
    admin = staff_headers("standards_admin")
    r = client.put("/api/v1/standards/certificates/VQ.BIG", headers=admin,
                   json={"effective_from": "2026-01-01",
                         "data": {"code": "VQ.BIG", "name_zh": "大数证书", field: value}})
    assert r.status_code == 400 and r.json()["code"] == "catalogue_invalid", r.text


def test_a_course_of_too_many_hours_is_refused(client, ctx, staff_headers) -> None:
    _load(ctx)
    admin, reader = staff_headers("standards_admin"), staff_headers("branch_reviewer")
    data = copy.deepcopy(ok(client.get("/api/v1/standards/programmes/SUES-CE-MECHATRONICS", headers=reader))["data"])
    data["courses"][0]["hours"] = 2**60
    r = client.put("/api/v1/standards/programmes/SUES-CE-MECHATRONICS",
                   json={"effective_from": "2027-01-01", "data": data}, headers=admin)
    assert r.status_code == 400 and r.json()["code"] == "catalogue_invalid", r.text
