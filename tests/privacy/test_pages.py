"""The centre's erasure page without a browser: node administrators only, errors next to their fields, the
maker cannot confirm, a second administrator erases; every step audited by the API it calls."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.deposits.helpers import register_learner


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


@pytest.fixture
def sign_in(client: TestClient, staff_headers):
    def make(*roles: str, username: str, org: str | None = None) -> None:
        staff_headers(*roles, username=username, org=org)
        client.cookies.clear()
        token = _csrf(client.get("/sign-in").text)
        r = client.post("/sign-in", data={"username": username, "password": "correct-horse-1", "csrf": token},
                        follow_redirects=False)
        assert r.status_code == 303, r.text

    return make


def test_two_administrators_erase_a_learner_through_the_page(client: TestClient, sign_in, engine) -> None:
    learner = register_learner(client)
    sign_in("centre_reviewer", username="rita")
    assert client.get("/centre/erasures").status_code == 403
    assert "/centre/erasures" not in client.get("/centre").text
    sign_in("node_admin", username="ada")
    page = client.get("/centre/erasures")
    assert page.status_code == 200 and "个人信息删除" in page.text and "/centre/erasures" in client.get("/centre").text
    token = _csrf(page.text)
    r = client.post("/centre/erasures", data={"account_no": "abc", "basis": "nope", "reason": "", "csrf": token})
    assert r.status_code == 400
    for field in ("account_no", "basis", "reason"):
        assert f'id="{field}-error"' in r.text, field
    r = client.post("/centre/erasures", data={"account_no": learner.account_no, "basis": "learner_request",
                                              "reason": "本人申请", "csrf": token})
    assert r.status_code == 400 and 'id="legal_reference-error"' in r.text and "依据文件" in r.text
    r = client.post("/centre/erasures", data={"account_no": "99999999999", "basis": "learner_request",
                                              "legal_reference": "申请书 001", "reason": "本人申请", "csrf": token})
    assert r.status_code == 404 and 'id="account_no-error"' in r.text
    r = client.post("/centre/erasures", data={"account_no": learner.account_no, "basis": "learner_request",
                                              "legal_reference": "申请书 001", "reason": "本人申请", "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/centre/erasures?done=requested").text
    assert "删除申请已提交" in page and learner.account_no in page and "须由另一位管理员确认" in page
    request_id = re.search(r'action="/centre/erasures/(\d+)"', page)[1]
    version = re.search(r'name="version" value="(\d+)"', page)[1]
    # the maker's own confirmation is refused by the API (the page offers none; a forged post gets the error)
    r = client.post(f"/centre/erasures/{request_id}", data={"action": "confirm", "version": version,
                                                           "csrf": _csrf(page)})
    assert r.status_code == 403 and f'id="step_{request_id}"' in r.text and "另一位管理员" in r.text
    sign_in("node_admin", username="bea")
    page = client.get("/centre/erasures").text
    assert "确认删除" in page
    r = client.post(f"/centre/erasures/{request_id}", data={"action": "later", "version": version,
                                                           "csrf": _csrf(page)})
    assert r.status_code == 400
    r = client.post(f"/centre/erasures/{request_id}", data={"action": "confirm", "version": version,
                                                           "csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/centre/erasures?done=done").text
    assert "已删除该学习者的个人信息" in page and "已删除" in page
    english = client.get("/centre/erasures?lang=en").text
    assert "Erasure of personal data" in english
    with engine.connect() as conn:
        outcomes = conn.execute(sa.text("SELECT action, outcome FROM audit_log WHERE action LIKE 'erasure.%' "
                                        "ORDER BY id")).all()
        erased = conn.execute(sa.text("SELECT erased_at FROM learner WHERE id = :l"), {"l": learner.id}).scalar()
    assert ("erasure.confirm", "denied") in outcomes and ("erasure.confirm", "ok") in outcomes
    assert erased is not None
    # the outlet's page of the account now says it was erased (410), in the page's language
    sign_in("outlet_staff", username="olive", org="B01")
    r = client.get(f"/staff/learners/{learner.id}")
    assert r.status_code == 410 and "个人信息已按规定删除" in r.text
