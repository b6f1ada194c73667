"""The federation administrators' pages without a browser, on two real in-process nodes (Shanghai and Zhejiang,
tests/federation/conftest.py): only federation_admin gets in (others: 401 sign-in form, 403 audited), every form
needs its CSRF token, every action is the API's audited action, refusals are pages in the page's language with the
error next to its field, and a negotiation — propose, counter, side-by-side diff, sign — runs through the pages."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from federation.outbox import enqueue, flush_outbox
from node.models import AgreementVersion, AuditEntry, OutboxMessage, WitnessAlert
from node.org.service import create_staff
from tests.federation.conftest import federation, joined, make_database, network  # noqa: F401

PASSWORD = "correct-horse-1"
AGREEMENT = "urn:creditnode:agreement:sh-zj-pages"
PAGES = ("/federation", "/federation/membership", "/federation/agreements", "/federation/agreements/new",
         "/federation/outbox", "/federation/witness")


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


def _browser(node, username: str, *roles: str) -> TestClient:
    """A fresh client (its own cookies) signed in through the sign-in page as a new staff member."""
    with node.session() as s:
        create_staff(s, username=username, display_name=username, password=PASSWORD, roles=list(roles))
    client = TestClient(node.app, base_url=node.base_url)
    r = client.post("/sign-in", data={"username": username, "password": PASSWORD,
                                      "csrf": _csrf(client.get("/sign-in").text)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def _audit(node, action: str) -> list[AuditEntry]:
    with node.session() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all())


def _form(**over) -> dict:
    data = {"agreement": AGREEMENT, "title": "沪浙学分互认协议", "partner": "zhejiang", "types": ["degree_course"],
            "hpc_own": "18", "hpc_partner": "16", "recognition": "automatic",
            "valid_from": (dt.date.today() - dt.timedelta(days=1)).isoformat(), "valid_to": "",
            "m0_from": "shanghai", "m0_type": "degree_course", "m0_code": "MATH101", "m0_level": "", "m0_ref": "",
            "m0_to_code": "ZJ-M101", "m0_to_title": "高等数学（互认）", "m0_to_level": "", "m0_credits": "",
            "m1_from": "", "m1_type": "degree_course", "m1_code": "", "m1_level": "", "m1_ref": "",
            "m1_to_code": "", "m1_to_title": "", "m1_to_level": "", "m1_credits": ""}
    data.update(over)
    return data


def _fields(page: str) -> dict:
    """The counter-proposal form's prefilled values, as a browser would post them back."""
    data: dict = {}
    for name, value in re.findall(r'<input type="text" id="[^"]+" name="([^"]+)" value="([^"]*)"', page):
        data[name] = value.replace("&amp;", "&")
    for name, value in re.findall(r'<input id="([^"]+)" name="[^"]+" type="(?:text|date)" value="([^"]*)"', page):
        data[name] = value
    for name in re.findall(r'<select id="([^"]+)"', page):
        block = page.split(f'<select id="{name}"', 1)[1].split("</select>", 1)[0]
        chosen = re.search(r'<option value="([^"]*)" selected>', block)
        data[name] = chosen[1] if chosen else ""
    data["types"] = re.findall(r'name="types" value="([^"]+)" checked', page)
    data["recognition"] = re.search(r'name="recognition" value="([^"]+)" checked', page)[1]
    data["base"] = re.search(r'name="base" value="([0-9a-f]{64})"', page)[1]
    data["csrf"] = _csrf(page)
    return data


@pytest.fixture
def admins(joined):
    return _browser(joined.a, "fed-a", "federation_admin"), _browser(joined.b, "fed-b", "federation_admin")


def test_only_federation_admins_get_in(joined, admins) -> None:
    anonymous = TestClient(joined.a.app, base_url=joined.a.base_url)
    for path in PAGES:
        r = anonymous.get(path)
        assert r.status_code == 401 and 'action="/sign-in"' in r.text, path
    reviewer = _browser(joined.a, "centre-1", "centre_reviewer", "node_admin")
    for path in PAGES:
        r = reviewer.get(path)
        assert r.status_code == 403 and "Traceback" not in r.text, path
    denied = [e for e in _audit(joined.a, "page.get /federation/agreements") if e.outcome == "denied"]
    assert denied and denied[0].detail["allowed_roles"] == ["federation_admin"]
    r = reviewer.post("/federation/agreements/new", data={**_form(), "csrf": _csrf(reviewer.get("/").text)})
    assert r.status_code == 403
    with joined.a.session() as s:
        assert s.exec(select(AgreementVersion)).first() is None

    admin, _ = admins
    for path in PAGES:
        r = admin.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert '<html lang="zh-CN">' in r.text and "default-src 'none'" in r.headers["content-security-policy"]
    assert "Federation administration" in admin.get("/federation?lang=en").text
    assert "zhejiang" in admin.get("/federation/membership").text  # members and who signed each version
    assert "浙江省终身教育学分银行" in admin.get("/federation/membership?lang=zh").text


def test_forms_need_their_csrf_token(joined, admins) -> None:
    admin, _ = admins
    r = admin.post("/federation/agreements/new", data=_form())
    assert r.status_code == 400 and "Traceback" not in r.text
    r = admin.post("/federation/agreements/new", data={**_form(), "csrf": "0" * 40})
    assert r.status_code == 400
    with joined.a.session() as s:
        assert s.exec(select(AgreementVersion)).first() is None
    for path in ("/federation/agreements/x/sign", "/federation/agreements/x/suspend",
                 "/federation/agreements/x/terminate", "/federation/outbox/m1/requeue",
                 "/federation/streams/zhejiang/resync", "/federation/agreements/x/counter"):
        assert admin.post(path, data={"hash": "a" * 64}).status_code == 400, path
    assert _audit(joined.a, "federation.stream.resync") == []


def test_the_proposal_form_shows_each_error_next_to_its_field(joined, admins) -> None:
    admin, _ = admins
    token = _csrf(admin.get("/federation/agreements/new").text)
    bad = _form(agreement="x", partner="mars", types=[], hpc_own="0", hpc_partner="abc", recognition="",
                valid_from="2027-13-01", m0_from="", m1_code="X1", m1_from="shanghai")
    r = admin.post("/federation/agreements/new", data={**bad, "csrf": token})
    assert r.status_code == 400
    for field in ("agreement", "partner", "types", "hpc_own", "hpc_partner", "recognition", "valid_from",
                  "m0_from", "m1_to_code"):
        assert f'id="{field}-error"' in r.text, field
        assert f'href="#{field}"' in r.text, field
    assert "请选择对方地区" in r.text and "请至少选择一种成果类型" in r.text
    r = admin.post("/federation/agreements/new?lang=en", data={**_form(valid_to="2000-01-01"), "csrf": token})
    assert r.status_code == 400 and "The end date cannot be before the start date" in r.text
    huge = _form(title="长" * 5000, m0_to_title="名" * 5000)
    r = admin.post("/federation/agreements/new", data={**huge, "csrf": token})
    assert r.status_code == 400 and 'id="title-error"' in r.text and 'id="m0_to_title-error"' in r.text
    r = admin.post("/federation/agreements/new", data={**_form(m0_code="A\x00B"), "csrf": token})
    assert 400 <= r.status_code < 500
    with joined.a.session() as s:
        assert s.exec(select(AgreementVersion)).first() is None


def test_a_negotiation_through_the_pages(joined, admins) -> None:
    a, b = admins
    r = a.post("/federation/agreements/new", data={**_form(), "csrf": _csrf(a.get("/federation/agreements/new").text)},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    detail = r.headers["location"].split("?")[0]
    assert detail == f"/federation/agreements/{AGREEMENT}"
    assert [e.target_id for e in _audit(joined.a, "federation.agreement.propose")] == [AGREEMENT]
    # the same id again: refused, audited as failed, the message next to the id
    r = a.post("/federation/agreements/new", data={**_form(), "csrf": _csrf(a.get("/federation/agreements/new").text)})
    assert r.status_code == 409 and 'id="agreement-error"' in r.text and "这个协议编号已经存在" in r.text
    assert [e.outcome for e in _audit(joined.a, "federation.agreement.propose")] == ["ok", "failed"]
    assert flush_outbox(joined.a.ctx).sent == 1

    assert "有 1 份协议等待本节点签署" in b.get("/federation").text
    assert "等待本节点签署" not in a.get("/federation").text  # Shanghai signed what it proposed
    # Zhejiang counter-proposes: other hours per credit, a changed mapping and a new one
    page = b.get(detail)
    assert page.status_code == 200 and "签署第 1 版" in page.text and "修改条款并提出反提案" in page.text
    form = _fields(b.get(f"{detail}/counter").text)
    assert form["m0_code"] == "MATH101" and form["hpc_own"] == "16" and form["hpc_partner"] == "18"
    r = b.post(f"{detail}/counter", data=form)  # nothing changed: refused next to the form
    assert r.status_code == 400 and "条款没有任何修改" in r.text
    form.update(hpc_own="17", m0_to_title="高等数学（一）", m1_from="shanghai", m1_code="MATH201",
                m1_to_code="ZJ-M201", m1_to_title="线性代数")
    r = b.post(f"{detail}/counter", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert _audit(joined.b, "federation.agreement.counter")[0].detail["version"] == 2
    # a second counter on the old base is stale
    r = b.post(f"{detail}/counter", data={**form, "hpc_own": "15"})
    assert r.status_code == 409 and "协议已有更新的版本" in r.text
    assert flush_outbox(joined.b.ctx).sent == 1

    # Shanghai sees version 2 side by side with version 1, the differences marked
    page = a.get(detail).text
    assert "第 2 版相对第 1 版的变更" in page
    assert "<del>16</del>" in page and "<ins>17</ins>" in page
    assert "高等数学（<del>互认</del>）" in page and "高等数学（<ins>一</ins>）" in page
    assert "<ins>→ ZJ-M201 线性代数 · 学分按学时折算</ins>" in page
    changes = page.split('class="changes"', 1)[1].split("</table>", 1)[0]
    assert changes.count("<tr class=\"change-") == 3  # hours, the changed mapping, the new mapping
    english = a.get(f"{detail}?lang=en").text
    assert "What version 2 changes in version 1" in english and "Zhejiang hours per credit" in english
    assert "<td>Shanghai, Zhejiang</td>" in a.get("/federation/agreements?lang=en").text
    a.get(f"{detail}?lang=zh")  # back to Chinese (the choice is kept in a cookie)
    head = re.search(r'name="hash" value="([0-9a-f]{64})"', page)[1]
    r = a.post(f"{detail}/sign", data={"hash": "f" * 64, "csrf": _csrf(page)})  # not the head
    assert r.status_code == 409 and "协议已有更新的版本" in r.text
    r = a.post(f"{detail}/sign", data={"hash": head, "csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert flush_outbox(joined.a.ctx).sent == 1
    # Zhejiang signed version 2 when it proposed it: Shanghai's signature completes it (two messages)
    for client, node in ((a, joined.a), (b, joined.b)):
        page = client.get(detail).text
        assert "各方均已签署" in page and 'id="in-force">第 2 版 · 有效' in page, node.name
        with node.session() as s:
            assert s.exec(select(AgreementVersion).where(AgreementVersion.hash == head)).one().complete
    assert len(_audit(joined.a, "federation.agreement.sign")) == 2  # the refused one and the signature

    # the verifiable history: each version's signers and hash, its JSON, a verification page
    verify = a.get(f"{detail}/verify")
    assert verify.status_code == 200 and "哈希链和全部签名验证通过" in verify.text and head in verify.text
    assert _audit(joined.a, "federation.agreement.verify")
    document = a.get(f"{detail}/versions/{head}.json")
    assert document.status_code == 200 and document.json()["version"] == 2
    assert len(document.json()["proof"]) == 2
    assert a.get(f"{detail}/versions/{'0' * 64}.json").status_code == 404
    compare = a.get(f"{detail}/compare", params={"hash": head})
    assert compare.status_code == 200 and "<ins>17</ins>" in compare.text

    # suspend, then terminate (which asks for a confirmation next to its box)
    page = a.get(detail).text
    r = a.post(f"{detail}/terminate", data={"base": head, "csrf": _csrf(page)})
    assert r.status_code == 400 and 'id="confirm-error"' in r.text
    r = a.post(f"{detail}/suspend", data={"base": head, "csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert _audit(joined.a, "federation.agreement.suspend")[0].detail["status"] == "suspended"
    page = a.get(detail).text
    assert "<del>有效</del>" in page and "<ins>暂停</ins>" in page
    r = a.post(f"{detail}/suspend", data={"base": head, "csrf": _csrf(page)})  # the head is version 3 now
    assert r.status_code == 409


def test_unknown_agreements_and_bad_input_are_4xx_pages(joined, admins) -> None:
    admin, _ = admins
    token = _csrf(admin.get("/federation").text)
    r = admin.get("/federation/agreements/urn:nothing")
    assert r.status_code == 404 and "没有这份协议" in r.text
    assert "There is no such agreement" in admin.get("/federation/agreements/urn:nothing?lang=en").text
    admin.get("/federation?lang=zh")
    long_id = admin.get("/federation/agreements/" + "x" * 300)
    assert long_id.status_code == 400 and long_id.headers["content-type"].startswith("text/html")
    r = admin.post("/federation/agreements/urn:nothing/sign", data={"hash": "a" * 64, "csrf": token})
    assert r.status_code == 404
    r = admin.post("/federation/agreements/urn:nothing/sign", data={"hash": "a" * 500, "csrf": token})
    assert 400 <= r.status_code < 500 and "Traceback" not in r.text
    assert admin.get("/federation/witness", params={"peer": "p" * 100}).status_code == 404


def test_dead_letters_requeue_and_resync(joined, admins) -> None:
    admin, _ = admins
    with joined.a.session() as s:
        enqueue(s, "zhejiang", "membership.update", {"version": 1}, message_id="dead-one")
        s.flush()
        row = s.exec(select(OutboxMessage).where(OutboxMessage.message_id == "dead-one")).one()
        row.state, row.attempts, row.last_error = "dead", 12, "503 maintenance"
        s.add(row)
    page = admin.get("/federation/outbox")
    assert page.status_code == 200 and "dead-one" in page.text and "消息流受阻" in page.text
    assert _audit(joined.a, "federation.outbox.dead_letters") and _audit(joined.a, "federation.streams.read")
    token = _csrf(page.text)
    r = admin.post("/federation/outbox/no-such/requeue", data={"csrf": token})
    assert r.status_code == 404 and "找不到这条死信消息" in r.text
    assert [e.outcome for e in _audit(joined.a, "federation.outbox.requeue")] == ["failed"]
    r = admin.post("/federation/outbox/dead-one/requeue", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    assert [e.outcome for e in _audit(joined.a, "federation.outbox.requeue")] == ["failed", "ok"]
    with joined.a.session() as s:
        assert s.exec(select(OutboxMessage).where(OutboxMessage.message_id == "dead-one")).one().state == "pending"

    r = admin.post("/federation/streams/mars/resync", data={"csrf": token})
    assert r.status_code == 404 and "该节点不是联盟成员" in r.text
    r = admin.post("/federation/streams/zhejiang/resync", data={"csrf": token})
    assert r.status_code == 200, r.text
    assert 'id="resync-report"' in r.text and "已与浙江重新同步" in r.text
    outcomes = [e.outcome for e in _audit(joined.a, "federation.stream.resync")]
    assert outcomes == ["failed", "ok"]
    assert flush_outbox(joined.a.ctx).sent == 1


def test_witness_alerts_are_shown(joined, admins) -> None:
    admin, _ = admins
    assert "没有告警" in admin.get("/federation/witness").text
    with joined.a.session() as s:
        s.add(WitnessAlert(peer_id="zhejiang", reason="split_view", known_size=3, known_root_hash=b"\x01" * 32,
                           seen_size=3, seen_root_hash=b"\x02" * 32,
                           evidence={"witnessed_note": "note one", "presented_note": "note <two>",
                                     "error": "two different roots for size 3"}))
    page = admin.get("/federation/witness").text
    assert "同一大小出现两个不同的根哈希" in page and "02" * 32 in page and "note &lt;two&gt;" in page
    assert _audit(joined.a, "witness.alerts_read")[-1].detail["count"] == 1
