"""A logical dump of the node's database: every table's rows as JSON lines, engine-neutral (`creditnode backup
--logical`, and a PostgreSQL backup when `pg_dump` is not on PATH; docs/operations.md "Backup and restore").

The dump is taken in one read-only transaction (PostgreSQL: REPEATABLE READ, one snapshot for every table;
SQLite: one read transaction, which WAL keeps consistent while the node writes), from the tables as they are
(reflected, not the models of this software, so an older schema dumps as it is). Format::

    {"table": name, "columns": [names]}          one line per table, in foreign-key order, then its rows:
    [value, ...]                                 JSON; bytes {"b": base64}, datetime {"t": iso}, date {"d": iso},
                                                 Decimal {"n": text}, a JSON column's value {"j": value}

The restore builds the schema at the dump's revision with the migrations, inserts the rows table by table in
batches (memory stays flat), moves PostgreSQL's sequences past the highest ids, and then the caller migrates
to this software's head. Because it names columns and tags values, a SQLite dump restores into PostgreSQL and
back (moving a node to PostgreSQL as it grows).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from node.db import is_sqlite, normalise_url, upgrade_database

__all__ = ["dump_database", "load_database"]

BATCH = 1000
_SKIP = {"alembic_version"}


def _encode(value: Any, is_json: bool) -> Any:
    if value is None:
        return None
    if is_json or isinstance(value, dict | list):
        return {"j": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"n": str(value)}
    return value


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "j" in value:
        return value["j"]
    if "b" in value:
        return base64.b64decode(value["b"])
    if "t" in value:
        return dt.datetime.fromisoformat(value["t"])
    if "d" in value:
        return dt.date.fromisoformat(value["d"])
    if "n" in value:
        return Decimal(value["n"])
    raise ValueError("an unknown value tag in the logical dump")


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(normalise_url(url), poolclass=sa.pool.NullPool)


def _tables(conn: sa.Connection) -> list[sa.Table]:
    meta = sa.MetaData()
    meta.reflect(conn)
    return [t for t in meta.sorted_tables if t.name not in _SKIP]


def dump_database(url: str, target: Path, advance: Callable[[int], None] = lambda _n: None) -> list[str]:
    """Write the logical dump of `url` to `target`; returns the schema revision it was taken at (the same
    snapshot)."""
    from alembic.runtime.migration import MigrationContext

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            if is_sqlite(url):
                conn.exec_driver_sql("BEGIN")  # one read transaction: a snapshot under WAL
            else:
                conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
                conn.begin()
            revision = sorted(MigrationContext.configure(conn).get_current_heads())
            with target.open("w", encoding="utf-8") as out:
                for table in _tables(conn):
                    json_cols = [isinstance(c.type, sa.JSON) for c in table.columns]
                    out.write(json.dumps({"table": table.name, "columns": [c.name for c in table.columns]}) + "\n")
                    order = list(table.primary_key.columns) or list(table.columns)[:1]
                    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
                        sa.select(table).order_by(*order))
                    for row in result:
                        line = json.dumps([_encode(v, j) for v, j in zip(row, json_cols, strict=True)],
                                          ensure_ascii=False, separators=(",", ":")) + "\n"
                        out.write(line)
                        advance(len(line))
            conn.rollback()
    finally:
        engine.dispose()
    return revision


def _sections(source: Path) -> Iterator[tuple[dict, Iterator[tuple[list, int]]]]:
    """(table header, its (row, bytes read)) in order; each section's rows must be consumed before the next."""
    with source.open("r", encoding="utf-8") as fh:
        pending: dict | None = None

        def rows() -> Iterator[tuple[list, int]]:
            nonlocal pending
            for raw in fh:
                item = json.loads(raw)
                if isinstance(item, dict):
                    pending = item
                    return
                yield item, len(raw.encode("utf-8"))

        first = fh.readline()
        pending = json.loads(first) if first else None
        while pending is not None:
            header, pending = pending, None
            yield header, rows()


def load_database(source: Path, url: str, revision: list[str],
                  advance: Callable[[int], None] = lambda _n: None) -> int:
    """(`advance` gets the bytes of the dump loaded.) Build the schema at `revision` in the (empty) database `url` and load the dump into it, in one
    transaction; returns the rows loaded."""
    for rev in revision or ["base"]:
        if rev != "base":
            upgrade_database(url, rev)
    engine = _engine(url)
    loaded = 0
    try:
        with engine.begin() as conn:
            if is_sqlite(url):
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            ordered = _tables(conn)
            for table in reversed(ordered):  # rows the migrations seed (code lists): the dump holds them
                conn.execute(table.delete())
            tables = {t.name: t for t in ordered}
            for header, rows in _sections(source):
                table = tables.get(header["table"])
                if table is None:
                    raise ValueError(f"the dump has a table {header['table']!r} the schema at its revision lacks")
                columns = header["columns"]
                statement = table.insert()
                batch: list[dict] = []
                size = 0
                for row, nbytes in rows:
                    batch.append({c: _decode(v) for c, v in zip(columns, row, strict=True)})
                    size += nbytes
                    if len(batch) >= BATCH:
                        conn.execute(statement, batch)
                        loaded += len(batch)
                        advance(size)
                        batch, size = [], 0
                if batch:
                    conn.execute(statement, batch)
                    loaded += len(batch)
                    advance(size)
            if not is_sqlite(url):
                for table in tables.values():
                    for column in table.primary_key.columns:
                        if isinstance(column.type, sa.Integer):
                            conn.execute(sa.text(
                                "SELECT setval(seq::regclass, (SELECT coalesce(max(" + _quote(conn, column.name) + "), 0) + 1 "
                                "FROM " + _quote(conn, table.name) + "), false) FROM pg_get_serial_sequence(:t, :c) "
                                "AS seq WHERE seq IS NOT NULL"), {"t": _quote(conn, table.name), "c": column.name})
    finally:
        engine.dispose()
    return loaded


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)
