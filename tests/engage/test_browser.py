"""The engagement pages in a real browser (Chromium via Playwright) on a node served on 127.0.0.1: axe-core on
every page (no serious or critical violation), forms driven by label, screenshots at 1280 and 390 px in both
languages (under the run's tmp folder)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="no browser driver: pip install '.[test]' installs playwright")

from tests.conftest import valid_id  # noqa: E402
from tests.portal.conftest import LiveNode, browser, live_node, screenshot_dir  # noqa: E402, F401
from tests.portal.test_browser import _check  # noqa: E402

pytestmark = pytest.mark.slow

WIDTHS = (1280, 390)
SUES = "SUES-CE-MECHATRONICS"


def _learner(live_node: LiveNode) -> tuple[int, str]:
    from node.db import session_scope
    from node.learners.service import open_account
    from node.models import Achievement
    from node.models.engage import PointsEntry

    ctx = live_node.ctx
    with session_scope(ctx.engine) as s:
        learner, _ = open_account(s, ctx, id_type="resident_id", id_number=valid_id(serial="771"), name="王五",
                                  password="learner-pass-7")
        s.add(PointsEntry(learner_id=learner.id, points=130, kind="earned", rule_id="course-completed",
                          expires_on=dt.date.today() + dt.timedelta(days=40)))
        s.add(Achievement(learner_id=learner.id, type="vocational_qualification", issuer_code="SH-OSTA",
                          code="VQ.CNC_MILLING", title="数控铣工（三级）", level="三级", score_text="合格",
                          earned_on=dt.date(2023, 3, 1), source="individual"))
        return learner.id, learner.account_no


def _staff(live_node: LiveNode) -> None:
    from node.db import session_scope
    from node.org.service import create_organisation, create_staff

    with session_scope(live_node.ctx.engine) as s:
        create_organisation(s, code="SH-C", name="中心", kind="centre")
        create_organisation(s, code="B9", name="分部", kind="branch")
        create_staff(s, username="desk9", display_name="desk9", password="correct-horse-9",
                     roles=["outlet_staff"], organisation_code="B9")


def _signed_in(browser, live_node: LiveNode, width: int, username: str, password: str):
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=live_node.base,
                                  accept_downloads=True, locale="zh-CN")
    page = context.new_page()
    page.goto("/sign-in?lang=zh")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("form:has(#password) button[type=submit]").click()
    page.wait_for_url(lambda url: "/sign-in" not in url)
    return context, page


def test_the_learners_engagement_pages(browser, live_node: LiveNode, screenshot_dir: Path) -> None:
    _learner_id, account_no = _learner(live_node)
    for width in WIDTHS:
        context, page = _signed_in(browser, live_node, width, account_no, "learner-pass-7")
        for path, name in (("/me/points", "points"), ("/me/notices", "notices"),
                           ("/me/notices/preferences", "notice-prefs"), ("/me/data", "my-data")):
            for lang in ("zh", "en"):
                page.goto(f"{path}?lang={lang}")
                _check(page, screenshot_dir, f"engage-{name}")
        context.close()
    context, page = _signed_in(browser, live_node, 1280, account_no, "learner-pass-7")
    page.goto("/me/points?lang=zh")
    page.locator("form:has(input[value=library-card]) button").click()
    page.wait_for_url("**/me/points?redeemed=*")
    assert page.locator("#points-balance").inner_text() == "30"
    _check(page)
    page.goto("/me/notices/preferences?lang=zh")
    page.locator("#email_kinds-review_decided").check()
    page.get_by_role("button", name="保存设置").click()
    _check(page, screenshot_dir, "engage-notice-prefs-error")
    assert page.locator("#email-error").is_visible()
    page.get_by_label("电子邮箱").fill("wang@example.test")
    page.get_by_role("button", name="保存设置").click()
    page.wait_for_url("**saved=1")
    page.goto("/me/data?lang=zh")
    page.get_by_label("需要更正的内容").fill("等级应为二级")
    page.get_by_role("button", name="提交更正申请").click()
    page.wait_for_url("**/me/data?sent=1*")
    page.get_by_role("button", name="生成授权码").click()
    page.wait_for_load_state("load")
    _check(page, screenshot_dir, "engage-my-data-code")
    code = page.locator("#consent-code").inner_text()
    context.close()

    _staff(live_node)
    for width in WIDTHS:
        context, page = _signed_in(browser, live_node, width, "desk9", "correct-horse-9")
        for lang in ("zh", "en"):
            page.goto(f"/staff/counselling?lang={lang}")
            _check(page, screenshot_dir, "engage-counselling")
        if width == 1280:
            page.goto("/staff/counselling?lang=zh")
            page.get_by_label("学员账号").fill(account_no)
            page.get_by_label("授权码").fill(code)
            page.get_by_label("专业代码").fill(SUES)
            page.get_by_role("button", name="测算").click()
            page.wait_for_url("**/staff/counselling/*")
            result_url = page.url
            assert "SUES-CR-2016-CNCMILL-3" in page.content()
        for lang in ("zh", "en"):
            page.goto(f"{result_url}?lang={lang}")
            _check(page, screenshot_dir, "engage-counselling-result")
        context.close()
