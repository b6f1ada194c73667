"""The fast lane (node.fastlane): the hottest reads answered past the framework answer byte for byte as their
routes do, and every case but the plain one is handed to the route (refusals, audits, signing, PDFs, writes).
Also the transcript's reuse window (node.transcript_reuse_seconds)."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from node.archive import repository as archive_repo
from node.credentials import service as credentials
from node.credentials.cache import signed_credentials
from node.credentials.verify import verify_document
from node.db import session_scope
from node.fastlane import FastLane, Lane, PreparedRead
from node.models import Achievement, Learner
from tests.conftest import make_settings


def _lane(app) -> FastLane:
    layer = app.middleware_stack
    while not isinstance(layer, FastLane):
        layer = layer.app
    return layer


class Counted:
    """How many requests the app's fast lane answered itself."""

    def __init__(self, app, monkeypatch) -> None:
        self.count = 0
        lane = _lane(app)
        original = lane.__class__.__call__

        async def counting(this, scope, receive, send):
            async def spy(message):
                if message["type"] == "http.response.start" and scope.get("route").__class__.__name__ == \
                        "SimpleNamespace":
                    self.count += 1
                await send(message)

            await original(this, scope, receive, spy)

        monkeypatch.setattr(lane.__class__, "__call__", counting)


def _login(client, ctx, learner_id: int) -> dict:
    with session_scope(ctx.engine) as s:
        account = s.get(Learner, learner_id).account_no
    r = client.post("/api/v1/auth/token", data={"username": account, "password": "learner-pass-1"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def slow_client(settings, engine, tmp_path):
    """A second node app on the same database with the fast lane off: every request through its route."""
    from node.app import create_app

    slow = create_app(make_settings(settings.database.url, tmp_path / "data", fast_reads=False), engine=engine)
    with TestClient(slow) as c:
        yield c


def _same(fast, slow) -> None:
    assert (fast.status_code, fast.headers["content-type"], fast.content) == \
        (slow.status_code, slow.headers["content-type"], slow.content)
    for name in ("x-content-type-options", "content-security-policy", "x-request-id", "content-length"):
        assert (name in fast.headers) == (name in slow.headers), name


def test_the_fast_lane_answers_as_the_routes_do(client, slow_client, app, ctx, deposit, monkeypatch) -> None:
    learner_id, first = deposit(title="大学英语", credits="2.5")
    for n in range(3):
        deposit(title=f"课程 {n}", credits="1.5", learner_id=learner_id, code=f"C{n}",
                type=("training", "skill_level", "community")[n])
    h = _login(client, ctx, learner_id)
    counted = Counted(app, monkeypatch)
    # the first credential and transcript are signed by the routes (a status index is reserved: a write)
    assert client.get(f"/api/v1/me/credentials/{first}", headers=h).status_code == 200
    assert client.get("/api/v1/me/transcript", headers=h).status_code == 200
    assert client.get("/.well-known/credit-node").status_code == 200  # built by the route, fresh for a second
    assert counted.count == 0
    for path in ("/api/v1/me/archive", f"/api/v1/me/credentials/{first}", "/api/v1/me/transcript",
                 "/.well-known/credit-node"):
        before = counted.count
        fast, slow = client.get(path, headers=h), slow_client.get(path, headers=h)
        assert counted.count == before + 1, path  # answered by the lane (the slow app has none)
        _same(fast, slow)
    vp = client.get("/api/v1/me/transcript", headers=h).json()
    assert verify_document(vp, resolve_did={ctx.identity.did: ctx.identity.did_document()}.get).valid


def test_every_other_case_goes_to_the_route(client, app, ctx, deposit, staff_headers, monkeypatch) -> None:
    learner_id, mine = deposit(title="大学英语")
    other_learner, theirs = deposit(title="高等数学")
    _, never_exported = deposit(title="线性代数", learner_id=learner_id, code="LA1")
    h = _login(client, ctx, learner_id)
    assert client.get(f"/api/v1/me/credentials/{mine}", headers=h).status_code == 200
    assert client.get(f"/api/v1/me/credentials/{theirs}", headers=_login(client, ctx, other_learner)).status_code \
        == 200
    counted = Counted(app, monkeypatch)
    cases = [
        ("/api/v1/me/archive", {}, 401, "not_authenticated"),
        ("/api/v1/me/archive", {"Authorization": "Bearer not-a-token"}, 401, "invalid_token"),
        ("/api/v1/me/archive", {"Authorization": "Basic abc"}, 401, "not_authenticated"),
        ("/api/v1/me/archive", {**h, "X-API-Key": "ck_nothing.x"}, 401, "invalid_api_key"),
        ("/api/v1/me/archive", staff_headers("centre_reviewer"), 403, "forbidden"),
        (f"/api/v1/me/credentials/{theirs}", h, 404, "not_found"),  # another learner's: the route says 404
        ("/api/v1/me/credentials/99999999", h, 404, "not_found"),
        ("/api/v1/me/credentials/" + "9" * 19, h, 422, None),  # beyond Int64: the route's validation
        ("/api/v1/me/archive/", h, 307, None),  # not the registered path: the router's redirect
    ]
    for path, headers, status, code in cases:
        r = client.get(path, headers=headers, follow_redirects=False)
        if status is not None:
            assert r.status_code == status, (path, r.text)
        if code is not None:
            assert r.json()["code"] == code, (path, r.text)
        assert counted.count == 0, path
    # a record never exported: the route reserves its status index and signs (then the lane serves it)
    r = client.get(f"/api/v1/me/credentials/{never_exported}", headers=h)
    assert r.status_code == 200 and counted.count == 0
    assert client.get(f"/api/v1/me/credentials/{never_exported}", headers=h).content == r.content
    assert counted.count == 1
    # a revoked record is signed afresh by the route on every read
    with session_scope(ctx.engine) as s:
        a = s.get(Achievement, mine)
        a.status = "revoked"
        s.add(a)
    r = client.get(f"/api/v1/me/credentials/{mine}", headers=h)
    assert r.status_code == 200 and counted.count == 1
    # the printed transcript is always the route's (it stores a verification row)
    r = client.get("/api/v1/me/transcript", headers={**h, "Accept": "application/pdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and counted.count == 1
    # HEAD is not a fast read
    client.head("/api/v1/me/archive", headers=h)
    assert counted.count == 1
    # a signed-out token: the lane checks the version in its read and hands over; the route says revoked
    assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
    r = client.get("/api/v1/me/archive", headers=h)
    assert r.status_code == 401 and r.json()["code"] == "token_revoked" and counted.count == 1


def test_an_erased_learners_archive_is_the_routes_410(client, app, ctx, deposit, monkeypatch) -> None:
    learner_id, _ = deposit(title="大学英语")
    h = _login(client, ctx, learner_id)
    with session_scope(ctx.engine) as s:
        s.get(Learner, learner_id).erased_at = dt.datetime.now(dt.UTC)
    counted = Counted(app, monkeypatch)
    r = client.get("/api/v1/me/archive", headers=h)
    assert r.status_code == 410 and r.json()["code"] == "learner_erased" and counted.count == 0


def test_a_transcript_is_reused_only_unchanged_and_within_its_window(client, app, ctx, deposit,
                                                                     monkeypatch) -> None:
    learner_id, achievement_id = deposit(title="大学英语", credits="2.5")
    h = _login(client, ctx, learner_id)
    first = client.get("/api/v1/me/transcript", headers=h).json()
    again = client.get("/api/v1/me/transcript", headers=h).json()
    assert again == first  # the same presentation: id, issue time, proofs
    with session_scope(ctx.engine) as s:
        a = s.get(Achievement, achievement_id)
        a.credits = Decimal("3")
        s.add(a)
    changed = client.get("/api/v1/me/transcript", headers=h).json()
    assert changed["id"] != first["id"] and changed["totals"][0]["credits"] == "3"
    assert verify_document(changed, resolve_did={ctx.identity.did: ctx.identity.did_document()}.get).valid
    # past the window: signed afresh
    now = credentials.time.monotonic()
    monkeypatch.setattr(credentials.time, "monotonic", lambda: now + ctx.settings.node.transcript_reuse_seconds + 1)
    later = client.get("/api/v1/me/transcript", headers=h).json()
    assert later["id"] != changed["id"]
    # a window of 0: never reused
    monkeypatch.setattr(ctx.settings.node, "transcript_reuse_seconds", 0)
    ids = {client.get("/api/v1/me/transcript", headers=h).json()["id"] for _ in range(2)}
    assert len(ids) == 2


def test_prepared_reads_return_what_a_session_returns(ctx, deposit) -> None:
    """Each column converted by its type's own result processor: the rows, and so the credential cache keys,
    are those of the ORM session's reads (on PostgreSQL too: bytes, decimals, dates, times)."""
    learner_id, achievement_id = deposit(title="大学英语", credits="2.5", level="L4")
    with session_scope(ctx.engine) as s:
        credentials.achievement_credential(s, ctx, achievement_id, learner_id=learner_id, rdfc=True)
    one, items = PreparedRead(credentials.ONE_RECORD), PreparedRead(archive_repo.ARCHIVE_ROWS)

    async def read():
        async with lane.reading() as r:
            return ((await r.named(one, {"achievement_id": achievement_id}))[0],
                    await r.rows(items, {"learner_id": learner_id}))

    lane = Lane(ctx)
    try:
        fast_row, fast_items = asyncio.run(read())
    finally:
        lane.close()
    with session_scope(ctx.engine) as s:
        row = s.connection().execute(credentials.ONE_RECORD, {"achievement_id": achievement_id}).one()
        rows = archive_repo.archive_rows(s, learner_id)
    assert [tuple(r) for r in rows] == fast_items
    assert tuple(fast_row) == tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
    assert [type(v) for v in fast_row] == [type(bytes(v) if isinstance(v, memoryview) else v) for v in row]
    key = credentials.credential_key(ctx, row, row.status_index, rdfc=True)
    assert credentials.credential_key(ctx, fast_row, fast_row.status_index, rdfc=True) == key
    assert signed_credentials.get(key) is not None
