"""The signed-credential cache (node.credentials.cache): an unchanged record's credential is not re-signed on
each read; a corrected record, a revoked one or a new key never gets a cached credential."""

from __future__ import annotations

from decimal import Decimal

import pytest

from node.credentials.cache import SignedCache, signed_credentials
from node.credentials.verify import verify_document
from node.db import session_scope
from node.models import Achievement, Learner


def _login(client, ctx, learner_id: int) -> dict:
    with session_scope(ctx.engine) as s:
        account = s.get(Learner, learner_id).account_no
    r = client.post("/api/v1/auth/token", data={"username": account, "password": "learner-pass-1"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _get(client, headers, achievement_id: int) -> dict:
    r = client.get(f"/api/v1/me/credentials/{achievement_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _verifies(ctx, document: dict) -> bool:
    return verify_document(document, resolve_did={ctx.identity.did: ctx.identity.did_document()}.get).valid


def test_an_unchanged_record_is_served_from_the_cache(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit(title="大学英语", credits="2.5")
    h = _login(client, ctx, learner_id)
    first = _get(client, h, achievement_id)
    hits = signed_credentials.hits
    second = _get(client, h, achievement_id)
    assert signed_credentials.hits == hits + 1
    assert second == first and _verifies(ctx, second)
    vp = client.get("/api/v1/me/transcript", headers=h).json()
    assert vp["verifiableCredential"] == [first] and _verifies(ctx, vp)


def test_a_corrected_record_is_signed_afresh(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit(title="大学英语", credits="2.5")
    h = _login(client, ctx, learner_id)
    before = _get(client, h, achievement_id)
    with session_scope(ctx.engine) as s:
        a = s.get(Achievement, achievement_id)
        a.title, a.credits = "大学英语（二）", Decimal("3")
        s.add(a)
    after = _get(client, h, achievement_id)
    assert after["name"] == "大学英语（二）" and after["credentialSubject"]["creditBank"]["credits"] == "3"
    assert after["credentialSubject"]["creditsEarned"] == 3 and after["proof"] != before["proof"]
    assert _verifies(ctx, after)
    vp = client.get("/api/v1/me/transcript", headers=h).json()
    assert [c["name"] for c in vp["verifiableCredential"]] == ["大学英语（二）"] and _verifies(ctx, vp)


def test_a_revoked_record_is_never_served_from_the_cache(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit(title="大学英语", credits="2.5")
    h = _login(client, ctx, learner_id)
    _get(client, h, achievement_id)  # cached while deposited
    with session_scope(ctx.engine) as s:
        a = s.get(Achievement, achievement_id)
        a.status = "revoked"
        s.add(a)
    size, hits = len(signed_credentials), signed_credentials.hits
    for _ in range(2):
        assert _verifies(ctx, _get(client, h, achievement_id))
    assert signed_credentials.hits == hits and len(signed_credentials) == size
    vp = client.get("/api/v1/me/transcript", headers=h).json()
    assert vp["verifiableCredential"] == []  # a transcript lists deposited records only


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = SignedCache(max_entries=2)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"  # "b" is now the least recently used
    cache.put("c", b"3")
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") == b"1" and cache.get("c") == b"3"
    with pytest.raises(TypeError):
        cache.put("d", {"not": "bytes"})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SignedCache(max_entries=0)


def test_a_weighed_cache_keeps_within_its_budget() -> None:
    """The transcripts' reuse cache is bounded by bytes too (node.credentials.service.reused_transcripts)."""
    cache = SignedCache(max_entries=10, max_weight=10, weigh=len)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    assert cache.weight == 8
    cache.put("c", b"90ab")  # 12 > 10: the least recently used ("a") goes
    assert cache.get("a") is None and cache.get("b") == b"5678" and cache.weight == 8
    cache.put("b", b"xy")  # replacing an entry re-weighs it
    assert cache.weight == 6 and len(cache) == 2
    cache.put("big", b"x" * 11)  # heavier than the whole budget: not kept, nothing dropped for it
    assert cache.get("big") is None and len(cache) == 2 and cache.weight == 6
