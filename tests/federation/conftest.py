"""Two real nodes in one process (Shanghai and Zhejiang, each with its own database) joined by a `Network`:
an httpx transport that routes by base URL to each node's TestClient, serves the DID documents of two fake
founding members (Jiangsu, Anhui), and can take a node down, fail it with 503, or count what it received."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from crypto.did import did_web_from_url
from federation.membership import founding_document, install_membership, sign_membership
from federation.runtime import runtime, use_http_client
from node.db import make_engine, session_scope
from node.identity.keyring import KeyRing, NodeKey
from node.identity.service import NodeIdentity
from tests.conftest import _PgDatabases, make_settings

_dbs = itertools.count()


class Network(httpx.BaseTransport):
    def __init__(self) -> None:
        self.apps: dict[str, TestClient] = {}
        self.documents: dict[str, dict] = {}
        self.down: set[str] = set()
        self.unavailable: set[str] = set()
        self.log: list[tuple[str, str, bytes]] = []
        self._lock = threading.Lock()

    @staticmethod
    def base_of(url: httpx.URL) -> str:
        return f"{url.scheme}://{url.host}:{url.port}"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        base = self.base_of(request.url)
        body = request.read()
        with self._lock:
            self.log.append((base, request.url.path, body))
        if base in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if base in self.unavailable:
            return httpx.Response(503, json={"code": "unavailable", "message": "maintenance"})
        if str(request.url) in self.documents:
            return httpx.Response(200, json=self.documents[str(request.url)])
        client = self.apps.get(base)
        if client is None:
            raise httpx.ConnectError(f"no route to {base}", request=request)
        answer = client.send(request)
        return httpx.Response(answer.status_code, headers=answer.headers.multi_items(), content=answer.content)

    def inbox_posts(self, base: str) -> list[dict]:
        with self._lock:
            return [json.loads(b) for (bs, path, b) in self.log if bs == base and path == "/federation/v1/inbox"]


@dataclass
class Node:
    name: str
    app: object
    client: TestClient
    settings: object
    handled: list = field(default_factory=list)

    @property
    def ctx(self):
        return self.app.state.ctx

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def session(self):
        return session_scope(self.ctx.engine)


def fake_identity(region_base_url: str, seed: bytes) -> NodeIdentity:
    key = NodeKey("key-1", base64.b64encode(seed).decode(), "2026-01-01T00:00:00Z")
    return NodeIdentity.of(region_base_url, KeyRing(current="key-1", keys=[key]))


@dataclass
class Federation:
    a: Node
    b: Node
    network: Network
    net_client: httpx.Client
    fakes: dict[str, NodeIdentity]

    def identity(self, node_id: str) -> NodeIdentity:
        return {"shanghai": self.a.ctx.identity, "zhejiang": self.b.ctx.identity, **self.fakes}[node_id]

    def genesis(self, *signers: str) -> dict:
        doc = founding_document()
        for name in signers:
            doc = sign_membership(doc, self.identity(name))
        return doc

    def install(self, document: dict, *nodes: Node) -> None:
        for node in nodes or (self.a, self.b):
            with node.session() as s:
                install_membership(s, document, resolve_did=runtime(node.ctx).directory.resolver(s))


@pytest.fixture
def make_database(_db_template: object, tmp_path: Path) -> Iterator[Callable[[], str]]:
    created: list[str] = []

    def make() -> str:
        if isinstance(_db_template, _PgDatabases):
            name = _db_template.create()
            created.append(name)
            return _db_template.url_of(name)
        target = tmp_path / f"node{next(_dbs)}.db"
        shutil.copyfile(_db_template, target)
        return f"sqlite:///{target}"

    yield make
    if isinstance(_db_template, _PgDatabases):
        for name in created:
            _db_template.drop(name)


@pytest.fixture
def network() -> Network:
    return Network()


@pytest.fixture
def federation(make_database: Callable[[], str], tmp_path: Path, network: Network) -> Iterator[Federation]:
    from node.app import create_app

    nodes: list[Node] = []
    engines = []
    clients = []
    net_client = httpx.Client(transport=network)
    for region in ("shanghai", "zhejiang"):
        settings = make_settings(make_database(), tmp_path / region, region=region)
        engine = make_engine(settings.database_url)
        engines.append(engine)
        app = create_app(settings, engine=engine)
        client = TestClient(app, base_url=settings.base_url)
        client.__enter__()
        clients.append(client)
        network.apps[settings.base_url] = client
        use_http_client(app.state.ctx, net_client)
        nodes.append(Node(region, app, client, settings))
    fakes = {}
    for region, seed in (("jiangsu", b"j" * 32), ("anhui", b"h" * 32)):
        from config.settings import load_region

        base = load_region(region).base_url
        identity = fake_identity(base, seed)
        assert identity.did == did_web_from_url(base)
        network.documents[f"{base}/.well-known/did.json"] = identity.did_document()
        fakes[region] = identity
    yield Federation(nodes[0], nodes[1], network, net_client, fakes)
    for client in clients:
        client.__exit__(None, None, None)
    net_client.close()
    for engine in engines:
        engine.dispose()


@pytest.fixture
def joined(federation: Federation) -> Federation:
    """Both nodes hold the founding genesis signed by Shanghai, Zhejiang and Jiangsu."""
    federation.install(federation.genesis("shanghai", "zhejiang", "jiangsu"))
    return federation
