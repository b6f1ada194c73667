"""`creditnode keys reencrypt`: after a database-key rotation every encrypted value (learner ID numbers and
names, the node's key ring) is rewritten under the current key, in committed batches that a re-run continues;
then the retired key is no longer needed to read anything. Audited as an operator action."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from config.settings import DatabaseSettings, NodeSettings, SecuritySettings, Settings
from node.cli import app as cli_app
from node.cli import write_config
from node.context import NodeContext
from node.db import session_scope
from node.identity.keyring import KeyringLocked, keyring_key_id, load_keyring
from node.learners.service import find_learner, open_account
from node.models import AuditEntry, Learner
from node.security import reencrypt
from node.security.fields import FieldCipher
from tests.conftest import TEST_SECURITY, _key, valid_id

NEW_KEY = _key("n")


def _settings(database_url: str, data_dir: Path, key: str, key_id: str, retired: dict[str, str]) -> Settings:
    security = {**TEST_SECURITY, "database_key": key, "database_key_id": key_id, "retired_database_keys": retired}
    return Settings(node=NodeSettings(region="shanghai", data_dir=data_dir, mode="test"),
                    database=DatabaseSettings(url=database_url), security=SecuritySettings(**security))


def _config(path: Path, settings: Settings) -> Path:
    sec = settings.security
    write_config(path, {
        "node": {"region": "shanghai", "data_dir": str(settings.node.data_dir), "mode": "test"},
        "database": {"url": settings.database.url},
        "security": {"database_key": sec.database_key.get_secret_value(), "database_key_id": sec.database_key_id,
                     "blind_index_key": sec.blind_index_key.get_secret_value(),
                     "token_secret": sec.token_secret.get_secret_value()},
        "security.retired_database_keys": {k: v.get_secret_value() for k, v in sec.retired_database_keys.items()},
    })
    return path


def _run(config: Path, *args: str):
    return CliRunner().invoke(cli_app, ["keys", "reencrypt", "--config", str(config), *args])


def _key_ids(ctx: NodeContext) -> dict[str, int]:
    with session_scope(ctx.engine) as s:
        return dict(s.execute(sa.select(Learner.key_id, sa.func.count()).group_by(Learner.key_id)).all())


def _audits(ctx: NodeContext) -> list[tuple[str, str, dict]]:
    with session_scope(ctx.engine) as s:
        rows = s.execute(sa.select(AuditEntry.actor_kind, AuditEntry.outcome, AuditEntry.detail)
                         .where(AuditEntry.action == "keys.reencrypt").order_by(AuditEntry.id)).all()
    return [tuple(r) for r in rows]


def test_rotation_then_reencrypt_leaves_nothing_needing_the_old_key(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    old = _settings(database_url, data_dir, TEST_SECURITY["database_key"], "t1", {})
    ctx = NodeContext.build(old)
    people = {valid_id(serial=f"{400 + i}"): f"学员{i}" for i in range(5)}
    with session_scope(ctx.engine) as s:
        for number, name in people.items():
            open_account(s, ctx, id_type="resident_id", id_number=number, name=name, password="learner-pass-1")
    ctx.engine.dispose()
    ring = json.loads(old.node_key_file.read_text())  # as written before key rings named their key
    del ring["key_id"]
    old.node_key_file.write_text(json.dumps(ring))

    # the rotation: a new current key, the old one retired. The node still starts (its key ring was written
    # under the old key) and reads old rows; new rows use the new key.
    rotated = _settings(database_url, data_dir, NEW_KEY, "t2", {"t1": TEST_SECURITY["database_key"]})
    ctx = NodeContext.build(rotated)
    newcomer = valid_id(serial="499")
    with session_scope(ctx.engine) as s:
        open_account(s, ctx, id_type="resident_id", id_number=newcomer, name="新学员", password="learner-pass-1")
    people[newcomer] = "新学员"
    assert _key_ids(ctx) == {"t1": 5, "t2": 1}
    config = _config(tmp_path / "creditnode.toml", rotated)
    monkeypatch.setenv("CREDITNODE_CONFIG", str(config))

    # interrupted after its first batch of 2: that batch is committed and audited
    real = reencrypt.TARGETS[0]
    calls = []

    def failing_batch(session, cipher, limit):
        calls.append(limit)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return real.batch(session, cipher, limit)

    monkeypatch.setattr(reencrypt, "TARGETS", [reencrypt.Target(real.name, real.stale, failing_batch)])
    result = _run(config, "--batch-size", "2")
    assert result.exit_code != 0 and isinstance(result.exception, RuntimeError)
    assert _key_ids(ctx) == {"t1": 3, "t2": 3}
    assert keyring_key_id(rotated) is None  # not reached: still the old file

    # the re-run continues with what is left, and rewrites the key ring
    monkeypatch.setattr(reencrypt, "TARGETS", [real])
    result = _run(config, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "t2" in result.output and not any(number in result.output for number in people)
    assert _key_ids(ctx) == {"t2": 6} and keyring_key_id(rotated) == "t2"
    assert [(kind, outcome, detail["reencrypted"], detail["keyring"]) for kind, outcome, detail in _audits(ctx)] == [
        ("operator", "failed", {real.name: 2}, False), ("operator", "ok", {real.name: 3}, True)]

    # the old key removed from the configuration: everything still reads
    final = _settings(database_url, data_dir, NEW_KEY, "t2", {})
    ctx.engine.dispose()
    ctx = NodeContext.build(final)
    assert load_keyring(final).current == load_keyring(rotated).current
    cipher = FieldCipher.from_settings(final)
    with session_scope(ctx.engine) as s:
        for number, name in people.items():
            learner = find_learner(s, ctx, id_type="resident_id", id_number=number)
            assert cipher.decrypt(learner.id_cipher, learner.key_id) == number
            assert cipher.decrypt(learner.name_cipher, learner.key_id) == name
    assert _run(config, "--batch-size", "2").exit_code == 0  # nothing left: a no-op
    assert _audits(ctx)[-1][2]["reencrypted"] == {real.name: 0}
    ctx.engine.dispose()


def test_a_value_under_an_unconfigured_key_stops_the_run_before_it_starts(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _settings(database_url, tmp_path / "data", TEST_SECURITY["database_key"], "t1", {})
    ctx = NodeContext.build(old)
    with session_scope(ctx.engine) as s:
        open_account(s, ctx, id_type="resident_id", id_number=valid_id(serial="401"), name="甲",
                     password="learner-pass-1")
    ctx.engine.dispose()
    forgotten = _settings(database_url, tmp_path / "data", NEW_KEY, "t2", {})  # t1 dropped too early
    with pytest.raises(KeyringLocked, match="t1|unrecorded"):
        load_keyring(forgotten)
    config = _config(tmp_path / "creditnode.toml", forgotten)
    monkeypatch.setenv("CREDITNODE_CONFIG", str(config))
    result = _run(config)
    assert result.exit_code == 2 and "t1" in result.output and "retired_database_keys" in result.output


def test_names_in_online_registrations_are_reencrypted_too(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from node.learners.service import register_online
    from node.models import LearnerRegistration

    old = _settings(database_url, tmp_path / "data", TEST_SECURITY["database_key"], "t1", {})
    ctx = NodeContext.build(old)
    with session_scope(ctx.engine) as s:
        register_online(s, ctx, id_type="resident_id", id_number=valid_id(serial="402"), name="乙",
                        password_hash="not-a-real-hash")
    ctx.engine.dispose()
    rotated = _settings(database_url, tmp_path / "data", NEW_KEY, "t2", {"t1": TEST_SECURITY["database_key"]})
    config = _config(tmp_path / "creditnode.toml", rotated)
    monkeypatch.setenv("CREDITNODE_CONFIG", str(config))
    result = _run(config)
    assert result.exit_code == 0, result.output
    final = _settings(database_url, tmp_path / "data", NEW_KEY, "t2", {})
    ctx = NodeContext.build(final)
    with session_scope(ctx.engine) as s:
        rows = s.exec(sa.select(LearnerRegistration.key_id, LearnerRegistration.name_cipher)).all()
    assert [(key_id, ctx.cipher.decrypt(bytes(blob), key_id)) for key_id, blob in rows] == [("t2", "乙")]
    ctx.engine.dispose()
