"""Engines, sessions and migrations.

SQLite (the embedded default) runs in WAL mode with foreign keys on; PostgreSQL is used through psycopg 3.
The schema is built only by the Alembic migrations in `node/migrations/` (never `create_all`).
Sessions follow one rule: commit once, at the boundary (request dependency, job scope, CLI command).

**SQLite transactions** (docs/performance.md). SQLite has one write lock per database. A transaction is begun
lazily, at its first statement, in one of two ways:

- `BEGIN IMMEDIATE` (the write lock at once) when the first statement writes (INSERT, UPDATE, DELETE, DDL, a
  SAVEPOINT, or a `SELECT ... FOR UPDATE`, whose FOR UPDATE SQLite ignores but which says "I read this to write
  it"), or when the session is in *write mode* — the default, kept for jobs, commands and write requests, so that
  a unit of work that reads and then writes holds the lock from its first read and two writers queue rather than
  deadlock (a deferred transaction that read an older snapshot could not take the lock later: SQLITE_BUSY).
- plain `BEGIN` (a WAL read snapshot: no lock, never waits for a writer, never blocks one) when the session is in
  *read mode* (`read_mode(session)`, set by the request session for GET/HEAD requests and for the principal's
  lookup). If such a transaction then writes (an audit entry of a staff read, a credential's first status
  index), it is ended and a `BEGIN IMMEDIATE` one started in its place before the write: the write waits for the
  lock like any writer, sees the latest data from then on, and what was read before is what a READ COMMITTED
  transaction on PostgreSQL would have read. Reads that decide a write say so with `with_for_update()`.

Every connection records in `connection.info["wrote"]` whether its current transaction wrote (all dialects), so
the request session can tell a read-only transaction (ended without I/O that can wait) from a write.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

__all__ = [
    "READ_MODE",
    "database_problem",
    "is_sqlite",
    "make_engine",
    "migration_heads",
    "normalise_url",
    "read_mode",
    "wrote",
    "schema_problem",
    "session_scope",
    "shown_url",
    "upgrade_database",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return url.startswith("sqlite")


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # A connection for every worker thread (40) and more: a SQLite connection is a file handle and a page
        # cache; a thread that waits for a pool connection is a thread lost to the lock holder's next hop.
        engine = sa.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30},
            **({} if url == "sqlite:///:memory:" or url == "sqlite://" else
               {"pool_size": pool_size, "max_overflow": max(48, pool_size)}),
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # Let SQLAlchemy's BEGIN be the transaction start (pysqlite's legacy handling defers it).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        _track_writes(engine, sqlite=True)
        return engine
    engine = sa.create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    _track_writes(engine, sqlite=False)
    return engine


# -- lazy, read- or write-mode transactions (see the module docstring) ------------------------------------------

READ_MODE = "creditnode_read_mode"  # Session.info key: the session's next transactions begin as reads
_STATE = "creditnode_txn"  # Connection.info: None (no transaction), "pending", "read" or "write"
_MODE = "creditnode_txn_mode"  # Connection.info: "read" or "write", for the transaction being begun
_WROTE = "wrote"
_CONNECTION = "creditnode_connection"  # Session.info: the connection of the session's current transaction
_READS = frozenset({"SELECT", "PRAGMA", "EXPLAIN", "VALUES"})
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})


def _writes(statement: str, context: Any) -> bool:
    """Does this statement write (or announce a write: SELECT ... FOR UPDATE, SAVEPOINT)?"""
    if context is not None and getattr(context, "compiled", None) is not None:
        if context.isinsert or context.isupdate or context.isdelete or context.isddl:
            return True
        if getattr(context.compiled.statement, "_for_update_arg", None) is not None:
            return True
    head = statement.lstrip(" \n\t(").split(None, 1)
    word = head[0].upper() if head else ""
    if word in _READS:
        return False
    if word == "WITH":
        return any(w in statement.upper() for w in _DML)
    return word not in ("RELEASE", "ROLLBACK", "COMMIT", "BEGIN", "END")


def _track_writes(engine: Engine, *, sqlite: bool) -> None:
    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.info[_WROTE] = False
        if sqlite:
            conn.info[_STATE] = "pending"
            conn.info.setdefault(_MODE, "write")

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, _parameters, context, _executemany):
        state = conn.info.get(_STATE)
        if not sqlite:
            if not conn.info.get(_WROTE) and _writes(statement, context):
                conn.info[_WROTE] = True
            return
        if state is None or state == "write":
            return
        writes = _writes(statement, context)
        if state == "pending":
            if writes or conn.info.get(_MODE) != "read":
                cursor.execute("BEGIN IMMEDIATE")
                conn.info[_STATE], conn.info[_WROTE] = "write", True
            else:
                cursor.execute("BEGIN")
                conn.info[_STATE] = "read"
        elif writes:  # state "read": end the snapshot, take the write lock with a fresh one
            cursor.execute("COMMIT")
            cursor.execute("BEGIN IMMEDIATE")
            conn.info[_STATE], conn.info[_WROTE] = "write", True

    def _ended(conn):
        conn.info[_STATE] = None
        conn.info.pop(_MODE, None)

    event.listen(engine, "commit", _ended)
    event.listen(engine, "rollback", _ended)


@event.listens_for(Session, "after_begin")
def _session_mode(session: Session, _transaction: Any, connection: sa.Connection) -> None:
    # the session's mode for the transaction about to be begun on this connection (SQLite)
    connection.info[_MODE] = "read" if session.info.get(READ_MODE) else "write"
    session.info[_CONNECTION] = connection


@contextlib.contextmanager
def read_mode(session: Session, enabled: bool = True) -> Iterator[Session]:
    """Transactions the session begins inside this block start as reads on SQLite (a write in them takes the
    write lock then: see the module docstring); the previous mode afterwards."""
    before = session.info.get(READ_MODE, False)
    session.info[READ_MODE] = enabled
    try:
        yield session
    finally:
        session.info[READ_MODE] = before


def wrote(session: Session) -> bool:
    """Has the session's current transaction written anything (flushed or executed a write)?"""
    if not session.in_transaction():
        return False
    connection = session.info.get(_CONNECTION)
    return bool(connection is not None and not connection.closed and connection.info.get(_WROTE))


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work for jobs and commands: commits on success, rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    """Build or upgrade the schema by running the migrations."""
    command.upgrade(alembic_config(url), revision)


# -- is the database there, and its schema current? (the CLI before it starts, `/ready`) ---------------


def shown_url(url: str) -> str:
    """A database URL fit for a message: the password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparsable database URL)"


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The revisions this version of the software needs the database at (read once per process)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def schema_problem(conn: sa.Connection) -> str | None:
    """None if the database's Alembic revision is this software's head; else one line with the fix."""
    current = frozenset(MigrationContext.configure(conn).get_current_heads())
    heads = migration_heads()
    if current == heads:
        return None
    if not current:
        return "the database has no schema: run `creditnode db upgrade`"
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = {rev.revision for rev in script.walk_revisions()}
    shown, wanted = ", ".join(sorted(current)), ", ".join(sorted(heads))
    if not current <= known:
        return (f"the database schema is at revision {shown}, newer than this creditnode knows ({wanted}): "
                "install the newer creditnode")
    return (f"the database schema is at revision {shown}, this creditnode needs {wanted}: "
            "back up, then run `creditnode db upgrade`")


def _sqlite_path(url: str) -> Path | None:
    parsed = sa.make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def database_problem(url: str, *, need_schema: bool = True) -> str | None:
    """Reach the database without creating anything (a missing SQLite file stays missing) and check its schema."""
    url = normalise_url(url)
    try:
        if is_sqlite(url):
            path = _sqlite_path(url)
            if path is not None and not path.is_file():
                return (f"no database at {path}: run `creditnode db upgrade` to create it, or check node.data_dir "
                        "and database.url in the configuration")
            uri = f"file:{path}?mode=ro" if path is not None else "file::memory:"
            engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True),
                                      poolclass=sa.pool.NullPool)
        else:
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
    except (sa.exc.ArgumentError, ImportError) as exc:
        return f"database.url {shown_url(url)} is not usable: {exc}"
    try:
        with engine.connect() as conn:
            return schema_problem(conn) if need_schema else None
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return f"cannot reach the database {shown_url(url)}: {first}"
    finally:
        engine.dispose()
