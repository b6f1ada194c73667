"""Per-client rate limits for the public doors (verification, sign-in, activation, registration).

Built on the `limits` library (sliding-window counters): `memory://` storage by default, one table per
process; `ratelimit.storage_uri = "database"` keeps the counters in the node's own database (table
`rate_limit_counter`, one atomic upsert per counted request: `DatabaseStorage`) and `"redis://…"` (with
`limits[redis]` installed) in Redis; either shares them between worker processes, so a limit holds across
`creditnode serve --workers N` (which switches `memory://` to `database` itself; docs/operations.md). Memory is
bounded: memory storage keeps at most `ratelimit.max_clients` counters (one per
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
from limits.storage.base import SlidingWindowCounterSupport, TimestampedSlidingWindow
from limits.strategies import SlidingWindowCounterRateLimiter
from sqlalchemy import Engine, text

from config.settings import RateLimitSettings, Settings
from node.errors import TooManyRequests

__all__ = ["DATABASE_STORAGE", "DatabaseStorage", "RateLimits", "client_address", "per_client_limit"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DATABASE_STORAGE = "database"


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


class DatabaseStorage(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """`limits` storage in the node's database (table `rate_limit_counter`), shared by every process using the
    database. A counted request is one short transaction: read the previous window's count (closed, so it no
    longer changes), then one upsert of the current window's that adds the hit only while the weighted count
    stays within the limit (`ON CONFLICT … DO UPDATE … WHERE`, atomic on PostgreSQL and SQLite), so two workers
    can never both take the last free hit. Expired rows are deleted by the job `security.purge_rate_limits`."""

    STORAGE_SCHEME = ["creditnode-database"]

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        from sqlalchemy.exc import SQLAlchemyError

        return SQLAlchemyError

    # -- the sliding window counter (what RateLimits uses) ----------------------------------------------------

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        with self.engine.begin() as conn:
            previous = self._count(conn, previous_key, now)
            previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
            # floor(previous weighted + current) + amount <= limit, with current an integer
            cap = limit - int(previous * previous_ttl / expiry)
            if amount > cap:
                return False
            row = conn.execute(text(
                "INSERT INTO rate_limit_counter (key, count, expires_at) VALUES (:key, :amount, :expires) "
                "ON CONFLICT (key) DO UPDATE SET count = rate_limit_counter.count + :amount "
                "WHERE rate_limit_counter.count + :amount <= :cap RETURNING count"),
                {"key": current_key, "amount": amount, "expires": now + 2 * expiry, "cap": cap}).first()
            return row is not None

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        with self.engine.connect() as conn:
            previous = self._count(conn, previous_key, now)
            current = self._count(conn, current_key, now)
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, previous_ttl, current, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        previous_key, current_key = self.sliding_window_keys(key, expiry, time.time())
        self.clear(previous_key)
        self.clear(current_key)

    # -- the plain counter interface of a `limits` storage ----------------------------------------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM rate_limit_counter WHERE key = :key AND expires_at <= :now"),
                         {"key": key, "now": now})
            return conn.execute(text(
                "INSERT INTO rate_limit_counter (key, count, expires_at) VALUES (:key, :amount, :expires) "
                "ON CONFLICT (key) DO UPDATE SET count = rate_limit_counter.count + :amount RETURNING count"),
                {"key": key, "amount": amount, "expires": now + expiry}).scalar_one()

    def get(self, key: str) -> int:
        with self.engine.connect() as conn:
            return self._count(conn, key, time.time())

    def get_expiry(self, key: str) -> float:
        with self.engine.connect() as conn:
            value = conn.execute(text("SELECT expires_at FROM rate_limit_counter WHERE key = :key"),
                                 {"key": key}).scalar()
        return float(value) if value is not None else time.time()

    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1 FROM rate_limit_counter WHERE 1 = 0"))
        except self.base_exceptions:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(text("DELETE FROM rate_limit_counter")).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM rate_limit_counter WHERE key = :key"), {"key": key})

    def purge(self) -> int:
        """Delete the counters of windows that have ended (the job `security.purge_rate_limits`)."""
        with self.engine.begin() as conn:
            return conn.execute(text("DELETE FROM rate_limit_counter WHERE expires_at <= :now"),
                                {"now": time.time()}).rowcount or 0

    @staticmethod
    def _count(conn, key: str, now: float) -> int:
        value = conn.execute(text("SELECT count FROM rate_limit_counter WHERE key = :key AND expires_at > :now"),
                             {"key": key, "now": now}).scalar()
        return int(value or 0)


def _storage(uri: str, engine: Engine | None) -> Storage:
    if uri.strip().rstrip(":/") == DATABASE_STORAGE:
        if engine is None:
            raise ValueError('ratelimit.storage_uri = "database" needs the node\'s database engine')
        return DatabaseStorage(engine)
    return storage_from_string(uri)


class RateLimits:
    """The node's per-client limits; one instance per process (owned by the `NodeContext`)."""

    def __init__(self, settings: RateLimitSettings, *, engine: Engine | None = None) -> None:
        self._storage: Storage = _storage(settings.storage_uri, engine)
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

    @property
    def shared(self) -> bool:
        """Whether the counters are shared between processes (not `memory://`)."""
        return not isinstance(self._storage, MemoryStorage)

    def purge(self) -> int:
        """Drop ended windows' counters from a database storage (memory and Redis expire their own)."""
        return self._storage.purge() if isinstance(self._storage, DatabaseStorage) else 0

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
