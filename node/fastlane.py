"""The fast lane: the node's hottest reads answered without FastAPI's routing and dependency solving, and with
their queries run on the database driver directly (issue 13; docs/performance.md, "Fourth pass").

A learner reading their archive, a credential or the transcript, and a peer fetching the discovery document, are
the requests a credit bank serves most. Through the framework each costs ~0.3 ms of routing, dependency solving and
ORM session work on top of its own, and each query ~0.08 ms of SQLAlchemy execution and result handling on top of
the driver's. This middleware, the innermost of the node's (so the request id, the security headers, the body and
text checks, the concurrency gate, the metrics and the access line all apply as to any request), answers those
reads in their **ordinary case only**:

* a GET of an exact path registered here (`fast_read`), by the module that owns the route;
* for a learner's read, a bearer token (no API key) that verifies, names a learner, and whose version is the
  learner's current one (read in the same query as the data);
* the data in its plain state (an archive of a learner not erased, a credential already signed and cached, a
  transcript signed moments ago from exactly the same records).

Anything else — no or a bad token, a staff token, a revoked one, an erased learner, a record never exported, a
credential to sign, a PDF, an error of any kind — is handed to the normal route, which answers it with all its
checks, refusals, audit entries and error bodies. So the lane never decides a refusal and never writes: it only
serves, faster, what the route would have served. `tests/credentials/test_fastlane.py` checks that it answers byte for byte
as the route does, and hands over every other case. `node.fast_reads = false` turns it off.

Queries: `PreparedRead` compiles a SQLAlchemy `select()` once per dialect and runs it on the driver, converting each
column with the column type's own result processor, so the values are exactly those a `Session` would return. On
SQLite the read runs on the event loop in one WAL read transaction on a pooled connection (`BEGIN`: no lock, as
`node.deps.on_reader`); on PostgreSQL on the event loop too, on a few connections of the lane's own
(`PgConnections`: asynchronous, autocommit, no pre-ping — a failure is handed to the route).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from node.db import is_sqlite
from node.errors import NodeError
from node.security.tokens import read_token, token_subject

__all__ = ["FastLane", "Lane", "PgConnections", "PreparedRead", "Reading", "current", "fast_read", "learner_of"]

log = logging.getLogger("creditnode.fastlane")

# (body, content type) or None: hand the request to the normal route
Answer = tuple[bytes, bytes] | None
Handler = Callable[..., Awaitable[Answer]]  # (lane, scope, id or None[, (learner id, token version)])

_EXACT: dict[str, Handler] = {}
_WITH_ID: dict[str, Handler] = {}  # prefix ending in "/" → handler of PREFIX{integer id}
_MAX_ID_DIGITS = 18  # below 2**63 - 1 (the routes' Int64): longer ids go to the route, which says 422


def fast_read(path: str, *, learner: bool = False) -> Callable[[Handler], Handler]:
    """Register `handler` as the fast answer to `GET path` (a path ending in `/{name}` takes an integer id). The
    normal route at the same path must exist and stay the reference: the handler returns None for anything but
    the plain case. A `learner` read is called only for a request whose bearer token names a learner
    (`learner_of`), with that `(learner id, token version)` as its last argument."""

    def register(handler: Handler) -> Handler:
        if path.endswith("}"):
            prefix = path[: path.rindex("{")]
            _WITH_ID[prefix] = handler
        else:
            _EXACT[path] = handler
        handler.fast_path = path  # type: ignore[attr-defined]
        handler.for_learner = learner  # type: ignore[attr-defined]
        return handler

    return register


class PreparedRead:
    """A SELECT compiled once per dialect, run on a DBAPI cursor; rows converted by the columns' result processors.

    Only statements whose bind parameters need no conversion are accepted (plain integers and strings: checked at
    compile time), and no expanding (IN) parameters."""

    def __init__(self, statement: sa.Select) -> None:
        self.statement = statement
        self.Row = namedtuple("Row", [c.key for c in statement.selected_columns], rename=True)  # type: ignore[misc]
        # per dialect: (SQL, bind names in order or None, default values, [(column, result processor)])
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict, list]] = {}

    def bound(self, dialect: sa.Dialect, params: dict[str, Any]) -> tuple[str, Any]:
        """(SQL, the driver's parameters) of this statement for `dialect`."""
        sql, order, defaults, _ = self._for(dialect)
        values = {**defaults, **params}
        return sql, tuple(values[name] for name in order) if order is not None else values

    def converted(self, dialect: sa.Dialect, fetched: list) -> list[tuple]:
        """The driver's rows with each column converted as a Session's result would convert it."""
        processors = self._for(dialect)[3]
        if not processors:
            return [tuple(r) for r in fetched]
        rows = []
        for r in fetched:
            values = list(r)
            for i, process in processors:
                values[i] = process(values[i])
            rows.append(tuple(values))
        return rows

    def _for(self, dialect: sa.Dialect) -> tuple[str, tuple[str, ...] | None, dict, list]:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            c = self.statement.compile(dialect=dialect)
            for name, bind in c.binds.items():
                if bind.expanding or bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                    raise ValueError(f"PreparedRead: bind parameter {name!r} needs conversion")
            processors = [(i, p) for i, col in enumerate(self.statement.selected_columns)
                          if (p := col.type.dialect_impl(dialect).result_processor(dialect, None)) is not None]
            order = tuple(c.positiontup) if c.positional else None
            defaults = {name: bind.effective_value for name, bind in c.binds.items() if not bind.required}
            compiled = (c.string, order, defaults, processors)
            self._compiled[dialect.name] = compiled
        return compiled


class Reading:
    """The queries of one fast read (`async with lane.reading() as r`): `await r.rows(prepared, params)`."""

    def __init__(self, cursor: Any, dialect: sa.Dialect, *, awaited: bool) -> None:
        self.cursor, self.dialect, self.awaited = cursor, dialect, awaited

    async def rows(self, prepared: PreparedRead, params: dict[str, Any]) -> list[tuple]:
        sql, args = prepared.bound(self.dialect, params)
        if self.awaited:
            await self.cursor.execute(sql, args)
            fetched = await self.cursor.fetchall()
        else:
            self.cursor.execute(sql, args)
            fetched = self.cursor.fetchall()
        return prepared.converted(self.dialect, fetched)

    async def named(self, prepared: PreparedRead, params: dict[str, Any]) -> list[Any]:
        return [prepared.Row._make(r) for r in await self.rows(prepared, params)]


class PgConnections:
    """The lane's own PostgreSQL connections: psycopg `AsyncConnection`s in autocommit, made on demand, at most
    `size` in use at once (a read waits for one on the event loop), kept while they work, closed the moment one
    fails. Why its own: its reads run on the event loop (no worker-thread hop), with no BEGIN/ROLLBACK (under READ
    COMMITTED a transaction's statements each see a fresh snapshot anyway) and no pre-ping: a read that fails on a
    stale connection is handed to the route, whose pool pings. Closed with the app and with the node's engine."""

    def __init__(self, conninfo: str, size: int = 4) -> None:
        self.conninfo = conninfo
        self.size = size
        self._idle: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        import psycopg

        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a server has one loop; in-process test clients may start several
            self.close()
            self._loop, self._slots = loop, asyncio.Semaphore(self.size)
        slots = self._slots
        assert slots is not None
        async with slots:
            conn = self._idle.pop() if self._idle else await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True)
            try:
                yield conn
            except BaseException:
                conn.pgconn.finish()
                raise
            if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.pgconn.finish()
            elif self._loop is loop:
                self._idle.append(conn)
            else:
                conn.pgconn.finish()

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.pgconn.finish()


class Lane:
    """What a fast handler gets: the node's context, and `reading()` for its queries."""

    def __init__(self, ctx: Any, engine: Engine | None = None) -> None:
        self.ctx = ctx
        self.engine = engine or ctx.engine
        self.pg: PgConnections | None = None  # None: SQLite
        if not is_sqlite(self.engine):
            url = self.engine.url.set(drivername="postgresql")
            self.pg = PgConnections(url.render_as_string(hide_password=False))
            sa.event.listen(self.engine, "engine_disposed", lambda _engine: self.close())

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[Reading]:
        """One read: on SQLite a pooled connection's WAL read transaction on the event loop (`BEGIN`: no lock, no
        wait, as `node.deps.on_reader`); on PostgreSQL one of the lane's own connections (`PgConnections`)."""
        if self.pg is not None:
            async with self.pg.connection() as conn:
                cursor = conn.cursor()
                try:
                    yield Reading(cursor, self.engine.dialect, awaited=True)
                finally:
                    await cursor.close()
            return
        conn = self.engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute("BEGIN")  # a WAL read snapshot: waits for no lock, blocks no writer
                yield Reading(cursor, self.engine.dialect, awaited=False)
            finally:
                cursor.close()
        finally:
            conn.close()  # back to the pool, which ends the read transaction

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()


def learner_of(lane: Lane, scope: dict) -> tuple[int, int] | None:
    """(learner id, token version) of the request's bearer token if it verifies and names a learner, else None
    (no token, an API key, a staff token, anything the route must judge). The handler's own query reads the
    learner's current `token_version` with its data, and hands over unless `current(who, version)`."""
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is None:
                authorization = value
        elif name == b"x-api-key":
            return None
    if authorization is None or authorization[:7].lower() != b"bearer ":
        return None
    ctx = lane.ctx
    try:
        kind, ident, version = token_subject(read_token(authorization[7:].decode("latin-1"),
                                                        secret=ctx.token_secret, issuer=ctx.node_id))
    except NodeError:
        return None
    return (ident, version) if kind == "learner" else None


def current(who: tuple[int, int], token_version: int | None) -> bool:
    """Is the token's version the learner's current one (as `node.deps` checks it)? False for no learner."""
    return token_version is not None and token_version == who[1]


class FastLane:
    """The middleware (pure ASGI). See the module docstring."""

    def __init__(self, app: Any, *, lane: Lane, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled
        self.lane = lane
        self._warned: set[Handler] = set()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.enabled and scope["type"] == "http" and scope["method"] == "GET":
            found = _match(scope["path"])
            if found is not None:
                handler, param = found
                try:
                    if handler.for_learner:
                        who = learner_of(self.lane, scope)
                        answer = None if who is None else await handler(self.lane, scope, param, who)
                    else:
                        answer = await handler(self.lane, scope, param)
                except Exception:  # the route answers it, its own way (and logs what it must)
                    # once per path at WARNING (a defect here would otherwise only show as a slower node)
                    level = logging.DEBUG if handler in self._warned else logging.WARNING
                    self._warned.add(handler)
                    log.log(level, "fast read of %s handed to the route after an error", handler.fast_path,
                            exc_info=True)
                    answer = None
                if answer is not None:
                    body, content_type = answer
                    scope["route"] = SimpleNamespace(path=handler.fast_path)  # the metrics' and access line's label
                    await send({"type": "http.response.start", "status": 200, "headers": [
                        (b"content-length", str(len(body)).encode("ascii")), (b"content-type", content_type)]})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


def _match(path: str) -> tuple[Handler, int | None] | None:
    handler = _EXACT.get(path)
    if handler is not None:
        return handler, None
    prefix, _, tail = path.rpartition("/")
    handler = _WITH_ID.get(prefix + "/")
    if handler is not None and tail.isascii() and tail.isdigit() and len(tail) <= _MAX_ID_DIGITS:
        return handler, int(tail)
    return None
