"""The portal in a real browser (Chromium through Playwright) against a real node on 127.0.0.1: the public journey
and a bulk-imported learner's journey, with axe-core on every page (no serious or critical violation), keyboard-only
sign-in, and screenshots at desktop (1280) and phone (390) widths in both languages (saved under the test run's
tmp folder, printed at the start)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="no browser driver: pip install '.[test]' installs playwright")
from playwright.sync_api import expect  # noqa: E402

from tests.portal.conftest import LiveNode

pytestmark = pytest.mark.slow

WIDTHS = {"desktop": 1280, "phone": 390}
SERIOUS = {"serious", "critical"}
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "shanghai-scores.csv"


def _axe(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in result.response["violations"] if v.get("impact") in SERIOUS]


def _check(page, shots: Path | None = None, name: str = "") -> None:
    """No serious accessibility violation; screenshots if asked."""
    page.wait_for_load_state("load")
    assert _axe(page) == [], page.url
    if shots is not None:
        width = page.viewport_size["width"]
        lang = page.locator("html").get_attribute("lang")
        page.screenshot(path=str(shots / f"{name}-{lang}-{width}.png"), full_page=True)


def _both_widths(context_factory, url: str, shots: Path, name: str) -> None:
    for label, width in WIDTHS.items():
        for lang in ("zh", "en"):
            context = context_factory(width)
            page = context.new_page()
            page.goto(f"{url}{'&' if '?' in url else '?'}lang={lang}")
            assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh" else "en")
            _check(page, shots, name)
            context.close()


@pytest.fixture(scope="module")
def new_context(browser, live_node: LiveNode):
    def make(width: int = 1280):
        return browser.new_context(viewport={"width": width, "height": 900}, base_url=live_node.base,
                                   accept_downloads=True, locale="zh-CN")
    return make


def test_the_public_journey(live_node: LiveNode, new_context, screenshot_dir: Path) -> None:
    for path, name in (("/", "home"), ("/standards", "standards"), ("/handbook?q=数控", "handbook"),
                       ("/members", "members")):
        _both_widths(new_context, path, screenshot_dir, name)

    context = new_context()
    page = context.new_page()
    page.goto("/")
    assert page.locator("h1").inner_text()  # the region's name
    page.get_by_role("link", name="标准目录").first.click()
    page.wait_for_url("**/standards")
    page.get_by_label("按名称或代码搜索").fill("数控")
    page.get_by_role("button", name="搜索").click()
    page.wait_for_url("**/standards?q=*")
    _check(page)
    certificates = page.locator("table").first.locator("tbody tr")
    assert certificates.count() >= 1
    # certificate → which courses: the handbook, searched for that certificate
    certificates.first.get_by_role("link").click()
    page.wait_for_url("**/handbook?q=*")
    _check(page)
    assert page.locator("article.rule").count() >= 1
    assert "→" in page.locator("article.rule li").first.inner_text()
    page.get_by_role("link", name="成员地区").first.click()
    page.wait_for_url("**/members")
    _check(page)
    page.get_by_role("link", name="English").click()
    expect(page.locator("h1")).to_have_text("Member regions")
    page.get_by_role("link", name="Verify a record").click()
    page.wait_for_url("**/verify?lang=en")
    _check(page)
    context.close()


def _import_learners(live_node: LiveNode, tmp: Path) -> list[dict]:
    """A small CSV deposited through the import service, as an institution's upload is."""
    from node.db import session_scope
    from node.deps import Principal
    from node.imports.service import create_job, institution_for, run_job, store_upload
    from node.models import Organisation

    rows = list(csv.DictReader(io.StringIO(EXAMPLE.read_text(encoding="utf-8-sig"))))[:6]
    path = tmp / "scores.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    ctx = live_node.ctx
    actor = Principal(kind="system", id=0, name="test:portal", roles=("node_admin",))
    with session_scope(ctx.engine) as session:
        session.add(Organisation(code="U001", name="示例大学", kind="institution", institution_type="university"))
        session.flush()
        org = institution_for(session, principal=actor, institution_code="U001")
        with path.open("rb") as fh:
            sha, stored = store_upload(ctx, fh, path.name)
        job_id = create_job(session, ctx, institution=org, path=stored, sha256=sha, filename=path.name,
                            requested_format=None, actor=actor).id
    final = run_job(ctx, job_id)
    assert final.status == "done" and final.deposited == len(rows), final
    return rows


def _activation_code(live_node: LiveNode, id_number: str) -> str:
    from node.db import session_scope
    from node.learners.service import find_learner, issue_activation_code

    ctx = live_node.ctx
    with session_scope(ctx.engine) as session:
        learner = find_learner(session, ctx, id_type="resident_id", id_number=id_number)
        return issue_activation_code(session, learner=learner, secret=ctx.token_secret, ttl_days=7,
                                     issued_by="outlet1").code


def test_a_bulk_imported_learner_activates_signs_in_and_verifies_the_transcript(
        live_node: LiveNode, new_context, screenshot_dir: Path, tmp_path: Path) -> None:
    rows = _import_learners(live_node, tmp_path)
    id_number = rows[0]["身份证号"]
    mine = [r for r in rows if r["身份证号"] == id_number]
    code = _activation_code(live_node, id_number)

    context = new_context()
    page = context.new_page()
    page.goto("/activate")
    _check(page, screenshot_dir, "activate")
    # a mistake first: the error shows next to its field, in Chinese
    page.get_by_label("身份证号或账号").fill(id_number)
    page.get_by_label("激活码", exact=True).fill(code)
    page.get_by_label("新密码", exact=True).fill("short")
    page.get_by_label("再次输入新密码").fill("short")
    page.get_by_role("button", name="激活并登录").click()
    expect(page.locator("#new_password-error")).to_contain_text("新密码至少需要 8 个字符")
    assert page.locator(".error-summary a[href='#new_password']").count() == 1
    _check(page, screenshot_dir, "activate-error")
    page.get_by_label("激活码", exact=True).fill(code)
    page.get_by_label("新密码", exact=True).fill("learner-pass-9")
    page.get_by_label("再次输入新密码").fill("learner-pass-9")
    page.get_by_role("button", name="激活并登录").click()
    page.wait_for_url("**/me?activated=1")

    # the archive's totals equal what was imported for this person
    credits = sum(Decimal(r["学分"]) for r in mine)
    hours = sum(Decimal(r["学时"]) for r in mine)
    assert Decimal(page.locator("[data-total=credits]").inner_text()) == credits
    assert Decimal(page.locator("[data-total=hours]").inner_text()) == hours
    assert int(page.locator("[data-total=count]").inner_text()) == len(mine)
    assert page.locator("svg.chart rect.bar").count() >= 1
    _check(page, screenshot_dir, "archive")
    page.goto("/me?lang=en")
    _check(page, screenshot_dir, "archive")
    page.set_viewport_size({"width": 390, "height": 900})
    _check(page, screenshot_dir, "archive")
    page.goto("/me?lang=zh")
    _check(page, screenshot_dir, "archive")
    page.set_viewport_size({"width": 1280, "height": 900})

    # a record, and its signed credential
    page.get_by_role("link", name=mine[0]["课程名称"]).first.click()
    page.wait_for_url("**/me/records/*")
    _check(page, screenshot_dir, "record")
    with page.expect_download() as got:
        page.get_by_role("link", name="下载电子证书").click()
    credential = Path(got.value.path()).read_text(encoding="utf-8")
    assert '"proof"' in credential and id_number not in credential

    # the transcript PDF, then the public page verifies it
    page.goto("/me")
    with page.expect_download() as got:
        page.get_by_role("link", name="下载成绩证明（PDF）").first.click()
    pdf = tmp_path / "transcript.pdf"
    got.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    page.goto("/verify")
    page.set_input_files("#file", str(pdf))
    page.locator("form[action^='/verify'] button[type=submit]").click()
    expect(page.locator("#result-title .valid")).to_have_count(1)

    # change the password; the accesses page; sign out
    page.goto("/me/password")
    _check(page, screenshot_dir, "password")
    page.get_by_label("当前密码").fill("wrong-password")
    page.get_by_label("新密码", exact=True).fill("learner-pass-10")
    page.get_by_label("再次输入新密码").fill("learner-pass-10")
    page.get_by_role("button", name="修改密码").click()
    expect(page.locator("#current_password-error")).to_contain_text("当前密码不正确")
    page.get_by_label("当前密码").fill("learner-pass-9")
    page.get_by_label("新密码", exact=True).fill("learner-pass-10")
    page.get_by_label("再次输入新密码").fill("learner-pass-10")
    page.get_by_role("button", name="修改密码").click()
    expect(page.locator(".notice")).to_have_text("密码已修改。")
    # apply to deposit a certificate, with its evidence: first the errors, then the submission
    page.goto("/me/applications/new")
    _check(page, screenshot_dir, "apply")
    page.get_by_label("成果类型").select_option("vocational_qualification")
    page.get_by_label("名称", exact=True).fill("数控铣工")
    page.get_by_role("button", name="提交申请").click()
    expect(page.locator("#issuer_code-error")).to_contain_text("请输入颁发机构代码")
    expect(page.locator("#earned_on-error")).to_contain_text("请输入取得日期")
    expect(page.locator("#evidence-error")).to_contain_text("请上传证明材料")
    _check(page, screenshot_dir, "apply-error")
    page.get_by_label("颁发机构代码").fill("SH-OSTA")
    page.get_by_label("证书等级").select_option("三级")
    page.get_by_label("取得日期").fill("2024-05-01")
    evidence = tmp_path / "cert.pdf"
    evidence.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    page.set_input_files("#evidence", str(evidence))
    page.get_by_role("button", name="提交申请").click()
    expect(page.locator("#application-state")).to_have_text("等待初审")
    _check(page, screenshot_dir, "application")
    page.goto("/me/applications")
    expect(page.get_by_role("link", name="数控铣工")).to_have_count(1)
    _check(page)

    page.goto("/me/accesses")
    _check(page, screenshot_dir, "accesses")
    assert page.locator("tbody tr").count() >= 3  # activation, code issued, password change...
    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url("**/?signed_out=1")
    page.goto("/me")
    assert page.locator("h1").inner_text() == "登录"  # signed out: the sign-in form in the page's place

    # keyboard only: sign in with the ID number and the new password
    page.goto("/sign-in?next=/me")
    _check(page, screenshot_dir, "sign-in")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.className") == "skip-link"
    for _ in range(30):  # on through the header's links to the first field
        if page.evaluate("document.activeElement.id") == "username":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type(id_number)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type("learner-pass-10")
    page.keyboard.press("Enter")
    page.wait_for_url("**/me")
    assert Decimal(page.locator("[data-total=credits]").inner_text()) == credits
    context.close()
