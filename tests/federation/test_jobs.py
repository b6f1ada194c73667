"""Jobs: the registry, running once from the CLI, key refresh, membership pull, nonce purge, the scheduler switch."""

from __future__ import annotations

import datetime as dt

import httpx
from sqlmodel import select
from typer.testing import CliRunner

from federation.jobs import JOBS, run_job, start_scheduler
from federation.runtime import runtime
from node.models import PeerDidDocument, SeenNonce


def test_jobs_are_named_area_verb_and_listed_by_the_cli() -> None:
    from node.cli import app

    assert {"federation.flush_outbox", "federation.refresh_keys", "federation.purge_nonces"} <= set(JOBS)
    assert all(name.count(".") == 1 for name in JOBS)
    result = CliRunner().invoke(app, ["jobs", "list"])
    assert result.exit_code == 0 and "federation.flush_outbox" in result.output
    result = CliRunner().invoke(app, ["jobs", "run", "no.such_job"])
    assert result.exit_code == 2


def test_jobs_run_once_from_the_cli(tmp_path, database_url, monkeypatch) -> None:
    from node.cli import app

    config = tmp_path / "creditnode.toml"
    config.write_text(
        f'[node]\nregion = "anhui"\ndata_dir = "{tmp_path}"\nmode = "test"\n[database]\nurl = "{database_url}"\n'
        '[security]\ndatabase_key = "ZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGQ="\n'
        'blind_index_key = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI="\n'
        'token_secret = "dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHQ="\n', encoding="utf-8")
    monkeypatch.setenv("CREDITNODE_CONFIG", str(config))  # restored after the test (the CLI sets it)
    result = CliRunner().invoke(app, ["jobs", "run", "federation.purge_nonces", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert '"purged": 0' in result.output
    result = CliRunner().invoke(app, ["jobs", "run", "federation.flush_outbox", "--config", str(config)])
    assert result.exit_code == 0 and '"delivered": 0' in result.output


def test_refresh_keys_caches_members_did_documents(joined) -> None:
    result = run_job("federation.refresh_keys", joined.a.ctx)
    assert result == {"jiangsu": "ok", "zhejiang": "ok", "anhui": "ok"}
    with joined.a.session() as s:
        cached = {r.node_id: r.document["id"] for r in s.exec(select(PeerDidDocument)).all()}
    assert cached["zhejiang"] == joined.b.ctx.identity.did
    joined.network.down.add(joined.b.base_url)
    assert run_job("federation.refresh_keys", joined.a.ctx)["zhejiang"] == "unreachable"


def test_a_rotated_peer_key_is_fetched_again(joined) -> None:
    from node.identity.keyring import rotate_keyring

    run_job("federation.refresh_keys", joined.a.ctx)
    rotate_keyring(joined.b.settings)
    joined.b.ctx.reload_identity()
    with joined.a.session() as s:
        # the cached document is fresh: a just-rotated key is not re-fetched at once
        assert runtime(joined.a.ctx).directory.resolve_key(s, joined.b.ctx.identity.key_id) is None
        s.execute(PeerDidDocument.__table__.update().values(fetched_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
        key = runtime(joined.a.ctx).directory.resolve_key(s, joined.b.ctx.identity.key_id)
    assert key is not None and key.id.endswith("#key-2")


def test_purge_nonces_drops_only_expired_entries(joined) -> None:
    now = dt.datetime.now(dt.UTC)
    with joined.a.session() as s:
        s.add(SeenNonce(key_id="k", nonce="old", expires_at=now - dt.timedelta(minutes=5)))
        s.add(SeenNonce(key_id="k", nonce="live", expires_at=now + dt.timedelta(minutes=5)))
    assert run_job("federation.purge_nonces", joined.a.ctx) == {"purged": 1}
    with joined.a.session() as s:
        assert [n.nonce for n in s.exec(select(SeenNonce)).all()] == ["live"]


def test_scheduler_starts_only_when_enabled(joined) -> None:
    ctx = joined.a.ctx
    assert start_scheduler(ctx) is None
    ctx.settings.federation.scheduler_enabled = True
    try:
        scheduler = start_scheduler(ctx)
        assert {j.id for j in scheduler.get_jobs()} == set(JOBS)
        scheduler.shutdown(wait=True)
    finally:
        ctx.settings.federation.scheduler_enabled = False


def _signed_next(joined, held: dict, **change) -> dict:
    from federation.membership import next_version, sign_membership

    doc = next_version(held, **change)
    for name in ("shanghai", "zhejiang", "jiangsu"):
        doc = sign_membership(doc, joined.identity(name))
    return doc


def test_pull_membership_installs_the_versions_a_member_holds_in_order(joined) -> None:
    """Zhejiang missed two versions (no membership.update reached it): the job fetches version 2, then 3, from
    Shanghai's public endpoint, checks each like any version, installs them and audits each install."""
    from federation.membership import held_membership
    from node.models import AuditEntry

    with joined.a.session() as s:
        genesis = held_membership(s).document
    v2 = _signed_next(joined, genesis, threshold=3)
    joined.install(v2, joined.a)
    v3 = _signed_next(joined, v2)
    joined.install(v3, joined.a)
    assert joined.b.client.get("/.well-known/credit-node").json()["membership"]["version"] == 1
    assert joined.a.client.get("/.well-known/credit-node/membership/2").json() == v2
    assert joined.a.client.get("/.well-known/credit-node/membership/9").status_code == 404
    assert joined.a.client.get("/.well-known/credit-node").json()["endpoints"]["membership"] == \
        "/.well-known/credit-node/membership/{version}"

    result = run_job("federation.pull_membership", joined.b.ctx)
    assert result["shanghai"] == "installed 3" and result["jiangsu"] == "unreachable"
    with joined.b.session() as s:
        assert held_membership(s).version == 3 and held_membership(s).document == v3
        pulls = s.exec(select(AuditEntry).where(AuditEntry.action == "federation.membership.pull")).all()
    assert [(p.target_id, p.outcome) for p in pulls] == [("2", "ok"), ("3", "ok")]
    assert run_job("federation.pull_membership", joined.b.ctx)["shanghai"] == "current"


def test_pull_membership_refuses_a_version_without_the_threshold(joined) -> None:
    """A member serving a version signed by too few members gets it refused, recorded, and nothing installed."""
    from federation.membership import held_membership, next_version, sign_membership
    from node.models import AuditEntry, MembershipVersion

    with joined.a.session() as s:
        genesis = held_membership(s).document
    weak = sign_membership(next_version(genesis), joined.identity("shanghai"))  # 1 of the 3 needed
    with joined.a.session() as s:  # planted as if installed (a node that does not check what it holds)
        s.add(MembershipVersion(version=2, hash="0" * 64, document=weak))
    result = run_job("federation.pull_membership", joined.b.ctx)
    assert result["shanghai"].startswith("refused 2: ")
    with joined.b.session() as s:
        assert held_membership(s).version == 1
        refused = s.exec(select(AuditEntry).where(AuditEntry.action == "federation.membership.pull")).one()
    assert refused.outcome == "failed" and refused.detail["from"] == "shanghai"


def test_pull_membership_stops_when_a_member_serves_the_held_version_as_the_next(joined) -> None:
    """A member that advertises a newer version but serves the one already held gets a bounded answer."""
    from federation.membership import held_membership

    with joined.a.session() as s:
        genesis = held_membership(s).document
    discovery = joined.a.client.get("/.well-known/credit-node").json()
    discovery["membership"]["version"] = 5
    original = joined.network.handle_request

    def handle(request: httpx.Request) -> httpx.Response:
        if joined.network.base_of(request.url) == joined.a.base_url:
            if request.url.path == "/.well-known/credit-node":
                return httpx.Response(200, json=discovery)
            if request.url.path.startswith("/.well-known/credit-node/membership/"):
                return httpx.Response(200, json=genesis)
        return original(request)

    joined.network.handle_request = handle
    assert run_job("federation.pull_membership", joined.b.ctx)["shanghai"] == "refused 2: not_the_next_version"
    with joined.b.session() as s:
        assert held_membership(s).version == 1
