"""The HTTP edge: one pure ASGI middleware in front of every route (docs/errors.md, "The edge").

In order, for every HTTP request:

1. **Security headers** on every response (`X-Content-Type-Options`, `Referrer-Policy`, `X-Frame-Options`, a
   Content-Security-Policy — strict, same-origin only, for HTML; `default-src 'none'` for everything else — and HSTS
   when the node's base URL is https). A response that sets its own CSP keeps it.
2. **Text that no database stores**: a NUL or an unpaired surrogate in the path or the query string is refused
   (422 `validation_error`, `type: invalid_text`). Form bodies are checked by `refuse_unstorable_form_text`.
3. **Body limits, before the body is read**: a `Content-Length` over the route's limit is answered 413
   `payload_too_large` at once (and the connection closed, so the body is never read); a chunked body is counted
   while it streams and refused as soon as it passes the limit. Limits: `node.max_body_bytes` for every route,
   `imports.max_upload_bytes` for `POST /api/v1/imports`, `imports.max_evidence_bytes` (plus multipart overhead)
   for evidence uploads. `/federation/v1/*` reads, limits (`federation.max_body_bytes`) and checks its own body,
   so that its refusals are signed (federation.transport.inbound).
4. **JSON bodies** (bounded by 3, so they can be held) are parsed once here: invalid UTF-8, bad syntax or nesting
   deeper than `MAX_JSON_DEPTH` → 400 `invalid_json`; a NUL or an unpaired surrogate in any key or string → 422
   `validation_error` with the string's location. The same bytes are then handed to the route.
5. **Unexpected errors** become a 500 `internal_error` without closing the connection (Starlette's error middleware
   re-raises after answering, and uvicorn then drops the keep-alive connection).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import Settings
from node.credentials.pdf import MAX_PDF_BYTES

__all__ = [
    "MAX_JSON_DEPTH",
    "BodyTooLarge",
    "EdgeMiddleware",
    "refuse_unstorable_form_text",
    "text_problem",
    "unstorable_json_text",
]

log = logging.getLogger("creditnode")

MAX_JSON_DEPTH = 64  # the node's deepest documents (agreements, credentials in a release) nest ~10 levels
MAX_FILENAME = 255  # an uploaded file's name (import_job.filename, evidence_file.original_name)
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around an evidence file

HTML_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

_EVIDENCE_UPLOAD = re.compile(r"^/api/v1/(me/)?deposit-applications/[^/]+/evidence/?$|^/me/applications/new$"
                              # 双证融通 project materials and RPL portfolios (docs/projects.md), API and pages
                              r"|^/api/v1/projects/[^/]+/evidence/?$|^/api/v1/me/rpl/[^/]+/evidence/?$"
                              r"|^/projects/[^/]+/evidence$|^/me/rpl/[^/]+/evidence$"
                              # a staff member's deposit on a learner's behalf (docs/staff-portal.md)
                              r"|^/staff/learners/[^/]+/deposit$")
_IMPORT_UPLOAD = frozenset({"/api/v1/imports", "/institution/imports/new"})
_VERIFY_SUBMISSION = frozenset({"/api/v1/verify", "/verify"})  # a credential, or a transcript PDF upload


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes its limit (FastAPI lets an HTTPException from the body
    through; the app's handler renders it as 413 `payload_too_large`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is over {limit} bytes")
        self.limit = limit


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (PostgreSQL refuses NUL; UTF-8 has no unpaired surrogates)."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired surrogate (not valid Unicode text)"
    return None


def _json_strings(doc: Any) -> Iterator[tuple[list, str]]:
    """Every key and string of a parsed JSON document with its location; raises `_TooDeep`."""
    stack: list[tuple[list, Any]] = [([], doc)]
    while stack:
        loc, value = stack.pop()
        if len(loc) > MAX_JSON_DEPTH:
            raise _TooDeep
        if isinstance(value, str):
            yield loc, value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield loc + [key], key
                stack.append((loc + [key], item))
        elif isinstance(value, list):
            stack.extend((loc + [i], item) for i, item in enumerate(value))


class _TooDeep(Exception):
    pass


def _json_problem(body: bytes) -> tuple[int, dict] | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return 400, _error("invalid_json", f"the body is not valid UTF-8 (byte {exc.start})")
    try:
        doc = json.loads(text)
    except RecursionError:
        return 400, _error("invalid_json", f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    except ValueError as exc:
        return 400, _error("invalid_json", f"the body is not JSON: {getattr(exc, 'msg', 'syntax error')}")
    try:
        error = unstorable_json_text(doc)
    except ValueError as exc:
        return 400, _error("invalid_json", str(exc))
    if error:
        return 422, _error("validation_error", "the request is not valid", {"errors": [error]})
    return None


def unstorable_json_text(doc: Any) -> dict | None:
    """The first key or string of a parsed JSON body that no database stores, as a validation error entry
    (`loc`, `msg`, `type: invalid_text`); ValueError if the document nests deeper than MAX_JSON_DEPTH."""
    try:
        for loc, value in _json_strings(doc):
            problem = text_problem(value)
            if problem:
                return {"loc": ["body", *loc], "msg": f"the text {problem}", "type": "invalid_text"}
    except _TooDeep:
        raise ValueError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    return None


def _pairs_problem(raw: bytes, where: str) -> tuple[int, dict] | None:
    text = raw.decode("utf-8", "surrogateescape")
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True, errors="surrogateescape"):
        for item in (key, value):
            problem = text_problem(item)
            if problem:
                return 422, _invalid_text([where, "?" if text_problem(key) else key], problem)
    return None


def _error(code: str, message: str, detail: dict | None = None) -> dict:
    body: dict[str, Any] = {"code": code, "message": message}
    if detail:
        body["detail"] = detail
    return body


def _invalid_text(loc: list, problem: str) -> dict:
    return _error("validation_error", "the request is not valid",
                  {"errors": [{"loc": loc, "msg": f"the text {problem}", "type": "invalid_text"}]})


async def refuse_unstorable_form_text(request: Request) -> None:
    """App-wide dependency: the strings of a form the route has parsed (multipart included, which the middleware
    cannot hold) are checked like JSON strings; file names too, and their length (MAX_FILENAME)."""
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None:
        return
    if request.headers.get("content-type", "").split(";")[0].strip().lower() not in (
        "multipart/form-data", "application/x-www-form-urlencoded"
    ):
        return
    from fastapi.exceptions import RequestValidationError

    form = await request.form()  # already parsed by FastAPI for this request: cached, not read again
    for key, value in form.multi_items():
        text = value.filename or "" if isinstance(value, UploadFile) else value
        for item in (key, text):
            problem = text_problem(item)
            if problem:
                raise RequestValidationError([{"loc": ["body", key], "msg": f"the text {problem}",
                                               "type": "invalid_text"}])
        if isinstance(value, UploadFile) and len(text) > MAX_FILENAME:  # file name columns are VARCHAR(255)
            raise RequestValidationError([{"loc": ["body", key], "type": "string_too_long",
                                           "msg": f"the file name is longer than {MAX_FILENAME} characters"}])


class EdgeMiddleware:
    """See the module docstring. Pure ASGI: no per-request task or response object unless it answers itself."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.default_limit = settings.node.max_body_bytes
        self.upload_limit = settings.imports.max_upload_bytes
        self.evidence_limit = settings.imports.max_evidence_bytes + MULTIPART_OVERHEAD
        self.verify_limit = MAX_PDF_BYTES + MULTIPART_OVERHEAD
        common = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                  (b"x-frame-options", b"DENY"), (b"cross-origin-opener-policy", b"same-origin")]
        if settings.base_url.lower().startswith("https://"):
            common.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
        self.common_headers = common

    def limit_for(self, method: str, path: str) -> int:
        if method == "POST" and path.rstrip("/") in _IMPORT_UPLOAD:
            return self.upload_limit
        if method == "POST" and _EVIDENCE_UPLOAD.match(path):
            return self.evidence_limit
        if method == "POST" and path.rstrip("/") in _VERIFY_SUBMISSION:
            return self.verify_limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self._secured(list(message.get("headers", [])))
            await send(message)

        if _wants_page(scope):  # a browser's page request: refusals are pages in its language, not JSON
            answer = functools.partial(_answer_page, scope, receive)
        else:
            answer = _answer
        problem = self._target_problem(scope)
        if problem:
            await answer(send_with_headers, *problem)
            return
        if scope["path"].startswith("/federation/v1/"):
            # Peer routes read, limit and check their body themselves (federation.transport.inbound): their
            # refusals must be signed like every peer response.
            await self._call(scope, receive, send_with_headers, lambda: started)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            if not declared.isdigit():
                await answer(send_with_headers, 400, _error("bad_request", "Content-Length is not a number"),
                             close=True)
                return
            await _too_large(send_with_headers, limit, answer)
            return
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type == b"application/json" or media_type.endswith(b"+json") or (
            media_type == b"application/x-www-form-urlencoded"
        ):
            body = await _read_body(receive, limit)
            if body is None:
                await _too_large(send_with_headers, limit, answer)
                return
            if body:
                problem = (_json_problem(body) if media_type.endswith(b"json")
                           else _pairs_problem(body, "body"))
                if problem:
                    await answer(send_with_headers, *problem)
                    return
            receive = _replay(body, receive)
        else:
            receive = _counting(receive, limit)
        await self._call(scope, receive, send_with_headers, lambda: started, limit, answer)

    async def _call(self, scope: Scope, receive: Receive, send: Send, started: Any, limit: int = 0,
                    answer: Any = None) -> None:
        answer = answer or _answer
        try:
            await self.app(scope, receive, send)
        except BodyTooLarge:
            if started():
                raise
            await _too_large(send, limit, answer)
        except Exception as exc:
            if started():
                raise
            _log_unexpected(scope, exc)
            await answer(send, 500, _error("internal_error", "internal error"))

    def _target_problem(self, scope: Scope) -> tuple[int, dict] | None:
        problem = text_problem(scope["path"])
        if problem:
            return 422, _invalid_text(["path"], problem)
        if scope.get("query_string"):
            return _pairs_problem(scope["query_string"], "query")
        return None

    def _secured(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        for name, value in self.common_headers:
            if name not in present:
                headers.append((name, value))
        if b"content-security-policy" not in present:
            content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
            csp = HTML_CSP if content_type.lower().startswith(b"text/html") else API_CSP
            headers.append((b"content-security-policy", csp.encode()))
        return headers


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes `limit`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(limit)
        return message

    return counting


async def _too_large(send: Send, limit: int, answer: Any = None) -> None:
    await (answer or _answer)(send, 413, _error("payload_too_large", f"the request body is over {limit} bytes",
                                    {"max_bytes": limit}), close=True)


async def _answer(send: Send, status: int, body: dict, *, close: bool = False) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if close:  # the rest of the body is never read: the server must not wait for it on this connection
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


_API_PREFIXES = ("/api/", "/federation/v1/", "/.well-known/", "/static/", "/openapi.json", "/docs", "/redoc",
                 "/metrics", "/health")


def _wants_page(scope: Scope) -> bool:
    """A request a person's browser made for a portal page: not an API, peer or asset path, and HTML accepted
    (a browser's form post and link both send `Accept: text/html`)."""
    if scope["path"].startswith(_API_PREFIXES):
        return False
    accept = next((v for n, v in scope["headers"] if n == b"accept"), b"")
    return b"text/html" in accept


async def _answer_page(scope: Scope, receive: Receive, send: Send, status: int, body: dict, *,
                       close: bool = False) -> None:
    """The edge's refusal as the portal's error page (node.portal.web.render_error): the visitor's language, the
    code's own text where there is one, never the API's English message."""
    from starlette.requests import Request as StarletteRequest

    from node.portal.web import render_error

    response = render_error(StarletteRequest(scope), status, f"err.{body.get('code', '')}")
    if close:
        response.headers["connection"] = "close"
    await response(scope, receive, send)


def _log_unexpected(scope: Scope, exc: Exception) -> None:
    route = getattr(scope.get("route"), "path", "?")
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else "?"
    # The message may hold personal data (a bound parameter): the type and the place only.
    log.error("unhandled error: %s in %s %s at %s", type(exc).__name__, scope.get("method"), route, where)
