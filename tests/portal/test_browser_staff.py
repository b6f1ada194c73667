"""Staff and institution journeys in a real browser (Chromium through Playwright) against a real node on 127.0.0.1,
with axe-core on every page (no serious or critical violation) and screenshots at desktop (1280) and phone (390)
widths in both languages (under the test run's tmp folder, printed at the start).

(a) An outlet opens an account, prints the activation-code letter; the person activates with that code on
/activate and signs in; the outlet deposits a certificate for them with evidence, the branch reviewer (初审) and
the centre reviewer (复审) approve it in their queues, and it shows in the learner's archive.
(b) An institution uploads a file and the progress bar reaches 100 %; the rejected-row report downloads; the
imported learner, given a code at the outlet, sees archive totals equal to the import."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="no browser driver: pip install '.[test]' installs playwright")
from playwright.sync_api import expect  # noqa: E402

from tests.conftest import valid_id  # noqa: E402
from tests.portal.conftest import LiveNode  # noqa: E402
from tests.portal.test_browser import _check  # noqa: E402

pytestmark = pytest.mark.slow

WIDTHS = {"desktop": 1280, "phone": 390}
PASSWORD = "correct-horse-1"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "shanghai-scores.csv"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.fixture(scope="module")
def people(live_node: LiveNode) -> dict[str, str]:
    """The centre, a branch with an outlet, an institution, and one staff member per role (username → role)."""
    from node.db import session_scope
    from node.org.service import create_organisation, create_staff

    staff = {"outlet1": ("outlet_staff", "O01"), "branch1": ("branch_reviewer", "B01"),
             "centre1": ("centre_reviewer", "SH-CENTRE"), "uni1": ("institution_uploader", "U001")}
    with session_scope(live_node.ctx.engine) as s:
        create_organisation(s, code="SH-CENTRE", name="市学分银行管理中心", kind="centre")
        create_organisation(s, code="B01", name="黄浦区分部", kind="branch")
        create_organisation(s, code="O01", name="黄浦受理点", kind="outlet", parent_code="B01")
        create_organisation(s, code="U001", name="示例大学", kind="institution", institution_type="university")
        for name, (role, org) in staff.items():
            create_staff(s, username=name, display_name=name, password=PASSWORD, roles=[role],
                         organisation_code=org)
    return {name: role for name, (role, _org) in staff.items()}


@pytest.fixture(scope="module")
def new_context(browser, live_node: LiveNode):
    def make(width: int = 1280, state=None):
        return browser.new_context(viewport={"width": width, "height": 900}, base_url=live_node.base,
                                   accept_downloads=True, locale="zh-CN", storage_state=state)
    return make


def _sign_in(page, username: str, password: str, landing: str = "**/staff") -> None:
    page.goto("/sign-in")
    page.get_by_label("身份证号或账号").fill(username)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(landing)


def _every_view(context, new_context, path: str, shots: Path, name: str) -> None:
    """The page (a GET) in both languages at both widths, with the context's session: axe + screenshots."""
    state = context.storage_state()
    for width in WIDTHS.values():
        other = new_context(width, state)
        page = other.new_page()
        for lang in ("en", "zh"):
            page.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}")
            assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh" else "en")
            _check(page, shots, name)
        other.close()


def _both_widths_here(page, shots: Path, name: str) -> None:
    """A page that answered a POST (it cannot be fetched again): axe + screenshots at both widths, as it is."""
    for width in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": 900})
        _check(page, shots, name)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_outlet_opens_an_account_and_a_staff_deposit_passes_both_reviews(
        live_node: LiveNode, people, new_context, screenshot_dir: Path, tmp_path: Path) -> None:
    shots = screenshot_dir
    outlet_ctx = new_context()
    outlet = outlet_ctx.new_page()
    _sign_in(outlet, "outlet1", PASSWORD)
    _check(outlet)
    _every_view(outlet_ctx, new_context, "/staff", shots, "staff-home")
    _every_view(outlet_ctx, new_context, "/staff/learners/new", shots, "staff-open-account")

    # open the account: a wrong ID number first (the error next to its field), then the right one
    id_number = valid_id(region="310101", born="19950612", serial="417")
    outlet.goto("/staff/learners/new")
    outlet.get_by_role("link", name="开通学习者账户").first.wait_for()
    outlet.get_by_label("证件号码").fill(id_number[:-1] + ("1" if id_number[-1] != "1" else "2"))
    outlet.get_by_label("姓名").fill("陈静")
    outlet.get_by_role("button", name="开通账户").click()
    expect(outlet.locator("#id_number-error")).to_contain_text("证件号码不正确")
    assert outlet.locator(".error-summary a[href='#id_number']").count() == 1
    _both_widths_here(outlet, shots, "staff-open-account-error")
    outlet.get_by_label("证件号码").fill(id_number.lower())
    outlet.get_by_role("button", name="开通账户").click()
    outlet.wait_for_url("**/staff/learners/*?opened=1")
    _check(outlet, shots, "staff-learner")
    account_no = outlet.locator("#account-no").inner_text()
    assert id_number not in outlet.content()  # masked

    # the activation-code letter: printable, the code on it
    outlet.get_by_role("button", name="签发激活码并打印通知函").click()
    expect(outlet.locator("#activation-code")).to_be_visible()
    code = outlet.locator("#activation-code").inner_text()
    assert code in outlet.locator(".letter-text").inner_text()
    _both_widths_here(outlet, shots, "staff-letter")
    outlet.emulate_media(media="print")
    assert not outlet.locator(".site-header").is_visible() and outlet.locator(".letter-text").is_visible()
    outlet.emulate_media(media="screen")

    # the person activates with the code, then signs in with the ID number
    learner_ctx = new_context()
    learner = learner_ctx.new_page()
    learner.goto("/activate")
    learner.get_by_label("身份证号或账号").fill(account_no)
    learner.get_by_label("激活码", exact=True).fill(code)
    learner.get_by_label("新密码", exact=True).fill("learner-pass-7")
    learner.get_by_label("再次输入新密码").fill("learner-pass-7")
    learner.get_by_role("button", name="激活并登录").click()
    learner.wait_for_url("**/me?activated=1")
    learner.get_by_role("button", name="退出登录").click()
    learner.wait_for_url("**/?signed_out=1")
    _sign_in(learner, id_number, "learner-pass-7", landing="**/me")
    assert int(learner.locator("[data-total=count]").inner_text()) == 0

    # the outlet deposits a certificate for the learner, with its evidence
    outlet.goto("/staff/learners?lang=zh")
    outlet.get_by_label("证件号码或账号").fill(account_no)
    outlet.get_by_role("button", name="查找").click()
    outlet.wait_for_url("**/staff/learners/*")
    outlet.get_by_role("link", name="代为申请存入").click()
    outlet.wait_for_url("**/deposit")
    deposit_path = outlet.url.split(live_node.base, 1)[1]
    _every_view(outlet_ctx, new_context, deposit_path, shots, "staff-deposit")
    outlet.goto(deposit_path + "?lang=zh")
    outlet.get_by_label("成果类型").select_option("vocational_qualification")
    outlet.get_by_label("名称", exact=True).fill("汽车维修工")
    outlet.get_by_role("button", name="提交申请").click()
    expect(outlet.locator("#issuer_code-error")).to_be_visible()
    expect(outlet.locator("#evidence-error")).to_contain_text("请上传证明材料")
    _both_widths_here(outlet, shots, "staff-deposit-error")
    outlet.get_by_label("颁发机构代码").fill("SH-OSTA")
    outlet.get_by_label("证书等级").select_option("三级")
    outlet.get_by_label("取得日期").fill("2024-06-01")
    evidence = tmp_path / "certificate.pdf"
    evidence.write_bytes(PDF)
    outlet.set_input_files("#evidence", str(evidence))
    outlet.get_by_role("button", name="提交申请").click()
    expect(outlet.locator("#application-state")).to_have_text("等待初审")
    app_path = outlet.url.split(live_node.base, 1)[1].split("?")[0]
    _check(outlet, shots, "staff-application-submitted")

    # 初审 in the branch's queue: the evidence, a rejection without a reason refused, then approval
    branch_ctx = new_context()
    branch = branch_ctx.new_page()
    _sign_in(branch, "branch1", PASSWORD)
    branch.get_by_role("link", name="待初审的申请").click()
    branch.wait_for_url("**/staff/queue?state=pending_first")
    _every_view(branch_ctx, new_context, "/staff/queue?state=pending_first", shots, "staff-queue")
    branch.goto("/staff/queue?state=pending_first&lang=zh")
    branch.get_by_role("link", name="汽车维修工").click()
    branch.wait_for_url(f"**{app_path}")
    _every_view(branch_ctx, new_context, app_path, shots, "staff-review")
    branch.goto(app_path + "?lang=zh")
    with branch.expect_download() as got:
        branch.get_by_role("link", name="certificate.pdf").click()
    assert Path(got.value.path()).read_bytes() == PDF
    branch.get_by_label("未通过").check()
    branch.get_by_role("button", name="提交决定").click()
    expect(branch.locator("#reason-error")).to_be_visible()
    _both_widths_here(branch, shots, "staff-review-error")
    branch.get_by_label("通过", exact=True).check()
    branch.get_by_role("button", name="提交决定").click()
    expect(branch.locator("#application-state")).to_have_text("等待复审")
    assert branch.locator("#no-decision").count() == 1  # 复审 is the centre's

    # 复审 at the centre
    centre_ctx = new_context()
    centre = centre_ctx.new_page()
    _sign_in(centre, "centre1", PASSWORD)
    centre.get_by_role("link", name="待复审的申请").click()
    centre.get_by_role("link", name="汽车维修工").click()
    centre.get_by_label("通过", exact=True).check()
    centre.get_by_label("理由").fill("证书核验无误")
    centre.get_by_role("button", name="提交决定").click()
    expect(centre.locator("#application-state")).to_have_text("已存入")
    _check(centre, shots, "staff-deposited")
    # the correction form of the deposited outcome (a centre reviewer's)
    centre.get_by_role("link", name="更正成果").click()
    centre.wait_for_url("**/correct")
    _every_view(centre_ctx, new_context, centre.url.split(live_node.base, 1)[1], shots, "staff-correct")

    # the learner's archive shows it
    learner.goto("/me")
    assert int(learner.locator("[data-total=count]").inner_text()) == 1
    expect(learner.get_by_role("link", name="汽车维修工")).to_have_count(1)
    for ctx in (outlet_ctx, learner_ctx, branch_ctx, centre_ctx):
        ctx.close()


def _import_file(tmp: Path) -> tuple[Path, list[dict], int]:
    """The example Shanghai-template file, plus one row whose ID number has a wrong check character."""
    rows = list(csv.DictReader(io.StringIO(EXAMPLE.read_text(encoding="utf-8-sig"))))
    bad = dict(rows[0], 身份证号=rows[0]["身份证号"][:-1] + ("0" if rows[0]["身份证号"][-1] != "0" else "1"),
               课程名称="错误的行")
    path = tmp / "scores.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, bad])
    return path, rows, 1


def test_an_institution_uploads_a_file_and_the_learner_sees_the_import(
        live_node: LiveNode, people, new_context, screenshot_dir: Path, tmp_path: Path) -> None:
    shots = screenshot_dir
    path, rows, rejected = _import_file(tmp_path)
    uni_ctx = new_context()
    uni = uni_ctx.new_page()
    _sign_in(uni, "uni1", PASSWORD)
    _every_view(uni_ctx, new_context, "/institution/imports/new", shots, "inst-upload")
    uni.goto("/institution/imports/new?lang=zh")
    uni.get_by_role("button", name="上传并开始导入").click()
    expect(uni.locator("#file-error")).to_contain_text("请选择要上传的文件")
    _both_widths_here(uni, shots, "inst-upload-error")
    uni.set_input_files("#file", str(path))
    uni.get_by_role("button", name="上传并开始导入").click()
    uni.wait_for_url("**/institution/imports/*")
    # the progress bar reaches 100 % (the script polls the status, then the page reloads when done)
    expect(uni.locator("#job-status")).to_have_attribute("data-status", "done", timeout=60_000)
    assert float(uni.locator("#job-bar").get_attribute("value")) == 100
    assert uni.locator("#job-percent").inner_text().strip() in ("100", "100.0")
    assert int(uni.locator("#job-deposited").inner_text()) == len(rows)
    assert int(uni.locator("#job-rejected").inner_text()) == rejected
    job_path = uni.url.split(live_node.base, 1)[1].split("?")[0]
    _every_view(uni_ctx, new_context, job_path, shots, "inst-progress")
    uni.goto(job_path + "?lang=zh")
    with uni.expect_download() as got:
        uni.get_by_role("link", name="下载被拒绝行的报告（CSV）").click()
    report = Path(got.value.path()).read_text(encoding="utf-8-sig")
    assert len([line for line in report.splitlines() if line.strip()]) == 1 + rejected
    assert rows[0]["身份证号"][:-1] not in report  # masked
    _every_view(uni_ctx, new_context, "/institution/imports", shots, "inst-history")
    uni.goto("/institution/imports?lang=zh")
    expect(uni.get_by_role("link", name="scores.csv")).to_have_count(1)

    # the outlet hands the imported person a code; their archive totals equal the import
    id_number = rows[0]["身份证号"]
    mine = [r for r in rows if r["身份证号"] == id_number]
    outlet_ctx = new_context()
    outlet = outlet_ctx.new_page()
    _sign_in(outlet, "outlet1", PASSWORD)
    outlet.goto(f"/staff/learners?q={id_number}")
    outlet.wait_for_url("**/staff/learners/*")
    outlet.get_by_role("button", name="签发激活码并打印通知函").click()
    code = outlet.locator("#activation-code").inner_text()
    learner_ctx = new_context()
    learner = learner_ctx.new_page()
    learner.goto("/activate")
    learner.get_by_label("身份证号或账号").fill(id_number)
    learner.get_by_label("激活码", exact=True).fill(code)
    learner.get_by_label("新密码", exact=True).fill("learner-pass-8")
    learner.get_by_label("再次输入新密码").fill("learner-pass-8")
    learner.get_by_role("button", name="激活并登录").click()
    learner.wait_for_url("**/me?activated=1")
    assert Decimal(learner.locator("[data-total=credits]").inner_text()) == sum(Decimal(r["学分"]) for r in mine)
    assert Decimal(learner.locator("[data-total=hours]").inner_text()) == sum(Decimal(r["学时"]) for r in mine)
    assert int(learner.locator("[data-total=count]").inner_text()) == len(mine)
    for ctx in (uni_ctx, outlet_ctx, learner_ctx):
        ctx.close()
