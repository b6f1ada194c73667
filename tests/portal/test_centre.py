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
    assert "生效中" in client.get(r.headers["location"]).text
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
