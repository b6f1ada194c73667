"""The learner's pages, part 2 (no browser): what-if with the engine's explanation in both languages, a conversion
requested and followed through the outlet's check, the review and one appeal; consent granted, shown and revoked
at the origin; a transfer requested at the destination and followed to the recognised credits and the receipt —
between two real nodes in one process (the `Network` of tests/federation/conftest.py). Bad input of every form
comes back next to its field, in the page's language."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from federation.outbox import flush_outbox
from node.db import session_scope
from node.ledger.service import EventSpec, append_events
from node.models import Achievement, Learner
from node.portal.i18n import catalogue
from tests.deposits.helpers import register_learner
from tests.federation.conftest import federation, joined, make_database, network  # noqa: F401 - fixtures
from tests.federation.test_transfers import PASSWORD, Person, negotiate_agreement

PROGRAMME = "SOU-AUTO-SVC"  # 直通车: 汽车维修工（三级）→ five courses (config/standards/shanghai-pilot-2016.json)


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


def _sign_in(client: TestClient, username: str, password: str = "learner-pass-1") -> None:
    token = _csrf(client.get("/sign-in").text)
    r = client.post("/sign-in", data={"username": username, "password": password, "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


def _deposit(ctx, learner_id: int, **fields) -> int:
    with session_scope(ctx.engine) as s:
        learner = s.get(Learner, learner_id)
        a = Achievement(learner_id=learner_id, source="individual", status="deposited", **fields)
        s.add(a)
        s.flush()
        append_events(s, [EventSpec(kind="achievement.deposited", learner_id=learner_id, achievement_id=a.id,
                                    pseudonym=learner.pseudonym, data={"achievement": a.id, "title": a.title})])
        return a.id


def _certificate(ctx, learner_id: int) -> int:
    return _deposit(ctx, learner_id, type="vocational_qualification", issuer_code="SH-OSTA",
                    issuer_name="上海市职业技能鉴定中心", code="VQ.AUTO_REPAIR", title="汽车维修工", level="三级",
                    score_text="合格", earned_on=dt.date.today() - dt.timedelta(days=400))


@pytest.fixture
def standards(client: TestClient) -> None:
    from node.standards.cli import load_files

    ctx = client.app.state.ctx
    load_files(ctx.engine, list(ctx.settings.region.standards_files))


def _text_of(page: str) -> str:
    return re.sub(r"<[^>]+>", " ", page)


def test_dynamic_keys_have_both_languages() -> None:
    """Keys made from data (states, kinds, checks, refusal codes) exist in both catalogues."""
    from node.portal import conversions, transfers

    zh, en = catalogue("zh"), catalogue("en")
    made = {f"conv.state.{s}" for s in ("proposed", "confirmed", "decided", "appealed", "closed", "withdrawn")}
    made |= {f"conv.item_state.{s}" for s in ("proposed", "confirmed", "approved", "rejected", "dropped",
                                               "withdrawn", "revoked")}
    made |= {f"whatif.kind.{k}" for k in ("course", "exemption")}
    made |= {f"whatif.cause.{c}" for c in ("certificate_expires", "within_years", "rule_ends")}
    made |= {f"consent.state.{s}" for s in ("active", "revoked", "expired")}
    made |= {f"consent.category.{c}" for c in transfers.FORM_CATEGORIES}
    made |= {f"transfer.state.{s}" for s in ("completed", "awaiting_review")}
    made |= {f"transfer.item_state.{s}" for s in ("recognised", "awaiting_review", "rejected", "not_recognised",
                                                   "credential_invalid", "credential_revoked")}
    made |= {f"transfer.check.{c}" for c in transfers.CHECKS}
    made |= {f"conv.err.{c}" for c in conversions.CODES} | {f"transfer.err.{c}" for c in transfers.CODES}
    assert sorted(made - set(zh)) == [] and sorted(made - set(en)) == []


def test_what_if_request_follow_review_and_appeal(client: TestClient, standards, staff_headers) -> None:
    learner = register_learner(client, serial="771")
    _certificate(client.app.state.ctx, learner.id)
    _sign_in(client, learner.account_no)

    archive = client.get("/me").text
    for link in ("/me/what-if", "/me/conversions", "/me/consents", "/me/transfers"):
        assert f'href="{link}"' in archive

    # the searchable list works without JavaScript: a GET form
    page = client.get("/me/what-if", params={"q": "汽车"})
    assert page.status_code == 200 and PROGRAMME in page.text
    assert "SOU-ACCT" not in page.text or "汽车" in page.text
    none = client.get("/me/what-if", params={"q": "no-such-programme-xyz"})
    assert "没有符合条件的专业" in none.text
    unknown = client.get("/me/what-if", params={"programme": "NOPE"})
    assert unknown.status_code == 404 and 'id="programme"' in unknown.text and "请从列表中选择一个专业" in unknown.text

    page = client.get("/me/what-if", params={"programme": PROGRAMME})
    assert page.status_code == 200
    text = _text_of(page.text)
    assert "SH-GS-ZTC-2016-01" in text and "依据指导标准" in text and "汽车维修工" in text
    assert text.count("第 1 版") >= 5  # five courses, each citing the rule and its version
    english = _text_of(client.get("/me/what-if", params={"programme": PROGRAMME, "lang": "en"}).text)
    assert "Under the guidance standard" in english and "rule SH-GS-ZTC-2016-01, version 1" in english
    assert "依据指导标准" not in english  # the engine's explanation in the page's language
    # what-if stores nothing
    assert client.get("/api/v1/me/conversions", headers=learner.headers).json() == []

    # request, then withdraw before the outlet checks it
    r = client.post("/me/conversions/new", data={"programme": PROGRAMME, "csrf": _csrf(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    first = r.headers["location"].split("?")[0]
    page = client.get(first + "?created=1&lang=zh")
    assert "已提交转换申请" in page.text and "待学习点核对" in page.text and 'aria-current="step"' in page.text
    r = client.post(first + "/withdraw", data={"version": "999", "csrf": _csrf(page.text)})
    assert r.status_code == 409 and "申请已被他人更新" in r.text  # a stale form: said on the page, in Chinese
    version = re.search(r'name="version" value="(\d+)"', page.text)[1]
    r = client.post(first + "/withdraw", data={"version": version, "csrf": _csrf(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "已撤回" in client.get(first).text

    # a second request: outlet confirms, a reviewer approves four and rejects one, the learner appeals once
    page = client.get("/me/what-if", params={"programme": PROGRAMME})
    r = client.post("/me/conversions/new", data={"programme": PROGRAMME, "csrf": _csrf(page.text)},
                    follow_redirects=False)
    second = r.headers["location"].split("?")[0]
    request_id = int(second.rsplit("/", 1)[1])
    outlet = staff_headers("outlet_staff")
    view = client.get(f"/api/v1/conversions/{request_id}", headers=outlet).json()
    view = client.post(f"/api/v1/conversions/{request_id}/confirm", headers=outlet,
                       json={"version": view["version"]}).json()
    page = client.get(second).text
    assert "待审核" in page
    reviewer = staff_headers("centre_reviewer")
    decisions = [{"item_id": i["id"], "decision": "approve"} for i in view["items"][:-1]]
    decisions.append({"item_id": view["items"][-1]["id"], "decision": "reject", "reason": "实践环节需另行考核"})
    r = client.post(f"/api/v1/conversions/{request_id}/review", headers=reviewer,
                    json={"version": view["version"], "decisions": decisions})
    assert r.status_code == 200, r.text
    page = client.get(second).text
    assert "已审核" in page and "实践环节需另行考核" in page and page.count("已通过") >= len(decisions) - 1
    assert "查看档案记录" in page  # approved course items link to the converted record
    r = client.post(second + "/appeal", data={"reason": " ", "version": "1", "csrf": _csrf(page)})
    assert r.status_code == 400 and 'id="reason-error"' in r.text and "请填写复议理由" in r.text
    r = client.post(second + "/appeal", data={"reason": "x" * 1001, "version": "1", "csrf": _csrf(page)})
    assert r.status_code == 400 and "不能超过 1000 字" in r.text
    version = re.search(r'name="version" value="(\d+)"', page)[1]
    r = client.post(second + "/appeal", data={"reason": "已提交实践考核材料", "version": version, "csrf": _csrf(page)},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(second).text
    assert "复议中" in page and "已提交实践考核材料" in page and 'action="' + second + '/appeal"' not in page
    listing = client.get("/me/conversions").text
    assert second in listing and first in listing and "汽车技术服务与营销" in listing

    # another learner's request does not exist for this one; a bad id is a page, never a stack trace
    assert client.get("/me/conversions/999999").status_code == 404
    r = client.get("/me/conversions/99999999999999999999999")
    assert r.status_code == 400 and "<html lang=\"zh-CN\">" in r.text and "Traceback" not in r.text
    r = client.post("/me/conversions/new", data={"programme": "", "csrf": _csrf(page)})
    assert r.status_code == 400 and "请从列表中选择一个专业" in r.text


def test_pages_need_a_learner_and_csrf(client: TestClient, staff_headers) -> None:
    for path in ("/me/what-if", "/me/conversions", "/me/consents", "/me/consents/new", "/me/transfers",
                 "/me/transfers/new", "/me/transfers/1", "/me/conversions/1"):
        r = client.get(path)
        assert r.status_code == 401 and 'action="/sign-in"' in r.text, path
    learner = register_learner(client, serial="772")
    _sign_in(client, learner.account_no)
    for path in ("/me/conversions/new", "/me/consents/new", "/me/transfers/new", "/me/transfers/binding",
                 "/me/consents/urn:uuid:x/revoke", "/me/conversions/1/withdraw"):
        r = client.post(path, data={"csrf": "0" * 40})
        assert r.status_code == 400, path
    # consent ids that are not one: a 404 page, not an error of the database
    assert client.get("/me/consents/" + "x" * 300).status_code == 404
    assert client.get("/me/consents/urn:uuid:nope").status_code == 404


def test_consent_form_errors_next_to_their_fields(client: TestClient) -> None:
    learner = register_learner(client, serial="773")
    _sign_in(client, learner.account_no)
    page = client.get("/me/consents/new")
    assert page.status_code == 200
    token = _csrf(page.text)
    r = client.post("/me/consents/new", data={"csrf": token, "valid_days": "0", "purpose": "p" * 501,
                                              "records": ["abc"], "holder_binding": "short"})
    assert r.status_code == 400
    for field in ("destination", "records", "purpose", "valid_days", "holder_binding"):
        assert f'id="{field}-error"' in r.text, field
    assert "有效天数须为 1 至 366 之间的整数" in r.text and "绑定码格式不正确" in r.text
    en = client.post("/me/consents/new?lang=en", data={"csrf": token})
    assert en.status_code == 400 and "Choose the region" in en.text and "请选择" not in en.text
    # a region that is not a member (this node holds no membership here): refused by the API's own check
    r = client.post("/me/consents/new?lang=zh", data={"csrf": token, "destination": "atlantis", "categories": ["degree"],
                                              "purpose": "升学", "valid_days": "30", "holder_binding": "hb1." + "a" * 20})
    assert r.status_code == 400 and 'id="destination-error"' in r.text and "不是联盟的其他成员" in r.text
    r = client.post("/me/transfers/binding", data={"csrf": token, "origin": "atlantis"})
    assert r.status_code == 400 and 'id="origin-error"' in r.text and "不是联盟的其他成员" in r.text


def test_consent_and_transfer_between_two_nodes(joined) -> None:
    """Shanghai (a) holds the records; the learner moves to Zhejiang (b) and asks b for the transfer."""
    fed = joined
    person = Person(fed, "高等数学", "4")
    negotiate_agreement(fed, automatic=True)
    origin, dest = fed.a.client, fed.b.client
    _sign_in(dest, person.dest_account, PASSWORD)
    _sign_in(origin, person.origin_account, PASSWORD)

    # step 1 at the destination: a holder binding for Shanghai
    page = dest.get("/me/transfers/new")
    assert page.status_code == 200 and 'value="shanghai"' in page.text and 'value="zhejiang"' not in page.text
    r = dest.post("/me/transfers/binding", data={"origin": "", "csrf": _csrf(page.text)})
    assert r.status_code == 400 and 'id="origin-error"' in r.text
    r = dest.post("/me/transfers/binding", data={"origin": "shanghai", "csrf": _csrf(page.text)})
    assert r.status_code == 200
    binding = re.search(r'id="binding" type="text" readonly value="(hb1\.[^"]+)"', r.text)[1]

    # step 2 at the origin: consent for Zhejiang naming the record, bound to that binding
    page = origin.get("/me/consents/new")
    assert f'value="{person.achievements[0]}"' in page.text and "高等数学" in page.text
    r = origin.post("/me/consents/new", data={
        "destination": "zhejiang", "records": [str(a) for a in person.achievements], "purpose": "跨省学分互认",
        "valid_days": "30", "holder_binding": binding, "csrf": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    consent_path = r.headers["location"].split("?")[0]
    page = origin.get(consent_path + "?granted=1").text
    assert "授权已签发" in page and "有效" in page and "尚未收到回执" in page
    document = origin.get(consent_path + "/consent.json")
    assert document.status_code == 200 and "attachment" in document.headers["content-disposition"]
    consent = document.json()
    assert consent["credentialSubject"]["holderBinding"] == binding
    assert person.id_number not in document.text
    assert "/me/consents" in origin.get("/me/consents").text

    # step 3 at the destination: bad documents are said next to the field, in Chinese
    token = _csrf(dest.get("/me/transfers/new").text)
    for bad, message in (("", "请粘贴或上传授权书"), ("{not json", "JSON 格式不正确"), ("[1, 2]", "JSON 格式不正确"),
                         ('{"a": "\\u0000"}', "JSON 格式不正确"), ("[" * 5000 + "]" * 5000, "JSON 格式不正确")):
        r = dest.post("/me/transfers/new", data={"consent": bad, "csrf": token})
        assert r.status_code == 400 and 'id="consent-error"' in r.text and message in r.text, bad[:20]
    tampered = json.loads(json.dumps(consent))
    tampered["credentialSubject"]["purpose"] = "别的用途"
    r = dest.post("/me/transfers/new", data={"consent": json.dumps(tampered, ensure_ascii=False), "csrf": token})
    assert r.status_code == 400 and 'id="consent-error"' in r.text and "签名无效" in r.text

    # the transfer, presented as an uploaded file, then followed step by step
    r = dest.post("/me/transfers/new", data={"csrf": token}, follow_redirects=False,
                  files={"consent_file": ("consent.jsonld", json.dumps(consent).encode(), "application/ld+json")})
    assert r.status_code == 303, r.text
    transfer_path = r.headers["location"].split("?")[0]
    page = dest.get(transfer_path).text
    assert 'id="transfer-state">已完成' in page and 'id="recognised-credits">4' in page
    steps = re.search(r'<ol class="steps" id="transfer-steps">(.*?)</ol>', page, re.S)[1]
    assert steps.count("已完成") == 6 and "1 项中 1 项通过" in steps and "账本规模" in steps
    assert "ZJ-M101" in page and "签名: 通过" in _text_of(page).replace("：", ": ")
    receipt = dest.get(transfer_path + "/receipt.json")
    assert receipt.status_code == 200 and receipt.json()["type"] == ["VerifiableCredential", "TransferReceipt"]
    assert transfer_path in dest.get("/me/transfers").text
    english = dest.get(transfer_path + "?lang=en").text
    assert "Signed receipt sent to the origin" in english and "已完成" not in english
    dest.get("/me/transfers?lang=zh")  # back to Chinese (the language choice is a cookie)

    # the receipt reaches the origin through the outbox; the consent page shows it
    assert flush_outbox(fed.b.ctx).sent >= 1
    page = origin.get(consent_path).text
    assert "回执 urn:uuid:" in page

    # revoke at the origin; a second revoke is said on the page
    r = origin.post(consent_path + "/revoke", data={"csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    page = origin.get(consent_path).text
    assert 'id="consent-state">已撤回' in page and 'id="revoke-consent"' not in page
    r = origin.post(consent_path + "/revoke", data={"csrf": _csrf(page)})
    assert r.status_code == 409 and "已经撤回" in r.text

    # a fresh consent, revoked before it is presented: the origin refuses to release, said in Chinese
    page = dest.get("/me/transfers/new").text
    r = dest.post("/me/transfers/binding", data={"origin": "shanghai", "csrf": _csrf(page)})
    binding = re.search(r'value="(hb1\.[^"]+)"', r.text)[1]
    page = origin.get("/me/consents/new").text
    r = origin.post("/me/consents/new", data={
        "destination": "zhejiang", "categories": ["degree"], "purpose": "再次认定", "valid_days": "7",
        "holder_binding": binding, "csrf": _csrf(page)}, follow_redirects=False)
    second = r.headers["location"].split("?")[0]
    consent2 = origin.get(second + "/consent.json").json()
    origin.post(second + "/revoke", data={"csrf": _csrf(origin.get(second).text)})
    r = dest.post("/me/transfers/new", data={"consent": json.dumps(consent2), "csrf": token})
    assert r.status_code == 403 and "这份授权已被撤回" in r.text
    with session_scope(fed.b.ctx.engine) as s:  # nothing recognised twice
        assert len(s.exec(select(Achievement).where(Achievement.source == "transfer")).all()) == 1
    assert Decimal("4") == Decimal(dest.get("/api/v1/me/transfers", headers=person.at_dest).json()[0]
                                   ["recognised_credits"])
