"""Staff and institution pages without a browser (node/portal/staff.py, institution.py): roles, CSRF, errors next
to their fields, the queue's scope (a reviewer of another branch sees nothing of this branch), the two reviews,
filters and paging, corrections, the activation-code letter, and bulk imports with their progress and report."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import valid_id
from tests.deposits.helpers import PDF
from tests.imports.conftest import sh_csv, sh_row

PASSWORD = "correct-horse-1"
CERT = {"type": "vocational_qualification", "title": "数控铣工", "issuer_code": "SH-OSTA",
        "issuer_name": "上海市职业技能鉴定中心", "level": "三级", "earned_on": "2024-05-01"}


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


@pytest.fixture
def orgs(app) -> None:
    """The centre, two branches, an outlet of branch B01, two institutions."""
    from node.db import session_scope
    from node.org.service import create_organisation

    with session_scope(app.state.ctx.engine) as s:
        create_organisation(s, code="SH-CENTRE", name="中心", kind="centre")
        create_organisation(s, code="B01", name="黄浦区分部", kind="branch")
        create_organisation(s, code="B02", name="徐汇区分部", kind="branch")
        create_organisation(s, code="O01", name="黄浦受理点", kind="outlet", parent_code="B01")
        create_organisation(s, code="U001", name="示例大学", kind="institution", institution_type="university")
        create_organisation(s, code="U002", name="另一所大学", kind="institution", institution_type="university")


@pytest.fixture
def person(app):
    """`person("outlet_staff", org="O01")`: a staff member signed in to the portal, in a browser of their own."""
    from node.db import session_scope
    from node.org.service import create_staff

    clients: list[TestClient] = []
    made = iter(range(1000))

    def make(*roles: str, org: str | None = None) -> TestClient:
        name = f"{roles[0].replace('_', '')}{next(made)}"
        with session_scope(app.state.ctx.engine) as s:
            create_staff(s, username=name, display_name=name, password=PASSWORD, roles=list(roles),
                         organisation_code=org)
        c = TestClient(app)
        clients.append(c)
        r = c.post("/sign-in", data={"username": name, "password": PASSWORD, "csrf": _csrf(c.get("/sign-in").text)},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/staff", r.text
        return c

    yield make
    for c in clients:
        c.close()


def _open(c: TestClient, serial: str, name: str = "李四") -> int:
    page = c.get("/staff/learners/new").text
    r = c.post("/staff/learners/new", data={"id_type": "resident_id", "id_number": valid_id(serial=serial),
                                            "name": name, "csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])


def _deposit(c: TestClient, learner_id: int, **over: str) -> int:
    page = c.get(f"/staff/learners/{learner_id}/deposit").text
    r = c.post(f"/staff/learners/{learner_id}/deposit", data={**CERT, **over, "csrf": _csrf(page)},
               files={"evidence": ("cert.pdf", PDF, "application/pdf")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])


def _decide(c: TestClient, app_id: int, decision: str, reason: str = ""):
    page = c.get(f"/staff/applications/{app_id}").text
    version = re.search(r'name="version" value="(\d+)"', page)[1]
    return c.post(f"/staff/applications/{app_id}/decision", data={"decision": decision, "reason": reason,
                                                                  "version": version, "csrf": _csrf(page)},
                  follow_redirects=False)


def test_the_staff_home_lists_what_the_roles_can_do(client: TestClient, orgs, person) -> None:
    r = client.get("/staff")
    assert r.status_code == 401 and 'action="/sign-in"' in r.text  # the sign-in form in the page's place
    outlet = person("outlet_staff", org="O01")
    home = outlet.get("/staff")
    assert home.status_code == 200 and '<html lang="zh-CN">' in home.text
    assert 'href="/staff/learners/new"' in home.text and 'href="/staff/queue"' in home.text
    assert 'href="/institution/imports/new"' not in home.text
    uploader = person("institution_uploader", org="U001")
    home = uploader.get("/staff?lang=en").text
    assert 'href="/institution/imports/new"' in home and 'href="/staff/learners/new"' not in home
    assert "Institution uploader" in home
    # the wrong role: a 403 page, audited like the API's refusals
    for path in ("/staff/learners/new", "/staff/queue", "/staff/applications/1"):
        r = uploader.get(path)
        assert r.status_code == 403 and "text/html" in r.headers["content-type"], path
    assert outlet.get("/institution/imports").status_code == 403
    assert outlet.get("/staff/achievements/1/correct").status_code == 403
    with client.app.state.ctx.engine.connect() as conn:
        denied = conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE outcome = 'denied' "
                                      "AND action LIKE :pattern"), {"pattern": "page.get%"}).scalar_one()
    assert denied >= 5


def test_open_an_account_checks_the_id_number_and_the_letter_carries_a_working_code(
        client: TestClient, orgs, person) -> None:
    outlet = person("outlet_staff", org="O01")
    page = outlet.get("/staff/learners/new").text
    token = _csrf(page)
    # no CSRF token: refused before anything is done
    r = outlet.post("/staff/learners/new", data={"id_number": valid_id(serial="701"), "name": "王五"})
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    # errors next to their fields; a wrong check character is refused exactly as the API refuses it
    r = outlet.post("/staff/learners/new", data={"id_type": "resident_id", "id_number": "", "name": "",
                                                 "csrf": token})
    assert r.status_code == 400 and 'id="id_number-error"' in r.text and 'id="name-error"' in r.text
    assert 'href="#id_number"' in r.text  # the summary links to the field
    bad = valid_id(serial="701")[:-1] + ("0" if valid_id(serial="701")[-1] != "0" else "1")
    r = outlet.post("/staff/learners/new", data={"id_type": "resident_id", "id_number": bad, "name": "王五",
                                                 "csrf": token})
    assert r.status_code == 400 and 'id="id_number-error"' in r.text and "证件号码不正确" in r.text
    assert bad not in r.text  # an ID number is never echoed into a page
    r = outlet.post("/staff/learners/new", data={"id_type": "no_such_type", "id_number": bad, "name": "王五",
                                                 "csrf": token})
    assert r.status_code == 400 and 'id="id_type-error"' in r.text
    r = outlet.post("/staff/learners/new", data={"id_type": "resident_id", "id_number": "1" * 5000, "name": "王五",
                                                 "csrf": token})
    assert r.status_code in (400, 413) and "Traceback" not in r.text

    r = outlet.post("/staff/learners/new", data={"id_type": "resident_id", "id_number": valid_id(serial="701"),
                                                 "name": "王五", "csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?opened=1")
    learner_id = int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])
    page = outlet.get(r.headers["location"]).text
    assert "账户已开通" in page and valid_id(serial="701") not in page and "王五" in page
    # the same person again (lowercase spelling of nothing new): the existing account
    r = outlet.post("/staff/learners/new", data={"id_type": "resident_id", "id_number": valid_id(serial="701"),
                                                 "name": "王五", "csrf": token}, follow_redirects=False)
    assert r.headers["location"] == f"/staff/learners/{learner_id}?existing=1"
    # found again by ID number, through the API's audited search
    found = outlet.get("/staff/learners", params={"q": valid_id(serial="701")}, follow_redirects=False)
    assert found.headers["location"] == f"/staff/learners/{learner_id}"
    missing = outlet.get("/staff/learners", params={"q": valid_id(serial="799")})
    assert missing.status_code == 400 and 'id="q-error"' in missing.text

    # the letter: shown once, printable, and the code activates the account
    r = outlet.post(f"/staff/learners/{learner_id}/activation-code", data={"csrf": _csrf(page)})
    assert r.status_code == 200 and "@media print" not in r.text and 'href="/static/portal/staff.css"' in r.text
    code = re.search(r'id="activation-code">([^<]+)<', r.text)[1]
    assert code in r.text.split('class="letter-text"', 1)[1]  # the API's letter text carries it
    account_no = re.search(r"账户号：(\d+)", r.text)[1]
    css = client.get("/static/portal/staff.css").text
    assert "@media print" in css
    activated = client.post("/api/v1/learners/activate", json={"account_no": account_no, "code": code,
                                                               "new_password": "learner-pass-1"})
    assert activated.status_code == 200, activated.text
    # a reviewer of the centre may open accounts but the outlet desk issues codes
    centre = person("centre_reviewer", org="SH-CENTRE")
    assert centre.post(f"/staff/learners/{learner_id}/activation-code",
                       data={"csrf": _csrf(centre.get(f"/staff/learners/{learner_id}").text)}).status_code == 403


def test_a_deposit_on_behalf_goes_through_both_reviews_in_the_branch_queue_only(
        client: TestClient, orgs, person) -> None:
    outlet = person("outlet_staff", org="O01")
    learner_id = _open(outlet, "702")
    page = outlet.get(f"/staff/learners/{learner_id}/deposit").text
    r = outlet.post(f"/staff/learners/{learner_id}/deposit", data={**CERT, "level": "", "earned_on": "2999-01-01",
                                                                   "csrf": _csrf(page)})
    assert r.status_code == 400, r.text
    assert 'id="level-error"' in r.text and 'id="evidence-error"' in r.text and 'href="#level"' in r.text
    r = outlet.post(f"/staff/learners/{learner_id}/deposit", data={**CERT, "earned_on": "2999-01-01",
                                                                   "csrf": _csrf(page)})
    assert r.status_code == 400 and 'id="earned_on-error"' in r.text
    r = outlet.post(f"/staff/learners/{learner_id}/deposit", data={**CERT, "csrf": _csrf(page)},
                    files={"evidence": ("cert.txt", b"plain text", "text/plain")})
    assert r.status_code == 415 and 'id="evidence-error"' in r.text
    with client.app.state.ctx.engine.connect() as conn:  # nothing half-done
        assert conn.exec_driver_sql("SELECT count(*) FROM deposit_application").scalar_one() == 0
    app_id = _deposit(outlet, learner_id)
    page = outlet.get(f"/staff/applications/{app_id}").text
    assert "等待初审" in page and 'action="/staff/applications/' not in page  # outlet staff do not decide

    # a reviewer of another branch sees nothing of this branch
    other = person("branch_reviewer", org="B02")
    assert str(app_id) not in other.get("/staff/queue").text.split('id="queue', 1)[-1]
    assert "没有符合条件的申请" in other.get("/staff/queue").text
    assert other.get(f"/staff/applications/{app_id}").status_code == 404
    app_page = outlet.get(f"/staff/applications/{app_id}").text
    assert "cert.pdf" in app_page
    from node.db import session_scope
    from node.models import ApplicationEvidence

    with session_scope(client.app.state.ctx.engine) as s:
        sha = s.exec(sa.select(ApplicationEvidence.sha256)).scalar_one()
    assert other.get(f"/staff/applications/{app_id}/evidence/{sha}").status_code == 404

    # the branch's reviewer: the evidence, then 初审 (a rejection needs a reason)
    branch = person("branch_reviewer", org="B01")
    queue = branch.get("/staff/queue?state=pending_first").text
    assert f'href="/staff/applications/{app_id}"' in queue
    page = branch.get(f"/staff/applications/{app_id}").text
    assert "初审决定" in page and f"/staff/applications/{app_id}/evidence/{sha}" in page
    download = branch.get(f"/staff/applications/{app_id}/evidence/{sha}")
    assert download.status_code == 200 and download.content == PDF
    r = _decide(branch, app_id, "reject")
    assert r.status_code == 400 and 'id="reason-error"' in r.text
    r = _decide(branch, app_id, "")
    assert r.status_code == 400 and 'id="decision-error"' in r.text
    r = _decide(branch, app_id, "approve")
    assert r.status_code == 303
    page = branch.get(r.headers["location"]).text
    assert "等待复审" in page and "/decision" not in page and 'id="no-decision"' in page  # 复审 is the centre's

    # 复审 at the centre; the outcome is deposited in the learner's archive
    centre = person("centre_reviewer", org="SH-CENTRE")
    assert f'href="/staff/applications/{app_id}"' in centre.get("/staff/queue?state=pending_second").text
    r = _decide(centre, app_id, "approve", "材料齐全")
    assert r.status_code == 303
    page = centre.get(f"/staff/applications/{app_id}").text
    assert "已存入" in page and "/correct" in page
    with client.app.state.ctx.engine.connect() as conn:
        assert conn.exec_driver_sql(
            f"SELECT count(*) FROM achievement WHERE learner_id = {learner_id} AND title = '数控铣工'").scalar_one() == 1
        actions = {a for (a,) in conn.exec_driver_sql("SELECT action FROM audit_log")}
    assert {"learner.open", "deposit.create", "evidence.upload", "deposit.submit", "deposit.approve",
            "evidence.download"} <= actions


def test_queue_filters_and_keyset_paging(client: TestClient, orgs, person, monkeypatch) -> None:
    from node.portal import staff

    monkeypatch.setattr(staff, "PAGE_SIZE", 2)
    outlet = person("outlet_staff", org="O01")
    learner_id = _open(outlet, "703")
    ids = [_deposit(outlet, learner_id, title=f"证书{i}") for i in range(3)]
    ids.append(_deposit(outlet, learner_id, type="degree_course", title="高等数学", level="", credits="4",
                        score="85"))
    branch = person("branch_reviewer", org="B01")
    first = branch.get("/staff/queue").text
    shown = [int(x) for x in re.findall(r'href="/staff/applications/(\d+)"', first)]
    assert shown == sorted(ids, reverse=True)[:2]
    nxt = re.search(r'rel="next" href="([^"]+)"', first)[1].replace("&amp;", "&")
    second = branch.get(nxt).text
    shown2 = [int(x) for x in re.findall(r'href="/staff/applications/(\d+)"', second)]
    assert shown2 == sorted(ids, reverse=True)[2:4] and "rel=\"next\"" not in second
    courses = branch.get("/staff/queue?type=degree_course").text
    assert re.findall(r'href="/staff/applications/(\d+)"', courses) == [str(ids[3])]
    today = dt.date.today()
    assert len(re.findall(r'href="/staff/applications/(\d+)"', branch.get(
        f"/staff/queue?submitted_from={today}&submitted_to={today}").text)) == 2
    assert "没有符合条件的申请" in branch.get("/staff/queue?submitted_to=2000-01-01").text
    bad = branch.get("/staff/queue?submitted_from=2024-13-01&state=nonsense")
    assert bad.status_code == 400 and 'id="submitted_from-error"' in bad.text and 'id="state-error"' in bad.text
    order = branch.get("/staff/queue?submitted_from=2025-01-02&submitted_to=2025-01-01")
    assert order.status_code == 400 and 'id="submitted_to-error"' in order.text
    assert branch.get("/staff/queue?submitted_to=9999-12-31&cursor=99999999999999999999").status_code == 200


def test_corrections_of_a_deposited_outcome(client: TestClient, orgs, person) -> None:
    outlet = person("outlet_staff", org="O01")
    learner_id = _open(outlet, "704")
    app_id = _deposit(outlet, learner_id, type="degree_course", title="高等数学", level="", credits="4", score="85")
    assert _decide(person("branch_reviewer", org="B01"), app_id, "approve").status_code == 303
    centre = person("centre_reviewer", org="SH-CENTRE")
    assert _decide(centre, app_id, "approve").status_code == 303
    achievement_id = int(re.search(r"/staff/achievements/(\d+)/correct", centre.get(
        f"/staff/applications/{app_id}").text)[1])
    path = f"/staff/achievements/{achievement_id}/correct"
    page = centre.get(path).text
    assert 'value="4"' in page and 'value="85"' in page
    r = centre.post(path, data={"title": "高等数学", "credits": "5", "score": "85", "reason": "", "csrf": _csrf(page)})
    assert r.status_code == 400 and 'id="reason-error"' in r.text
    r = centre.post(path, data={"title": "高等数学", "credits": "abc", "score": "85", "reason": "登记错误",
                                "csrf": _csrf(page)})
    assert r.status_code == 400 and 'id="credits-error"' in r.text
    r = centre.post(path, data={"title": "高等数学", "credits": "5", "score": "85", "earned_on": "2024-01-15",
                                "reason": "学分登记错误", "csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = centre.get(r.headers["location"]).text
    assert "更正已保存" in page and 'value="5"' in page
    with client.app.state.ctx.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audit_log WHERE action = 'achievement.correct' "
                                    "AND outcome = 'ok'").scalar_one() == 1
    assert person("branch_reviewer", org="B01").get(path).status_code == 403


def test_the_greeting_uses_the_display_name(client: TestClient, app, orgs) -> None:
    from node.db import session_scope
    from node.org.service import create_staff

    with session_scope(app.state.ctx.engine) as s:
        create_staff(s, username="wangfang", display_name="王芳", password=PASSWORD,
                     roles=["outlet_staff", "auditor"], organisation_code="O01")
    r = client.post("/sign-in", data={"username": "wangfang", "password": PASSWORD,
                                      "csrf": _csrf(client.get("/sign-in").text)}, follow_redirects=False)
    assert r.status_code == 303
    for path in ("/staff", "/centre"):
        page = client.get(path).text
        assert "王芳" in page and "wangfang" not in page.split('<main', 1)[1], path


def test_institution_upload_progress_report_and_history(client: TestClient, orgs, person, monkeypatch) -> None:
    from node.portal import institution

    uploader = person("institution_uploader", org="U001")
    page = uploader.get("/institution/imports/new").text
    assert 'name="institution_code"' not in page  # an institution's uploader deposits for their own
    r = uploader.post("/institution/imports/new", data={"csrf": _csrf(page)})
    assert r.status_code == 400 and 'id="file-error"' in r.text
    r = uploader.post("/institution/imports/new", data={"csrf": _csrf(page)},
                      files={"file": ("grades.txt", b"x")})
    assert r.status_code == 400 and 'id="format-error"' in r.text
    rows = [sh_row("801", course="高等数学"), sh_row("801", course="线性代数", credits="3"),
            sh_row("802", id_number="110101199001011234")]  # a wrong check character: rejected
    r = uploader.post("/institution/imports/new", data={"csrf": _csrf(page)},
                      files={"file": ("grades.csv", sh_csv(rows))}, follow_redirects=False)
    assert r.status_code == 303, r.text
    job_path = r.headers["location"]
    client.app.state.ctx.extras["imports.worker"].wait()
    status = uploader.get(f"{job_path}/status.json").json()
    assert status["status"] == "done" and status["deposited"] == 2 and status["rejected"] == 1
    assert status["percent"] == 100 and status["seconds_left"] == 0
    page = uploader.get(job_path)
    assert 'http-equiv="refresh"' not in page.text and 'id="job-bar"' in page.text and 'value="100' in page.text
    # a finished import has no time left to show (never "约 0 秒")
    assert 'id="job-seconds_left"' not in page.text and "约 0 秒" not in page.text and "预计剩余时间" not in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    report = uploader.get(f"{job_path}/report.csv")
    assert report.status_code == 200 and "110101199001011234" not in report.text and report.text.count("\n") >= 2
    # another institution sees none of it
    other = person("institution_uploader", org="U002")
    assert other.get(job_path).status_code == 404
    assert other.get(f"{job_path}/report.csv").status_code == 404
    assert "grades.csv" not in other.get("/institution/imports").text
    # history with keyset paging
    monkeypatch.setattr(institution, "PAGE_SIZE", 1)
    for n in range(2):
        page = uploader.get("/institution/imports/new").text
        uploader.post("/institution/imports/new", data={"csrf": _csrf(page)},
                      files={"file": (f"more{n}.csv", sh_csv([sh_row(f"81{n}")]))})
    client.app.state.ctx.extras["imports.worker"].wait()
    seen = []
    url = "/institution/imports"
    while url:
        text = uploader.get(url).text
        seen += re.findall(r'href="/institution/imports/([0-9a-f-]{36})"', text)
        more = re.search(r'rel="next" href="([^"]+)"', text)
        url = more[1] if more else None
    assert len(seen) == 3 == len(set(seen))
    assert uploader.get("/institution/imports?after=" + "x" * 36).status_code == 400


def test_a_running_job_refreshes_itself_and_may_run_the_progress_script(
        client: TestClient, orgs, person, app) -> None:
    """A queued job's page: the no-script refresh, the script file allowed by this page's CSP only."""
    from node.db import session_scope
    from node.deps import Principal
    from node.imports.service import create_job, institution_for, store_upload

    uploader = person("institution_uploader", org="U001")
    ctx = app.state.ctx
    actor = Principal(kind="staff", id=0, name="t", roles=("node_admin",))
    with session_scope(ctx.engine) as s:  # created but not handed to the worker: it stays queued
        org = institution_for(s, principal=actor, institution_code="U001")
        sha, stored = store_upload(ctx, io.BytesIO(sh_csv([sh_row("820")])), "q.csv")
        job_id = create_job(s, ctx, institution=org, path=stored, sha256=sha, filename="q.csv",
                            requested_format=None, actor=actor).id
    page = uploader.get(f"/institution/imports/{job_id}")
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page.text
    assert '<dd id="job-seconds_left">—</dd>' in page.text  # queued: no rate to go by yet
    assert 'src="/static/portal/institution-progress.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert client.get("/static/portal/institution-progress.js").status_code == 200


def test_odd_input_is_a_page_with_a_4xx_never_a_500(client: TestClient, orgs, person) -> None:
    centre = person("centre_reviewer", "outlet_staff", org="SH-CENTRE")
    uploader = person("institution_uploader", org="U001")
    long = "9" * 5000
    for c, path in ((centre, "/staff/applications/abc"), (centre, f"/staff/applications/{long}"),
                    (centre, "/staff/applications/99999999"), (centre, "/staff/applications/1/evidence/zz"),
                    (centre, f"/staff/learners/{2**63}"), (centre, f"/staff/learners?q={long}"),
                    (centre, "/staff/learners?q=abc&id_type=nope"), (centre, f"/staff/queue?cursor={long}"),
                    (centre, f"/staff/queue?type={long}&state={long}&submitted_from={long}"),
                    (centre, "/staff/queue?submitted_from=0001-01-01&submitted_to=9999-12-31"),
                    (centre, "/staff/achievements/0/correct"), (uploader, f"/institution/imports/{long}"),
                    (uploader, f"/institution/imports/{long}/status.json"),
                    (uploader, f"/institution/imports?after={long}"), (uploader, "/institution/imports/x/report.csv")):
        r = c.get(path, headers={"accept": "text/html"})
        assert r.status_code < 500, (path[:80], r.status_code)
        assert "Traceback" not in r.text
    page = centre.get("/staff/learners/new").text
    for data in ({"id_number": "３１０１０１", "name": "名" * 101}, {"id_type": "x" * 5000, "id_number": long, "name": long},
                 {"id_number": "\u202e310101", "name": "王"}):
        r = centre.post("/staff/learners/new", data={**data, "csrf": _csrf(page)})
        assert 400 <= r.status_code < 500 and "Traceback" not in r.text, data
    r = centre.post("/staff/applications/1/decision", data={"decision": "approve", "version": long,
                                                            "csrf": _csrf(page)})
    assert 400 <= r.status_code < 500
    r = centre.post("/staff/achievements/1/correct", data={"reason": "x", "csrf": _csrf(page)})
    assert r.status_code == 404
