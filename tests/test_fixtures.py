"""The suite's own fixtures (tests/conftest.py): a PostgreSQL test database given back is reset to exactly the
template's state, or dropped when it cannot be; the cheap Argon2 cost is for the tests only; apps share the
copies FastAPI makes of the module-level routes, and each still serves its own node."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from tests.conftest import _FINGERPRINT, FAST_ARGON2, NODE_PASSWORD_HASHER, PG_URL, _PgDatabases, make_settings

on_postgres = pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: set CREDITNODE_TEST_DATABASE_URL")


def _state(pg: _PgDatabases, name: str) -> dict[str, object]:
    """Every table's rows, every sequence's position and the schema fingerprint of database `name`."""
    with pg._connect(name) as conn:
        state: dict[str, object] = {
            table: conn.execute(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                                f" FROM {table} t").fetchone()
            for table in pg._tables}
        for seq, _, _ in pg._sequences:
            state[seq] = conn.execute(f"SELECT last_value, is_called FROM {seq}").fetchone()
        state["schema"] = conn.execute(_FINGERPRINT).fetchone()[0]
    return state


def _exists(pg: _PgDatabases, name: str) -> bool:
    with pg._connect(pg.server.database) as conn:
        return conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 1


@on_postgres
def test_a_database_given_back_is_reset_to_the_templates_state(_db_template: _PgDatabases) -> None:
    pg = _db_template
    assert pg.reuse, "CREDITNODE_TEST_PG_RESET=0 turns the reset off"
    assert pg._seeded and pg._sequences, "the template has seeded rows and sequences to restore"
    fresh = pg.create()
    pristine = _state(pg, fresh)
    name = pg.create()
    with pg._connect(name) as conn:  # a test's writes: rows in many tables, seeded rows changed, sequences moved
        for seq, _, _ in pg._sequences:
            conn.execute(f"SELECT nextval('{seq}') FROM generate_series(1, 3)")
        conn.execute("UPDATE code_list_entry SET label = 'changed' WHERE id = (SELECT min(id) FROM code_list_entry)")
        conn.execute("DELETE FROM ledger_head")
        conn.execute("INSERT INTO code_list_entry (list_name, version, code, label) VALUES ('t', '1', 'x', 'y')")
        conn.execute("INSERT INTO organisation (code, name, kind, created_at, active) VALUES ('T01', 'T', 'branch', now(), true)")
    assert _state(pg, name) != pristine
    leftover = pg._connect(name)  # e.g. a connection of a server the test started
    pg.drop(name)
    with pytest.raises(psycopg.OperationalError):
        leftover.execute("SELECT 1")
    leftover.close()
    again = pg.create()
    assert again != name and not _exists(pg, name), "handed out again under a new name"
    assert _state(pg, again) == pristine
    pg.drop(again)
    pg.drop(fresh)


@on_postgres
def test_a_database_whose_schema_changed_is_dropped_not_reused(_db_template: _PgDatabases) -> None:
    pg = _db_template
    name = pg.create()
    with pg._connect(name) as conn:
        conn.execute("CREATE TABLE extra (id int)")
    clean = list(pg._clean)
    pg.drop(name)
    assert pg._clean == clean
    with pg._connect(pg.server.database) as conn:
        existing = {n for (n,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                               (name.rsplit("_", 1)[0] + "\\_%",))}
    assert existing == pg._ours, "dropped: neither handed out again nor left behind"


def test_tests_hash_passwords_cheaply_and_the_node_does_not() -> None:
    from node.security import passwords

    assert passwords._hasher.time_cost == FAST_ARGON2["time_cost"]
    node = NODE_PASSWORD_HASHER[0]  # what the node uses outside the tests: RFC 9106's low-memory profile
    assert (node.time_cost, node.memory_cost, node.parallelism) == (3, 65536, 4)
    assert node.verify(node.hash("a-password-1"), "a-password-1")



def test_apps_share_route_copies_but_each_serves_its_own_node(_db_template: object, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from fastapi.routing import iter_route_contexts

    from node.app import create_app

    def app_of(region: str):  # noqa: ANN202
        if isinstance(_db_template, _PgDatabases):
            name = _db_template.create()
            url = _db_template.url_of(name)
        else:
            name = None
            shutil.copyfile(_db_template, tmp_path / f"{region}.db")
            url = f"sqlite:///{tmp_path / f'{region}.db'}"
        return create_app(make_settings(url, tmp_path / region, region=region)), name

    (a, name_a), (b, name_b) = app_of("shanghai"), app_of("zhejiang")
    try:
        def copies(app) -> dict[str, int]:  # noqa: ANN001
            return {f"{c.methods} {c.path}": id(c._route_context) for c in iter_route_contexts(app.routes)
                    if c._route_context is not None and "<locals>" not in c.endpoint.__qualname__}
        shared = copies(a).items() & copies(b).items()
        assert len(shared) > 100, "the module-level routes' copies are built once"
        with TestClient(a) as ca, TestClient(b) as cb:
            da, db = ca.get("/.well-known/credit-node").json(), cb.get("/.well-known/credit-node").json()
        assert (da["node_id"], db["node_id"]) == ("shanghai", "zhejiang"), (da, db)
    finally:
        for name in (name_a, name_b):
            if name is not None:
                _db_template.drop(name)
