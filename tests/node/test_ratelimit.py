"""Per-client rate limits (node.security.ratelimit): who the client is, Retry-After, bounded memory (issue 11.16)."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from config.settings import RateLimitSettings
from node.errors import TooManyRequests
from node.logging import AccessLog
from node.security.ratelimit import RateLimits, client_address

PROXY = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    "peer, forwarded, trusted, expected",
    [
        ("203.0.113.7", ["1.2.3.4"], (), "203.0.113.7"),  # nobody trusted: the header is ignored
        ("203.0.113.7", ["1.2.3.4"], PROXY, "203.0.113.7"),  # the peer is not a proxy: ignored
        ("10.0.0.2", ["1.2.3.4"], PROXY, "1.2.3.4"),  # through our proxy
        ("10.0.0.2", ["6.6.6.6, 1.2.3.4"], PROXY, "1.2.3.4"),  # a client-supplied hop on the left is not believed
        ("10.0.0.2", ["6.6.6.6", "1.2.3.4, 10.0.0.9"], PROXY, "1.2.3.4"),  # two proxies, two header lines
        ("10.0.0.2", ["garbage, 10.0.0.9"], PROXY, "10.0.0.9"),  # stops at the last good hop
        ("10.0.0.2", ["1.2.3.4:5555"], PROXY, "1.2.3.4"),
        ("10.0.0.2", ["[2001:db8:1:2::77]:443"], PROXY, "2001:db8:1:2::/64"),
        ("10.0.0.2", ["1.2.3.4"], None, "1.2.3.4"),  # '*': every peer is a proxy
        ("2001:db8:aa:bb:1::1", [], PROXY, "2001:db8:aa:bb::/64"),  # IPv6 counted per /64
        ("::ffff:198.51.100.9", [], (), "198.51.100.9"),
        ("testclient", ["1.2.3.4"], None, "testclient"),
    ],
)
def test_client_address(peer, forwarded, trusted, expected) -> None:
    assert client_address(peer, forwarded, trusted) == expected


def test_limit_then_retry_after_then_bounded_table() -> None:
    limits = RateLimits(RateLimitSettings(max_clients=2))
    limits.hit("x", "a", "2/minute")
    limits.hit("x", "a", "2/minute")
    with pytest.raises(TooManyRequests) as err:
        limits.hit("x", "a", "2/minute")
    assert err.value.code == "rate_limited" and 1 <= err.value.retry_after <= 60
    assert err.value.headers() == {"Retry-After": str(err.value.retry_after)}
    limits.hit("x", "b", "2/minute")
    # the table holds two clients: a third, never seen, is refused; the ones seen are still served
    with pytest.raises(TooManyRequests):
        limits.hit("x", "c", "2/minute")
    limits.hit("x", "b", "2/minute")


def test_verify_limit_cannot_be_escaped_with_x_forwarded_for(client, ctx) -> None:
    ctx.settings.security.verify_rate_limit_per_minute = 2
    codes = [client.post("/api/v1/verify", json={}, headers={"X-Forwarded-For": f"198.51.100.{i}"})
             for i in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 429, 429]
    refused = codes[2]
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["detail"]["retry_after"] == int(refused.headers["Retry-After"])


def test_verify_limit_is_per_client_behind_a_trusted_proxy(app, ctx) -> None:
    ctx.settings.security.verify_rate_limit_per_minute = 1
    ctx.rate_limits = RateLimits(RateLimitSettings(forwarded_allow_ips=["127.0.0.1"]))
    with TestClient(app, client=("127.0.0.1", 40000)) as proxy:
        first = proxy.post("/api/v1/verify", json={}, headers={"X-Forwarded-For": "198.51.100.1"})
        other = proxy.post("/api/v1/verify", json={}, headers={"X-Forwarded-For": "198.51.100.2"})
        again = proxy.post("/api/v1/verify", json={}, headers={"X-Forwarded-For": "198.51.100.1"})
    assert (first.status_code, other.status_code, again.status_code) == (200, 200, 429)


def test_serve_leaves_proxy_headers_to_the_node(monkeypatch, tmp_path) -> None:
    """uvicorn's own proxy-header handling trusts 127.0.0.1 and rewrites the client address from
    X-Forwarded-For: any local caller could then choose its rate-limit key. `serve` turns it off."""
    import uvicorn
    from typer.testing import CliRunner

    import node.app
    from node.cli import app as cli_app

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    served = SimpleNamespace(state=SimpleNamespace())
    monkeypatch.setattr(node.app, "create_app", lambda settings: served)
    from node.cli import initialise_node

    monkeypatch.setenv("CREDITNODE_CONFIG", "")  # recorded, so the value init sets is undone after the test
    monkeypatch.delenv("CREDITNODE_CONFIG")
    config, _ = initialise_node(region="shanghai", data_dir=tmp_path / "node", admin_password="admin-pass-123")
    result = CliRunner().invoke(cli_app, ["serve", "--config", str(config), "--behind-proxy", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen.get("proxy_headers") is False
    # the access lines are the node's own (node.logging.AccessLog), not uvicorn's
    assert seen.get("access_log") is False and isinstance(served.state.access_log, AccessLog)


def test_several_limits_in_one_setting() -> None:
    limits = RateLimits(RateLimitSettings())
    for _ in range(2):
        limits.hit("y", "a", "2/minute;3/hour")
    with pytest.raises(TooManyRequests):
        limits.hit("y", "a", "2/minute;3/hour")
    limits.clear()
    limits.hit("y", "a", "2/minute;3/hour")
