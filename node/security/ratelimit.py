"""Per-client rate limits for the public doors (verification, sign-in, activation, registration).

Built on the `limits` library (sliding-window counters): `memory://` storage by default, one table per
process; `ratelimit.storage_uri = "redis://…"` (with `limits[redis]` installed) shares the counters between
worker processes. Memory is bounded: memory storage keeps at most `ratelimit.max_clients` counters (one per
client, limit and window); past that, clients not yet seen are refused until counters expire (a flood from that
many networks at once); the ones already counted are served as before.

Who the client is: the TCP peer, unless the peer is a configured proxy (`ratelimit.forwarded_allow_ips`);
then the right-most address of `X-Forwarded-For` that is not itself a trusted proxy. Nobody else's
`X-Forwarded-For` is read, so a client cannot pick its own key. IPv6 clients are counted per /64 (one
subscriber's allocation), IPv4-mapped addresses as IPv4. `creditnode serve` turns uvicorn's own proxy-header
handling off so that this is the only place that reads the header (docs/accounts.md).

Lockout of an account after failed sign-ins is not here: it must hold across worker processes whatever the
storage, so it lives in the database (`node.auth.service`).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from functools import lru_cache

from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from config.settings import RateLimitSettings, Settings
from node.errors import TooManyRequests

__all__ = ["RateLimits", "client_address", "per_client_limit"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=64)
def _items(limit: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limit))


def _trusted_networks(entries: list[str]) -> tuple[IpNetwork, ...] | None:
    """None means every peer is trusted (`*`)."""
    if any(e.strip() == "*" for e in entries):
        return None
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51000"
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _key(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def client_address(peer: str | None, forwarded_for: list[str], trusted: tuple[IpNetwork, ...] | None) -> str:
    """The key of the client: see the module's docstring. `trusted=None` trusts every peer."""
    peer_ip = _ip(peer or "")
    if peer_ip is None:  # not an IP (a test client, a Unix socket): one key for all such peers
        return (peer or "unknown")[:64]

    def is_trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return trusted is None or any(ip in net for net in trusted)

    if not forwarded_for or not is_trusted(peer_ip):
        return _key(peer_ip)
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer_ip
    for hop in reversed(hops[-32:]):  # a header longer than any real chain of proxies is cut
        ip = _ip(hop)
        if ip is None:  # written by the client itself, never by a trusted proxy: stop at the last good hop
            break
        client = ip
        if not is_trusted(ip):
            break
    return _key(client)


class RateLimits:
    """The node's per-client limits; one instance per process (owned by the `NodeContext`)."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self._storage: Storage = storage_from_string(settings.storage_uri)
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._max_clients = settings.max_clients
        self.trusted = _trusted_networks(settings.forwarded_allow_ips)

    def client_of(self, request: Request) -> str:
        return client_address(request.client.host if request.client else None,
                              request.headers.getlist("x-forwarded-for"), self.trusted)

    def hit(self, name: str, client: str, limit: str) -> None:
        """Count one request of `client` against the limit `name` (e.g. "20/minute" or "5/second;100/hour"),
        or raise TooManyRequests (429 rate_limited, Retry-After). With several limits, those before the one
        that refuses have counted the request (as flask-limiter does)."""
        items = _items(limit)
        if self._full() and all(self._unseen(item, name, client) for item in items):
            raise TooManyRequests("the node is answering too many clients at once; try again shortly",
                                  retry_after=max(item.get_expiry() for item in items))
        for item in items:  # `hit` counts and checks in one step (a refused hit is not counted)
            if not self._limiter.hit(item, name, client):
                reset_at, _remaining = self._limiter.get_window_stats(item, name, client)
                raise TooManyRequests("too many requests; try again later", retry_after=reset_at - time.time())

    def clear(self) -> None:
        """Forget every counter (tests, and an operator's reset)."""
        self._storage.reset()

    def _full(self) -> bool:
        # One counter per client, limit and window (this one's and, until it expires, the previous one's).
        return isinstance(self._storage, MemoryStorage) and len(self._storage.storage) >= self._max_clients

    def _unseen(self, item: RateLimitItem, name: str, client: str) -> bool:
        return self._limiter.get_window_stats(item, name, client).remaining >= item.amount


def per_client_limit(name: str, limit: Callable[[Settings], str]) -> Callable[[Request], None]:
    """A route dependency counting each call against the per-client limit `limit(settings)`."""

    def dependency(request: Request) -> None:
        ctx = request.app.state.ctx
        limits: RateLimits = ctx.rate_limits
        limits.hit(name, limits.client_of(request), limit(ctx.settings))

    dependency.rate_limit = name  # type: ignore[attr-defined]
    return dependency
