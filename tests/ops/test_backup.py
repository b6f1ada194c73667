"""`creditnode backup` / `creditnode restore` (issue 13.5, node/ops/backup.py, node/ops/backupfile.py): a round trip
into a new data directory and database gives the same node (keys, secrets, personal data readable, stored files,
ledger); every refusal leaves the target as it was. SQLite, and PostgreSQL with CREDITNODE_TEST_DATABASE_URL."""

from __future__ import annotations

import base64
import io
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select
from typer.testing import CliRunner

from config.settings import DatabaseSettings, NodeSettings, SecuritySettings, Settings
from node.db import is_sqlite, make_engine, migration_heads, session_scope, upgrade_database
from node.evidence.storage import open_evidence, store_stream
from node.identity.keyring import create_keyring, load_keyring
from node.ledger.log import verify_log
from node.learners.service import learner_by_blind, open_account
from node.models import AuditEntry, Learner
from node.ops import backup as backup_mod
from node.ops import restore as restore_mod
from node.ops.backup import BackupCorrupt, BackupError, WrongPassphrase, create_backup
from node.ops.backupfile import CHUNK
from node.ops.restore import restore_backup
from node.security.fields import BlindIndex, FieldCipher
from node.security.filecrypt import FileCipher
from tests.conftest import _PgDatabases, valid_id

PASSPHRASE = "correct horse battery staple"
FAST = 2**14  # scrypt cost for tests (the default is 2^17)
PDF = b"%PDF-1.7\n" + os.urandom(2_500_000)  # incompressible: the backup spans 3 chunks


def _fresh_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def empty_url(_db_template: object, tmp_path: Path) -> Iterator[str]:
    """An empty database for a restore target (PostgreSQL: created without schema; SQLite: a file not there)."""
    if isinstance(_db_template, _PgDatabases):
        name = f"cn_restore_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _db_template._exec(f'CREATE DATABASE "{name}"')
        yield _db_template.url_of(name)
        _db_template.drop(name)
    else:
        yield f"sqlite:///{tmp_path / 'restored' / 'restored.db'}"


def _node(database_url: str, data_dir: Path, region: str = "shanghai") -> Settings:
    """A node with its own random secrets, a learner (ID number and name encrypted), an evidence file, a stored
    import upload, and its key ring."""
    from fastapi.testclient import TestClient

    from node.app import create_app

    settings = Settings(node=NodeSettings(region=region, data_dir=data_dir, mode="test"),
                        database=DatabaseSettings(url=database_url),
                        security=SecuritySettings(database_key=_fresh_key(), blind_index_key=_fresh_key(),
                                                  token_secret=_fresh_key(), database_key_id="s1"))
    engine = make_engine(database_url)
    app = create_app(settings, engine=engine)
    with TestClient(app):
        ctx = app.state.ctx
        with session_scope(engine) as s:
            open_account(s, ctx, id_type="resident_id", id_number=valid_id(serial="901"), name="王五")
        cipher = FileCipher.from_settings(settings)
        store_stream(io.BytesIO(PDF), root=settings.evidence_dir, cipher=cipher, declared_type="application/pdf",
                     allowed_types=["application/pdf"], max_bytes=10**7)
        with cipher.create(settings.node.data_dir / "imports" / "job.upload") as out:
            out.write(b"id,name\n" * 1000)
    engine.dispose()
    return settings


@pytest.fixture
def source(database_url: str, tmp_path: Path) -> Settings:
    return _node(database_url, tmp_path / "source")


def _same_data(source: Settings, restored: Settings) -> None:
    """Every table holds the same rows (counted) in both, the learner is found and decrypted with the restored
    secrets, the ledger verifies, and a new row gets a fresh id (sequences moved past the restored rows)."""
    counts = []
    for settings in (source, restored):
        engine = make_engine(settings.database_url)
        try:
            with engine.connect() as c:
                tables = sorted(t for t in sa.inspect(c).get_table_names() if t != "alembic_version")
                counts.append({t: c.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables})
        finally:
            engine.dispose()
    assert counts[0] == {t: n - (t == "audit_log") for t, n in counts[1].items()}  # + node.restore
    engine = make_engine(restored.database_url)
    try:
        with session_scope(engine) as s:
            learner = learner_by_blind(s, BlindIndex.from_settings(restored)("resident_id", valid_id(serial="901")))
            assert FieldCipher.from_settings(restored).decrypt(bytes(learner.name_cipher), learner.key_id) == "王五"
            assert verify_log(s) == []
            top = s.exec(select(sa.func.max(AuditEntry.id))).one()
            entry = AuditEntry(actor_kind="system", action="after.restore", outcome="ok")
            s.add(entry)
            s.flush()
            assert entry.id > top
    finally:
        engine.dispose()


def _restored_settings(config: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CREDITNODE_CONFIG", str(config))
    return Settings()


def test_a_backup_restored_into_a_new_data_directory_and_database_is_the_same_node(
        source: Settings, empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = create_backup(source, tmp_path / "node.cnb", PASSPHRASE, scrypt_n=FAST)
    assert made.path.stat().st_mode & 0o777 == 0o600
    m = made.manifest
    assert m["node_id"] == "shanghai" and m["did"] == "did:web:127.0.0.1%3A8101" and m["version"] == 1
    assert m["schema_revision"] == sorted(migration_heads()) and m["software_version"]
    assert m["database"]["engine"] == ("sqlite" if is_sqlite(source.database_url) else "postgresql")
    names = {p["name"] for p in made.parts}
    assert {"config/creditnode.toml", "keys/node-keys.json", m["database"]["file"], "files/imports/job.upload"} \
        <= names and sum(n.startswith("files/evidence/") for n in names) == 1
    assert all(len(p["sha256"]) == 64 for p in made.parts)
    raw = made.path.read_bytes()
    assert b"shanghai" not in raw and source.security.database_key.get_secret_value().encode() not in raw

    target = tmp_path / "restored"
    report = restore_backup(made.path, PASSPHRASE, data_dir=target, database_url=empty_url)
    assert report.config_path == target / "creditnode.toml" and report.files == 2
    assert report.config_path.stat().st_mode & 0o777 == 0o600
    restored = _restored_settings(report.config_path, monkeypatch)
    assert restored.node.data_dir == target.resolve() and restored.database_url == empty_url
    assert restored.node_id == "shanghai" and restored.node.mode == "test"
    for name in ("database_key", "blind_index_key", "token_secret"):
        assert getattr(restored.security, name).get_secret_value() == \
            getattr(source.security, name).get_secret_value()
    assert [k.seed_b64 for k in load_keyring(restored).keys] == [k.seed_b64 for k in load_keyring(source).keys]
    # stored files: byte for byte, still encrypted, and readable with the restored secrets
    for old in (source.node.data_dir / "imports" / "job.upload",
                *[p for p in source.evidence_dir.rglob("*") if p.is_file()]):
        new = target / old.relative_to(source.node.data_dir)
        assert new.read_bytes() == old.read_bytes()
    import hashlib

    with open_evidence(restored.evidence_dir, hashlib.sha256(PDF).hexdigest(),
                       FileCipher.from_settings(restored)) as fh:
        assert fh.read() == PDF
    engine = make_engine(empty_url)
    try:
        with session_scope(engine) as s:
            blind = BlindIndex.from_settings(restored)("resident_id", valid_id(serial="901"))
            learner = learner_by_blind(s, blind)
            assert learner is not None
            assert FieldCipher.from_settings(restored).decrypt(bytes(learner.name_cipher), learner.key_id) == "王五"
            assert verify_log(s) == []
            [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "node.restore")).all()
            assert entry.actor_kind == "operator" and entry.detail["taken"] == m["created_at"]
    finally:
        engine.dispose()


@pytest.fixture
def made(source: Settings, tmp_path: Path):
    return create_backup(source, tmp_path / "node.cnb", PASSPHRASE, scrypt_n=FAST)


def _untouched(target: Path, url: str) -> None:
    assert not (target / "creditnode.toml").exists() and not (target / "node-keys.json").exists()
    assert restore_mod._table_count(url) == 0


def test_a_wrong_passphrase_is_refused_before_anything_changes(made, empty_url: str, tmp_path: Path) -> None:
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        restore_backup(made.path, PASSPHRASE + "!", data_dir=tmp_path / "t", database_url=empty_url)
    assert not (tmp_path / "t").exists()
    _untouched(tmp_path / "t", empty_url)


@pytest.mark.parametrize("damage", ["flip", "cut_mid", "cut_chunk", "cut_last_byte", "appended", "header",
                                    "not_a_backup"])
def test_a_damaged_or_truncated_file_is_refused_and_the_target_left_as_it_was(
        made, empty_url: str, tmp_path: Path, damage: str) -> None:
    data = bytearray(made.path.read_bytes())
    assert len(data) > 2 * CHUNK  # several chunks (the database and the evidence file)
    start = data.index(b"}") + 1  # the end of the header's JSON
    if damage == "flip":
        data[start + CHUNK + 100] ^= 0x01
    elif damage == "cut_mid":
        del data[start + CHUNK + 5000:]
    elif damage == "cut_chunk":
        del data[start + 2 * (CHUNK + 16):]  # exactly at a chunk boundary: the last flag catches it
    elif damage == "cut_last_byte":
        del data[-1:]
    elif damage == "appended":
        data += b"\x00" * 32
    elif damage == "header":
        data[12:14] = b"\xff\xff"  # the header's length
    else:
        data = bytearray(b"PK\x03\x04" + bytes(100))
    bad = tmp_path / "bad.cnb"
    bad.write_bytes(bytes(data))
    with pytest.raises(BackupCorrupt):
        restore_backup(bad, PASSPHRASE, data_dir=tmp_path / "t", database_url=empty_url)
    _untouched(tmp_path / "t", empty_url)
    assert not any((tmp_path / "t").glob(".restore-*"))  # the staging directory is gone


def test_a_target_that_is_not_empty_needs_force(made, source: Settings, tmp_path: Path) -> None:
    """In place: the source node's own data directory and database (after more writes, which the restore undoes)."""
    engine = make_engine(source.database_url)
    try:
        with session_scope(engine) as s:
            s.add(AuditEntry(actor_kind="system", action="after.backup", outcome="ok"))
    finally:
        engine.dispose()
    with pytest.raises(BackupError, match="not empty .*--force"):
        restore_backup(made.path, PASSPHRASE, data_dir=source.node.data_dir, database_url=source.database.url)
    report = restore_backup(made.path, PASSPHRASE, data_dir=source.node.data_dir, database_url=source.database.url,
                            force=True)
    engine = make_engine(report.database_url)
    try:
        with session_scope(engine) as s:
            assert s.exec(select(AuditEntry).where(AuditEntry.action == "after.backup")).all() == []
            assert len(s.exec(select(Learner)).all()) == 1 and verify_log(s) == []
    finally:
        engine.dispose()


def test_a_backup_of_a_newer_schema_is_refused(source: Settings, empty_url: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_mod, "_schema_revision", lambda conn: ["2099_01_01_9999"])
    made = create_backup(source, tmp_path / "future.cnb", PASSPHRASE, scrypt_n=FAST)
    monkeypatch.undo()
    with pytest.raises(BackupError, match="newer than this creditnode"):
        restore_backup(made.path, PASSPHRASE, data_dir=tmp_path / "t", database_url=empty_url)
    _untouched(tmp_path / "t", empty_url)


def test_a_backup_of_an_older_schema_is_migrated(_db_template: object, empty_url: str, tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from node.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    [head] = migration_heads()
    older = script.get_revision(head).down_revision
    url = f"sqlite:///{tmp_path / 'old.db'}"
    if isinstance(_db_template, _PgDatabases):  # a pg_dump of the older schema, restored into another database
        name = f"cn_old_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _db_template._exec(f'CREATE DATABASE "{name}"')
        url = _db_template.url_of(name)
    upgrade_database(url, older)
    settings = Settings(node=NodeSettings(region="zhejiang", data_dir=tmp_path / "old", mode="test"),
                        database=DatabaseSettings(url=url),
                        security=SecuritySettings(database_key=_fresh_key(), blind_index_key=_fresh_key(),
                                                  token_secret=_fresh_key()))
    create_keyring(settings)
    try:
        made = create_backup(settings, tmp_path / "old.cnb", PASSPHRASE, scrypt_n=FAST)
    finally:
        if isinstance(_db_template, _PgDatabases):
            _db_template.drop(name)
    assert made.manifest["schema_revision"] == [older]
    assert made.manifest["database"]["format"] == ("sqlite" if is_sqlite(url) else "pg_dump-custom")
    report = restore_backup(made.path, PASSPHRASE, data_dir=tmp_path / "t", database_url=empty_url)
    assert report.migrated_from == [older] and report.migrated_to == [head]


def test_a_native_dump_goes_to_its_own_engine_only(made, empty_url: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 't' / 'n.db'}" if not is_sqlite(empty_url) else \
        "postgresql://postgres@127.0.0.1:5432/postgres"
    engine = made.manifest["database"]["engine"]
    with pytest.raises(BackupError, match=f"holds a {engine} database.*--logical"):
        restore_backup(made.path, PASSPHRASE, data_dir=tmp_path / "t", database_url=other)


def test_a_logical_dump_restores_into_either_engine(source: Settings, empty_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: `--logical` back into SQLite. PostgreSQL: without pg_dump on PATH the backup is a logical dump,
    which restores into PostgreSQL and into SQLite; and a SQLite node's logical dump restores into PostgreSQL
    (moving a node to PostgreSQL)."""
    sqlite_url = f"sqlite:///{tmp_path / 'as-sqlite' / 'n.db'}"
    if is_sqlite(source.database_url):
        made = create_backup(source, tmp_path / "l.cnb", PASSPHRASE, scrypt_n=FAST, logical=True)
        assert made.manifest["database"]["why"] == "asked for"
        runs = [(made, sqlite_url, source)]
    else:
        monkeypatch.setattr(backup_mod.shutil, "which", lambda name: None)
        made = create_backup(source, tmp_path / "l.cnb", PASSPHRASE, scrypt_n=FAST)
        monkeypatch.undo()
        assert made.manifest["database"]["why"] == "pg_dump is not on PATH"
        upgrade_database(f"sqlite:///{tmp_path / 'lite' / 'n.db'}")
        lite = _node(f"sqlite:///{tmp_path / 'lite' / 'n.db'}", tmp_path / "lite-data")
        from_lite = create_backup(lite, tmp_path / "lite.cnb", PASSPHRASE, scrypt_n=FAST, logical=True)
        runs = [(made, empty_url, source), (made, sqlite_url, source), (from_lite, empty_url, lite)]
    for n, (backup, url, origin) in enumerate(runs):
        assert backup.manifest["database"]["format"] == "logical-jsonl"
        target = tmp_path / f"t{n}"
        report = restore_backup(backup.path, PASSPHRASE, data_dir=target, database_url=url, force=True)
        assert report.migrated_to == sorted(migration_heads())
        _same_data(origin, _restored_settings(report.config_path, monkeypatch))


def test_without_pg_restore_a_pg_dump_backup_is_refused_with_what_to_install(
        source: Settings, empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if is_sqlite(source.database_url):
        pytest.skip("a PostgreSQL backup")
    made = create_backup(source, tmp_path / "x.cnb", PASSPHRASE, scrypt_n=FAST)
    assert made.manifest["database"]["format"] == "pg_dump-custom"
    monkeypatch.setattr(backup_mod.shutil, "which", lambda name: None)
    with pytest.raises(BackupError, match="pg_restore is not on PATH: install the PostgreSQL client tools"):
        restore_backup(made.path, PASSPHRASE, data_dir=tmp_path / "t", database_url=empty_url)


def test_a_short_passphrase_and_an_existing_output_are_refused(source: Settings, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="at least 12 characters"):
        create_backup(source, tmp_path / "x.cnb", "short", scrypt_n=FAST)
    (tmp_path / "x.cnb").write_bytes(b"keep")
    with pytest.raises(BackupError, match="exists"):
        create_backup(source, tmp_path / "x.cnb", PASSPHRASE, scrypt_n=FAST)
    assert (tmp_path / "x.cnb").read_bytes() == b"keep"


def test_the_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`creditnode backup` / `restore` of an initialised node, the passphrase from a file; refusals are one line."""
    from node.cli import app as cli_app
    from node.cli import initialise_node

    for name in list(os.environ):
        if name.startswith("CREDITNODE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CREDITNODE_CONFIG", "unset")  # init sets it: monkeypatch removes it afterwards
    config, _ = initialise_node(region="anhui", data_dir=tmp_path / "node", load_standards=False)
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    runner = CliRunner()
    monkeypatch.setattr(backup_mod, "SCRYPT_N", FAST)
    r = runner.invoke(cli_app, ["backup", str(tmp_path / "n.cnb"), "--config", str(config),
                                "--passphrase-file", str(secret)])
    assert r.exit_code == 0, r.output
    assert "backup of anhui written to" in r.output
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all")
    r = runner.invoke(cli_app, ["restore", str(tmp_path / "n.cnb"), "--data-dir", str(tmp_path / "new"),
                                "--passphrase-file", str(wrong)])
    assert r.exit_code == 2 and "error: wrong passphrase" in r.output
    r = runner.invoke(cli_app, ["restore", str(tmp_path / "n.cnb"), "--config", str(config),
                                "--passphrase-file", str(secret)])
    assert r.exit_code == 2 and "the target is not empty" in r.output
    r = runner.invoke(cli_app, ["restore", str(tmp_path / "n.cnb"), "--data-dir", str(tmp_path / "new"),
                                "--passphrase-file", str(secret)])
    assert r.exit_code == 0, r.output
    assert "restored anhui" in r.output and "creditnode federation resync PEER" in r.output
    r = runner.invoke(cli_app, ["ledger", "verify", "--config", str(tmp_path / "new" / "creditnode.toml")])
    assert r.exit_code == 0 and "ledger intact" in r.output
    engine = make_engine(f"sqlite:///{tmp_path / 'node' / 'anhui.db'}")
    try:
        with engine.connect() as c:
            actions = c.execute(sa.text("SELECT action, outcome FROM audit_log WHERE action LIKE 'node.%'")).all()
    finally:
        engine.dispose()
    assert ("node.backup", "ok") in actions


def test_a_backup_taken_while_the_node_writes_is_one_consistent_snapshot(source: Settings, empty_url: str,
                                                                         tmp_path: Path) -> None:
    """A writer adds achievements, each with its ledger event in one transaction, all through the backup: the
    restored database holds whole transactions only (as many events as achievements) and its ledger verifies."""
    import datetime as dt
    import threading
    from decimal import Decimal

    from node.ledger.service import EventSpec, append_events
    from node.models import Achievement, LedgerEvent

    engine = make_engine(source.database_url)
    with session_scope(engine) as s:
        learner = s.exec(select(Learner)).one()
        learner_id, pseudonym = learner.id, learner.pseudonym
    stop, written, errors = threading.Event(), [0], []

    def write() -> None:
        try:
            while not stop.is_set():
                with session_scope(engine) as s:
                    a = Achievement(learner_id=learner_id, type="degree_course", issuer_code="U001",
                                    issuer_name="上海开放大学", code="MATH101", title="高等数学", credits=Decimal(4),
                                    hours=Decimal(64), score_text="85", score_value=Decimal(85),
                                    earned_on=dt.date(2024, 6, 30), term="202406", source="individual")
                    s.add(a)
                    s.flush()
                    append_events(s, [EventSpec(kind="achievement.deposited", learner_id=learner_id,
                                                achievement_id=a.id, pseudonym=pseudonym,
                                                data={"achievement": a.id, "title": "高等数学", "credits": "4"})])
                written[0] += 1
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(600):
            if written[0] >= 5 or errors:
                break
            stop.wait(0.05)
        made = create_backup(source, tmp_path / "busy.cnb", PASSPHRASE, scrypt_n=FAST)
    finally:
        stop.set()
        writer.join()
        engine.dispose()
    assert not errors and written[0] >= 5
    report = restore_backup(made.path, PASSPHRASE, data_dir=tmp_path / "t", database_url=empty_url)
    engine = make_engine(report.database_url)
    try:
        with session_scope(engine) as s:
            achievements = s.exec(select(sa.func.count()).select_from(Achievement)).one()
            events = s.exec(select(sa.func.count()).select_from(LedgerEvent)
                            .where(LedgerEvent.kind == "achievement.deposited")).one()
            assert achievements == events >= 5 and achievements <= written[0]
            assert verify_log(s) == []
    finally:
        engine.dispose()
