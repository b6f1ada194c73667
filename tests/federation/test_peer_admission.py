"""A signed peer request is verified against keys cached per process, then admitted (membership and key
confirmed current, nonce recorded) in the same transaction as its work (federation.transport.inbound)."""

from __future__ import annotations

import copy
import threading

import sqlalchemy as sa

from federation.membership import next_version, sign_membership
from federation.runtime import runtime
from federation.transport.outbound import encode_json
from node.models import InboxMessage, PeerDidDocument, SeenNonce, utcnow
from tests.federation.test_transport import INBOX, envelope, refusal, signed


def _nonces(node) -> int:
    with node.session() as s:
        return s.execute(sa.select(sa.func.count()).select_from(SeenNonce)).scalar_one()


def test_a_request_refused_by_its_handler_keeps_its_nonce_spent(joined) -> None:
    a_url = joined.a.base_url + INBOX
    ahead = signed(joined.b.ctx.identity, a_url, encode_json(envelope(seq=5)))
    first = joined.a.client.send(ahead)
    assert first.status_code == 409 and refusal(first, joined.a.ctx.identity) == "sequence_gap"
    again = joined.a.client.send(ahead)
    assert again.status_code == 401 and refusal(again, joined.a.ctx.identity) == "replayed"
    bad_json = signed(joined.b.ctx.identity, a_url, b"{not json")
    assert joined.a.client.send(bad_json).json()["code"] == "invalid_json"
    assert joined.a.client.send(bad_json).json()["code"] == "replayed"


def test_the_message_and_its_nonce_commit_together(joined) -> None:
    a_url = joined.a.base_url + INBOX
    before = _nonces(joined.a)
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, encode_json(envelope(seq=1))))
    assert r.status_code == 400 and r.json()["code"] == "unknown_message_type"  # a final answer, recorded
    with joined.a.session() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(InboxMessage)).scalar_one() == 1
    assert _nonces(joined.a) == before + 1


def test_concurrent_copies_of_one_request_are_admitted_once(joined) -> None:
    a_url = joined.a.base_url + INBOX
    request = signed(joined.b.ctx.identity, a_url, encode_json(envelope(seq=1)))
    codes: list[str] = []
    lock = threading.Lock()

    def send() -> None:
        r = joined.a.client.send(request)
        with lock:
            codes.append(r.json()["code"])

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == ["replayed", "replayed", "replayed", "unknown_message_type"]


def test_a_member_removed_by_a_new_version_is_refused_although_its_key_is_cached(joined) -> None:
    a_url = joined.a.base_url + INBOX
    ok = joined.a.client.send(signed(joined.b.ctx.identity, a_url, encode_json(envelope(seq=1))))
    assert ok.json()["code"] == "unknown_message_type"  # zhejiang's key is now in shanghai's memory
    assert runtime(joined.a.ctx).directory.cached_key(joined.b.ctx.identity.key_id) is not None
    with joined.a.session() as s:
        from federation.membership import held_membership
        held = held_membership(s).document
    members = [m for m in held["members"] if m["node_id"] != "zhejiang"]
    proposal = next_version(held, members=members, threshold=2,
                            removal={"node_id": "zhejiang", "reason": "left the federation"})
    for name in ("shanghai", "zhejiang", "jiangsu"):
        proposal = sign_membership(proposal, joined.identity(name))
    joined.install(proposal, joined.a)
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, encode_json(envelope(seq=2))))
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "unknown_member"


def test_a_key_revoked_in_a_refreshed_did_document_is_refused_although_cached(joined) -> None:
    a_url = joined.a.base_url + INBOX
    ok = joined.a.client.send(signed(joined.b.ctx.identity, a_url, encode_json(envelope(seq=1))))
    assert ok.json()["code"] == "unknown_message_type"
    did = joined.b.ctx.identity.did
    with joined.a.session() as s:  # what `federation.refresh_keys` in another worker would store
        row = s.get(PeerDidDocument, did)
        document = copy.deepcopy(row.document)
        for method in document["verificationMethod"]:
            method["revoked"] = "2026-01-02T00:00:00Z"
        row.document, row.fetched_at = document, utcnow()
        s.add(row)
    r = joined.a.client.send(signed(joined.b.ctx.identity, a_url, encode_json(envelope(seq=2))))
    assert r.status_code == 401 and refusal(r, joined.a.ctx.identity) == "unknown_member"
