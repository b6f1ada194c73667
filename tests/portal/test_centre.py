"""The centre's pages without a browser: roles, CSRF, the standards' maker-checker (four eyes refused for the
same person, bad rule JSON shown next to the field, the difference from the version in force), the audit log's
filters and paging, staff and roles, the review queues and revocations — each action's audit entry."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

RULE_ID = "SH-GS-CR-2016-CNCMILL-3"


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


@pytest.fixture
def standards(app) -> None:
    from node.standards.cli import load_files

    load_files(app.state.ctx.engine, list(app.state.ctx.settings.region.standards_files))


@pytest.fixture
def sign_in(client: TestClient, staff_headers):
    """`sign_in("standards_admin", username="alice")`: a staff member signed in to the pages (one at a time)."""

    def make(*roles: str, username: str, org: str | None = None) -> None:
        staff_headers(*roles, username=username, org=org)
        as_(username)

    def as_(username: str) -> None:
        client.cookies.clear()
        token = _csrf(client.get("/sign-in").text)
        r = client.post("/sign-in", data={"username": username, "password": "correct-horse-1", "csrf": token},
                        follow_redirects=False)
        assert r.status_code == 303, r.text

    make.as_ = as_  # type: ignore[attr-defined]
    return make


def _audit(client: TestClient, **where: str) -> list:
    from node.models import AuditEntry

    table = AuditEntry.__table__
    with client.app.state.ctx.engine.connect() as conn:
        stmt = sa.select(table).where(*(table.c[k] == v for k, v in where.items())).order_by(table.c.id)
        return conn.execute(stmt).all()


def _next_version(client: TestClient, **changes) -> str:
    page = client.get(f"/centre/standards/propose?rule={RULE_ID}").text
    text = re.search(r'<textarea id="body" name="body"[^>]*>(.*?)</textarea>', page, re.S)[1]
    import html

    body = json.loads(html.unescape(text))
    assert body["version"] == 2
    body.update(changes)
    return json.dumps(body, ensure_ascii=False)


def test_centre_pages_need_a_session_and_the_role(client: TestClient, sign_in, standards) -> None:
    r = client.get("/centre/standards")
    assert r.status_code == 401 and 'action="/sign-in"' in r.text
    sign_in("outlet_staff", username="olive", org="B01")
    assert client.get("/centre").status_code == 403
    r = client.get("/centre/standards")
    assert r.status_code == 403 and "<pre" not in r.text
    assert _audit(client, actor_name="olive", outcome="denied")
    sign_in("auditor", username="audrey")
    home = client.get("/centre")
    assert home.status_code == 200 and 'href="/centre/audit"' in home.text and "/centre/standards\"" not in home.text
    assert client.get("/centre/standards").status_code == 403


def test_propose_see_the_difference_and_a_second_admin_approves(client: TestClient, sign_in, standards) -> None:
    sign_in("standards_admin", username="alice")
    listing = client.get("/centre/standards")
    assert listing.status_code == 200 and RULE_ID in listing.text
    rule = client.get(f"/centre/standards/rules/{RULE_ID}/1")
    assert rule.status_code == 200
    # the readable rendering, from the rule's data, in Chinese and in English
    assert "数控铣工 (VQ.CNC_MILLING)" in rule.text and "等级不低于 三级" in rule.text
    assert "转换学分合计不超过专业毕业学分的 50%" in rule.text
    en = client.get(f"/centre/standards/rules/{RULE_ID}/1?lang=en").text
    assert "at level 三级 or higher" in en and "At most 8 credits per source outcome." in en
    client.get("/centre?lang=zh")

    page = client.get("/centre/standards/propose").text
    body = _next_version(client, caps={"max_percent_of_graduation_credits": "40", "max_credits_per_source": "8"})
    r = client.post("/centre/standards/propose", data={"body": body, "csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/centre/standards/rules/{RULE_ID}/2?done=proposed"
    draft = client.get(r.headers["location"]).text
    # the difference from version 1 (in force): the old sentence deleted, the new one inserted, changes marked
    assert re.search(r"<del[^>]*>转换学分合计不超过专业毕业学分的 <mark>5</mark>0%", draft)
    assert re.search(r"<ins[^>]*>转换学分合计不超过专业毕业学分的 <mark>4</mark>0%", draft)
    assert "与现行的第 1 版比较" in draft

    # four eyes: the maker cannot approve (nor reject) their own draft; the refusal is audited
    r = client.post(f"/centre/standards/rules/{RULE_ID}/2/approve", data={"csrf": _csrf(draft)})
    assert r.status_code == 403 and 'id="approve-error"' in r.text and "四眼原则" in r.text
    assert [e.outcome for e in _audit(client, action="standards.rule.approve")] == ["denied"]
    r = client.post(f"/centre/standards/rules/{RULE_ID}/2/reject", data={"reason": "", "csrf": _csrf(draft)})
    assert r.status_code == 400 and 'id="reason-error"' in r.text

    sign_in("standards_admin", username="bob")
    draft = client.get(f"/centre/standards/rules/{RULE_ID}/2").text
    r = client.post(f"/centre/standards/rules/{RULE_ID}/2/approve", data={"csrf": _csrf(draft)},
                    follow_redirects=False)
    assert r.status_code == 303
    approved = client.get(r.headers["location"]).text
    assert "生效中" in approved and "<dd>alice</dd>" in approved and "<dd>bob · " in approved
    approvals = _audit(client, action="standards.rule.approve")
    assert [(e.actor_name, e.outcome) for e in approvals] == [("alice", "denied"), ("bob", "ok")]
    assert [e.actor_name for e in _audit(client, action="standards.rule.create")] == ["alice"]
    # the public handbook now cites version 2
    assert "40" in client.get("/handbook?programme=SUES-CE-MECHATRONICS").text


def test_bad_rule_json_is_shown_next_to_the_field(client: TestClient, sign_in, standards) -> None:
    sign_in("standards_admin", username="carol")
    token = _csrf(client.get("/centre/standards/propose").text)
    cases = [
        ({"body": '{"id": "X", "version": 1,'}, "body", "这不是有效的 JSON", 400),
        ({"body": "[1, 2]"}, "body", "JSON 对象", 400),
        ({"body": ""}, "body", "请填写规则数据", 400),
        ({"body": json.dumps({"id": "NEW-RULE", "version": 1, "kind": "guidance", "title": "t",
                              "effective_from": "2026-01-01", "condition": {"outcome": {"min_level": "六级"}}})},
         "body", "不符合规则格式", 400),
        ({"body": _next_version(client, version=5)}, "body", "版本号必须连续", 409),
        ({"body": "{" * 100_000}, "body", "64 KB", 413),
        ({"body": '{"id": "A\\u0000B"}'}, "body", "不符合规则格式", 400),
    ]
    for data, field, text, status in cases:
        r = client.post("/centre/standards/propose", data={**data, "csrf": token})
        assert r.status_code == status, (data, r.text[:300])
        assert f'id="{field}-error"' in r.text and text in r.text, data
        assert 'href="#' + field + '"' in r.text  # the summary links to the field
    r = client.post("/centre/standards/propose", data={"body": "", "csrf": token},
                    files={"file": ("rule.json", b"\xff\xfe not utf-8", "application/json")})
    assert r.status_code == 400 and 'id="file-error"' in r.text and "UTF-8" in r.text
    r = client.post("/centre/standards/propose", data={"body": "", "csrf": token},
                    files={"file": ("rule.json", b'{"id": 1}', "application/json")})
    assert r.status_code == 400 and 'id="file-error"' in r.text
    # the refusals are audited by the API
    assert {e.outcome for e in _audit(client, action="standards.rule.create")} == {"failed"}


def test_forms_need_the_csrf_token(client: TestClient, sign_in, standards) -> None:
    sign_in("standards_admin", username="dave")
    body = _next_version(client)
    r = client.post("/centre/standards/propose", data={"body": body, "csrf": "0" * 40})
    assert r.status_code == 400
    r = client.post(f"/centre/standards/rules/{RULE_ID}/1/reject", data={"reason": "x"})
    assert r.status_code == 400
    assert not _audit(client, action="standards.rule.create")


def test_audit_log_filters_and_keyset_paging(client: TestClient, sign_in, standards) -> None:
    sign_in("standards_admin", username="erin")
    client.get("/centre/standards")
    body = _next_version(client)
    client.post("/centre/standards/propose", data={"body": body, "csrf": _csrf(client.get("/centre").text)})
    sign_in("auditor", username="audrey")
    page = client.get("/centre/audit?actor=erin&action=standards.rule.*")
    assert page.status_code == 200
    assert "standards.rule.create" in page.text and f"standard_rule:{RULE_ID}@2" in page.text
    assert "audit.read" not in page.text  # filtered by actor
    # bad filters: next to their field, nothing read
    r = client.get("/centre/audit?from=2026-13-01&to=x&outcome=maybe&actor=" + "a" * 101)
    assert r.status_code == 400
    for field in ("from", "to", "outcome", "actor"):
        assert f'id="{field}-error"' in r.text, field
    r = client.get("/centre/audit?from=2026-05-02&to=2026-05-01")
    assert r.status_code == 400 and 'id="to-error"' in r.text
    r = client.get("/centre/audit?target=a%01b")
    assert r.status_code == 400 and 'id="target-error"' in r.text
    assert client.get("/centre/audit?target=a%00b").status_code in (400, 422)  # refused at the edge
    # keyset paging: 50 a page, the next page starts after the last id shown, no entry twice
    from node.db import session_scope
    from node.audit.service import record

    with session_scope(client.app.state.ctx.engine) as s:
        for i in range(60):
            record(s, actor=None, action="test.paging", target_type="thing", target_id=i)
    first = client.get("/centre/audit?action=test.paging")
    shown = re.findall(r"<code>thing:(\d+)</code>", first.text)
    assert len(shown) == 50 and shown[0] == "59"
    next_url = re.search(r'<a href="([^"]+)" rel="next">', first.text)[1].replace("&amp;", "&")
    second = client.get(next_url)
    rest = re.findall(r"<code>thing:(\d+)</code>", second.text)
    assert rest == [str(i) for i in range(9, -1, -1)] and 'rel="next"' not in second.text
    reads = _audit(client, action="audit.read", actor_name="audrey")
    assert len(reads) == 3 and reads[-1].detail["filters"] == {"action": "test.paging"}
    # the date range is inclusive of the end day
    today = client.get("/centre/audit?action=test.paging&from=2000-01-01&to=2999-12-31")
    assert len(re.findall(r"<code>thing:", today.text)) == 50


def test_staff_accounts_and_roles(client: TestClient, sign_in) -> None:
    from node.db import session_scope
    from node.org.service import create_organisation

    with session_scope(client.app.state.ctx.engine) as s:
        create_organisation(s, code="SH-CENTRE", name="中心", kind="centre")
    sign_in("node_admin", username="nadia")
    page = client.get("/centre/staff")
    assert page.status_code == 200
    token = _csrf(page.text)
    # bad input next to the fields
    r = client.post("/centre/staff", data={"username": "X", "display_name": "", "csrf": token})
    assert r.status_code == 400
    for field in ("username", "display_name", "roles"):
        assert f'id="{field}-error"' in r.text, field
    r = client.post("/centre/staff", data={"username": "nadia", "display_name": "Dup", "roles": ["auditor"],
                                           "csrf": token})
    assert r.status_code == 409 and 'id="username-error"' in r.text
    r = client.post("/centre/staff", data={"username": "zed", "display_name": "a\x07b", "roles": ["auditor"],
                                           "csrf": token})
    assert r.status_code == 400 and 'id="display_name-error"' in r.text
    r = client.post("/centre/staff", data={"username": "zed", "display_name": "a\x00b", "roles": ["auditor"],
                                           "csrf": token})
    assert r.status_code == 422  # refused by the app-wide form check (node.middleware), before the page
    r = client.post("/centre/staff", data={"username": "frank", "display_name": "张弗兰克",
                                           "roles": ["standards_admin", "auditor"], "csrf": token})
    assert r.status_code == 201 and 'id="initial-password"' in r.text
    password = re.search(r'id="initial-password">([^<]+)<', r.text)[1]
    assert password not in json.dumps([tuple(e) for e in _audit(client, action="staff.create")], default=str)
    # give and withdraw roles; a role the organisation cannot hold is refused next to the field
    r = client.post("/centre/staff/frank/roles", data={"roles": ["auditor"], "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303
    member = client.get("/centre/staff/frank").text
    assert 'value="auditor" id="role-auditor" checked' in member
    assert 'value="standards_admin" id="role-standards_admin" checked' not in member
    r = client.post("/centre/staff/frank/roles", data={"roles": ["institution_uploader"], "csrf": token})
    assert r.status_code == 400 and 'id="roles-error"' in r.text
    r = client.post("/centre/staff/frank/roles", data={"csrf": token})
    assert r.status_code == 400 and 'id="roles-error"' in r.text
    # disable: the person's sessions end
    r = client.post("/centre/staff/frank/disable", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    assert [e.outcome for e in _audit(client, action="staff.disable")] == ["ok"]
    assert [e.outcome for e in _audit(client, action="staff.roles")] == ["ok", "failed"]
    other = TestClient(client.app)
    r = other.post("/api/v1/auth/token", data={"username": "frank", "password": password})
    assert r.status_code == 401
    assert client.get("/centre/staff/nobody").status_code == 404


def test_organisations(client: TestClient, sign_in) -> None:
    sign_in("node_admin", username="otto")
    token = _csrf(client.get("/centre/organisations").text)
    r = client.post("/centre/organisations", data={"code": "SH-CENTRE", "name": "上海市终身教育学分银行管理中心",
                                                   "kind": "centre", "csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    r = client.post("/centre/organisations", data={"code": "bad code!", "name": "", "kind": "planet",
                                                   "csrf": token})
    assert r.status_code == 400
    for field in ("code", "name", "kind"):
        assert f'id="{field}-error"' in r.text, field
    r = client.post("/centre/organisations", data={"code": "O1", "name": "网点", "kind": "outlet",
                                                   "parent_code": "SH-CENTRE", "csrf": token})
    assert r.status_code == 400 and 'id="parent_code-error"' in r.text
    r = client.post("/centre/organisations", data={"code": "B01", "name": "黄浦区分部", "kind": "branch",
                                                   "csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    listing = client.get("/centre/organisations?kind_filter=branch").text
    assert "黄浦区分部" in listing and "上海市终身教育学分银行管理中心" not in listing
    assert [e.outcome for e in _audit(client, action="organisation.create")] == ["ok", "failed", "ok"]


# -- queues and revocations --------------------------------------------------------------------------------

from tests.conversion.conftest import learner, outcome, seeded, staff  # noqa: E402,F401  (fixtures)
from tests.deposits.helpers import ok  # noqa: E402


def _confirmed_conversion(client: TestClient, learner, outcome, staff) -> dict:
    me = learner()
    outcome(me.id, type="vocational_qualification", code="VQ.CNC_MILLING", title="数控铣工（三级）",
            issuer_code="SH-OSTA", level="三级", score="合格")
    req = ok(client.post("/api/v1/me/conversions", json={"programme": "SUES-CE-MECHATRONICS"},
                         headers=me.headers), 201)
    outlet = staff("outlet_staff", org="O01")
    return ok(client.post(f"/api/v1/conversions/{req['id']}/confirm", json={"version": req["version"]},
                          headers=outlet))


def test_conversion_queue_decide_with_reason(client: TestClient, sign_in, seeded, learner, outcome, staff) -> None:
    req = _confirmed_conversion(client, learner, outcome, staff)
    [item] = req["items"]
    sign_in("centre_reviewer", username="rita")
    queue = client.get("/centre/conversions")
    assert queue.status_code == 200 and f'href="/centre/conversions/{req["id"]}"' in queue.text
    assert [e.outcome for e in _audit(client, action="conversion.list", actor_name="rita")] == ["ok"]
    assert f'/centre/conversions/{req["id"]}"' not in client.get("/centre/conversions?state=closed").text
    detail = client.get(f"/centre/conversions/{req['id']}")
    assert "SUES-CR-2016-CNCMILL-3" in detail.text and item["explanation_zh"][:20] in detail.text
    token = _csrf(detail.text)
    url = f"/centre/conversions/{req['id']}"
    r = client.post(url, data={"version": str(req["version"]), "csrf": token})
    assert r.status_code == 400 and f'id="decision_{item["id"]}-error"' in r.text
    r = client.post(url, data={"version": str(req["version"]), f"decision_{item['id']}": "reject", "csrf": token})
    assert r.status_code == 400 and f'id="reason_{item["id"]}-error"' in r.text
    r = client.post(url, data={"version": "999", f"decision_{item['id']}": "approve", "csrf": token})
    assert r.status_code == 409  # stale version: the API's refusal, audited
    assert [e.outcome for e in _audit(client, action="conversion.review")] == ["failed"]
    r = client.post(url, data={"version": str(req["version"]), f"decision_{item['id']}": "reject",
                               f"reason_{item['id']}": "证书编号无法核实", "csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert "证书编号无法核实" in page and 'id="conversion-state">已决定' in page
    assert [e.outcome for e in _audit(client, action="conversion.review")] == ["failed", "ok"]
    assert client.get("/centre/conversions/999999").status_code == 404


def test_transfer_queue_page(client: TestClient, sign_in) -> None:
    sign_in("branch_reviewer", username="bert", org="B01")
    page = client.get("/centre/transfers")
    assert page.status_code == 200 and "没有待审核的转移项目" in page.text
    assert _audit(client, action="transfer.review_queue", actor_name="bert")
    token = _csrf(page.text)
    r = client.post("/centre/transfers/items/12345", data={"decision_12345": "maybe", "csrf": token})
    assert r.status_code == 400 and "请选择核准或驳回" in r.text and "请填写理由" in r.text
    r = client.post("/centre/transfers/items/12345", data={"decision_12345": "approve", "reason_12345": "ok",
                                                           "csrf": token})
    assert r.status_code == 404
    assert [e.outcome for e in _audit(client, action="transfer.review")] == ["denied"]
    assert client.get("/centre/revocations").status_code == 403  # a branch reviewer does not revoke


def test_revocation_needs_two_centre_reviewers(client: TestClient, sign_in, learner, outcome) -> None:
    me = learner()
    achievement = outcome(me.id, type="training", code="T1", title="安全培训证书", issuer_code="X")
    sign_in("centre_reviewer", username="rita")
    page = client.get("/centre/revocations")
    token = _csrf(page.text)
    r = client.post("/centre/revocations", data={"achievement_id": "abc", "reason": "", "csrf": token})
    assert r.status_code == 400 and 'id="achievement_id-error"' in r.text and 'id="reason-error"' in r.text
    r = client.post("/centre/revocations", data={"achievement_id": "99999", "reason": "错误", "csrf": token})
    assert r.status_code == 404 and 'id="achievement_id-error"' in r.text
    r = client.post("/centre/revocations", data={"achievement_id": str(achievement), "reason": "证书系伪造",
                                                 "csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/centre/revocations").text
    assert "安全培训证书" in page and "证书系伪造" in page
    request_id = re.search(r'action="/centre/revocations/(\d+)"', page)[1]
    url = f"/centre/revocations/{request_id}"
    r = client.post(url, data={f"decision_{request_id}": "maybe", "csrf": _csrf(page)})
    assert r.status_code == 400 and f'id="decision_{request_id}-error"' in r.text
    # four eyes: the reviewer who asked cannot decide; the refusal is audited
    r = client.post(url, data={f"decision_{request_id}": "approve", "csrf": _csrf(page)})
    assert r.status_code == 403 and f'id="decision_{request_id}-error"' in r.text and "四眼原则" in r.text
    assert [e.outcome for e in _audit(client, action="revocation.decide")] == ["denied"]
    sign_in("centre_reviewer", username="sam")
    page = client.get("/centre/revocations").text
    r = client.post(url, data={f"decision_{request_id}": "approve", f"reason_{request_id}": "核实无误",
                               "csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert "安全培训证书" not in client.get("/centre/revocations").text
    from node.models import Achievement

    with client.app.state.ctx.engine.connect() as conn:
        status = conn.execute(sa.select(Achievement.__table__.c.status)
                              .where(Achievement.__table__.c.id == achievement)).scalar_one()
    assert status == "revoked"
    assert [e.outcome for e in _audit(client, action="revocation.decide")] == ["denied", "ok"]
    assert [(e.actor_name, e.outcome) for e in _audit(client, action="revocation.request")] == [
        ("rita", "denied"), ("rita", "ok")]  # the unknown outcome number, then the request
    assert _audit(client, action="revocation.list", actor_name="sam")


def test_every_text_the_pages_compose_exists_in_both_languages() -> None:
    """Keys the templates build from data (a role, a state, a kind...) — the key check cannot see them."""
    from node.portal.centre.admin import OUTCOMES, ORG_KINDS
    from node.portal.centre.common import SECTIONS
    from node.portal.centre.queues import CONVERSION_STATES
    from node.portal.centre.standards import STATUS_FILTERS
    from node.portal.i18n import catalogue
    from node.roles import ALL_STAFF_ROLES

    keys = {f"centre.role.{r}" for r in ALL_STAFF_ROLES}
    keys |= {f"centre.section.{name}{suffix}" for name, _, _ in SECTIONS for suffix in ("", "_intro")}
    keys |= {f"centre.state.{s}" for s in (*STATUS_FILTERS, "effective", "expired")}
    keys |= {f"centre.conv.state_{s}" for s in CONVERSION_STATES}
    keys |= {f"centre.conv.item_{s}" for s in ("proposed", "confirmed", "approved", "rejected", "withdrawn", "dropped", "revoked")}
    keys |= {f"centre.kind.{k}" for k in ORG_KINDS} | {f"centre.outcome.{o}" for o in OUTCOMES}
    keys |= {f"centre.diff.sr_{op}" for op in ("same", "del", "ins")}
    keys |= {f"centre.mode.{m}" for m in ("credit_recognition", "certificate_recognition", "course_restructuring",
                                           "through_train", "course_transfer", "other")}
    keys |= {f"centre.component.{c}" for c in ("theory", "skills", "all")}
    for lang in ("zh", "en"):
        assert sorted(keys - set(catalogue(lang))) == [], lang


def test_retire_an_approved_version(client: TestClient, sign_in, standards) -> None:
    sign_in("standards_admin", username="gina")
    page = client.get(f"/centre/standards/rules/{RULE_ID}/1")
    assert 'id="retire_reason"' in page.text
    r = client.post(f"/centre/standards/rules/{RULE_ID}/1/retire",
                    data={"retire_reason": "x" * 1001, "csrf": _csrf(page.text)})
    assert r.status_code == 400 and 'id="retire_reason-error"' in r.text
    r = client.post(f"/centre/standards/rules/{RULE_ID}/1/retire",
                    data={"retire_reason": "由新标准取代", "csrf": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert 'id="rule-state">已停用' in page and "由新标准取代" in page and 'id="retire_reason"' not in page
    r = client.post(f"/centre/standards/rules/{RULE_ID}/1/retire", data={"csrf": _csrf(page)})
    assert r.status_code == 409 and "该版本的当前状态不允许此操作" in r.text  # already retired: the API refuses
    assert 'id="retire_reason-error"' not in r.text  # the form is gone: the summary says it
    assert [e.outcome for e in _audit(client, action="standards.rule.retire")] == ["ok", "failed"]
