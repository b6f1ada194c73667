"""Issue 13.5: a node restored from a backup taken before some federation traffic rejoins its peers without losing
or duplicating a message (docs/operations.md "Backup and restore", docs/federation.md §4.1).

Shanghai (A) is backed up (`create_backup`, its app running) after an agreement, a consent and a few messages
each way; then a transfer (Zhejiang pulls, its receipt comes back through the outbox) and more messages each way;
then A is lost and restored in place (`restore_backup --force`) and started again from the restored
configuration; then the streams are re-synced as the runbook says: A's stream to Zhejiang by A, Zhejiang's stream
to A by Zhejiang. Every message must then be in its receiver's inbox exactly once, with its effect exactly once,
both outboxes delivered, the counters agreeing, both ledgers verifying, and A still the same node (same keys)."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import select

from config.settings import Settings
from federation.inbox import register_handler, unregister_handler
from federation.outbox import enqueue, flush_outbox
from federation.runtime import use_http_client
from federation.streams import FOREIGN_MESSAGES, resync_stream
from node.db import is_sqlite, make_engine
from node.deps import Principal
from node.ledger.log import verify_log
from node.models import AuditEntry, InboxMessage, OutboxMessage, PeerStream, TransferReceipt
from node.ops.backup import create_backup
from node.ops.restore import restore_backup
from tests.federation.conftest import Node
from tests.federation.test_transfers import Person, negotiate_agreement

PASSPHRASE = "a long test passphrase, 2026"
ADMIN = Principal(kind="system", id=0, name="cli:test", roles=("federation_admin",))


@pytest.fixture
def recorded(joined):
    """A `test.record` handler on both nodes (the registry is per process): its effect is an audit row naming
    the message, in the receiving node's transaction."""

    def handler(session, ctx, peer, message):
        session.add(AuditEntry(actor_kind="peer", actor_id=peer.node_id, action="test.effect", outcome="ok",
                               detail={"message": message.id}))
        return {"ok": True, "seq": message.seq}

    register_handler("test.record", handler)
    yield
    unregister_handler("test.record")


def _send(node: Node, peer: str, n: int, tag: str) -> list[str]:
    with node.session() as s:
        return [enqueue(s, peer, "test.record", {"tag": tag, "n": i}).message_id for i in range(n)]


def _inbox(node: Node, origin: str) -> Counter:
    with node.session() as s:
        return Counter(s.exec(select(InboxMessage.message_id).where(InboxMessage.origin == origin)).all())


def _outbox(node: Node) -> list[OutboxMessage]:
    with node.session() as s:
        return list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def _effects(node: Node) -> Counter:
    with node.session() as s:
        rows = s.exec(select(AuditEntry.detail).where(AuditEntry.action == "test.effect")).all()
    return Counter(row["message"] for row in rows)


def _restart(joined, settings: Settings) -> tuple[Node, sa.Engine, TestClient]:
    from node.app import create_app

    engine = make_engine(settings.database_url)
    app = create_app(settings, engine=engine)
    client = TestClient(app, base_url=settings.base_url)
    client.__enter__()
    joined.network.apps[settings.base_url] = client
    use_http_client(app.state.ctx, joined.net_client)
    return Node("shanghai", app, client, settings), engine, client


def test_a_node_restored_from_a_backup_rejoins_its_peers_without_losing_or_duplicating_a_message(
        joined, recorded, tmp_path, monkeypatch) -> None:
    a, b = joined.a, joined.b
    # -- before the backup: an agreement (A → B propose, B → A sign), a consent at A, two messages each way
    negotiate_agreement(joined, automatic=True)
    person = Person(joined)
    consent = person.consent()
    sent_by_a = _send(a, "zhejiang", 2, "before")
    sent_by_b = _send(b, "shanghai", 2, "before")
    assert flush_outbox(a.ctx).sent == 2 and flush_outbox(b.ctx).sent == 2
    did_document = a.ctx.identity.did_document()

    backup = create_backup(a.settings, tmp_path / "shanghai.cnb", PASSPHRASE, scrypt_n=2**14)  # A is serving
    assert backup.manifest["node_id"] == "shanghai"
    assert backup.manifest["database"]["engine"] == ("sqlite" if is_sqlite(a.settings.database_url) else "postgresql")

    # -- after the backup: a transfer (B pulls from A; B's receipt comes to A) and two more messages each way
    r = person.transfer(consent)
    assert r.status_code == 201 and r.json()["state"] == "completed", r.text
    after_by_a = _send(a, "zhejiang", 2, "after")
    after_by_b = _send(b, "shanghai", 2, "after")
    assert flush_outbox(a.ctx).sent == 2 and flush_outbox(b.ctx).sent == 3  # B: the receipt and its two
    with a.session() as s:
        assert len(s.exec(select(TransferReceipt)).all()) == 1

    # -- A is lost: stopped, restored in place from the backup, started again from the restored configuration
    a.client.__exit__(None, None, None)
    a.ctx.engine.dispose()
    restored = restore_backup(backup.path, PASSPHRASE, data_dir=a.settings.node.data_dir,
                              database_url=a.settings.database.url, force=True)
    monkeypatch.setenv("CREDITNODE_CONFIG", str(restored.config_path))
    a, engine, client = _restart(joined, Settings())
    joined.a = a
    try:
        assert a.ctx.identity.did_document() == did_document  # the same node: the same signing keys
        with a.session() as s:  # rewound: the receipt and B's later messages are gone, and so is A's record of its
            assert s.exec(select(TransferReceipt)).all() == []  # later messages
            assert not set(after_by_a) & {m.message_id for m in s.exec(select(OutboxMessage)).all()}
            [restore] = s.exec(select(AuditEntry).where(AuditEntry.action == "node.restore")).all()
            assert restore.actor_kind == "operator" and restore.target_id == "shanghai"

        # -- the re-sync, as the runbook says: A's outbound stream by A, B's stream to A by B
        mine = resync_stream(a.ctx, "zhejiang", actor=ADMIN)
        assert sorted(f["id"] for f in mine.foreign) == sorted(after_by_a)  # sent before the restore: reported
        assert mine.renumbered == []
        theirs = resync_stream(b.ctx, "shanghai", actor=ADMIN)
        lost = {m["message_id"] for m in theirs.renumbered}
        assert len(lost) == 3 and set(after_by_b) < lost  # the receipt and B's two later messages go again
        assert theirs.foreign == []
        flush_outbox(a.ctx)
        flush_outbox(b.ctx)
        # new traffic flows both ways
        new_by_a = _send(a, "zhejiang", 1, "new")
        new_by_b = _send(b, "shanghai", 1, "new")
        assert flush_outbox(a.ctx).delivered == [("zhejiang", mine.next_out_seq)]  # after the stream.foreign notice
        assert flush_outbox(b.ctx).delivered == [("shanghai", theirs.next_out_seq)]

        # -- every message is in its receiver's inbox exactly once, with its effect exactly once
        b_outbox, a_outbox = _outbox(b), _outbox(a)
        assert all(m.state == "delivered" for m in b_outbox + a_outbox)
        assert len({m.message_id for m in b_outbox}) == len(b_outbox)
        at_a = _inbox(a, "zhejiang")
        assert at_a == Counter(m.message_id for m in b_outbox if m.peer == "shanghai")
        assert set(at_a.values()) == {1}
        at_b = _inbox(b, "shanghai")
        known_to_a = {m.message_id for m in a_outbox if m.peer == "zhejiang"} | set(after_by_a)
        assert at_b == Counter(known_to_a) and set(at_b.values()) == {1}
        assert {m.type for m in a_outbox if m.peer == "zhejiang"} >= {FOREIGN_MESSAGES, "agreement.propose"}
        for message in [*sent_by_a, *after_by_a, *new_by_a]:
            assert _effects(b)[message] == 1, message
        for message in [*sent_by_b, *after_by_b, *new_by_b]:
            assert _effects(a)[message] == 1, message
        with a.session() as s:
            [receipt] = s.exec(select(TransferReceipt)).all()
            assert receipt.consent_id == consent["id"]
            assert verify_log(s) == []
            a_stream = s.get(PeerStream, "zhejiang")
        with b.session() as s:
            assert verify_log(s) == []
            b_stream = s.get(PeerStream, "shanghai")
            flagged = s.exec(select(AuditEntry).where(AuditEntry.action == "federation.stream.foreign_messages")
                             ).one()
            assert sorted(m["id"] for m in flagged.detail["messages"]) == sorted(after_by_a)
        assert a_stream.next_out_seq == b_stream.next_in_seq and b_stream.next_out_seq == a_stream.next_in_seq
        assert flush_outbox(a.ctx).sent == 0 and flush_outbox(b.ctx).sent == 0
    finally:
        client.__exit__(None, None, None)
        engine.dispose()
