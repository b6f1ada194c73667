"""The portal's fixtures: a real node served by uvicorn on 127.0.0.1 (SQLite, or PostgreSQL with
CREDITNODE_TEST_DATABASE_URL) with the region's standards loaded, and one Chromium per test module.

The browser is the Debian `chromium` (/usr/bin/chromium, or CREDITNODE_CHROMIUM) driven by Playwright for Python;
Playwright's own browser download is not used. Without it the browser tests skip and say why."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import _PgDatabases, make_settings

CHROMIUM = os.environ.get("CREDITNODE_CHROMIUM", "/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveNode:
    base: str
    app: object
    ctx: object


@contextlib.contextmanager
def serve_node(db_template: object, tmp: Path, region: str) -> Iterator[LiveNode]:
    """One node of `region` with its standards, served on a free port of 127.0.0.1 until the block ends."""
    import uvicorn

    from node.app import create_app
    from node.db import make_engine
    from node.standards.cli import load_files

    if isinstance(db_template, _PgDatabases):
        name = db_template.create()
        url = db_template.url_of(name)
    else:
        shutil.copyfile(db_template, tmp / f"{region}.db")
        name, url = None, f"sqlite:///{tmp / f'{region}.db'}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(url, tmp / region, region=region, base_url=base)
    settings = settings.model_copy(update={
        "ratelimit": settings.ratelimit.model_copy(update={"sign_in": "1000/minute"})})
    engine = make_engine(url)
    load_files(engine, list(settings.region.standards_files))
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the {region} node did not become ready"
            time.sleep(0.1)
        yield LiveNode(base, app, app.state.ctx)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        engine.dispose()
        if name is not None:
            db_template.drop(name)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def live_node(_db_template: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    """A node with the Shanghai standards, served on a free port of 127.0.0.1 for this module's tests."""
    with serve_node(_db_template, tmp_path_factory.mktemp("portal"), "shanghai") as node:
        yield node


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium fonts-noto-cjk; .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("no browser driver: pip install '.[test]' installs playwright")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's tmp folder (pytest keeps the last three runs' folders), or CREDITNODE_SCREENSHOTS to keep them."""
    chosen = os.environ.get("CREDITNODE_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("portal-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nportal screenshots: {path}")
    return path
