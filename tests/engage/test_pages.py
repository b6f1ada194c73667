"""The engagement pages without a browser: every dynamic text exists in both languages; each page works for its
audience, refuses the others, carries CSRF and shows errors next to their field."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session

from node.engage.notices import KINDS
from node.models.engage import PointsEntry
from node.portal.i18n import catalogue
from tests.deposits.helpers import decide, ok, register_learner, submitted

SUES = "SUES-CE-MECHATRONICS"


def test_every_key_made_from_data_has_both_languages(ctx) -> None:
    from node.engage.rights import retention_rules
    from node.engage.router import CorrectionRequestPublic  # noqa: F401

    made = {f"notice.kind.{k}" for k in KINDS} | {f"notice.text.{k}" for k in KINDS}
    made |= {f"notice.outcome.{o}" for o in ("passed_first", "rejected", "deposited", "decided", "closed",
                                             "corrected", "declined")}
    made |= {f"points.kind.{k}" for k in ("earned", "redeemed", "expired")}
    made |= {f"rights.state.{s}" for s in ("open", "corrected", "declined")}
    made |= {f"rights.field.{f}" for f in ("title", "credits", "hours", "score", "level", "earned_on")}
    made |= {f"rights.{p}.{r['key']}" for r in retention_rules(ctx) for p in ("keep", "kept")}
    made |= {f"points.err.{c}" for c in ("insufficient_points", "benefit_closed", "benefit_limit",
                                         "benefit_unavailable", "not_found")}
    made |= {f"notice.err.{f}" for f in ("email", "phone", "email_required", "phone_required")}
    made |= {f"counsel.err.{f}" for f in ("account_no", "code", "programme", "on", "invalid_consent_code",
                                          "not_found")}
    made |= {f"rights.err.{c}" for c in ("not_found", "duplicate", "illegal_transition")}
    for lang in ("zh", "en"):
        assert sorted(made - set(catalogue(lang))) == [], lang


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


def _sign_in(client: TestClient, username: str, password: str) -> None:
    token = _csrf(client.get("/sign-in").text)
    r = client.post("/sign-in", data={"username": username, "password": password, "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


def test_points_page_and_the_archive_block(client, engine) -> None:
    learner = register_learner(client)
    with Session(engine) as s:
        s.add(PointsEntry(learner_id=learner.id, points=120, kind="earned", rule_id="course-completed",
                          expires_on=dt.date.today() + dt.timedelta(days=30)))
        s.commit()
    _sign_in(client, learner.account_no, "learner-pass-1")
    archive = client.get("/me")
    assert 'id="points-balance"' in archive.text and "120" in archive.text
    page = client.get("/me/points")
    assert page.status_code == 200 and "学习积分" in page.text and "市民终身学习图书馆借阅卡" in page.text
    r = client.post("/me/points/redeem", data={"benefit": "library-card"})
    assert r.status_code == 400  # no CSRF token
    r = client.post("/me/points/redeem", data={"benefit": "library-card", "csrf": _csrf(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert "兑换成功" in page.text and '<dd id="points-balance">20</dd>' in page.text
    r = client.post("/me/points/redeem", data={"benefit": "course-voucher", "csrf": _csrf(page.text)})
    assert r.status_code == 409 and "可用积分不足" in r.text and 'class="error-summary"' in r.text
    english = client.get("/me/points?lang=en")
    assert "Learning points" in english.text and "Lifelong-learning library card" in english.text


def test_notices_and_preferences_pages(client, staff_headers) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    ok(decide(client, staff_headers("branch_reviewer"), app, "reject", reason="不符"))
    _sign_in(client, learner.account_no, "learner-pass-1")
    page = client.get("/me/notices")
    assert "存入申请审核结果" in page.text and f"编号 {app['id']}" in page.text and "未读 1 条" in page.text
    r = client.post("/me/notices/read", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and "未读 0 条" in client.get("/me/notices").text
    prefs = client.get("/me/notices/preferences")
    token = _csrf(prefs.text)
    r = client.post("/me/notices/preferences", data={"csrf": token, "email_kinds": "review_decided"})
    assert r.status_code == 400 and 'id="email-error"' in r.text and "请填写电子邮箱" in r.text
    r = client.post("/me/notices/preferences", data={"csrf": token, "email": "not-an-address"})
    assert r.status_code == 400 and 'id="email-error"' in r.text
    r = client.post("/me/notices/preferences", data={"csrf": token, "email_kinds": "review_decided",
                                                     "muted_kinds": ["transfer_completed", "nonsense"],
                                                     "email": "zhang@example.test"}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert "已保存" in page.text and 'value="zhang@example.test"' in page.text
    assert re.search(r'id="email_kinds-review_decided"[^>]*checked', page.text)
    assert re.search(r'id="muted_kinds-transfer_completed"[^>]*checked', page.text)


def test_my_data_page_copy_correction_and_code(client, staff_headers, deposited) -> None:
    learner = register_learner(client)
    achievement_id = deposited(learner)["achievement_id"]
    _sign_in(client, learner.account_no, "learner-pass-1")
    page = client.get("/me/data")
    assert page.status_code == 200 and "保存期限" in page.text and "90 天" in page.text
    export = client.get("/me/data/export.json")
    assert export.status_code == 200 and export.json()["account"]["id"] == learner.id
    pdf = client.get("/me/data/export.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    token = _csrf(page.text)
    r = client.post("/me/data/correction", data={"csrf": token, "achievement_id": str(achievement_id),
                                                 "message": " "})
    assert r.status_code == 400 and 'id="message-error"' in r.text
    r = client.post("/me/data/correction", data={"csrf": token, "achievement_id": "99999", "message": "x"})
    assert r.status_code == 404 and 'id="achievement_id-error"' in r.text
    r = client.post("/me/data/correction", data={"csrf": token, "achievement_id": str(achievement_id),
                                                 "message": "学分应为3"}, follow_redirects=False)
    assert r.status_code == 303
    assert "处理中" in client.get("/me/data").text
    r = client.post("/me/data/counselling-code", data={"csrf": token})
    code = re.search(r'id="consent-code">([A-Z0-9-]+)<', r.text)[1]
    assert len(code) == 9
    # the centre handles the request on its queue page
    staff_headers("centre_reviewer", username="centre1")
    centre = TestClient(client.app)
    _sign_in(centre, "centre1", "correct-horse-1")
    queue = centre.get("/staff/corrections")
    assert "学分应为3" in queue.text
    request_id = re.search(r'action="/staff/corrections/(\d+)"', queue.text)[1]
    r = centre.post(f"/staff/corrections/{request_id}", data={"csrf": _csrf(queue.text), "action": "correct",
                                                            "credits": "3", "reason": ""})
    assert r.status_code == 400 and f'id="r{request_id}-reason-error"' in r.text
    r = centre.post(f"/staff/corrections/{request_id}", data={"csrf": _csrf(queue.text), "action": "correct",
                                                            "credits": "3", "reason": "学校更正"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "已更正" in client.get("/me/data").text
    assert client.get("/staff/corrections").status_code == 403  # a learner


def test_counselling_at_the_outlet_and_its_print(client, staff_headers, seeded, outcome, engine) -> None:
    learner = register_learner(client)
    outcome(learner.id, type="vocational_qualification", code="VQ.CNC_MILLING", title="数控铣工（三级）",
            issuer_code="SH-OSTA", level="三级", score="合格", earned_on=dt.date(2023, 3, 1))
    code = ok(client.post("/api/v1/me/counselling-consents", headers=learner.headers), 201)["code"]
    staff_headers("outlet_staff", org="O01", username="desk1")
    desk = TestClient(client.app)
    _sign_in(desk, "desk1", "correct-horse-1")
    form = desk.get("/staff/counselling")
    assert form.status_code == 200 and 'name="code"' in form.text
    token = _csrf(form.text)
    r = desk.post("/staff/counselling", data={"csrf": token, "account_no": "", "code": "", "programme": SUES})
    assert r.status_code == 400 and 'id="account_no-error"' in r.text and 'id="code-error"' in r.text
    r = desk.post("/staff/counselling", data={"csrf": token, "account_no": learner.account_no, "code": "WRONG-CODE",
                                              "programme": SUES})
    assert r.status_code == 400 and 'id="code-error"' in r.text and "授权码不正确" in r.text
    r = desk.post("/staff/counselling", data={"csrf": token, "account_no": learner.account_no, "code": code,
                                              "programme": SUES}, follow_redirects=False)
    assert r.status_code == 303
    result = desk.get(r.headers["location"])
    assert result.status_code == 200 and "SUES-CR-2016-CNCMILL-3" in result.text and learner.account_no in result.text
    assert learner.id_number not in result.text
    _sign_in(client, learner.account_no, "learner-pass-1")
    assert client.get("/staff/counselling").status_code == 403
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'counselling.read'")).scalar() == 1
