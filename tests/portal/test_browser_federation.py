"""Journey 5 in a real browser: two regions' federation administrators negotiate an agreement through their
portals — Shanghai proposes, Zhejiang counter-proposes, Shanghai sees the counter-proposal side by side with its
own version (differences marked) and signs — and a learner's transfer from Shanghai to Zhejiang then completes
under that agreement, seen from both sides. Two live nodes on 127.0.0.1 (tests/portal/federation_nodes.py),
federated with each other over real signed HTTP. axe-core on every page (no serious or critical violation);
screenshots of the federation pages at desktop and phone widths in both languages.

The learner's own steps (holder binding, consent, transfer request) go through the learner's pages too. Then
Shanghai amends the agreement in force (the changes shown before they are sent) and Zhejiang signs it, and a
membership proposal is proposed, signed at both nodes (its file carried from one to the other) and installed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="no browser driver: pip install '.[test]' installs playwright")
from playwright.sync_api import expect  # noqa: E402

from tests.conftest import valid_id  # noqa: E402
from tests.portal.federation_nodes import PASSWORD, FederatedNodes, federated_nodes  # noqa: E402, F401
from tests.portal.test_browser import WIDTHS, _check  # noqa: E402

pytestmark = pytest.mark.slow

AGREEMENT = "urn:creditnode:agreement:shanghai-zhejiang-portal"
LEARNER_PASSWORD = "learner-pass-7"


def _context(browser, base: str, width: int = 1280, state: dict | None = None):
    return browser.new_context(viewport={"width": width, "height": 900}, base_url=base, locale="zh-CN",
                               accept_downloads=True, storage_state=state)


def _sign_in(browser, base: str, username: str, password: str):
    context = _context(browser, base)
    page = context.new_page()
    page.goto("/sign-in")
    page.get_by_label("身份证号或账号").fill(username)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state("load")
    return context, page


def _shots(browser, base: str, state: dict, paths: list[tuple[str, str]], shots: Path) -> None:
    """Each page at both widths, in both languages, checked with axe-core and saved as a screenshot."""
    for width in WIDTHS.values():
        context = _context(browser, base, width, state)
        page = context.new_page()
        for path, name in paths:
            for lang in ("zh", "en"):
                page.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}")
                assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh" else "en")
                _check(page, shots, name)
        context.close()


def _learner(fed: FederatedNodes) -> dict:
    """A person with an account in both regions and a course deposited in Shanghai (64 hours)."""
    from node.db import session_scope
    from node.learners.service import open_account
    from node.ledger.service import EventSpec, append_events
    from node.models import Achievement

    id_number = valid_id(serial="715")
    with session_scope(fed.a.ctx.engine) as s:
        learner, _ = open_account(s, fed.a.ctx, id_type="resident_id", id_number=id_number, name="王小明",
                                  password=LEARNER_PASSWORD)
        achievement = Achievement(learner_id=learner.id, type="degree_course", issuer_code="U001",
                                  issuer_name="上海开放大学", code="MATH101", title="高等数学", credits=Decimal(4),
                                  hours=Decimal(64), score_text="88", score_value=Decimal(88),
                                  earned_on=dt.date(2025, 1, 15), term="202501", source="individual")
        s.add(achievement)
        s.flush()
        append_events(s, [EventSpec(kind="achievement.deposited", learner_id=learner.id,
                                    achievement_id=achievement.id, pseudonym=learner.pseudonym,
                                    data={"achievement": achievement.id, "title": "高等数学", "credits": "4"})])
        origin_account, achievement_id = learner.account_no, achievement.id
    with session_scope(fed.b.ctx.engine) as s:
        learner, _ = open_account(s, fed.b.ctx, id_type="resident_id", id_number=id_number, name="王小明",
                                  password=LEARNER_PASSWORD)
        destination_account = learner.account_no
    return {"origin_account": origin_account, "destination_account": destination_account,
            "achievement_id": achievement_id}


def test_two_regions_negotiate_an_agreement_and_a_transfer_completes(
        browser, federated_nodes: FederatedNodes, screenshot_dir: Path) -> None:
    fed = federated_nodes
    shots = screenshot_dir
    at_a, page_a = _sign_in(browser, fed.a.base, "fedadmin", PASSWORD)
    at_b, page_b = _sign_in(browser, fed.b.base, "fedadmin", PASSWORD)

    # Shanghai proposes: first a form with mistakes (each error next to its field), then the terms
    page_a.goto("/federation")
    _check(page_a, shots, "fed-home")
    page_a.get_by_role("link", name="互认协议").first.click()
    page_a.wait_for_url("**/federation/agreements")
    page_a.get_by_role("link", name="提出新协议").click()
    page_a.wait_for_url("**/federation/agreements/new")
    page_a.get_by_label("协议编号").fill("x")
    page_a.get_by_role("button", name="签署并发送提案").click()
    expect(page_a.locator("#agreement-error")).to_contain_text("请填写协议编号")
    expect(page_a.locator("#partner-error")).to_contain_text("请选择对方地区")
    expect(page_a.locator("#hpc_partner-error")).to_be_visible()
    assert page_a.locator(".error-summary a[href='#partner']").count() == 1
    _check(page_a, shots, "fed-propose-error")
    page_a.get_by_label("协议编号").fill(AGREEMENT)
    page_a.get_by_label("协议名称（可选）").fill("沪浙学分互认协议")
    page_a.get_by_label("对方地区", exact=True).select_option("zhejiang")
    page_a.get_by_label("本地区每学分学时").fill("18")
    page_a.get_by_label("对方地区每学分学时").fill("16")
    page_a.get_by_label("生效日期", exact=True).fill((dt.date.today() - dt.timedelta(days=1)).isoformat())
    page_a.locator("#m0_from").select_option("shanghai")
    page_a.locator("#m0_type").select_option("degree_course")
    page_a.locator("#m0_code").fill("MATH101")
    page_a.locator("#m0_to_code").fill("ZJ-M101")
    page_a.locator("#m0_to_title").fill("高等数学（互认）")
    page_a.get_by_role("button", name="签署并发送提案").click()
    page_a.wait_for_url("**/federation/agreements/*?done=propose")
    expect(page_a.locator("#head-state")).to_contain_text("等待签署：浙江")
    _check(page_a, shots, "fed-proposed")
    assert fed.deliver() == 1  # agreement.propose, signed by Shanghai

    # Zhejiang counter-proposes: its own hours per credit and the recognised course's title
    page_b.goto("/federation/agreements")
    page_b.get_by_role("link", name="沪浙学分互认协议").click()
    expect(page_b.get_by_role("button", name="签署第 1 版")).to_be_visible()
    _check(page_b)
    page_b.get_by_role("link", name="修改条款并提出反提案").click()
    page_b.wait_for_url("**/counter")
    _check(page_b, shots, "fed-counter")
    expect(page_b.get_by_label("本地区每学分学时")).to_have_value("16")
    page_b.get_by_label("本地区每学分学时").fill("17")
    page_b.locator("#m0_to_title").fill("高等数学（一）")
    page_b.get_by_role("button", name="签署并发送反提案").click()
    page_b.wait_for_url("**/federation/agreements/*?done=counter")
    assert fed.deliver() == 1  # agreement.propose of version 2, signed by Zhejiang

    # Shanghai sees version 2 beside version 1, the differences marked, and signs it
    page_a.goto(f"/federation/agreements/{AGREEMENT}")
    changes = page_a.locator("table.changes tbody tr")
    expect(changes).to_have_count(2)
    expect(page_a.locator("table.changes del").first).to_have_text("16")
    expect(page_a.locator("table.changes ins").first).to_have_text("17")
    expect(page_a.locator(".version-column.old del")).to_have_text(["16", "互认"])
    expect(page_a.locator(".version-column.new ins")).to_have_text(["17", "一"])
    _check(page_a)
    state = at_a.storage_state()
    _shots(browser, fed.a.base, state, [(f"/federation/agreements/{AGREEMENT}", "fed-counter-diff")], shots)
    sign = page_a.get_by_role("button", name="签署第 2 版")  # keyboard only: focus and Enter
    sign.focus()
    page_a.keyboard.press("Enter")
    page_a.wait_for_url("**/federation/agreements/*?done=sign")
    expect(page_a.locator("#head-state")).to_contain_text("各方均已签署")
    assert fed.deliver() == 1  # agreement.sign: both proofs on the same hash
    for page in (page_a, page_b):
        page.goto(f"/federation/agreements/{AGREEMENT}")
        expect(page.locator("#in-force")).to_have_text("第 2 版 · 有效")
    # both regions' proofs are on version 2: Zhejiang's from its counter-proposal, Shanghai's from the button
    expect(page_b.locator("table.versions tbody tr").first).to_contain_text("上海、浙江")
    page_b.get_by_role("link", name="重新验证全部签名").click()
    expect(page_b.locator("#verify-result")).to_have_text("哈希链和全部签名验证通过")
    _check(page_b, shots, "fed-verify")

    # a learner's transfer from Shanghai to Zhejiang under the agreement in force, through the learner's pages:
    # a holder binding at Zhejiang, consent at Shanghai, the transfer requested at Zhejiang
    person = _learner(fed)
    origin, page_o = _sign_in(browser, fed.a.base, person["origin_account"], LEARNER_PASSWORD)
    destination, page_d = _sign_in(browser, fed.b.base, person["destination_account"], LEARNER_PASSWORD)
    page_d.goto("/me/transfers/new")
    page_d.get_by_label("成果所在地区").select_option("shanghai")
    page_d.locator("#get-binding").click()
    binding = page_d.locator("#binding").input_value()
    assert binding.startswith("hb1.")
    page_o.goto("/me/consents/new")
    page_o.get_by_label("授权给哪个地区").select_option("zhejiang")
    page_o.locator(f"#record-{person['achievement_id']}").check()
    page_o.get_by_label("用途").fill("升学学分认定")
    page_o.get_by_label("有效天数").fill("30")
    page_o.get_by_label("绑定码").fill(binding)
    page_o.locator("#grant-consent").click()
    page_o.wait_for_url("**/me/consents/*?granted=1")
    consent_url = page_o.url.split("?")[0].replace(fed.a.base, "")
    with page_o.expect_download() as download:
        page_o.get_by_role("link", name="下载授权书").click()
    consent = Path(download.value.path()).read_text(encoding="utf-8")
    page_d.goto("/me/transfers/new")
    page_d.locator("#consent").fill(consent)
    page_d.locator("#request-transfer").click()
    page_d.wait_for_url("**/me/transfers/*?requested=1", timeout=60_000)
    assert page_d.locator("#transfer-state").inner_text() == "已完成"
    # 64 h ÷ 17 h per credit: the counter-proposed version 2 is the one in force
    assert Decimal(page_d.locator("#recognised-credits").inner_text()) == Decimal("3.765")
    _check(page_d)
    assert fed.deliver() == 1  # the signed receipt, Zhejiang → Shanghai
    # seen from Shanghai by the learner: the consent holds Zhejiang's receipt
    page_o.goto(consent_url)
    assert "回执 urn:uuid:" in page_o.locator("#receipts").inner_text()
    _check(page_o)
    origin.close()
    destination.close()

    # seen from Zhejiang: the learner's archive holds the recognised course; its outbox delivered the receipt
    learner, page = _sign_in(browser, fed.b.base, person["destination_account"], LEARNER_PASSWORD)
    page.wait_for_url("**/me")
    expect(page.get_by_role("link", name="高等数学（一）")).to_have_count(1)
    assert Decimal(page.locator("[data-total=credits]").inner_text()) == Decimal("3.765")
    _check(page)
    learner.close()
    page_b.goto("/federation/outbox")
    expect(page_b.locator("#peer-shanghai")).to_be_visible()
    assert "已送达: 2" in page_b.locator("section.peer").first.inner_text()  # the counter-proposal, the receipt
    # seen from Shanghai: its outbox delivered the proposal and the signature; the consent holds the receipt
    page_a.goto("/federation/outbox")
    assert "已送达: 2" in page_a.locator("section.peer").first.inner_text()

    # Shanghai amends the agreement in force: the changes are shown beside version 2 before anything is sent
    page_a.goto(f"/federation/agreements/{AGREEMENT}")
    page_a.get_by_role("link", name="修改生效中的协议").click()
    page_a.wait_for_url("**/amend")
    _check(page_a)
    page_a.get_by_label("本地区每学分学时").fill("20")
    page_a.get_by_role("button", name="查看修改内容").click()
    expect(page_a.locator("table.changes del").first).to_have_text("18")
    expect(page_a.locator("table.changes ins").first).to_have_text("20")
    _check(page_a, shots, "fed-amend-preview")
    _shots(browser, fed.a.base, at_a.storage_state(), [(f"/federation/agreements/{AGREEMENT}/amend", "fed-amend")],
           shots)
    page_a.get_by_role("button", name="确认修改，签署并发送").click()
    page_a.wait_for_url("**/federation/agreements/*?done=amend")
    expect(page_a.locator("#head-state")).to_contain_text("等待签署：浙江")
    assert fed.deliver() == 1
    page_b.goto(f"/federation/agreements/{AGREEMENT}")
    expect(page_b.locator("table.changes ins").first).to_have_text("20")
    page_b.get_by_role("button", name="签署第 3 版").click()
    page_b.wait_for_url("**/federation/agreements/*?done=sign")
    expect(page_b.locator("#in-force")).to_have_text("第 3 版 · 有效")
    assert fed.deliver() == 1

    # a membership proposal: Shanghai proposes and signs, Zhejiang adds its proof from the file, Shanghai installs
    page_a.goto("/federation/membership")
    page_a.get_by_role("link", name="提出下一版成员名单").click()
    page_a.wait_for_url("**/federation/membership/propose")
    _check(page_a)
    box = page_a.get_by_label("提案（JSON）")
    box.fill(box.input_value().replace('"version": 2,', '"version": 2, "note": "2027 年度复核",'))
    page_a.get_by_role("button", name="提交提案").click()
    page_a.wait_for_url("**/federation/membership?done=propose*")
    expect(page_a.locator("section.proposal")).to_contain_text("note")
    page_a.get_by_role("button", name="签署第 2 版成员名单提案").click()
    page_a.wait_for_url("**/federation/membership?done=sign*")
    _check(page_a, shots, "fed-membership-proposal")
    with page_a.expect_download() as download:
        page_a.get_by_role("link", name="下载第 2 版提案文件（含已收集的签名）").click()
    page_b.goto("/federation/membership/propose")
    page_b.get_by_label("或上传提案文件").set_input_files(download.value.path())
    page_b.get_by_role("button", name="提交提案").click()
    page_b.wait_for_url("**/federation/membership?done=propose*")
    page_b.get_by_role("button", name="签署第 2 版成员名单提案").click()
    page_b.wait_for_url("**/federation/membership?done=sign*")
    expect(page_b.locator("section.proposal")).to_contain_text("可以启用")
    with page_b.expect_download() as download:
        page_b.get_by_role("link", name="下载第 2 版提案文件（含已收集的签名）").click()
    page_a.goto("/federation/membership/propose")
    page_a.get_by_label("或上传提案文件").set_input_files(download.value.path())
    page_a.get_by_role("button", name="提交提案").click()
    page_a.wait_for_url("**/federation/membership?done=propose*")
    page_a.get_by_role("button", name="启用第 2 版成员名单").click()
    page_a.wait_for_url("**/federation/membership?done=install")
    expect(page_a.get_by_role("status")).to_contain_text("新的成员名单版本已启用")
    _check(page_a)

    # the remaining federation pages, both languages, both widths
    _shots(browser, fed.b.base, at_b.storage_state(), [
        ("/federation", "fed-home"), ("/federation/membership", "fed-membership"),
        ("/federation/membership/propose", "fed-membership-propose"),
        ("/federation/agreements", "fed-agreements"), ("/federation/outbox", "fed-outbox"),
        ("/federation/witness", "fed-witness")], shots)
    at_a.close()
    at_b.close()
