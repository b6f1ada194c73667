"""Restoring a node from a backup written by `node.ops.backup` (`creditnode restore`; docs/operations.md).

Nothing in the target changes until the whole file has decrypted and checked into a staging directory inside the
target data directory: the passphrase, every chunk's authentication, the end of the stream, the manifest (format,
a schema this software knows), the target (empty, or `force`; the same engine unless the dump is logical) and
every part against its SHA-256 in the part list. Then the database and the files are put in place, the
configuration is written for the target data directory, the migrations run, and `node.restore` is audited.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa
import tomli_w

from node.db import is_sqlite, normalise_url, shown_url, upgrade_database
from node.ops.backup import (
    _COPY,
    FORMAT,
    VERSION,
    Reporter,
    _known_revisions,
    _libpq,
    _pg_tool,
    _quiet,
    _run,
    _schema_revision,
)
from node.ops.backupfile import BackupCorrupt, BackupError, open_backup

__all__ = ["RestoreReport", "restore_backup"]


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


def _clear_database(url: str) -> None:
    """Empty the target database (`--force`; the node must be stopped)."""
    url = normalise_url(url)
    if is_sqlite(url):
        target = Path(sa.make_url(url).database).resolve()
        for old in _sqlite_files(target):
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        return
    if not _table_count(url):
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as c:
            schema = c.execute(sa.text("SELECT current_schema()")).scalar_one()
            c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()


def _restore_database(staged: Path, manifest: dict, url: str, reporter: Reporter) -> None:
    entry = manifest["database"]
    _clear_database(url)
    url = normalise_url(url)
    if entry["format"] == "logical-jsonl":
        from node.ops.logicaldump import load_database

        try:
            load_database(staged, url, manifest["schema_revision"], reporter("loading rows", staged.stat().st_size))
        except (ValueError, KeyError, TypeError, sa.exc.DBAPIError) as exc:
            raise BackupError(f"loading the logical dump failed: {str(exc).splitlines()[0][:300]}") from None
        return
    if is_sqlite(url):
        target = Path(sa.make_url(url).database).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(target))
        return
    pg_restore = _pg_tool("pg_restore")
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
        _restore_database(staging / manifest["database"]["file"], manifest, url, reporter)
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
            "sqlite", "postgresql") or database.get("format") not in ("sqlite", "pg_dump-custom", "logical-jsonl") \
            or not str(database.get("file", "")).startswith("database/"):
        raise BackupCorrupt("the backup's manifest is not valid")
    unknown = sorted(set(revision) - _known_revisions())
    if unknown:
        raise BackupError(f"the backup's database schema is at revision {', '.join(unknown)}, newer than this "
                          f"creditnode ({manifest.get('software_version')} made it): install that version or a "
                          "newer one to restore it")
    return manifest


def _check_target(manifest: dict, data_dir: Path, url: str, force: bool) -> None:
    engine = "sqlite" if is_sqlite(normalise_url(url)) else "postgresql"
    if engine != manifest["database"]["engine"] and manifest["database"].get("format") != "logical-jsonl":
        raise BackupError(f"the backup holds a {manifest['database']['engine']} database; the target "
                          f"{shown_url(url)} is {engine}: give a --database-url of the same engine (a backup taken with "
                          "--logical restores into either)")
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
