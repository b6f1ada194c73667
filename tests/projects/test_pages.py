"""The project and RPL pages without a browser: every side (institution, centre, expert, learner, assessor) through
its forms — CSRF, errors next to the field, both languages — calling the same API steps (docs/projects.md)."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from node.deposits.schemas import ACHIEVEMENT_TYPES
from node.portal.i18n import catalogue
from node.projects.schemas import MODES
from tests.deposits.helpers import PDF
from tests.projects.test_project_end_to_end import DHVC, RULE_ID, proposed_rule

from node.projects.schemas import PROJECT_STATES as STATES  # noqa: E402


def _browser(app, headers: dict[str, str]) -> TestClient:
    """A browser whose session cookie holds the API token of `headers` (what signing in on /sign-in stores)."""
    client = TestClient(app, follow_redirects=False)
    client.cookies.set("cn_session", headers["Authorization"].split(" ", 1)[1])
    return client


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


def _version(page: str) -> str:
    return re.search(r'name="version" value="(\d+)"', page)[1]


def test_every_state_mode_and_kind_has_both_texts() -> None:
    zh, en = catalogue("zh"), catalogue("en")
    made = {f"project.state.{s}" for s in STATES} | {f"project.mode.{m}" for m in MODES} | {
        "project.vote.approve", "project.vote.reject"} | {f"rpl.state.{s}" for s in
                                                         ("draft", "submitted", "assessed", "confirmed", "rejected")} | {
        "rpl.kind.work_based", "rpl.kind.informal"} | {f"type.{t}" for t in ACHIEVEMENT_TYPES}
    assert sorted(made - set(zh)) == [] and sorted(made - set(en)) == []


def test_project_pages_from_application_to_signed_report(app, seeded, person) -> None:
    _, inst_h = person("institution_uploader", org="DHVC", kind="institution")
    _, admin_a_h = person("standards_admin", org="C01")
    _, admin_b_h = person("standards_admin", org="C01")
    expert_id, expert_h = person("expert", org="SH-OSTA", kind="institution")
    inst, admin_a, admin_b, expert = (_browser(app, h) for h in (inst_h, admin_a_h, admin_b_h, expert_h))

    hub = inst.get("/projects")
    assert hub.status_code == 200 and 'href="/projects/new"' in hub.text and "/centre/projects" not in hub.text
    form = inst.get("/projects/new")
    assert form.status_code == 200 and "申报双证融通项目" in form.text
    fields = {"title": "维修电工（三级）学分认可型项目", "programme": DHVC, "certificate": "VQ.MAINT_ELECTRICIAN",
              "level": "三级", "mode": "credit_recognition", "discipline": "机电", "description": "说明"}
    # no CSRF: refused before anything is done
    assert inst.post("/projects/new", data=fields | {"rules": "[]"}).status_code == 400
    bad = inst.post("/projects/new", data=fields | {"rules": "{not json", "csrf": _csrf(form.text)},
                    files={"evidence": ("方案.pdf", PDF, "application/pdf")})
    assert bad.status_code == 400 and 'id="rules-error"' in bad.text and "不是有效的 JSON" in bad.text
    wrong = inst.post("/projects/new", data=fields | {"rules": json.dumps(proposed_rule(mode="through_train")),
                                                      "csrf": _csrf(form.text)},
                      files={"evidence": ("方案.pdf", PDF, "application/pdf")})
    assert wrong.status_code == 400 and "申报内容未通过校验" in wrong.text
    done = inst.post("/projects/new", data=fields | {"rules": json.dumps([proposed_rule()]), "csrf": _csrf(form.text)},
                     files={"evidence": ("方案.pdf", PDF, "application/pdf")})
    assert done.status_code == 303, done.text
    url = done.headers["location"].split("?")[0]
    pid = int(url.rsplit("/", 1)[1])
    page = inst.get(url)
    assert "已提交，待组建专家小组" in page.text and "方案.pdf" in page.text
    assert f'href="/projects/{pid}"' in inst.get("/projects/mine").text

    # the centre: its queue, the panel form (experts listed), refusals shown on the page
    assert f'href="/centre/projects/{pid}"' in admin_a.get("/centre/projects?state=submitted").text
    centre_url = f"/centre/projects/{pid}"
    page = admin_a.get(centre_url)
    assert f'value="{expert_id}"' in page.text
    r = admin_a.post(centre_url, data={"action": "panel", "version": _version(page.text), "csrf": _csrf(page.text)})
    assert r.status_code == 400 and "请至少选择一位专家" in r.text
    r = admin_a.post(centre_url, data={"action": "panel", "version": _version(page.text), "csrf": _csrf(page.text),
                                       "experts": [str(expert_id)]})
    assert r.status_code == 303

    # the expert: the vote form, a missing comment is shown next to its field
    page = expert.get(f"/projects/{pid}")
    assert "提交评审意见" in page.text
    r = expert.post(f"/projects/{pid}/vote", data={"vote": "approve", "comment": "", "csrf": _csrf(page.text)})
    assert r.status_code == 400 and 'id="comment-error"' in r.text
    r = expert.post(f"/projects/{pid}/vote", data={"vote": "approve", "comment": "覆盖考核要求", "csrf": _csrf(page.text)})
    assert r.status_code == 303
    page = expert.get(f"/projects/{pid}")
    assert "覆盖考核要求" in page.text and "提交评审意见" not in page.text and "专家小组建议通过" in page.text
    assert f'href="/projects/{pid}"' in expert.get("/projects/reviews").text

    # publish by A, activation refused to A (maker-checker), done by B
    page = admin_a.get(centre_url)
    assert admin_a.post(centre_url, data={"action": "publish", "version": _version(page.text),
                                          "csrf": _csrf(page.text)}).status_code == 303
    page = admin_a.get(centre_url)
    r = admin_a.post(centre_url, data={"action": "activate", "version": _version(page.text), "csrf": _csrf(page.text)})
    assert r.status_code == 403 and "另一位标准管理员复核" in r.text
    page = admin_b.get(centre_url)
    assert admin_b.post(centre_url, data={"action": "activate", "version": _version(page.text),
                                          "csrf": _csrf(page.text)}).status_code == 303
    page = admin_b.get(centre_url)
    assert "已发布" in page.text and f"{RULE_ID} v1" in page.text
    r = admin_b.post(centre_url, data={"action": "suspend", "reason": "", "version": _version(page.text),
                                       "csrf": _csrf(page.text)})
    assert r.status_code == 400 and 'id="reason-error"' in r.text
    assert admin_b.post(centre_url, data={"action": "report", "csrf": _csrf(page.text)}).status_code == 303
    page = admin_b.get(centre_url)
    link = re.search(r'href="(/centre/projects/\d+/reports/\d+\.json)"', page.text)[1]
    report = admin_b.get(link)
    assert report.status_code == 200 and report.json()["type"] == ["VerifiableCredential", "ExemptionReport"]
    assert "attachment" in report.headers["content-disposition"]

    # English, and the other audiences' pages are refused
    assert "Published" in admin_b.get(centre_url + "?lang=en").text
    assert inst.get("/centre/projects").status_code == 403
    assert expert.get("/projects/new").status_code == 403
    assert TestClient(app).get("/projects/mine").status_code == 401


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_rpl_pages_from_portfolio_to_confirmation(app, seeded, learner, person, lang) -> None:
    me = learner()
    _, assessor_h = person("assessor", org="B01", kind="branch")
    _, centre_h = person("centre_reviewer", org="C01")
    mine, assessor, centre = (_browser(app, h) for h in (me.headers, assessor_h, centre_h))
    q = f"?lang={lang}"
    form = mine.get("/me/rpl/new" + q)
    assert form.status_code == 200
    fields = {"kind": "work_based", "title": "车间制图", "description": "绘制零件图三年", "hours": "600",
              "started_on": "2021-01-01", "ended_on": "2023-12-31", "csrf": _csrf(form.text)}
    r = mine.post("/me/rpl/new", data=fields | {"employer": ""}, files={"evidence": ("a.pdf", PDF, "application/pdf")})
    assert r.status_code == 400 and 'id="employer-error"' in r.text
    r = mine.post("/me/rpl/new", data=fields | {"employer": "示例公司"})
    assert r.status_code == 400 and 'id="evidence-error"' in r.text
    r = mine.post("/me/rpl/new", data=fields | {"employer": "示例公司"},
                  files={"evidence": ("a.pdf", PDF, "application/pdf")})
    assert r.status_code == 303
    url = r.headers["location"].split("?")[0]
    app_id = url.rsplit("/", 1)[1]
    assert ("待评估" if lang == "zh" else "Awaiting assessment") in mine.get(url).text

    page = assessor.get(f"/projects/rpl/{app_id}")
    assert 'name="action" value="assess"' in page.text
    base = {"action": "assess", "programme": "SUES-CE-MECHATRONICS", "comment": "达到要求", "csrf": _csrf(page.text),
            "version": _version(page.text)}
    r = assessor.post(f"/projects/rpl/{app_id}", data=base | {"course": "SUES-DRAWING", "credits": "9"})
    assert r.status_code == 400 and 'id="credits-error"' in r.text
    assert assessor.post(f"/projects/rpl/{app_id}", data=base | {"course": "SUES-DRAWING", "credits": "4"}
                         ).status_code == 303
    page = centre.get(f"/projects/rpl/{app_id}")
    assert 'value="confirm"' in page.text
    assert centre.post(f"/projects/rpl/{app_id}", data={"action": "confirm", "version": _version(page.text),
                                                         "csrf": _csrf(page.text)}).status_code == 303
    page = mine.get(url)
    assert ("已确认" if lang == "zh" else "Confirmed") in page.text and "/me/records/" in page.text
    assert f'href="/projects/rpl/{app_id}"' in assessor.get("/projects/rpl?state=confirmed").text
    assert mine.get("/projects/rpl").status_code == 403
