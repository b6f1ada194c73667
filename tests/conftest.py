"""Shared fixtures: a real database per test (built by the migrations), a node app, signed-in users.

The database is SQLite unless CREDITNODE_TEST_DATABASE_URL names a PostgreSQL server, e.g.
`postgresql://postgres@127.0.0.1:5432/test`: then the migrations run once into a template database and
every test gets a fresh copy (CREATE DATABASE ... TEMPLATE), dropped afterwards.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from config.settings import DatabaseSettings, NodeSettings, SecuritySettings, Settings
from node.db import make_engine, normalise_url, upgrade_database

PG_URL = os.environ.get("CREDITNODE_TEST_DATABASE_URL", "")
_counter = itertools.count()


def _key(seed: str) -> str:
    return base64.urlsafe_b64encode((seed * 32).encode()[:32]).decode()


TEST_SECURITY = dict(
    database_key=_key("d"), blind_index_key=_key("b"), token_secret=_key("t"), database_key_id="t1"
)


class _PgDatabases:
    def __init__(self, server_url: str) -> None:
        self.server = sa.make_url(normalise_url(server_url))
        self.admin = sa.create_engine(self.server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.template = f"cn_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._exec(f'CREATE DATABASE "{self.template}"')
        upgrade_database(self.url_of(self.template))

    def url_of(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    def _exec(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(sql)

    def create(self) -> str:
        name = f"cn_t_{os.getpid()}_{next(_counter)}"
        self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def drop(self, name: str) -> None:
        self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.drop(self.template)
        self.admin.dispose()


@pytest.fixture(scope="session")
def _db_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if PG_URL:
        pg = _PgDatabases(PG_URL)
        yield pg
        pg.close()
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        upgrade_database(f"sqlite:///{path}")
        yield path


@pytest.fixture
def database_url(_db_template: object, tmp_path: Path) -> Iterator[str]:
    if isinstance(_db_template, _PgDatabases):
        name = _db_template.create()
        yield _db_template.url_of(name)
        _db_template.drop(name)
    else:
        target = tmp_path / "node.db"
        shutil.copyfile(_db_template, target)
        yield f"sqlite:///{target}"


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def make_settings(database_url: str, data_dir: Path, region: str = "shanghai", **node: object) -> Settings:
    return Settings(
        node=NodeSettings(region=region, data_dir=data_dir, mode="test", **node),
        database=DatabaseSettings(url=database_url),
        security=SecuritySettings(**TEST_SECURITY),
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data")


@pytest.fixture
def app(settings: Settings, engine: sa.Engine):
    from node.app import create_app

    return create_app(settings, engine=engine)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def ctx(app):
    return app.state.ctx


@pytest.fixture
def staff_headers(app, client: TestClient) -> Callable[..., dict[str, str]]:
    """`staff_headers("branch_reviewer", org="B01")` creates a staff member and returns auth headers."""
    from node.db import session_scope
    from node.models import Organisation
    from node.org.service import create_staff

    seq = itertools.count()

    def make(*roles: str, org: str | None = None, username: str | None = None) -> dict[str, str]:
        name = username or f"{roles[0].replace('_', '')}{next(seq)}"
        with session_scope(app.state.ctx.engine) as s:
            if org and not s.exec(sa.select(Organisation).where(Organisation.code == org)).first():
                s.add(Organisation(code=org, name=org, kind="branch"))
                s.flush()
            create_staff(s, username=name, display_name=name, password="correct-horse-1", roles=list(roles),
                         organisation_code=org)
        r = client.post("/api/v1/auth/token", data={"username": name, "password": "correct-horse-1"})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    return make


# Valid GB 11643-1999 numbers for tests (synthetic; checksums computed).
def valid_id(region: str = "310101", born: str = "19900307", serial: str = "123") -> str:
    from node.security.idnumbers import gb11643_check_char

    first = region + born + serial
    return first + gb11643_check_char(first)
