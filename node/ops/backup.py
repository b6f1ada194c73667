"""`creditnode backup` and `creditnode restore`: everything a node needs to be the same node again, in one
encrypted file (docs/operations.md, "Backup and restore"; the file format: `node.ops.backupfile`).

A backup is a tar stream, encrypted with a passphrase, of:

- `manifest.json` (first): format version, node id, DID, base URL, region, software version, the database's
  schema revision, when it was taken, the database engine and dump format;
- `config/creditnode.toml`: the node's *effective* configuration (file and environment together), with its
  secrets: the database key (and retired ones) that encrypts ID numbers, names, the key ring and stored files;
  the blind-index key every ID-number lookup depends on; the token secret. `config/original.toml`: the
  configuration file as it was, for reference;
- `keys/node-keys.json`: the node's Ed25519 signing keys (the key ring file, still encrypted with the database
  key); `files/membership.json` when `federation.membership_file` is set;
- `database/…`: SQLite — an online, consistent copy (`VACUUM INTO`: one read transaction, the node keeps
  serving); PostgreSQL — `pg_dump --format=custom` (a consistent snapshot); without `pg_dump` on PATH, or with
  `logical`, an engine-neutral logical dump (`node.ops.logicaldump`: one snapshot, restores into either engine;
  the manifest says which and why);
- `files/evidence/…`, `files/imports/…`: the stored evidence files and import uploads, copied as they are on
  disk (encrypted with the database key; they stay so), after the database copy, so that every file a row of
  the copy names is there (files are written before their rows commit);
- `parts.json` (last): name, size and SHA-256 of every part (last, because the files are hashed as they are
  streamed; the tar stream is authenticated by the encryption anyway).

Restore refuses a wrong passphrase, a damaged or truncated file, a schema newer than this software, a native
dump of the other engine, and a target (database or data directory) that is not empty unless `force`; it decrypts
and checks the whole file into a staging directory before it changes anything, then puts the database and the
files in place, writes the configuration for the target data directory, runs the migrations when the backup is
older than this software, and audits `node.restore` in the restored database (`node.ops.restore`). The
commands: `node.ops.backup_cli`; the encrypted container: `node.ops.backupfile`; the logical dump:
`node.ops.logicaldump`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
import tomli_w
from pydantic import SecretStr

from config.settings import Settings
from node.db import alembic_config, is_sqlite, normalise_url
from node.ops.backupfile import MIN_PASSPHRASE, SCRYPT_N, BackupCorrupt, BackupError, EncryptingWriter, WrongPassphrase

__all__ = [
    "BackupCorrupt",
    "BackupError",
    "BackupReport",
    "Reporter",
    "WrongPassphrase",
    "create_backup",
    "effective_config",
]

FORMAT = "creditnode-backup"
VERSION = 1
_COPY = 1024 * 1024

# (phase description, total bytes or None) -> advance(n)
Reporter = Callable[[str, int | None], Callable[[int], None]]


def _quiet(_description: str, _total: int | None) -> Callable[[int], None]:
    return lambda _n: None


# -- what goes in ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def effective_config(settings: Settings) -> dict[str, dict[str, Any]]:
    """The node's configuration as a TOML document: every value that differs from the defaults, and always its
    identity (region, node id, base URL), data directory, database URL and all of its secrets."""
    out: dict[str, dict[str, Any]] = {}
    for name in type(settings).model_fields:
        section = getattr(settings, name)
        data = section.model_dump(exclude_defaults=True) if name != "security" else section.model_dump()
        data = _plain(data)
        if data:
            out[name] = data
    node = out.setdefault("node", {})
    node.update(region=settings.node.region, node_id=settings.node_id, base_url=settings.base_url,
                data_dir=str(settings.node.data_dir.resolve()))
    if settings.database.url:
        out.setdefault("database", {})["url"] = settings.database.url
    return out


def _schema_revision(conn: sa.Connection) -> list[str]:
    from alembic.runtime.migration import MigrationContext

    return sorted(MigrationContext.configure(conn).get_current_heads())


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A database URL for pg_dump / pg_restore without its password (which goes in PGPASSWORD: never argv)."""
    parsed = sa.make_url(normalise_url(url))
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return plain, env


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not on PATH: install the PostgreSQL client tools of the server's major "
                          "version (Debian: postgresql-client-NN) and run the command again")
    return path


def _run(args: list[str], env: dict[str, str], what: str, hint: str = "") -> None:
    done = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        raise BackupError(f"{what} failed: {lines[-1] if lines else f'exit status {done.returncode}'}{hint}")


def _snapshot_database(settings: Settings, into: Path, *, logical: bool = False,
                       advance: Callable[[int], None] = lambda _n: None) -> tuple[Path, dict, list[str]]:
    """A consistent copy of the node's database in `into`: (its path, the manifest's database entry, schema).
    SQLite: `VACUUM INTO`; PostgreSQL: `pg_dump --format=custom`; with `logical`, or PostgreSQL without
    `pg_dump` on PATH: the engine-neutral logical dump (`node.ops.logicaldump`)."""
    url = normalise_url(settings.database_url)
    engine_name = "sqlite" if is_sqlite(url) else "postgresql"
    pg_dump = None if is_sqlite(url) else shutil.which("pg_dump")
    if logical or (engine_name == "postgresql" and pg_dump is None):
        from node.ops.logicaldump import dump_database

        target = into / "node.jsonl"
        revision = dump_database(url, target, advance)
        why = "asked for" if logical else "pg_dump is not on PATH"
        return target, {"engine": engine_name, "format": "logical-jsonl", "file": "database/node.jsonl",
                        "why": why}, revision
    if engine_name == "sqlite":
        source = sa.make_url(url).database
        if not source or source == ":memory:" or not Path(source).is_file():
            raise BackupError(f"no SQLite database file at {source}")
        target = into / "node.sqlite"
        conn = sqlite3.connect(f"file:{Path(source).resolve()}?mode=ro", uri=True, timeout=30)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("VACUUM INTO ?", (str(target),))  # one read transaction: a consistent copy
        finally:
            conn.close()
        engine = sa.create_engine(f"sqlite:///{target}", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as c:
                revision = _schema_revision(c)
        finally:
            engine.dispose()
        advance(target.stat().st_size)
        return target, {"engine": "sqlite", "format": "sqlite", "file": "database/node.sqlite"}, revision
    assert pg_dump is not None
    target = into / "node.pgdump"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as c:
            before = _schema_revision(c)
        dsn, env = _libpq(url)
        _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={target}", f"--dbname={dsn}"],
             env, "pg_dump", " (a pg_dump older than the server refuses: install the server's version, or give "
             "--logical)")
        with engine.connect() as c:
            after = _schema_revision(c)
    finally:
        engine.dispose()
    if before != after:
        raise BackupError("the database schema was migrated while the backup ran; run it again")
    advance(target.stat().st_size)
    version = subprocess.run([pg_dump, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return target, {"engine": "postgresql", "format": "pg_dump-custom", "file": "database/node.pgdump",
                    "tool": version}, before


def _stored_files(settings: Settings) -> Iterator[tuple[str, Path]]:
    """(name in the backup, path) of the files the node keeps on disk: evidence and import uploads."""
    for prefix, root in (("files/evidence", settings.evidence_dir), ("files/imports", settings.node.data_dir / "imports")):
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                yield f"{prefix}/{relative.as_posix()}", path


# -- writing --------------------------------------------------------------------------------------------------


@dataclass
class BackupReport:
    path: Path
    manifest: dict
    parts: list[dict] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.path.stat().st_size


class _Hashing:
    """Reads a file for the tar stream, hashing and counting on the way."""

    def __init__(self, fh: BinaryIO, advance: Callable[[int], None]) -> None:
        self._fh, self._advance = fh, advance
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.sha.update(data)
        self._advance(len(data))
        return data


def _add(tar: tarfile.TarFile, name: str, fh: BinaryIO, size: int, advance: Callable[[int], None]) -> dict:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(dt.datetime.now(dt.UTC).timestamp())
    reader = _Hashing(fh, advance)
    tar.addfile(info, reader)
    return {"name": name, "size": size, "sha256": reader.sha.hexdigest()}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> dict:
    import io

    return _add(tar, name, io.BytesIO(data), len(data), lambda _n: None)


def _add_file(tar: tarfile.TarFile, name: str, path: Path, advance: Callable[[int], None]) -> dict:
    with path.open("rb") as fh:  # the open file: a file replaced meanwhile is read as it was when opened
        return _add(tar, name, fh, os.fstat(fh.fileno()).st_size, advance)


def create_backup(settings: Settings, output: Path, passphrase: str, *, config_file: Path | None = None,
                  reporter: Reporter = _quiet, scrypt_n: int | None = None, logical: bool = False) -> BackupReport:
    """Write an encrypted backup of the node to `output` (a new file, mode 0600; written whole or not at all).
    `logical`: the database as an engine-neutral logical dump (restores into SQLite or PostgreSQL)."""
    from importlib.metadata import version

    from crypto.did import did_web_from_url

    output = output.resolve()
    if output.exists():
        raise BackupError(f"{output} exists; give a new file name")
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    keyring = settings.node_key_file
    if not keyring.is_file():
        raise BackupError(f"no key ring at {keyring}: the node's signing keys are missing; nothing would restore "
                          "this node's identity")
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=output.parent, prefix=".creditnode-backup-"))  # mode 0700
    partial = output.with_name(output.name + ".partial")
    try:
        database, db_entry, revision = _snapshot_database(settings, scratch, logical=logical,
                                                          advance=reporter("database snapshot", None))
        manifest = {
            "format": FORMAT, "version": VERSION, "node_id": settings.node_id, "region": settings.node.region,
            "did": did_web_from_url(settings.base_url), "base_url": settings.base_url,
            "software_version": version("creditnode"), "schema_revision": revision,
            "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "database": db_entry,
        }
        files = list(_stored_files(settings))
        total = database.stat().st_size + sum(p.stat().st_size for _n, p in files)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        parts: list[dict] = []
        with os.fdopen(fd, "wb") as out:
            writer = EncryptingWriter(out, passphrase, scrypt_n=scrypt_n or SCRYPT_N)
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode())
                parts.append(_add_bytes(tar, "config/creditnode.toml",
                                        tomli_w.dumps(effective_config(settings)).encode()))
                original = config_file or (Path(os.environ["CREDITNODE_CONFIG"])
                                           if os.environ.get("CREDITNODE_CONFIG") else None)
                if original is not None and original.is_file():
                    parts.append(_add_file(tar, "config/original.toml", original, lambda _n: None))
                parts.append(_add_file(tar, "keys/node-keys.json", keyring, lambda _n: None))
                membership = settings.federation.membership_file
                if membership is not None and membership.is_file():
                    parts.append(_add_file(tar, "files/membership.json", membership, lambda _n: None))
                advance = reporter("writing", total)
                parts.append(_add_file(tar, db_entry["file"], database, advance))
                for name, path in files:
                    with contextlib.suppress(FileNotFoundError):  # deleted meanwhile (a purged upload)
                        parts.append(_add_file(tar, name, path, advance))
                _add_bytes(tar, "parts.json", json.dumps(parts, indent=1).encode())
            writer.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return BackupReport(output, manifest, parts)
