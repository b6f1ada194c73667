"""More of the federation administrators' pages, on two real in-process nodes: amending an agreement in force
(the changes shown beside the version in force before anything is signed, a confirmation bound to them, the
API's audited amend) and membership proposals (propose, sign, install through the API's own route functions)."""

from __future__ import annotations

import re

from federation.outbox import flush_outbox
from tests.federation.conftest import federation, joined, make_database, network  # noqa: F401
from tests.portal.test_fedadmin import _audit, _csrf, _fields, _form, admins  # noqa: F401


def _in_force(joined, a, b) -> str:
    """An agreement proposed by Shanghai and signed by Zhejiang through the pages; its detail path."""
    r = a.post("/federation/agreements/new", data={**_form(), "csrf": _csrf(a.get("/federation/agreements/new").text)},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    detail = r.headers["location"].split("?")[0]
    assert flush_outbox(joined.a.ctx).sent == 1
    page = b.get(detail).text
    head = re.search(r'name="hash" value="([0-9a-f]{64})"', page)[1]
    assert b.post(f"{detail}/sign", data={"hash": head, "csrf": _csrf(page)}, follow_redirects=False).status_code == 303
    assert flush_outbox(joined.b.ctx).sent == 1
    assert 'id="in-force">第 1 版 · 有效' in a.get(detail).text
    return detail


def test_amend_an_agreement_in_force(joined, admins) -> None:
    a, b = admins
    detail = _in_force(joined, a, b)
    page = a.get(detail).text
    assert f'href="{detail}/amend"' in page and "修改生效中的协议" in page
    form = _fields(a.get(f"{detail}/amend").text)
    assert form["hpc_own"] == "18" and form["m0_code"] == "MATH101"
    r = a.post(f"{detail}/amend", data=form)  # nothing changed
    assert r.status_code == 400 and "条款没有任何修改" in r.text
    r = a.post(f"{detail}/amend", data={**form, "valid_from": "someday"})
    assert r.status_code == 400 and 'id="valid_from-error"' in r.text
    form.update(hpc_own="19", m0_to_title="高等数学（二）")
    r = a.post(f"{detail}/amend", data=form)  # first the changes, beside the version in force
    assert r.status_code == 200 and "第 2 版相对第 1 版的变更" in r.text
    assert "<del>18</del>" in r.text and "<ins>19</ins>" in r.text and "高等数学（<ins>二</ins>）" in r.text
    assert "尚未签署" in r.text and "确认修改，签署并发送" in r.text
    assert not _audit(joined.a, "federation.agreement.amend")  # nothing sent yet
    token = re.search(r'name="preview" value="([0-9a-f]+)"', r.text)[1]
    # a confirmation whose terms differ from those shown: shown again, not sent
    r = a.post(f"{detail}/amend", data={**form, "hpc_own": "20", "confirm": "yes", "preview": token})
    assert r.status_code == 400 and "条款在显示差异之后又被修改过" in r.text and "<ins>20</ins>" in r.text
    assert not _audit(joined.a, "federation.agreement.amend")
    r = a.post(f"{detail}/amend", data={**form, "confirm": "yes", "preview": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=amend")
    entries = _audit(joined.a, "federation.agreement.amend")
    assert [(e.outcome, e.detail["version"]) for e in entries] == [("ok", 2)]
    # the old form again: the version it names is no longer the head (refused by the API, audited)
    r = a.post(f"{detail}/amend", data={**form, "hpc_own": "21"})
    assert r.status_code == 200  # the changes against the version the form was made from are only shown
    stale = re.search(r'name="preview" value="([0-9a-f]+)"', r.text)[1]
    r = a.post(f"{detail}/amend", data={**form, "hpc_own": "21", "confirm": "yes", "preview": stale})
    assert r.status_code == 409 and "协议已有更新的版本" in r.text
    assert [e.outcome for e in _audit(joined.a, "federation.agreement.amend")] == ["ok", "failed"]
    assert flush_outbox(joined.a.ctx).sent == 1
    # Zhejiang sees version 2 beside version 1 and signs it; version 2 is then in force
    page = b.get(detail).text
    assert "<del>18</del>" in page and "<ins>19</ins>" in page and "签署第 2 版" in page
    head = re.search(r'name="hash" value="([0-9a-f]{64})"', page)[1]
    assert b.get(f"{detail}/amend").status_code == 409  # a pending head is countered, not amended
    assert b.post(f"{detail}/sign", data={"hash": head, "csrf": _csrf(page)}, follow_redirects=False).status_code == 303
    assert flush_outbox(joined.b.ctx).sent == 1
    assert 'id="in-force">第 2 版 · 有效' in a.get(detail).text


def _document(page: str) -> dict:
    import html
    import json

    return json.loads(html.unescape(re.search(r'<textarea id="document" name="document"[^>]*>(.*?)</textarea>',
                                              page, re.S)[1]))


def test_membership_proposals_propose_sign_collect_and_install(joined, admins) -> None:
    import json

    from federation.membership import held_membership, sign_membership

    a, b = admins
    page = a.get("/federation/membership").text
    assert 'href="/federation/membership/propose"' in page and 'id="proposal-' not in page
    form = a.get("/federation/membership/propose").text
    proposal = _document(form)
    assert proposal["version"] == 2 and proposal["threshold"] == 3 and "proof" not in proposal
    token = _csrf(form)
    r = a.post("/federation/membership/propose", data={"document": "", "csrf": token})
    assert r.status_code == 400 and 'id="document-error"' in r.text
    r = a.post("/federation/membership/propose", data={"document": "{not json", "csrf": token})
    assert r.status_code == 400 and 'id="document-error"' in r.text and "{not json" in r.text
    r = a.post("/federation/membership/propose", data={"document": json.dumps({**proposal, "version": 7}),
                                                       "csrf": token})
    assert r.status_code == 409 and "版本号必须是现行版本加一" in r.text
    assert [e.outcome for e in _audit(joined.a, "federation.membership.propose")] == ["failed"]
    proposal["threshold"] = 4
    r = a.post("/federation/membership/propose", data={"document": json.dumps(proposal), "csrf": token},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    assert [e.outcome for e in _audit(joined.a, "federation.membership.propose")] == ["failed", "ok"]
    page = a.get(r.headers["location"]).text
    assert "提案已保存" in page and "<del>3</del> → <ins>4</ins>" in page
    assert "已有 0 个有效签名，需要 4 个" in page and "有效签名数量不足" in page
    digest = re.search(r'/federation/membership/proposals/([0-9a-f]{64})/sign', page)[1]
    # Shanghai signs through the page
    r = a.post(f"/federation/membership/proposals/{digest}/sign", data={"csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert [e.target_id for e in _audit(joined.a, "federation.membership.sign")] == [digest]
    page = a.get("/federation/membership").text
    assert "本节点已签署" in page and "已有 1 个有效签名，需要 4 个" in page
    r = a.post(f"/federation/membership/proposals/{'0' * 64}/sign", data={"csrf": _csrf(page)})
    assert r.status_code == 404 and [e.outcome for e in _audit(joined.a, "federation.membership.sign")] == ["ok", "failed"]
    # Zhejiang gets the file, submits it (upload), signs; the other two members' proofs are added elsewhere
    signed = a.get(f"/federation/membership/proposals/{digest}.json")
    assert signed.status_code == 200 and len(signed.json()["proof"]) == 1
    form = b.get("/federation/membership/propose").text
    r = b.post("/federation/membership/propose", data={"document": "", "csrf": _csrf(form)},
               files={"file": ("proposal.json", signed.content, "application/json")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = b.get("/federation/membership").text
    assert "已有 1 个有效签名" in page
    b.post(f"/federation/membership/proposals/{digest}/sign", data={"csrf": _csrf(page)})
    document = b.get(f"/federation/membership/proposals/{digest}.json").json()
    for region in ("jiangsu", "anhui"):
        document = sign_membership(document, joined.fakes[region])
    form = a.get("/federation/membership/propose").text
    r = a.post("/federation/membership/propose", data={"document": json.dumps(document), "csrf": _csrf(form)},
               follow_redirects=False)
    assert r.status_code == 303
    page = a.get("/federation/membership").text
    assert "已有 4 个有效签名（需要 4 个），可以启用" in page and "启用这一版" in page
    r = a.post(f"/federation/membership/proposals/{digest}/install", data={"csrf": _csrf(page)},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/federation/membership?done=install"
    with joined.a.session() as s:
        assert held_membership(s).version == 2 and held_membership(s).document["threshold"] == 4
    assert [e.outcome for e in _audit(joined.a, "federation.membership.install")] == ["ok"]
    page = a.get("/federation/membership?done=install&lang=en").text
    assert "The new membership version is installed" in page and 'id="proposal-' not in page


def test_odd_membership_documents_are_4xx_pages_never_500(joined, admins) -> None:
    import json

    a, _ = admins
    form = a.get("/federation/membership/propose").text
    proposal = _document(form)
    token = _csrf(form)
    odd = [
        "[1, 2]", "null", "1" * 300, '{"a":' * 5000 + "1" + "}" * 5000,
        json.dumps({**proposal, "threshold": 10 ** 30}),
        json.dumps({**proposal, "members": "all"}),
        json.dumps({**proposal, "proof": "x"}),
        json.dumps({**proposal, "proof": [{"verificationMethod": 5, "proofValue": ["z"]}, 7]}),
        json.dumps({**proposal, "version": 2.5}),
    ]
    for text in odd:
        r = a.post("/federation/membership/propose", data={"document": text, "csrf": token}, follow_redirects=False)
        assert r.status_code in (303, 400, 409, 413), (r.status_code, text[:80])
        page = a.get("/federation/membership")
        assert page.status_code == 200, text[:80]
    r = a.post("/federation/membership/propose", data={"document": "", "csrf": token},
               files={"file": ("p.json", b"\xff\xfe\x00garbage", "application/json")})
    assert r.status_code == 400 and 'id="file-error"' in r.text
    r = a.post("/federation/membership/propose", data={"document": "", "csrf": token},
               files={"file": ("p.json", b"{" + b" " * (300 * 1024) + b"}", "application/json")})
    assert r.status_code == 413 and 'id="file-error"' in r.text
    for path in ("/federation/membership/proposals/xyz.json", "/federation/membership/proposals/" + "0" * 64 + ".json"):
        assert a.get(path).status_code in (400, 404), path
    assert a.post("/federation/membership/proposals/nothex/install", data={"csrf": token}).status_code == 400
    r = a.post("/federation/membership/proposals/" + "0" * 64 + "/install", data={"csrf": token})
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
