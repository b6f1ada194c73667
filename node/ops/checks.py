"""Checks an operator meets before anything goes wrong quietly: which configuration file is used, whether the
database exists and its schema is current, whether the port agrees with the base URL, whether keys are loaded.

Each check answers with `None` (fine) or one line that names the problem and the command that fixes it; the CLI
prints that line and exits, `/ready` lists the lines. None of them creates a file or a database.
"""

from __future__ import annotations

import ipaddress
import os
import sqlite3
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from node.db import alembic_config, is_sqlite, normalise_url

__all__ = [
    "CONFIG_ENV",
    "CONFIG_FILENAME",
    "ConfigurationProblem",
    "database_problem",
    "direct_port",
    "find_config",
    "is_loopback_host",
    "migration_heads",
    "port_problem",
    "schema_problem",
    "shown_url",
]

CONFIG_ENV = "CREDITNODE_CONFIG"
CONFIG_FILENAME = "creditnode.toml"
# A configuration given entirely by the environment (containers): its secrets are there.
ENV_ONLY_MARK = "CREDITNODE_SECURITY__DATABASE_KEY"


class ConfigurationProblem(RuntimeError):
    """The node cannot run as configured; the message is one line with the fix."""


def find_config(explicit: Path | None, *, cwd: Path | None = None) -> Path | None:
    """The configuration file to use: `--config`, else `$CREDITNODE_CONFIG`, else `./creditnode.toml`.

    None when there is none but the environment configures the node on its own (its secrets are set).
    Raises `ConfigurationProblem` when a named file does not exist or nothing is found at all."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigurationProblem(f"--config {explicit}: no such file")
        return explicit.resolve()
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigurationProblem(
                f"{CONFIG_ENV}={named}: no such file; point it at the creditnode.toml written by `creditnode init`"
            )
        return path.resolve()
    local = (cwd or Path.cwd()) / CONFIG_FILENAME
    if local.is_file():
        return local.resolve()
    if os.environ.get(ENV_ONLY_MARK):
        return None
    raise ConfigurationProblem(
        f"no configuration found (looked for --config, ${CONFIG_ENV} and ./{CONFIG_FILENAME}): "
        f"for a new node run `creditnode init --region REGION --data-dir DIR`, "
        f"for an existing one `export {CONFIG_ENV}=DIR/{CONFIG_FILENAME}`"
    )


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


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def direct_port(base_url: str, host: str) -> int | None:
    """The port this process must listen on for `base_url` to reach it, when the base URL names this process
    directly (plain http on a loopback name, or on the `--host` it binds); None when it names a reverse proxy
    (https: the node itself serves plain http; another host name)."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    if not (is_loopback_host(parts.hostname) or parts.hostname == host.strip("[]").lower()):
        return None
    return parts.port or 80


def port_problem(*, base_url: str, did: str, host: str, port: int, config: Path | None) -> str | None:
    """`serve --port` that disagrees with the base URL: credentials issued so name an address nobody serves."""
    expected = direct_port(base_url, host)
    if expected is None or expected == port:
        return None
    where = f"in {config}" if config is not None else "(CREDITNODE_NODE__BASE_URL)"
    return (f"--port {port} disagrees with the node's base URL {base_url} ({did}): credentials and DID documents "
            f"would name an address nobody serves. Run `creditnode serve --port {expected}`, or, before anything "
            f"is issued, set node.base_url = \"{urlsplit(base_url).scheme}://{urlsplit(base_url).hostname}:{port}\" "
            f"{where}; behind a reverse proxy that serves {base_url}, add --behind-proxy")
