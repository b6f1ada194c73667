"""The request-context middleware (pure ASGI, no `BaseHTTPMiddleware`): a request id for every HTTP request,
returned as `X-Request-ID` and put in every log line and audit entry written while serving it, and the request
counted and timed by route template.

A well-formed incoming `X-Request-ID` (1-64 of `A-Z a-z 0-9 . _ : -`, nothing shaped like an ID number) is kept,
so a reverse proxy's id follows the request; anything else is replaced by a fresh one (32 hex digits).
It wraps the whole application, error handling included, so a 500 or a refusal by another middleware carries
the id too. Its cost per request: one header scan, one contextvar set, one counter and one histogram update.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

from sqlalchemy.engine import Engine

from node.logging import AccessLog, redact, request_id_var
from node.ops.metrics import HttpMetrics

__all__ = ["REQUEST_ID_HEADER", "ConcurrencyGate", "RequestContextMiddleware", "admitted_requests",
           "route_template"]

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,64}")
UNMATCHED = "<unmatched>"


def _incoming_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == _HEADER_KEY:
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                return None
            if _WELL_FORMED.fullmatch(text) and redact(text) == text:
                return text
            return None
    return None


def route_template(scope: dict[str, Any]) -> str:
    """The matched route's path template (set in the scope by the router), never the raw path."""
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED


class RequestContextMiddleware:
    def __init__(self, app: Any, metrics: HttpMetrics | None = None, access_log: AccessLog | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log  # the access line of each request (`creditnode serve`), after the response

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope.get("headers") or []) or os.urandom(16).hex()  # 32 hex digits
        # Not reset afterwards: each request runs in a task (and context) of its own, and error handlers, which
        # run after the app returns, must still see it.
        request_id_var.set(request_id)
        header = (_HEADER_KEY, request_id.encode("ascii"))
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.metrics is not None:
                self.metrics.observe(scope["method"], route_template(scope), status,
                                     time.perf_counter() - started)
            if self.access_log is not None:
                self.access_log.write(scope, status, request_id)


def admitted_requests(engine: Engine, *, threads: int = 40) -> int:
    """How many requests the `ConcurrencyGate` lets into the application at once: half the database pool's
    connections (a request may hold its own session's connection and open one more scope), at most the
    threadpool's size less one, at least 2."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    capacity = (size() + max(getattr(pool, "_max_overflow", 0), 0)) if callable(size) else threads
    return max(2, min(capacity // 2, threads - 1))


class ConcurrencyGate:
    """At most `limit` HTTP requests inside the application at once; the others wait here, in the event loop,
    holding neither a thread nor a database connection.

    Why: a request's synchronous steps (its session dependency, the endpoint, the commit) each take a thread of
    the threadpool (40), and between two steps it may hold a pooled database connection (PostgreSQL: pool_size
    + max_overflow = 20; SQLite: 15, and on SQLite the write lock). With more requests in flight than
    connections, every thread could block waiting for a connection held by requests that wait for a thread: the
    node stalled until the pool's 30 s timeout and answered 500 (reproduced by bench/load.py at 50 connections
    on SQLite and 200 on PostgreSQL). Admitting fewer requests than there are connections and threads makes that
    impossible; a queue costs the waiting clients latency, never an error. `/health` is not gated (liveness must
    answer under load)."""

    UNGATED = frozenset({"/health"})

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.UNGATED:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # one per event loop (a server has one; test clients may start several)
            self._semaphore, self._loop = asyncio.Semaphore(self.limit), loop
        async with self._semaphore:  # type: ignore[union-attr]
            await self.app(scope, receive, send)
