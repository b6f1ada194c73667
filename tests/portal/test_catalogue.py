"""The centre's catalogue pages without a browser (node/portal/centre/catalogue.py): programmes with their
courses and certificates — list, create, edit as a new version, retire — for standards admins only, each error
next to its field (placed with the API's own item shape), every write and refusal audited by the API."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.portal.test_centre import sign_in, standards  # noqa: F401  (fixtures)

PROGRAMME = "SOU-AUTO-SVC"  # config/standards/shanghai-pilot-2016.json


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


def _audit(client: TestClient, action: str) -> list:
    """The entries of `action` made by alice (the standards loader's own are left out)."""
    from node.models import AuditEntry

    table = AuditEntry.__table__
    with client.app.state.ctx.engine.connect() as conn:
        return conn.execute(sa.select(table).where(table.c.action == action, table.c.actor_name == "alice")
                            .order_by(table.c.id)).all()


def _fields(page: str) -> dict:
    """The form's prefilled values, as a browser would post them back."""
    data: dict = {}
    for name, value in re.findall(r'<input (?:type="text" )?id="[^"]+" name="([^"]+)" (?:type="(?:text|date)" )?'
                                  r'value="([^"]*)"', page):
        data[name] = value.replace("&amp;", "&")
    for name in re.findall(r'<select id="([^"]+)"', page):
        block = page.split(f'<select id="{name}"', 1)[1].split("</select>", 1)[0]
        chosen = re.search(r'<option value="([^"]*)" selected>', block)
        data[name] = chosen[1] if chosen else ""
    for name in re.findall(r'name="(c\d+_never_exempt)" value="yes" checked', page):
        data[name] = "yes"
    data["levels"] = re.findall(r'name="levels" value="([^"]+)" checked', page)
    data["csrf"] = _csrf(page)
    return data


def _programme(**over: str) -> dict:
    data = {"code": "SOU-NEW-PROG", "name_zh": "智能制造技术", "institution_code": "SOU", "level": "专科",
            "graduation_credits": "75", "effective_from": "2026-09-01",
            "c0_code": "SOU-NEW-01", "c0_name_zh": "机械制图", "c0_credits": "4", "c0_hours": "72",
            "c0_category": "professional_core", "c0_level": "",
            "c1_code": "SOU-NEW-02", "c1_name_zh": "数控编程", "c1_credits": "3.5", "c1_hours": "",
            "c1_category": "", "c1_level": "", "c1_never_exempt": "yes",
            "c2_code": "", "c2_name_zh": "", "c2_credits": "", "c2_hours": "", "c2_category": "", "c2_level": ""}
    data.update(over)
    return data


def test_only_standards_admins_open_the_catalogue(client: TestClient, sign_in, standards) -> None:
    assert client.get("/centre/catalogue").status_code == 401
    sign_in("centre_reviewer", username="carol")
    assert client.get("/centre/catalogue").status_code == 403
    assert client.post("/centre/catalogue/programmes/new", data=_programme()).status_code == 400  # no CSRF token
    sign_in("standards_admin", username="alice")
    home = client.get("/centre").text
    assert 'href="/centre/catalogue"' in home
    page = client.get("/centre/catalogue")
    assert page.status_code == 200 and PROGRAMME in page.text and "汽车技术服务与营销" in page.text
    certificates = client.get("/centre/catalogue?kind=certificates&lang=en").text
    assert "VQ.AUTO_REPAIR" in certificates and "Programmes and certificates" in certificates
    assert PROGRAMME not in certificates
    client.get("/centre?lang=zh")
    assert "VQ.AUTO_REPAIR" not in client.get("/centre/catalogue?kind=certificates&q=CNC").text
    assert client.get("/centre/catalogue/programmes/NO-SUCH").status_code == 404
    assert client.get("/centre/catalogue/institutions/SOU").status_code == 400  # not a page kind
    assert client.get("/centre/catalogue/programmes/" + "x" * 300).status_code == 400


def test_create_a_programme_with_errors_next_to_their_fields(client: TestClient, sign_in, standards) -> None:
    sign_in("standards_admin", username="alice")
    form = client.get("/centre/catalogue/programmes/new").text
    token = _csrf(form)
    assert 'name="c2_code"' in form and 'name="c3_code"' not in form  # three empty course rows
    bad = _programme(name_zh="", c0_hours="abc", c1_credits="2.5555", graduation_credits="-1", csrf=token)
    r = client.post("/centre/catalogue/programmes/new", data=bad)
    assert r.status_code == 400, r.text
    for name in ("name_zh", "c0_hours", "c1_credits", "graduation_credits"):
        assert f'id="{name}-error"' in r.text and f'href="#{name}"' in r.text, name
    assert "最多三位小数" in r.text and 'value="2.5555"' in r.text  # the typed value stays
    assert [e.outcome for e in _audit(client, "standards.catalogue.put")] == ["failed"]  # the API's refusal
    r = client.post("/centre/catalogue/programmes/new", data=_programme(c1_code="SOU-NEW-01", csrf=token))
    assert r.status_code == 400 and 'id="c1_code-error"' in r.text and "出现了两次" in r.text
    r = client.post("/centre/catalogue/programmes/new", data=_programme(effective_from="2026-13-01", csrf=token))
    assert r.status_code == 400 and 'id="effective_from-error"' in r.text
    r = client.post("/centre/catalogue/programmes/new", data=_programme(code=PROGRAMME, csrf=token))
    assert r.status_code == 400 and 'id="code-error"' in r.text and "已经存在" in r.text
    r = client.post("/centre/catalogue/programmes/new", data=_programme(c0_category="x" * 201, csrf=token))
    assert r.status_code == 400 and 'id="c0_category-error"' in r.text
    r = client.post("/centre/catalogue/programmes/new", data=_programme(csrf=token), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/centre/catalogue/programmes/SOU-NEW-PROG?done=created"
    page = client.get(r.headers["location"]).text
    assert "已保存第 1 版" in page and "智能制造技术" in page and 'value="数控编程"' in page
    assert re.search(r'name="c1_never_exempt" value="yes" checked', page)
    entry = client.get("/api/v1/standards/programmes/SOU-NEW-PROG",
                       headers={"Authorization": f"Bearer {client.cookies['cn_session']}"}).json()
    assert [c["code"] for c in entry["data"]["courses"]] == ["SOU-NEW-01", "SOU-NEW-02"]
    assert entry["data"]["courses"][0]["hours"] == 72 and entry["data"]["courses"][1]["hours"] is None
    assert entry["data"]["courses"][1]["never_exempt"] is True and entry["data"]["courses"][1]["credits"] == "3.5"
    assert [e.outcome for e in _audit(client, "standards.catalogue.put")] == ["failed", "failed", "ok"]


def test_edit_makes_a_new_version_and_keeps_what_the_form_does_not_show(
        client: TestClient, sign_in, standards) -> None:
    sign_in("standards_admin", username="alice")
    path = f"/centre/catalogue/programmes/{PROGRAMME}"
    page = client.get(path).text
    data = _fields(page)
    assert data["name_zh"] == "汽车技术服务与营销" and data["c0_code"] and "code" not in data
    r = client.post(path, data=data)  # nothing changed
    assert r.status_code == 400 and "内容没有任何修改" in r.text
    data.update(name_zh="汽车技术服务与营销（新）", effective_from="2016-01-01")
    r = client.post(path, data=data)  # before the version in force started
    assert r.status_code == 409 and 'id="effective_from-error"' in r.text and "必须晚于" in r.text
    courses = sum(1 for k in data if re.fullmatch(r"c\d+_code", k) and data[k])
    first = data["c0_code"]
    for f in ("code", "name_zh", "credits", "hours", "category", "level"):  # remove the first course
        data[f"c0_{f}"] = ""
    data.pop("c0_never_exempt", None)
    data.update(effective_from="2030-01-01")
    r = client.post(path, data=data, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=edited")
    page = client.get(r.headers["location"]).text
    assert "已保存第 2 版" in page and "2030-01-01" in page and "（新）" in page
    assert "今日有效的版本</dt><dd>第 1 版 (2016-01-01 – 2029-12-31)" in page
    api = client.get(f"/api/v1/standards/programmes/{PROGRAMME}/versions",
                     headers={"Authorization": f"Bearer {client.cookies['cn_session']}"}).json()
    assert [v["version"] for v in api] == [1, 2] and api[0]["effective_to"] == "2029-12-31"
    assert len(api[1]["data"]["courses"]) == courses - 1 and first not in {c["code"] for c in api[1]["data"]["courses"]}
    assert api[1]["data"]["illustrative_fields"] == api[0]["data"]["illustrative_fields"]  # kept
    assert api[1]["created_by"].startswith("staff:")
    listed = client.get(f"/centre/catalogue?q={PROGRAMME}").text  # version 1 is the one in force until then
    row = listed.split(f'href="/centre/catalogue/programmes/{PROGRAMME}"', 1)[1].split("</tr>", 1)[0]
    assert "state-in_force" in row and "第 2 版自 2030-01-01 起生效" in row


def test_retire_an_entry_and_certificates(client: TestClient, sign_in, standards) -> None:
    sign_in("standards_admin", username="alice")
    path = "/centre/catalogue/certificates/VQ.AUTO_REPAIR"
    page = client.get(path).text
    assert 'name="levels" value="三级" checked' in page
    r = client.post(f"{path}/end", data={"effective_to": "2000-01-01", "csrf": _csrf(page)})
    assert r.status_code == 409 and 'id="effective_to-error"' in r.text and 'href="#effective_to"' in r.text
    r = client.post(f"{path}/end", data={"effective_to": "nonsense", "csrf": _csrf(page)})
    assert r.status_code == 400 and 'id="effective_to-error"' in r.text
    r = client.post(f"{path}/end", data={"effective_to": "2020-12-31", "csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert "已停用。" in page and "– 2020-12-31" in page and "state-ended" in page
    assert [e.outcome for e in _audit(client, "standards.catalogue.end")] == ["failed", "ok"]
    listed = client.get("/centre/catalogue?kind=certificates&q=AUTO_REPAIR").text
    assert "state-ended" in listed
    # a new certificate: a level not offered and a validity of 0 are refused next to their fields
    form = client.get("/centre/catalogue/certificates/new").text
    data = {"code": "VQ.NEW_TRADE", "name_zh": "工业机器人系统操作员", "type": "vocational_qualification",
            "levels": ["四级", "五级等级"], "issuer_code": "", "issuer_name_zh": "", "validity_years": "0",
            "effective_from": "2026-01-01", "csrf": _csrf(form)}
    r = client.post("/centre/catalogue/certificates/new", data=data)
    assert r.status_code == 400 and 'id="levels-error"' in r.text and 'id="validity_years-error"' in r.text
    data.update(levels=["四级", "三级"], validity_years="")
    r = client.post("/centre/catalogue/certificates/new", data=data, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"] + "&lang=en").text
    assert "Version 1 saved." in page and 'name="levels" value="四级" checked' in page
    assert "工业机器人系统操作员" in client.get("/standards?q=工业机器人").text  # the public catalogue shows it


def test_odd_input_is_a_4xx_page_never_a_500(client: TestClient, sign_in, standards) -> None:
    sign_in("standards_admin", username="alice")
    token = _csrf(client.get("/centre/catalogue/programmes/new").text)
    cases = [
        {"code": "a/b"}, {"code": "课程"}, {"code": "x" * 65}, {"graduation_credits": "NaN"},
        {"graduation_credits": "1e400"}, {"c0_hours": "-1"}, {"c0_hours": "9" * 40}, {"c0_credits": "Infinity"},
        {"institution_code": ""}, {"effective_from": "0000-00-00"}, {"name_zh": "\x00" * 10},
        {**{f"c{i}_code": f"C{i}" for i in range(150)}},
    ]
    for over in cases:
        r = client.post("/centre/catalogue/programmes/new", data=_programme(csrf=token, **over),
                        follow_redirects=False, headers={"accept": "text/html"})  # as a browser asks
        assert 400 <= r.status_code < 500 and "text/html" in r.headers["content-type"], (over, r.status_code)
        assert "Traceback" not in r.text
    r = client.post("/centre/catalogue/programmes/new", data=_programme(code="a/b", csrf=token))
    assert 'id="code-error"' in r.text and "下划线" in r.text
    r = client.post("/centre/catalogue/certificates/new",
                    data={"code": "VQ.X", "name_zh": "x", "type": "x" * 300, "levels": ["一级"] * 50,
                          "effective_from": "2026-01-01", "validity_years": "abc", "csrf": token})
    assert r.status_code == 400 and 'id="type-error"' in r.text and 'id="validity_years-error"' in r.text
    r = client.post(f"/centre/catalogue/programmes/{PROGRAMME}/end", data={"effective_to": "", "csrf": token})
    assert r.status_code == 400 and 'id="effective_to-error"' in r.text
    assert client.post("/centre/catalogue/programmes/NOPE/end", data={"effective_to": "2026-01-01",
                                                                      "csrf": token}).status_code == 404
