"""A learner's deposit application through the pages: the form's errors next to their fields, the evidence upload,
both reviews (by staff through the API) followed on the page, one appeal."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.deposits.helpers import PDF, register_learner


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


def _signed_in(client: TestClient, serial: str):
    learner = register_learner(client, serial=serial)
    token = _csrf(client.get("/sign-in").text)
    r = client.post("/sign-in", data={"username": learner.account_no, "password": "learner-pass-1", "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303
    return learner


def _home_branch(client: TestClient, learner_id: int) -> None:
    from node.db import session_scope
    from node.models import Learner
    from node.org.service import create_organisation

    with session_scope(client.app.state.ctx.engine) as s:
        create_organisation(s, code="SH-CENTRE", name="中心", kind="centre")
        branch = create_organisation(s, code="B01", name="黄浦区分部", kind="branch")
        s.get(Learner, learner_id).home_org_id = branch.id


FORM = {"type": "vocational_qualification", "title": "数控铣工", "issuer_code": "SH-OSTA",
        "issuer_name": "上海市职业技能鉴定中心", "level": "三级", "earned_on": "2024-05-01"}


def test_apply_follow_both_reviews_and_appeal_once(client: TestClient, staff_headers) -> None:
    learner = _signed_in(client, "561")
    _home_branch(client, learner.id)
    page = client.get("/me/applications/new")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    token = _csrf(page.text)

    # wrong input: each error next to its field, in Chinese
    r = client.post("/me/applications/new", data={**FORM, "level": "", "earned_on": "2999-01-01", "csrf": token})
    assert r.status_code == 400
    assert 'id="level-error"' in r.text and "证书需要选择等级" in r.text
    assert 'id="evidence-error"' in r.text and "请上传证明材料" in r.text
    r = client.post("/me/applications/new", data={**FORM, "csrf": token},
                    files={"evidence": ("cert.txt", b"plain text", "text/plain")})
    assert r.status_code == 415 and 'id="evidence-error"' in r.text and "文件类型不支持" in r.text
    assert client.get("/api/v1/me/deposit-applications", headers=learner.headers).json() == []  # nothing half-done

    r = client.post("/me/applications/new", data={**FORM, "csrf": token},
                    files={"evidence": ("cert.pdf", PDF, "application/pdf")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    app_path = r.headers["location"].split("?")[0]
    page = client.get(app_path).text
    assert "等待初审" in page and "cert.pdf" in page
    app_id = int(app_path.rsplit("/", 1)[1])

    branch = staff_headers("branch_reviewer", org="B01")
    view = client.get(f"/api/v1/deposit-applications/{app_id}", headers=branch).json()
    r = client.post(f"/api/v1/deposit-applications/{app_id}/decision", headers=branch,
                    json={"decision": "reject", "reason": "证书扫描件不清晰", "version": view["version"]})
    assert r.status_code == 200, r.text
    page = client.get(app_path).text
    assert "初审未通过" in page and "证书扫描件不清晰" in page and 'action="/me/applications/' in page

    r = client.post(f"{app_path}/appeal", data={"reason": "", "version": "1", "csrf": _csrf(page)})
    assert r.status_code == 400 and 'id="reason-error"' in r.text
    version = client.get(f"/api/v1/me/deposit-applications/{app_id}", headers=learner.headers).json()["version"]
    r = client.post(f"{app_path}/appeal", data={"reason": "已补充清晰扫描件", "version": str(version),
                                                "csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(app_path).text
    assert "申诉中（初审）" in page and "已补充清晰扫描件" in page and "提交申诉" not in page  # once only

    # the appeal goes to another reviewer of the branch, then the centre
    for headers in (staff_headers("branch_reviewer", org="B01"), staff_headers("centre_reviewer", org="SH-CENTRE")):
        view = client.get(f"/api/v1/deposit-applications/{app_id}", headers=headers).json()
        r = client.post(f"/api/v1/deposit-applications/{app_id}/decision", headers=headers,
                        json={"decision": "approve", "version": view["version"]})
        assert r.status_code == 200, r.text
    page = client.get(app_path).text
    assert "已存入" in page and 'href="/me/records/' in page
    assert "数控铣工" in client.get("/me").text  # now in the archive
    assert "数控铣工" in client.get("/me/applications").text
