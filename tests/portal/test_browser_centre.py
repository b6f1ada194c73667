"""The centre's journey in a real browser (Chromium through Playwright) against a real node on 127.0.0.1:
a standards admin proposes a rule change and sees the highlighted difference, is refused approving it (four
eyes), a second admin approves it, the public handbook then applies the new version; an auditor filters the
audit log and finds both actions. axe-core on every page (no serious or critical violation); screenshots of the
centre's main pages at desktop and phone widths in both languages under the run's tmp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="no browser driver: pip install '.[test]' installs playwright")
from playwright.sync_api import expect  # noqa: E402

from tests.portal.conftest import LiveNode  # noqa: E402
from tests.portal.test_browser import WIDTHS, _check  # noqa: E402

pytestmark = pytest.mark.slow

RULE = "SH-GS-CR-2016-CNCMILL-3"
PASSWORD = "centre-pass-1"


@pytest.fixture(scope="module")
def new_context(browser, live_node: LiveNode):
    def make(width: int = 1280):
        return browser.new_context(viewport={"width": width, "height": 900}, base_url=live_node.base,
                                   locale="zh-CN")
    return make


@pytest.fixture(scope="module")
def people(live_node: LiveNode) -> None:
    from node.db import session_scope
    from node.org.service import create_organisation, create_staff

    with session_scope(live_node.ctx.engine) as s:
        create_organisation(s, code="SH-CENTRE", name="上海市终身教育学分银行管理中心", kind="centre")
    with session_scope(live_node.ctx.engine) as s:
        for username, role in (("std.alice", "standards_admin"), ("std.bob", "standards_admin"),
                               ("aud.carol", "auditor")):
            create_staff(s, username=username, display_name=username, password=PASSWORD, roles=[role],
                         organisation_code="SH-CENTRE")


def _sign_in(page, username: str) -> None:
    page.goto("/sign-in?lang=zh")
    page.get_by_label("身份证号或账号").fill(username)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state("load")
    page.goto("/centre")
    _check(page)


def _shots(new_context, signed_in, paths: list[tuple[str, str]], shots: Path) -> None:
    """Each page at both widths in both languages, in contexts carrying the signed-in session."""
    cookies = signed_in.cookies()
    for width in WIDTHS.values():
        for lang in ("zh", "en"):
            context = new_context(width)
            context.add_cookies(cookies)
            page = context.new_page()
            for path, name in paths:
                page.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}")
                _check(page, shots, f"centre-{name}")
            context.close()


def test_a_rule_change_through_maker_checker_and_the_audit_trail(
        live_node: LiveNode, people: None, new_context, screenshot_dir: Path) -> None:
    # the maker: opens the rule in force, proposes version 2 with a tighter cap
    alice = new_context()
    page = alice.new_page()
    _sign_in(page, "std.alice")
    page.get_by_role("link", name="转换标准").first.click()
    page.wait_for_url("**/centre/standards")
    _check(page)
    page.get_by_role("link", name=RULE).click()
    page.wait_for_url(f"**/centre/standards/rules/{RULE}/1")
    _check(page)
    expect(page.locator(".rule-lines")).to_contain_text("转换学分合计不超过专业毕业学分的 50%")
    page.get_by_role("link", name="以此版本为基础提出新版本").click()
    page.wait_for_url("**/centre/standards/propose?*")
    box = page.get_by_label("规则数据（JSON）")
    body = box.input_value()
    assert '"version": 2' in body
    # a typing mistake first: the message next to the field, the summary linking to it
    box.fill(body.replace('"kind": "guidance",', '"kind": "guidance"'))
    assert box.input_value() != body
    page.get_by_role("button", name="提交草稿").click()
    expect(page.locator("#body-error")).to_contain_text("这不是有效的 JSON")
    assert page.locator(".error-summary a[href='#body']").count() == 1
    _check(page, screenshot_dir, "centre-propose-error")
    page.get_by_label("规则数据（JSON）").fill(body.replace('"max_percent_of_graduation_credits": "50"',
                                                          '"max_percent_of_graduation_credits": "40"'))
    page.get_by_role("button", name="提交草稿").click()
    page.wait_for_url(f"**/centre/standards/rules/{RULE}/2?done=proposed")
    # the difference from the version in force, highlighted
    expect(page.locator(".diff del").first).to_contain_text("50%")
    expect(page.locator(".diff ins").first).to_contain_text("40%")
    assert page.locator(".diff del mark").first.inner_text() == "5"
    assert page.locator(".diff ins mark").first.inner_text() == "4"
    _check(page, screenshot_dir, "centre-diff")
    # four eyes: the maker's approval is refused, next to the button
    page.get_by_role("button", name="批准此版本").click()
    expect(page.locator("#approve-error")).to_contain_text("四眼原则")
    _check(page)
    _shots(new_context, alice, [("/centre", "home"), ("/centre/standards", "standards"),
                                (f"/centre/standards/rules/{RULE}/2", "rule-draft"),
                                ("/centre/standards/propose", "propose")], screenshot_dir)
    alice.close()

    # the checker approves; the version is in force
    bob = new_context()
    page = bob.new_page()
    _sign_in(page, "std.bob")
    page.goto("/centre/standards")
    page.locator("table").first.get_by_role("link", name=RULE).click()
    page.wait_for_url(f"**/centre/standards/rules/{RULE}/2")
    expect(page.locator(".diff ins").first).to_contain_text("40%")
    page.get_by_role("button", name="批准此版本").click()
    page.wait_for_url(f"**/centre/standards/rules/{RULE}/2?done=approved")
    expect(page.locator("#rule-state")).to_have_text("生效中")
    _check(page)
    # the public handbook applies version 2 now
    page.goto("/handbook?programme=SUES-CE-MECHATRONICS")
    article = page.locator("article.rule", has_text=f"规则 {RULE} 第 2 版")
    expect(article).to_have_count(1)
    expect(article).to_contain_text("转换学分不超过毕业学分的 40%")
    _check(page)
    bob.close()

    # the auditor finds both actions
    carol = new_context()
    page = carol.new_page()
    _sign_in(page, "aud.carol")
    page.get_by_role("link", name="审计日志").first.click()
    page.wait_for_url("**/centre/audit")
    page.get_by_label("操作", exact=True).fill("standards.rule.*")
    page.get_by_label("对象", exact=True).fill(f"standard_rule:{RULE}@2")
    page.get_by_role("button", name="筛选").click()
    page.wait_for_url("**/centre/audit?*")
    rows = page.locator("table.audit tbody tr")
    expect(rows).to_have_count(3)  # bob's approval, alice's refused approval, alice's proposal
    texts = [rows.nth(i).inner_text() for i in range(3)]
    assert "std.bob" in texts[0] and "standards.rule.approve" in texts[0] and "成功" in texts[0]
    assert "std.alice" in texts[1] and "standards.rule.approve" in texts[1] and "被拒绝" in texts[1]
    assert "std.alice" in texts[2] and "standards.rule.create" in texts[2]
    _check(page, screenshot_dir, "centre-audit")
    page.get_by_label("操作人", exact=True).fill("std.bob")
    page.get_by_role("button", name="筛选").click()
    expect(page.locator("table.audit tbody tr")).to_have_count(1)
    _shots(new_context, carol, [("/centre/audit?action=standards.rule.*", "audit")], screenshot_dir)
    carol.close()


def test_the_catalogue_a_programme_changed_and_a_certificate_added_and_retired(
        live_node: LiveNode, people: None, new_context, screenshot_dir: Path) -> None:
    alice = new_context()
    page = alice.new_page()
    _sign_in(page, "std.alice")
    page.get_by_role("link", name="专业与证书目录").first.click()
    page.wait_for_url("**/centre/catalogue")
    _check(page)
    page.get_by_role("link", name="SOU-AUTO-SVC").click()
    page.wait_for_url("**/centre/catalogue/programmes/SOU-AUTO-SVC")
    _check(page)
    # a new version from 2030 on: one course's credits mistyped first, the message next to that field
    page.get_by_label("生效日期").fill("2030-09-01")
    credits = page.locator("#c0_credits")
    old = credits.input_value()
    credits.fill("2.5555")
    page.get_by_role("button", name="保存为新版本").click()
    expect(page.locator("#c0_credits-error")).to_contain_text("最多三位小数")
    assert page.locator(".error-summary a[href='#c0_credits']").count() == 1
    expect(page.locator("#c0_credits")).to_have_attribute("aria-invalid", "true")
    _check(page, screenshot_dir, "centre-catalogue-error")
    page.locator("#c0_credits").fill(str(int(float(old)) + 1))
    page.get_by_role("button", name="保存为新版本").click()
    page.wait_for_url("**/centre/catalogue/programmes/SOU-AUTO-SVC?done=edited")
    expect(page.get_by_role("status")).to_contain_text("已保存第 2 版")
    _check(page)
    # a new certificate, then retired
    page.goto("/centre/catalogue?kind=certificates")
    page.get_by_role("link", name="新建证书").click()
    page.get_by_label("代码", exact=True).fill("VQ.ROBOT_OPS")
    page.get_by_label("名称（中文）").fill("工业机器人系统操作员")
    page.get_by_label("四级").check()
    page.get_by_label("三级").check()
    page.get_by_label("生效日期").fill("2026-01-01")
    page.get_by_role("button", name="保存", exact=True).click()
    page.wait_for_url("**/centre/catalogue/certificates/VQ.ROBOT_OPS?done=created")
    page.get_by_label("停用日期（含当天）").fill("2026-06-30")
    page.get_by_role("button", name="停用", exact=True).click()
    page.wait_for_url("**/centre/catalogue/certificates/VQ.ROBOT_OPS?done=retired")
    expect(page.locator(".state-ended").first).to_be_visible()
    _check(page)
    _shots(new_context, alice, [("/centre/catalogue", "catalogue"),
                                ("/centre/catalogue/programmes/SOU-AUTO-SVC", "catalogue-programme"),
                                ("/centre/catalogue/certificates/new", "catalogue-new-certificate")],
           screenshot_dir)
    alice.close()
