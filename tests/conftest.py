"""Shared fixtures: a real database per test (built by the migrations), a node app, signed-in users.

The database is SQLite unless CREDITNODE_TEST_DATABASE_URL names a PostgreSQL server, e.g.
`postgresql://postgres@127.0.0.1:5432/test`: then the migrations run once into a template database and
every test gets a fresh copy (CREATE DATABASE ... TEMPLATE), dropped afterwards.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
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



# Argon2id as the node runs it (time 3, 64 MiB, 4 lanes) takes ~0.2 s of CPU per hash or check — on both cores at
# once — and the suite creates and signs in thousands of accounts. The tests run the same Argon2id code with the
# smallest cost; the production parameters are checked in tests/test_fixtures.py. Nodes the tests start in
# another process (conformance, workers) keep the real cost.
FAST_ARGON2 = dict(time_cost=1, memory_cost=64, parallelism=1)
NODE_PASSWORD_HASHER: list[object] = []  # the node's own, while the tests use the fast one


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    from argon2 import PasswordHasher

    from node.security import passwords

    with pytest.MonkeyPatch.context() as mp:
        fast = PasswordHasher(**FAST_ARGON2)
        NODE_PASSWORD_HASHER[:] = [passwords._hasher]
        mp.setattr(passwords, "_hasher", fast)
        mp.setattr(passwords, "_DUMMY", fast.hash("no-such-user-dummy-password"))
        yield


# FastAPI 0.165 builds, for every app, its own copy of every included route (`_EffectiveRouteContext`: the
# endpoint's dependencies and models analysed again): ~0.5 s of CPU per `create_app`, paid by nearly every test
# that uses the database (it was most of their setup). The inputs are the same module-level routers and the same
# inclusion settings for every app, so the tests build each copy once and share it between the apps. Only
# `app.dependency_overrides` would notice (a shared copy looks up the first app's overrides; no test uses them).
# CREDITNODE_TEST_SHARE_ROUTES=0 turns this off. docs/testing.md.
def _route_key(value: object) -> object:
    from fastapi.datastructures import DefaultPlaceholder

    if isinstance(value, (list, tuple)):
        return tuple(_route_key(v) for v in value)
    if isinstance(value, dict):
        return ("dict", tuple((_route_key(k), _route_key(v)) for k, v in value.items()))
    if isinstance(value, DefaultPlaceholder):
        return ("default", _route_key(value.value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value), tuple(_route_key(getattr(value, f.name)) for f in dataclasses.fields(value)))
    try:
        hash(value)  # functions, classes and plain values: by their own hash (identity for most)
    except TypeError:  # e.g. an APIRouter (module-level, so its id stays its own)
        return ("id", id(value))
    return value


@pytest.fixture(scope="session", autouse=True)
def _shared_route_copies() -> Iterator[None]:
    from fastapi import routing

    context = getattr(routing, "_EffectiveRouteContext", None)
    if os.environ.get("CREDITNODE_TEST_SHARE_ROUTES", "1") == "0" or context is None:
        yield
        return
    build = context.from_api_route.__func__
    copies: dict[object, object] = {}

    def from_api_route(cls, *, original_route, include_context):  # type: ignore[no-untyped-def]
        endpoint = getattr(original_route, "endpoint", None)
        if "<locals>" in getattr(endpoint, "__qualname__", "<locals>") or len(copies) >= 5000:
            # a route made per app (e.g. node.ops.web.docs_router's closures): its own copy, never kept
            return build(cls, original_route=original_route, include_context=include_context)
        key = (id(original_route), tuple(
            _route_key(getattr(include_context, f.name)) for f in dataclasses.fields(include_context)
            if f.name != "dependency_overrides_provider"))
        if key not in copies:  # the copy keeps original_route (its id) alive, and its first app only
            copies[key] = build(cls, original_route=original_route, include_context=include_context)
        return copies[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(context, "from_api_route", classmethod(from_api_route))
        yield


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("creditnode", "splitting the suite (.ci/run's two lanes, docs/testing.md)")
    group.addoption(
        "--database-tests-only", action="store_true",
        help="run only the tests that use the test database: the `_db_template` fixture, directly or through "
             "`database_url`, `engine`, `app`, ...; or the marker `database`")
    group.addoption(
        "--no-database-tests", action="store_true",
        help="run only the other tests (they do the same whatever CREDITNODE_TEST_DATABASE_URL says)")


def _uses_database(item: pytest.Item) -> bool:
    return "_db_template" in getattr(item, "fixturenames", ()) or item.get_closest_marker("database") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only, none = config.getoption("--database-tests-only"), config.getoption("--no-database-tests")
    if only and none:
        raise pytest.UsageError("--database-tests-only and --no-database-tests exclude each other")
    if not (only or none):
        return
    keep, drop = [], []
    for item in items:
        (keep if _uses_database(item) == bool(only) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep

# The state of a PostgreSQL database's schema: every object of the non-system namespaces by OID and definition,
# and the database-level settings. Two equal fingerprints mean no DDL has run in between (a recreated object has a
# new OID), so deleting the rows and restoring the sequences gives back the template's state.
_FINGERPRINT = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(concat_ws(',', n.oid, n.nspname, n.nspacl), ';' ORDER BY n.oid) FROM pg_namespace n
    WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'),
  (SELECT string_agg(concat_ws(',', c.oid, c.relname, c.relnamespace, c.relkind, c.relpersistence, c.relacl,
                               c.reloptions, c.relrowsecurity), ';' ORDER BY c.oid) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT LIKE 'pg\\_temp%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp%'
      AND (c.oid >= 16384 OR n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast'))),
  (SELECT string_agg(concat_ws(',', a.attrelid, a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull,
                               a.atthasdef, a.attisdropped, a.attidentity, a.attgenerated, a.attcollation),
                     ';' ORDER BY a.attrelid, a.attnum) FROM pg_attribute a WHERE a.attrelid >= 16384),
  (SELECT string_agg(concat_ws(',', d.oid, pg_get_expr(d.adbin, d.adrelid)), ';' ORDER BY d.oid)
     FROM pg_attrdef d),
  (SELECT string_agg(concat_ws(',', oid, conname, pg_get_constraintdef(oid), condeferrable, convalidated),
                     ';' ORDER BY oid) FROM pg_constraint WHERE oid >= 16384),
  (SELECT string_agg(concat_ws(',', indexrelid, pg_get_indexdef(indexrelid)), ';' ORDER BY indexrelid)
     FROM pg_index WHERE indexrelid >= 16384),
  (SELECT string_agg(concat_ws(',', oid, tgname, tgenabled), ';' ORDER BY oid) FROM pg_trigger
    WHERE oid >= 16384),
  (SELECT string_agg(concat_ws(',', oid, rulename, ev_enabled), ';' ORDER BY oid) FROM pg_rewrite
    WHERE oid >= 16384),
  (SELECT string_agg(concat_ws(',', oid, proname, md5(prosrc)), ';' ORDER BY oid) FROM pg_proc
    WHERE oid >= 16384),
  (SELECT string_agg(concat_ws(',', oid, typname), ';' ORDER BY oid) FROM pg_type WHERE oid >= 16384),
  (SELECT string_agg(concat_ws(',', oid, enumlabel), ';' ORDER BY oid) FROM pg_enum WHERE oid >= 16384),
  (SELECT string_agg(concat_ws(',', oid, extname, extversion), ';' ORDER BY oid) FROM pg_extension),
  (SELECT string_agg(concat_ws(',', seqrelid, seqtypid, seqstart, seqincrement, seqmax, seqmin, seqcache,
                               seqcycle), ';' ORDER BY seqrelid) FROM pg_sequence),
  (SELECT string_agg(concat_ws(',', oid, polname), ';' ORDER BY oid) FROM pg_policy),
  (SELECT string_agg(concat_ws(',', oid, pubname), ';' ORDER BY oid) FROM pg_publication),
  (SELECT count(*) FROM pg_largeobject_metadata),
  (SELECT string_agg(concat_ws(',', s.setrole, s.setconfig), ';' ORDER BY s.setrole) FROM pg_db_role_setting s
    WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())),
  (SELECT concat_ws(',', datallowconn, datconnlimit, datacl, datistemplate) FROM pg_database
    WHERE datname = current_database())))
"""


class _PgDatabases:
    """The test databases on a PostgreSQL server: a template built once by the migrations, and a fresh copy of it
    for each test (`create`, given back with `drop`).

    Copying the template is cheap, but DROP DATABASE is not: PostgreSQL 15 runs a checkpoint for each one
    (0.7-4 s on the CI machine, most of the PostgreSQL lane's time). So a database given back is *reset* rather
    than dropped, and handed out again under a new name: its client connections are ended, it is renamed (a
    leftover engine of the previous test cannot reach the next test's data), the rows of every table that has any
    are deleted (fast for a test's few rows; TRUNCATE creates new files and costs as much as a drop), the
    template's seeded rows are copied back and every sequence is set to the template's value. If anything else
    changed — any DDL, checked by a fingerprint of the catalogues (OIDs included: a recreated table differs) — or
    the reset fails, the database is dropped instead and the next test gets a new copy. docs/testing.md.

    `CREDITNODE_TEST_PG_RESET=0` turns the reuse off (a copy per test, dropped afterwards, as before).
    """

    def __init__(self, server_url: str) -> None:
        self.server = sa.make_url(normalise_url(server_url))
        self.admin = sa.create_engine(self.server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.template = f"cn_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.reuse = os.environ.get("CREDITNODE_TEST_PG_RESET", "1") != "0"
        self._lock = threading.Lock()
        self._clean: list[str] = []  # reset databases, ready to hand out
        self._ours: set[str] = set()  # every database made from the template and not yet dropped
        self._exec(f'CREATE DATABASE "{self.template}"')
        upgrade_database(self.url_of(self.template))
        with self._connect(self.template) as conn:
            self._snapshot(conn)

    def url_of(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    def _exec(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(sql)

    def _connect(self, name: str) -> psycopg.Connection:
        libpq = self.server.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
        return psycopg.connect(libpq, autocommit=True)

    def _new_name(self) -> str:
        return f"cn_t_{os.getpid()}_{next(_counter)}"

    def _snapshot(self, conn: psycopg.Connection) -> None:
        """What a reset restores: the template's tables, seeded rows, sequence values and schema fingerprint."""
        self._tables = [t for (t,) in conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
            " ORDER BY 1")]
        self._seeded: dict[str, tuple[str, bytes]] = {}
        for table in self._nonempty(conn):
            columns = ", ".join(c for (c,) in conn.execute(
                "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum", (table,)))
            data = bytearray()
            with conn.cursor().copy(f"COPY {table} ({columns}) TO STDOUT (FORMAT binary)") as copy:
                for block in copy:
                    data += block
            self._seeded[table] = (columns, bytes(data))
        sequences = [s for (s,) in conn.execute(
            "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1")]
        self._sequences = [conn.execute(f"SELECT %s, last_value, is_called FROM {seq}", (seq,)).fetchone()
                           for seq in sequences]
        self._fingerprint = conn.execute(_FINGERPRINT).fetchone()[0]

    def _nonempty(self, conn: psycopg.Connection) -> list[str]:
        if not self._tables:
            return []
        query = " UNION ALL ".join(
            f"SELECT {i} WHERE EXISTS (SELECT FROM {t})" for i, t in enumerate(self._tables))
        return [self._tables[i] for (i,) in conn.execute(query)]

    def _reset(self, name: str) -> bool:
        """Give `name` (no client connected, nobody knows its name) the template's state; False if it cannot be."""
        with self._connect(name) as conn:
            if conn.execute("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()"
                            ).fetchone()[0]:
                return False
            if conn.execute(_FINGERPRINT).fetchone()[0] != self._fingerprint:
                return False
            dirty = sorted(set(self._nonempty(conn)) | set(self._seeded))
            with conn.transaction():
                # no foreign-key checks while emptying: every row of these tables goes (the server's superuser)
                conn.execute("SET LOCAL session_replication_role = replica")
                for table in dirty:
                    conn.execute(f"DELETE FROM {table}")
                for table, (columns, data) in self._seeded.items():
                    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT binary)") as copy:
                        copy.write(data)
            if self._sequences:
                conn.execute("SELECT " + ", ".join(
                    "setval(%s::regclass, %s, %s)" for _ in self._sequences),
                    [v for row in self._sequences for v in row])
            return True

    def _end_connections_and_rename(self, name: str) -> str | None:
        """End every client connection to `name` and rename it; the new name, or None if it stayed in use."""
        new = self._new_name()
        for _ in range(5):
            with self.admin.connect() as conn:
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s"
                    " AND pid <> pg_backend_pid()", (name,))
                try:
                    conn.exec_driver_sql(f'ALTER DATABASE "{name}" RENAME TO "{new}"')
                except sa.exc.OperationalError:  # a connection came back in between: end it again
                    continue
            return new
        return None

    def create(self) -> str:
        with self._lock:
            if self._clean:
                return self._clean.pop()
            name = self._new_name()
            self._ours.add(name)
        self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def drop(self, name: str) -> None:
        with self._lock:
            ours = name in self._ours
            self._ours.discard(name)
        if ours and self.reuse:
            new = self._end_connections_and_rename(name)
            if new is not None:
                try:
                    reset = self._reset(new)
                except psycopg.Error:
                    reset = False
                if reset:
                    with self._lock:
                        self._ours.add(new)
                        self._clean.append(new)
                    return
                name = new
        self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for name in sorted(self._ours):
            self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._exec(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
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
