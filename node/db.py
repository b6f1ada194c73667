"""Engines, sessions and migrations.

SQLite (the embedded default) runs in WAL mode with foreign keys on; PostgreSQL is used through psycopg 3.
The schema is built only by the Alembic migrations in `node/migrations/` (never `create_all`).
Sessions follow one rule: commit once, at the boundary (request dependency, job scope, CLI command).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

__all__ = [
    "database_problem",
    "is_sqlite",
    "make_engine",
    "migration_heads",
    "normalise_url",
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
        engine = sa.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
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

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # IMMEDIATE: a writer takes the write lock at BEGIN, so two writers queue instead of deadlocking.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


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
