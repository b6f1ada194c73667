"""The portal without a browser: catalogues complete in both languages, cookies and CSRF, sessions revoked like
API tokens, friendly error pages in the page's language, the learner pages' refusals."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from node.portal.i18n import catalogue
from node.portal.web import CSRF_COOKIE, SESSION_COOKIE
from tests.deposits.helpers import register_learner

PORTAL = Path(__file__).resolve().parents[2] / "node" / "portal"
HTML = {"accept": "text/html"}
_KEY = re.compile(r"""_\(\s*["']([a-z_]+\.[a-z_.]+)["']""")


def _keys_used() -> set[str]:
    keys = set()
    for path in PORTAL.glob("templates/**/*.html"):
        keys |= set(_KEY.findall(path.read_text(encoding="utf-8")))
    macro_args = re.compile(r"""field\(\s*"[a-z_]+",\s*"([a-z_.]+)"[^)]*?(?:hint_key="([a-z_.]+)")?""")
    for path in PORTAL.glob("templates/**/*.html"):
        for label, hint in macro_args.findall(path.read_text(encoding="utf-8")):
            keys |= {k for k in (label, hint) if k}
    # literal keys in the code: any "prefix.key" string whose prefix is one the pages use (from the templates and
    # both catalogues), so a page module with a new key of a known prefix cannot miss its translation
    prefixes = {k.split(".")[0] for k in keys} | {k.split(".")[0] for k in (*catalogue("zh"), *catalogue("en"))}
    literal = re.compile(r'"((?:' + "|".join(sorted(map(re.escape, prefixes))) + r')(?:\.[a-z_]+)+)"')
    for path in PORTAL.glob("**/*.py"):
        keys |= set(literal.findall(path.read_text(encoding="utf-8")))
    return {k for k in keys if not k.endswith(".html")}


def test_every_text_has_a_chinese_and_an_english_version() -> None:
    zh, en = catalogue("zh"), catalogue("en")
    used = _keys_used()
    assert len(used) > 100
    assert sorted(used - set(zh)) == []
    assert sorted(used - set(en)) == []
    assert set(zh) == set(en)
    # keys made from data: every state, decision and type of a deposit application has its text
    from node.deposits.schemas import ACHIEVEMENT_TYPES
    from node.deposits.workflow import State

    made = {f"state.{s.value}" for s in State} | {f"type.{t}" for t in ACHIEVEMENT_TYPES} | {
        "decision.approve", "decision.reject"}
    assert sorted(made - set(zh)) == []
    # placeholders agree between the languages
    for key in zh:
        assert sorted(re.findall(r"%\((\w+)\)s", zh[key])) == sorted(re.findall(r"%\((\w+)\)s", en[key])), key


def test_every_region_has_a_short_name_in_both_languages() -> None:
    """Codes such as `shanghai` show as 上海 / Shanghai (node.portal.i18n.region_name); a code without a name
    shows as it is."""
    from config.settings import region_names
    from node.portal.i18n import region_name, translator

    zh, en = translator("zh"), translator("en")
    for code in region_names():
        assert zh.has(f"region.{code}") and en.has(f"region.{code}"), code
    assert (region_name(zh, "shanghai"), region_name(en, "zhejiang")) == ("上海", "Zhejiang")
    assert region_name(zh, "fujian") == "fujian" and region_name(en, None) == ""


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


def test_pages_answer_in_chinese_by_default_and_in_english_when_asked(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and '<html lang="zh-CN">' in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'; style-src 'self'")
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    r = client.get("/standards", headers={"accept-language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in r.text and "Standards catalogue" in r.text
    r = client.get("/?lang=en")
    assert "lang=en" in r.headers["set-cookie"]
    assert '<html lang="en">' in client.get("/members").text  # the cookie keeps the choice
    assert client.get("/static/portal/portal.css").status_code == 200


def test_errors_are_pages_in_the_pages_language(client: TestClient) -> None:
    r = client.get("/no-such-page", headers=HTML)
    assert r.status_code == 404 and "找不到此页面" in r.text and "Not Found" not in r.text
    assert "Traceback" not in r.text
    r = client.get("/no-such-page", headers={**HTML, "accept-language": "en"})
    assert "Page not found" in r.text
    assert client.get("/api/v1/no-such-route").json()["code"] == "not_found"  # the API keeps its JSON
    r = client.get("/me/records/abc", headers=HTML)
    assert r.status_code in (400, 401) and r.headers["content-type"].startswith("text/html")


def test_a_form_without_its_csrf_token_is_refused(client: TestClient) -> None:
    page = client.get("/sign-in")
    assert CSRF_COOKIE in page.cookies
    assert "HttpOnly" in page.headers["set-cookie"] and "SameSite=lax" in page.headers["set-cookie"]
    r = client.post("/sign-in", data={"username": "x", "password": "y"})
    assert r.status_code == 400 and "表单已过期" in r.text
    r = client.post("/sign-in", data={"username": "x", "password": "y", "csrf": "0" * 40})
    assert r.status_code == 400 and "表单已过期" in r.text
    other = TestClient(client.app)  # another browser's token does not fit this browser's nonce
    r = other.post("/sign-in", data={"username": "x", "password": "y", "csrf": _csrf(page.text)})
    assert r.status_code == 400


def test_sign_in_errors_show_next_to_the_field_and_the_session_ends_on_sign_out(client: TestClient) -> None:
    learner = register_learner(client, serial="551")
    token = _csrf(client.get("/sign-in").text)
    r = client.post("/sign-in", data={"username": learner.account_no, "password": "wrong-one", "csrf": token})
    assert r.status_code == 401
    assert 'id="password-error"' in r.text and "密码不正确" in r.text and 'href="#password"' in r.text
    r = client.post("/sign-in", data={"username": learner.id_number, "password": "learner-pass-1", "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/me"
    cookie = r.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # the test node's base URL is http
    session_token = client.cookies[SESSION_COOKIE]
    page = client.get("/me")
    assert page.status_code == 200 and learner.account_no in page.text
    # the session is the API's token: signing out on the page revokes it for the API too, and vice versa
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {session_token}"}).status_code == 200
    r = client.post("/sign-out", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {session_token}"}).status_code == 401
    client.cookies.set(SESSION_COOKIE, session_token)  # an old cookie replayed
    r = client.get("/me")
    assert r.status_code == 401 and 'name="username"' in r.text


def test_staff_signed_in_on_a_learner_page_are_refused_and_audited(client: TestClient, staff_headers) -> None:
    staff_headers("outlet_staff", username="desk1")
    token = _csrf(client.get("/sign-in").text)
    r = client.post("/sign-in", data={"username": "desk1", "password": "correct-horse-1", "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303
    r = client.get("/me")
    assert r.status_code == 403 and "没有权限" in r.text
    from node.db import session_scope
    from node.models import AuditEntry
    from sqlmodel import select

    with session_scope(client.app.state.ctx.engine) as s:
        denied = s.exec(select(AuditEntry).where(AuditEntry.outcome == "denied",
                                                 AuditEntry.actor_name == "desk1")).all()
    assert [e.action for e in denied] == ["page.get /me"]


def test_the_learner_sees_who_read_their_account(client: TestClient, staff_headers) -> None:
    learner = register_learner(client, serial="552")
    staff = staff_headers("outlet_staff", username="desk2")
    assert client.get(f"/api/v1/learners/{learner.id}", headers=staff).status_code == 200
    token = _csrf(client.get("/sign-in").text)
    client.post("/sign-in", data={"username": learner.account_no, "password": "learner-pass-1", "csrf": token})
    page = client.get("/me/accesses").text
    assert "desk2" in page and "查看账户" in page


def test_cookies_are_secure_when_the_node_is_served_over_https(database_url, tmp_path, engine) -> None:
    from node.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database_url, tmp_path / "data", base_url="https://localhost:8443"),
                     engine=engine)
    with TestClient(app, base_url="https://testserver") as client:
        r = client.get("/sign-in?lang=en")
        cookies = r.headers.get_list("set-cookie")
        assert len(cookies) == 2 and all("Secure" in c and "HttpOnly" in c and "SameSite=lax" in c for c in cookies)
        assert "max-age=63072000" in r.headers["strict-transport-security"]


def test_the_edge_answers_a_browser_with_a_page_in_its_language(client: TestClient) -> None:
    """Refusals made before any route runs (text no database stores, a body over the limit) are the portal's error
    page for a browser — Chinese by default, never the API's English JSON — and stay JSON for the API."""
    r = client.post("/sign-in", data={"username": "a\x00b", "password": "x", "csrf": "0"}, headers=HTML)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in r.text and "not valid" not in r.text and "NUL" not in r.text
    r = client.get("/standards?q=a%00&lang=en", headers=HTML)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html") and '<html lang="en">' in r.text
    r = client.post("/sign-in", content=b"username=" + b"x" * (3 << 20), headers={
        **HTML, "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
    r = client.post("/api/v1/auth/sign-in", data={"username": "a\x00b"}, headers=HTML)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_every_action_audited_against_a_learner_has_a_text() -> None:
    """The accesses page names each action in the learner's language: every action the code records with a learner
    as its target has an `action.*` text (a new one without a text would show as a code)."""
    root = PORTAL.parents[1]
    recorded = set()
    for path in [*root.glob("node/**/*.py"), *root.glob("federation/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        # a module's target constants (`_TARGET = "learner"`) count like the literal
        learner_names = {'"learner"'} | {f"{name}" for name in re.findall(r'^(_?[A-Z_]+)\s*=\s*"learner"$', text,
                                                                          re.M)}
        for call in re.findall(r"record\w*\((?:[^()]|\([^()]*\))*\)", text):
            target = re.search(r"target_type=(\w+|\"[a-z_]+\")", call)
            if target and target[1] in learner_names:
                recorded |= set(re.findall(r'action="([a-z_.]+)"', call))
    assert len(recorded) > 10
    for lang in ("zh", "en"):
        assert sorted(f"action.{a}" for a in recorded if f"action.{a}" not in catalogue(lang)) == []


def test_signing_in_returns_to_the_page_asked_for_with_its_query(client: TestClient) -> None:
    r = client.get("/centre/statistics?from=2025-01-01&to=2025-03-31", headers=HTML)
    assert r.status_code == 401
    assert 'name="next" value="/centre/statistics?from=2025-01-01&amp;to=2025-03-31"' in r.text
