"""The learner's pages, part 2, in a real browser (Chromium through Playwright): a learner runs a what-if and
requests a conversion at Shanghai, gets a holder binding at Zhejiang, grants consent at Shanghai, requests the
transfer at Zhejiang and follows its steps to the recognised credits and the receipt, then revokes the consent.
axe-core on every page (no serious or critical violation); screenshots at desktop and phone widths in both
languages under the run's tmp folder.

Two live nodes are needed for the transfer: this module builds its own (`two_live_nodes`: Shanghai and Zhejiang,
each served by uvicorn on a free port of 127.0.0.1, with its own database; the founding membership names them at
those addresses, a fake Jiangsu signs it too and its DID document is answered by the test's transport). Peer
requests between the two go over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytest.importorskip("playwright", reason="no browser driver: pip install '.[test]' installs playwright")

from federation.outbox import flush_outbox  # noqa: E402
from tests.conftest import _PgDatabases, make_settings  # noqa: E402
from tests.portal.conftest import _free_port  # noqa: E402
from tests.portal.test_browser import WIDTHS, _check  # noqa: E402

pytestmark = pytest.mark.slow


class _LiveNetwork(httpx.BaseTransport):
    """Peer requests over real HTTP on 127.0.0.1; the fake members' DID documents answered here."""

    def __init__(self) -> None:
        self.documents: dict[str, dict] = {}
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) in self.documents:
            return httpx.Response(200, json=self.documents[str(request.url)])
        return self.real.handle_request(request)


@dataclass
class _Node:
    """What tests/federation's helpers (Person, negotiate_agreement, _staff) use of a node."""

    name: str
    app: object
    client: httpx.Client
    settings: object

    @property
    def ctx(self):
        return self.app.state.ctx

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def session(self):
        from node.db import session_scope

        return session_scope(self.ctx.engine)


@dataclass
class _Pair:
    a: _Node  # Shanghai: holds the records (origin)
    b: _Node  # Zhejiang: recognises them (destination)


def _serve(app, port: int) -> tuple[object, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server, thread


def _ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/ready", timeout=5, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{base} did not become ready"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def two_live_nodes(_db_template: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Pair]:
    from config.settings import load_region
    from crypto.did import did_web_from_url
    from federation.membership import founding_document, install_membership, sign_membership
    from federation.runtime import runtime, use_http_client
    from node.app import create_app
    from node.db import make_engine
    from node.standards.cli import load_files
    from tests.federation.conftest import fake_identity

    tmp = tmp_path_factory.mktemp("portal-two")
    network = _LiveNetwork()
    net_client = httpx.Client(transport=network, trust_env=False)
    created, servers, engines, nodes = [], [], [], []
    try:
        for region in ("shanghai", "zhejiang"):
            if isinstance(_db_template, _PgDatabases):
                name = _db_template.create()
                created.append(name)
                url = _db_template.url_of(name)
            else:
                shutil.copyfile(_db_template, tmp / f"{region}.db")
                url = f"sqlite:///{tmp / f'{region}.db'}"
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            settings = make_settings(url, tmp / region, region=region, base_url=base)
            settings = settings.model_copy(update={
                "ratelimit": settings.ratelimit.model_copy(update={"sign_in": "1000/minute"})})
            engine = make_engine(url)
            engines.append(engine)
            load_files(engine, list(settings.region.standards_files))
            app = create_app(settings, engine=engine)
            use_http_client(app.state.ctx, net_client)
            servers.append(_serve(app, port))
            nodes.append(_Node(region, app, httpx.Client(base_url=base, timeout=60, trust_env=False), settings))
        for node in nodes:
            _ready(node.base_url)
        jiangsu_base = load_region("jiangsu").base_url
        jiangsu = fake_identity(jiangsu_base, b"j" * 32)
        network.documents[f"{jiangsu_base}/.well-known/did.json"] = jiangsu.did_document()
        document = founding_document()
        for member in document["members"]:
            for node in nodes:
                if member["node_id"] == node.name:
                    member["base_url"] = node.base_url
                    member["did"] = did_web_from_url(node.base_url)
        for identity in (nodes[0].ctx.identity, nodes[1].ctx.identity, jiangsu):
            document = sign_membership(document, identity)
        for node in nodes:
            with node.session() as s:
                install_membership(s, document, resolve_did=runtime(node.ctx).directory.resolver(s))
        yield _Pair(nodes[0], nodes[1])
    finally:
        for server, thread in servers:
            server.should_exit = True
            thread.join(timeout=30)
        for node in nodes:
            node.client.close()
        net_client.close()
        for engine in engines:
            engine.dispose()
        for name in created:
            _db_template.drop(name)  # type: ignore[union-attr]


def _certificate(node: _Node, learner_id: int) -> int:
    from tests.portal.test_learner_more import _certificate as deposit_certificate

    return deposit_certificate(node.ctx, learner_id)


def _context(browser, base: str, width: int = 1280, state: dict | None = None):
    return browser.new_context(viewport={"width": width, "height": 900}, base_url=base, locale="zh-CN",
                               accept_downloads=True, storage_state=state)


def _sign_in(page, username: str, password: str) -> None:
    page.goto("/sign-in")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("form[action='/sign-in'] button[type=submit]").click()
    page.wait_for_url("**/me")


def _shots(browser, base: str, state: dict, path: str, shots: Path, name: str) -> None:
    """The page at `path` signed in (the session's cookies), at both widths in both languages, each checked."""
    for width in WIDTHS.values():
        for lang in ("zh", "en"):
            context = _context(browser, base, width, state)
            page = context.new_page()
            page.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}")
            assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh" else "en")
            _check(page, shots, name)
            context.close()


def test_what_if_conversion_consent_and_transfer_through_the_pages(two_live_nodes: _Pair, browser,
                                                                     screenshot_dir: Path) -> None:
    from tests.federation.test_transfers import PASSWORD, Person, negotiate_agreement

    pair = two_live_nodes
    person = Person(pair, "高等数学", "4")
    _certificate(pair.a, person.origin_learner)
    negotiate_agreement(pair, automatic=True)

    # -- at Shanghai: what-if, then the conversion request -------------------------------------------------
    at_a = _context(browser, pair.a.base_url)
    page = at_a.new_page()
    _sign_in(page, person.origin_account, PASSWORD)
    page.get_by_role("link", name="换算模拟").click()
    page.wait_for_url("**/me/what-if")
    _check(page)
    page.get_by_label("查找专业").fill("汽车")
    page.get_by_role("button", name="查找").click()
    page.wait_for_url("**/me/what-if?q=*")
    page.get_by_label("专业", exact=True).select_option("SOU-AUTO-SVC")
    page.get_by_role("button", name="查看可转换的学分").click()
    page.wait_for_url("**programme=SOU-AUTO-SVC*")
    proposals = page.locator("#proposals")
    assert "SH-GS-ZTC-2016-01" in proposals.inner_text() and "依据指导标准" in proposals.inner_text()
    _check(page, screenshot_dir, "what-if")
    what_if_url = page.url.replace(pair.a.base_url, "")
    page.locator("#request-conversion").click()
    page.wait_for_url("**/me/conversions/*?created=1")
    assert page.locator("#conversion-state").inner_text() == "待学习点核对"
    assert page.locator("#conversion-steps li[aria-current=step]").count() == 1
    _check(page, screenshot_dir, "conversion")
    conversion_url = page.url.split("?")[0].replace(pair.a.base_url, "")
    state_a = at_a.storage_state()
    _shots(browser, pair.a.base_url, state_a, what_if_url, screenshot_dir, "what-if")
    _shots(browser, pair.a.base_url, state_a, conversion_url, screenshot_dir, "conversion")

    # -- at Zhejiang: a holder binding for Shanghai ------------------------------------------------------------
    at_b = _context(browser, pair.b.base_url)
    page_b = at_b.new_page()
    _sign_in(page_b, person.dest_account, PASSWORD)
    page_b.get_by_role("link", name="跨省转移").click()
    page_b.wait_for_url("**/me/transfers")
    _check(page_b)
    page_b.get_by_role("link", name="申请转入").first.click()
    page_b.wait_for_url("**/me/transfers/new")
    page_b.get_by_label("成果所在地区").select_option("shanghai")
    page_b.locator("#get-binding").click()
    binding = page_b.locator("#binding").input_value()
    assert binding.startswith("hb1.")
    _check(page_b, screenshot_dir, "transfer-new")

    # -- at Shanghai: consent for Zhejiang, with that binding -----------------------------------------------------
    page.get_by_role("link", name="跨省授权").click()
    page.wait_for_url("**/me/consents")
    page.get_by_role("link", name="新建授权").click()
    page.wait_for_url("**/me/consents/new")
    page.locator("#grant-consent").click()  # empty: every error next to its field
    assert page.locator("#destination-error").is_visible() and page.locator("#holder_binding-error").is_visible()
    _check(page, screenshot_dir, "consent-errors")
    page.get_by_label("授权给哪个地区").select_option("zhejiang")
    page.locator(f"#record-{person.achievements[0]}").check()
    page.get_by_label("用途").fill("跨省学分互认（升学）")
    page.get_by_label("有效天数").fill("30")
    page.get_by_label("绑定码").fill(binding)
    page.locator("#grant-consent").click()
    page.wait_for_url("**/me/consents/*?granted=1")
    assert page.locator("#consent-state").inner_text() == "有效"
    _check(page, screenshot_dir, "consent")
    consent_url = page.url.split("?")[0].replace(pair.a.base_url, "")
    with page.expect_download() as download:
        page.get_by_role("link", name="下载授权书").click()
    consent_file = screenshot_dir / "consent-download.jsonld"
    download.value.save_as(consent_file)
    consent = json.loads(consent_file.read_text(encoding="utf-8"))
    consent_file.unlink()
    assert consent["credentialSubject"]["holderBinding"] == binding

    # -- at Zhejiang: present the consent (uploaded), follow the steps ----------------------------------------------
    page_b.goto("/me/transfers/new")
    page_b.locator("#request-transfer").click()  # nothing given: said next to the field
    assert page_b.locator("#consent-error").is_visible()
    page_b.locator("#consent").fill(json.dumps(consent, ensure_ascii=False))
    page_b.locator("#request-transfer").click()
    page_b.wait_for_url("**/me/transfers/*?requested=1", timeout=60_000)
    assert page_b.locator("#transfer-state").inner_text() == "已完成"
    assert page_b.locator("#recognised-credits").inner_text() == "4"
    steps = page_b.locator("#transfer-steps li")
    assert steps.count() == 6 and all("已完成" in t for t in steps.all_inner_texts())
    _check(page_b, screenshot_dir, "transfer")
    transfer_url = page_b.url.split("?")[0].replace(pair.b.base_url, "")
    _shots(browser, pair.b.base_url, at_b.storage_state(), transfer_url, screenshot_dir, "transfer")

    # -- the receipt reaches Shanghai (outbox); then the learner revokes the consent there ----------------------------
    assert flush_outbox(pair.b.ctx).sent >= 1
    page.goto(consent_url)
    assert "回执 urn:uuid:" in page.locator("#receipts").inner_text()
    _shots(browser, pair.a.base_url, at_a.storage_state(), consent_url, screenshot_dir, "consent")
    page.locator("#revoke-consent").click()
    page.wait_for_url("**?revoked=1")
    assert page.locator("#consent-state").inner_text() == "已撤回"
    _check(page)
    page.goto("/me/consents")
    assert "已撤回" in page.locator("#consents").inner_text()
    _check(page, screenshot_dir, "consents")

    # keyboard only: the what-if search form (focus, type, Enter)
    page.goto("/me/what-if")
    page.locator("#q").focus()
    page.keyboard.type("汽车")
    page.keyboard.press("Enter")
    page.wait_for_url("**/me/what-if?q=*")
    assert page.locator("#programme option").count() >= 1
    at_a.close()
    at_b.close()
