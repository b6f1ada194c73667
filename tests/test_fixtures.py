"""The suite's own fixtures (tests/conftest.py): a PostgreSQL test database given back is reset to exactly the
template's state, or dropped when it cannot be; the cheap Argon2 cost is for the tests only."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import _FINGERPRINT, FAST_ARGON2, NODE_PASSWORD_HASHER, PG_URL, _PgDatabases

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
