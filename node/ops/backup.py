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
  serving); PostgreSQL — `pg_dump --format=custom` (a consistent snapshot); without `pg_dump` on PATH the backup
  is refused with the package to install (no silent fallback: a partial or slow logical dump is worse);
- `files/evidence/…`, `files/imports/…`: the stored evidence files and import uploads, copied as they are on
  disk (encrypted with the database key; they stay so), after the database copy, so that every file a row of
  the copy names is there (files are written before their rows commit);
- `parts.json` (last): name, size and SHA-256 of every part (last, because the files are hashed as they are
  streamed; the tar stream is authenticated by the encryption anyway).

Restore refuses a wrong passphrase, a damaged or truncated file, a schema newer than this software, a database
of the other engine, and a target (database or data directory) that is not empty unless `force`; it decrypts
and checks the whole file into a staging directory before it changes anything, then puts the database and the
files in place, writes the configuration for the target data directory, runs the migrations when the backup is
older than this software, and audits `node.restore` in the restored database.
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
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, BinaryIO

import sqlalchemy as sa
import tomli_w
import typer
from pydantic import SecretStr

from config.settings import Settings
from node.db import alembic_config, is_sqlite, normalise_url, shown_url, upgrade_database
from node.ops.backupfile import (
    MIN_PASSPHRASE,
    SCRYPT_N,
    BackupCorrupt,
    BackupError,
    EncryptingWriter,
    WrongPassphrase,
    open_backup,
)

__all__ = [
    "BackupCorrupt",
    "BackupError",
    "BackupReport",
    "RestoreReport",
    "WrongPassphrase",
    "create_backup",
    "effective_config",
    "register",
    "restore_backup",
]

FORMAT = "creditnode-backup"
VERSION = 1
PASSPHRASE_ENV = "CREDITNODE_BACKUP_PASSPHRASE"
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


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        raise BackupError(f"{what} failed: {lines[-1] if lines else f'exit status {done.returncode}'}")


def _snapshot_database(settings: Settings, into: Path) -> tuple[Path, dict, list[str]]:
    """A consistent copy of the node's database in `into`: (its path, the manifest's database entry, schema)."""
    url = normalise_url(settings.database_url)
    if is_sqlite(url):
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
        return target, {"engine": "sqlite", "format": "sqlite", "file": "database/node.sqlite"}, revision
    pg_dump = _pg_tool("pg_dump")
    target = into / "node.pgdump"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as c:
            before = _schema_revision(c)
        dsn, env = _libpq(url)
        _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={target}", f"--dbname={dsn}"],
             env, "pg_dump")
        with engine.connect() as c:
            after = _schema_revision(c)
    finally:
        engine.dispose()
    if before != after:
        raise BackupError("the database schema was migrated while the backup ran; run it again")
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
                  reporter: Reporter = _quiet, scrypt_n: int = SCRYPT_N) -> BackupReport:
    """Write an encrypted backup of the node to `output` (a new file, mode 0600; written whole or not at all)."""
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
        reporter("database snapshot", None)
        database, db_entry, revision = _snapshot_database(settings, scratch)
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
            writer = EncryptingWriter(out, passphrase, scrypt_n=scrypt_n)
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


# -- restoring ------------------------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    config_path: Path
    database_url: str
    manifest: dict
    migrated_from: list[str]
    migrated_to: list[str]
    files: int


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or path.parts[0] not in (
            "config", "keys", "database", "files", "manifest.json", "parts.json"):
        raise BackupCorrupt(f"the backup holds an unexpected member {name[:100]!r}")
    return path


def _table_count(url: str) -> int:
    """Tables in the target database (0: empty or missing); raises BackupError when it cannot be reached."""
    url = normalise_url(url)
    if is_sqlite(url):
        path = sa.make_url(url).database
        if not path or not Path(path).is_file() or Path(path).stat().st_size == 0:
            return 0
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"the target {path} is not a SQLite database ({exc})") from None
        finally:
            conn.close()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as c:
            return c.execute(sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                                     "current_schema()")).scalar_one()
    except sa.exc.OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise BackupError(f"cannot reach the target database {shown_url(url)}: {first} (create it first: "
                          "createdb)") from None
    finally:
        engine.dispose()


def _occupied(data_dir: Path, url: str) -> list[str]:
    found = []
    tables = _table_count(url)
    if tables:
        found.append(f"the database {shown_url(url)} holds {tables} table(s)")
    for name in ("creditnode.toml", "node-keys.json", "membership.json"):
        if (data_dir / name).exists():
            found.append(str(data_dir / name))
    for name in ("evidence", "imports"):
        if (data_dir / name).is_dir() and any(p.is_file() for p in (data_dir / name).rglob("*")):
            found.append(f"{data_dir / name}/ holds files")
    return found


def _target_url(config: dict, data_dir: Path, database_url: str | None) -> str:
    if database_url:
        return database_url
    configured = config.get("database", {}).get("url")
    if configured:
        return configured
    from config.settings import load_region

    return f"sqlite:///{(data_dir / load_region(config['node']['region']).sqlite_file).resolve()}"


def _restored_config(config: dict, data_dir: Path, database_url: str | None, has_membership: bool) -> dict:
    config = json.loads(json.dumps(config))  # a deep copy
    config["node"]["data_dir"] = str(data_dir)
    if database_url:
        config.setdefault("database", {})["url"] = database_url
    config.get("security", {}).pop("node_key_file", None)  # the key ring goes to <data_dir>/node-keys.json
    federation = config.setdefault("federation", {})
    federation.pop("membership_file", None)
    if has_membership:
        federation["membership_file"] = str(data_dir / "membership.json")
    if not federation:
        del config["federation"]
    return config


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    if fh is None:
        raise BackupCorrupt(f"the backup member {member.name!r} is not a file")
    return fh.read()


def _sqlite_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
            path.with_name(path.name + "-journal")]


def _restore_database(staged: Path, entry: dict, url: str) -> None:
    url = normalise_url(url)
    if is_sqlite(url):
        target = Path(sa.make_url(url).database).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        for old in _sqlite_files(target):
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        shutil.move(str(staged), str(target))
        return
    pg_restore = _pg_tool("pg_restore")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as c:  # --force: the old schema goes (the node must be stopped)
            schema = c.execute(sa.text("SELECT current_schema()")).scalar_one()
            c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()
    dsn, env = _libpq(url)
    _run([pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
          f"--dbname={dsn}", str(staged)], env, "pg_restore")


def restore_backup(source: Path, passphrase: str, *, data_dir: Path, database_url: str | None = None,
                   force: bool = False, reporter: Reporter = _quiet) -> RestoreReport:
    """Restore the node in `source` into `data_dir` and its database (`database_url`, else the one the backup's
    configuration names, else SQLite in `data_dir`). Nothing changes unless the whole file decrypts and checks."""
    data_dir = data_dir.resolve()
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    reader = open_backup(source.open("rb"), passphrase)
    size = source.stat().st_size
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=".restore-"))
    try:
        with reader:
            advance = reporter("decrypting and checking", size)
            seen = 0

            def progress() -> None:
                nonlocal seen
                advance(reader.read_bytes - seen)
                seen = reader.read_bytes

            try:
                tar = tarfile.open(fileobj=reader, mode="r|")
            except tarfile.TarError:
                raise BackupCorrupt("the backup's content is not readable") from None
            manifest: dict | None = None
            config: dict | None = None
            listed: list[dict] | None = None
            got: dict[str, dict] = {}
            url = ""
            try:
                for member in tar:
                    name = _safe_name(member.name)
                    if not member.isfile():
                        raise BackupCorrupt(f"the backup member {member.name!r} is not a file")
                    if manifest is None:
                        if member.name != "manifest.json":
                            raise BackupCorrupt("the backup does not start with its manifest")
                        manifest = _check_manifest(json.loads(_read_member(tar, member)))
                        continue
                    if member.name == "parts.json":
                        listed = json.loads(_read_member(tar, member))
                        continue
                    if member.name == "config/creditnode.toml":
                        data = _read_member(tar, member)
                        config = tomllib.loads(data.decode("utf-8"))
                        url = _target_url(config, data_dir, database_url)
                        _check_target(manifest, data_dir, url, force)
                        got[member.name] = {"name": member.name, "size": len(data),
                                            "sha256": hashlib.sha256(data).hexdigest()}
                        continue
                    if config is None:
                        raise BackupCorrupt("the backup's configuration is missing")
                    target = staging.joinpath(*name.parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    got[member.name] = _extract(tar, member, target, progress)
                while reader.read(_COPY):  # the end of the tar stream up to the last, sealed chunk
                    pass
                progress()
            except (tarfile.TarError, EOFError, json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError):
                raise BackupCorrupt("the backup's content is damaged") from None
            if not reader.done:
                raise BackupCorrupt("the backup file is truncated")
        if manifest is None or config is None or listed is None:
            raise BackupCorrupt("the backup is incomplete (manifest, configuration or part list missing)")
        _check_parts(listed, got, manifest)
        reporter("putting in place", None)
        _restore_database(staging / manifest["database"]["file"], manifest["database"], url)
        files = _place_files(staging, data_dir)
        config_path = data_dir / "creditnode.toml"
        restored = _restored_config(config, data_dir, database_url, (staging / "files/membership.json").is_file())
        _write_private(config_path, b"# Written by `creditnode restore` from a backup of "
                       + manifest["node_id"].encode() + b" taken " + manifest["created_at"].encode()
                       + b". Holds secrets: keep it private (mode 0600), back it up.\n\n"
                       + tomli_w.dumps(restored).encode())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    reporter("migrations", None)
    upgrade_database(url)
    engine = sa.create_engine(normalise_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as c:
            now_at = _schema_revision(c)
    finally:
        engine.dispose()
    _audit_restore(url, source, manifest, now_at)
    return RestoreReport(config_path, url, manifest, list(manifest["schema_revision"]), now_at, files)


def _check_manifest(manifest: Any) -> dict:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupCorrupt("the backup's manifest is not valid")
    if manifest.get("version") != VERSION:
        raise BackupError(f"backup version {manifest.get('version')} is not known to this creditnode")
    revision = manifest.get("schema_revision")
    database = manifest.get("database")
    if not isinstance(revision, list) or not isinstance(database, dict) or database.get("engine") not in (
            "sqlite", "postgresql") or not str(database.get("file", "")).startswith("database/"):
        raise BackupCorrupt("the backup's manifest is not valid")
    unknown = sorted(set(revision) - _known_revisions())
    if unknown:
        raise BackupError(f"the backup's database schema is at revision {', '.join(unknown)}, newer than this "
                          f"creditnode ({manifest.get('software_version')} made it): install that version or a "
                          "newer one to restore it")
    return manifest


def _check_target(manifest: dict, data_dir: Path, url: str, force: bool) -> None:
    engine = "sqlite" if is_sqlite(normalise_url(url)) else "postgresql"
    if engine != manifest["database"]["engine"]:
        raise BackupError(f"the backup holds a {manifest['database']['engine']} database; the target "
                          f"{shown_url(url)} is {engine}: give a --database-url of the same engine")
    occupied = _occupied(data_dir, url)
    if occupied and not force:
        raise BackupError("the target is not empty (" + "; ".join(occupied) + "): stop the node and give --force "
                          "to replace it, or restore into an empty data directory and database")


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, progress: Callable[[], None]) -> dict:
    fh = tar.extractfile(member)
    assert fh is not None
    sha = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := fh.read(_COPY):
            out.write(chunk)
            sha.update(chunk)
            size += len(chunk)
            progress()
    return {"name": member.name, "size": size, "sha256": sha.hexdigest()}


def _check_parts(listed: Any, got: dict[str, dict], manifest: dict) -> None:
    if not isinstance(listed, list) or not all(isinstance(p, dict) for p in listed):
        raise BackupCorrupt("the backup's part list is not valid")
    expected = {p.get("name"): p for p in listed}
    if set(expected) != set(got):
        raise BackupCorrupt("the backup's parts do not match its part list")
    for name, part in got.items():
        if expected[name].get("sha256") != part["sha256"] or expected[name].get("size") != part["size"]:
            raise BackupCorrupt(f"the backup part {name} does not match its SHA-256 in the part list")
    if manifest["database"]["file"] not in got or "keys/node-keys.json" not in got:
        raise BackupCorrupt("the backup lacks its database or the node's key ring")


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _place_files(staging: Path, data_dir: Path) -> int:
    """The key ring, the membership file and the stored files, in place of whatever was there."""
    os.replace(staging / "keys" / "node-keys.json", data_dir / "node-keys.json")
    if (staging / "files" / "membership.json").is_file():
        os.replace(staging / "files" / "membership.json", data_dir / "membership.json")
    count = 0
    for name in ("evidence", "imports"):
        target = data_dir / name
        if target.exists():
            shutil.rmtree(target)
        staged = staging / "files" / name
        if staged.is_dir():
            os.replace(staged, target)
            count += sum(1 for p in target.rglob("*") if p.is_file())
    return count


def _audit_restore(url: str, source: Path, manifest: dict, now_at: list[str]) -> None:
    from node.audit.service import record
    from node.cli import operator_principal
    from node.db import make_engine, session_scope

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            record(session, actor=operator_principal(), action="node.restore", target_type="node",
                   target_id=manifest["node_id"],
                   detail={"file": source.name, "taken": manifest["created_at"],
                           "software_version": manifest["software_version"],
                           "schema_from": manifest["schema_revision"], "schema_to": now_at})
    finally:
        engine.dispose()


# -- the commands -----------------------------------------------------------------------------------------------


def _passphrase(file: Path | None, *, confirm: bool) -> str:
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise BackupError(f"--passphrase-file {file}: {exc.strerror}") from None
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    return typer.prompt("backup passphrase", hide_input=True, confirmation_prompt=confirm)


@contextlib.contextmanager
def _rich_reporter() -> Iterator[Reporter]:
    from rich.progress import (BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)

    from node.cli import console

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=console) as progress:
        current: list = []

        def phase(description: str, total: int | None) -> Callable[[int], None]:
            for task in current:
                progress.update(task, completed=progress.tasks[task].total or 1, total=progress.tasks[task].total
                                or 1)
            task = progress.add_task(description, total=total)
            current[:] = [task]
            return lambda n: progress.advance(task, n)

        yield phase
        for task in current:
            progress.update(task, completed=progress.tasks[task].total or 1, total=progress.tasks[task].total or 1)


PassphraseOpt = Annotated[Path | None, typer.Option(
    help=f"read the passphrase from this file (else ${PASSPHRASE_ENV}, else a prompt); at least {MIN_PASSPHRASE} "
         "characters")]


def backup_command(
    output: Annotated[Path, typer.Argument(help="the backup file to write (must not exist)")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="configuration file (default: "
                                                "$CREDITNODE_CONFIG, else ./creditnode.toml)")] = None,
    passphrase_file: PassphraseOpt = None,
) -> None:
    """Write an encrypted backup of this node — its database (online, while the node runs), signing keys,
    configuration with its secrets, evidence files and import uploads — to one file (docs/operations.md)."""
    from node.cli import audit_operator, fail, load_settings

    settings = load_settings(config)
    try:
        passphrase = _passphrase(passphrase_file, confirm=True)
        with _rich_reporter() as reporter:
            report = create_backup(settings, output, passphrase, config_file=config, reporter=reporter)
    except BackupError as exc:
        audit_operator(settings, "node.backup", target_type="node", target_id=settings.node_id, outcome="failed",
                       detail={"file": output.name, "error": str(exc)[:300]})
        fail(str(exc))
    audit_operator(settings, "node.backup", target_type="node", target_id=settings.node_id,
                   detail={"file": report.path.name, "size": report.size, "parts": len(report.parts),
                           "schema": report.manifest["schema_revision"]})
    typer.echo(f"backup of {settings.node_id} written to {report.path} ({report.size:,} bytes, "
               f"{len(report.parts)} parts, schema {', '.join(report.manifest['schema_revision'])}); keep the "
               "passphrase apart from the file: without it the backup cannot be read")


def restore_command(
    backup: Annotated[Path, typer.Argument(help="a file written by `creditnode backup`")],
    data_dir: Annotated[Path | None, typer.Option(help="restore into this data directory (default: the "
                                                  "configured node's)")] = None,
    database_url: Annotated[str | None, typer.Option(help="restore into this database (default: the configured "
                                                     "node's, else the backup's, else SQLite in the data "
                                                     "directory)")] = None,
    force: Annotated[bool, typer.Option(help="replace a database and data directory that are not empty (stop the "
                                        "node first)")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="the node to restore in place (default: "
                                                "$CREDITNODE_CONFIG, else ./creditnode.toml)")] = None,
    passphrase_file: PassphraseOpt = None,
) -> None:
    """Restore a node from a backup: checks the whole file first, refuses a non-empty target without --force,
    then runs the migrations if the backup is older than this software. Then re-sync with the peers."""
    from config.settings import ConfigurationProblem, find_settings
    from node.cli import fail

    if data_dir is None:
        try:
            current = find_settings(config)
        except ConfigurationProblem as exc:
            fail(f"{exc} (or give --data-dir for a new node)")
        data_dir = current.node.data_dir
        database_url = database_url or current.database.url
    try:
        passphrase = _passphrase(passphrase_file, confirm=False)
        with _rich_reporter() as reporter:
            report = restore_backup(backup, passphrase, data_dir=data_dir, database_url=database_url, force=force,
                                    reporter=reporter)
    except BackupError as exc:
        fail(str(exc))
    m = report.manifest
    typer.echo(f"restored {m['node_id']} ({m['did']}) as of {m['created_at']}: database {shown_url(report.database_url)}, "
               f"{report.files} stored file(s), configuration {report.config_path}")
    if report.migrated_from != report.migrated_to:
        typer.echo(f"schema migrated from {', '.join(report.migrated_from)} to {', '.join(report.migrated_to)}")
    typer.echo("next:")
    typer.echo(f"  export CREDITNODE_CONFIG={report.config_path}")
    typer.echo("  creditnode ledger verify")
    typer.echo("  creditnode serve   # then, for every member: creditnode federation resync PEER "
               "(docs/federation.md §4.1)")


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)
