"""The project and RPL pages in a real browser (Chromium through Playwright) against a node served on 127.0.0.1:
axe-core on every page (no serious or critical violation), a form filled and submitted without JavaScript, and
screenshots at desktop and phone widths in both languages (under the test run's tmp folder, never committed)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

pytest.importorskip("playwright", reason="no browser driver: pip install '.[test]' installs playwright")

from tests.deposits.helpers import PDF  # noqa: E402
from tests.portal.conftest import LiveNode, browser, live_node, screenshot_dir  # noqa: E402, F401
from tests.portal.test_browser import WIDTHS, _check  # noqa: E402
from tests.projects.conftest import make_person  # noqa: E402
from tests.projects.test_project_end_to_end import DHVC, proposed_rule  # noqa: E402

pytestmark = pytest.mark.slow


def _page(browser, live: LiveNode, headers: dict[str, str], width: int = 1280):  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=live.base, locale="zh-CN")
    context.add_cookies([{"name": "cn_session", "value": headers["Authorization"].split(" ", 1)[1],
                          "url": live.base}])
    return context, context.new_page()


def _every_width_and_language(browser, live: LiveNode, headers, url: str, shots: Path, name: str) -> None:  # noqa: F811
    for width in WIDTHS.values():
        for lang in ("zh", "en"):
            context, page = _page(browser, live, headers, width)
            page.goto(f"{url}{'&' if '?' in url else '?'}lang={lang}")
            assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh" else "en")
            _check(page, shots, name)
            context.close()


def test_project_and_rpl_pages_are_accessible(browser, live_node: LiveNode, screenshot_dir: Path,  # noqa: F811
                                              tmp_path: Path) -> None:
    ctx = live_node.ctx
    _, inst = make_person(ctx, "institution_uploader", org="DHVC", kind="institution", name="bw-inst")
    _, admin = make_person(ctx, "standards_admin", org="C01", name="bw-admin")
    expert_id, expert = make_person(ctx, "expert", org="SH-OSTA", kind="institution", name="bw-expert")
    _, assessor = make_person(ctx, "assessor", "centre_reviewer", org="C01", name="bw-assessor")

    # the institution fills the form in the browser (no JavaScript needed), with an error first
    context, page = _page(browser, live_node, inst)
    page.goto("/projects/new")
    _check(page, screenshot_dir, "project-new")
    page.fill("#title", "维修电工（三级）学分认可型双证融通")
    page.fill("#programme", DHVC)
    page.fill("#certificate", "VQ.MAINT_ELECTRICIAN")
    page.select_option("#level", "三级")
    page.fill("#discipline", "机电")
    page.fill("#rules", "{oops")
    evidence = tmp_path / "方案.pdf"
    evidence.write_bytes(PDF)
    page.set_input_files("#evidence", str(evidence))
    page.click("form[action=\"/projects/new\"] button[type=submit]")
    assert page.locator("#rules-error").is_visible()
    _check(page, screenshot_dir, "project-new-error")
    page.fill("#rules", json.dumps([proposed_rule()], ensure_ascii=False, indent=1))
    page.set_input_files("#evidence", str(evidence))
    page.click("form[action=\"/projects/new\"] button[type=submit]")
    assert page.locator("#project-state").inner_text() == "已提交，待组建专家小组"
    project_url = page.url.split("?")[0]
    pid = int(project_url.rsplit("/", 1)[1])
    context.close()

    # the panel assigned and a vote given through the API, so each page is seen in a later state
    with httpx.Client(base_url=live_node.base, timeout=30) as api:
        project = api.get(f"/api/v1/projects/{pid}", headers=admin).json()
        _every_width_and_language(browser, live_node, admin, f"/centre/projects/{pid}", screenshot_dir,
                                  "project-centre-panel")
        r = api.post(f"/api/v1/projects/{pid}/panel", json={"experts": [expert_id], "version": project["version"]},
                     headers=admin)
        assert r.status_code == 200, r.text
        _every_width_and_language(browser, live_node, expert, f"/projects/{pid}", screenshot_dir, "project-vote")
        assert api.post(f"/api/v1/projects/{pid}/votes", json={"vote": "approve", "comment": "课程覆盖考核要求"},
                        headers=expert).status_code == 201
        _every_width_and_language(browser, live_node, admin, f"/centre/projects/{pid}", screenshot_dir,
                                  "project-centre-recommended")
        _every_width_and_language(browser, live_node, admin, "/centre/projects", screenshot_dir, "project-queue")
        _every_width_and_language(browser, live_node, inst, "/projects", screenshot_dir, "project-hub")

        # RPL: a learner's application, seen by the learner and by the assessor
        from tests.deposits.helpers import register_learner

        class _Client:  # register_learner needs the app and a client that can sign in
            def __init__(self, app, http) -> None:
                self.app, self._http = app, http

            def post(self, *a, **kw):
                return self._http.post(*a, **kw)

        me = register_learner(_Client(live_node.app, api), serial="771")
        created = api.post("/api/v1/me/rpl", headers=me.headers, json={
            "kind": "work_based", "title": "车间制图三年", "description": "绘制零件图和装配图。", "employer": "示例公司",
            "hours": "600"}).json()
        assert api.post(f"/api/v1/me/rpl/{created['id']}/evidence", headers=me.headers,
                        files={"file": ("a.pdf", PDF, "application/pdf")}).status_code == 201
        assert api.post(f"/api/v1/me/rpl/{created['id']}/submit", headers=me.headers,
                        json={"version": created["version"] + 1}).status_code == 200
    _every_width_and_language(browser, live_node, me.headers, "/me/rpl/new", screenshot_dir, "rpl-new")
    _every_width_and_language(browser, live_node, me.headers, f"/me/rpl/{created['id']}", screenshot_dir,
                              "rpl-learner")
    _every_width_and_language(browser, live_node, assessor, f"/projects/rpl/{created['id']}", screenshot_dir,
                              "rpl-assess")
