"""The operations routes and their installation on the app.

- `GET /health`: liveness. The process answers; touches nothing else (no database).
- `GET /ready`: readiness. The database answers, its schema is at this software's head, the signing keys are
  loaded; 503 `not_ready` with one reason per failed check otherwise.
- `GET /metrics`: Prometheus text format (`node.ops.metrics`). Public when the node's base URL is a loopback
  address, else only with `Authorization: Bearer <ops.metrics_token>` (`ops.metrics_public` overrides).
- `/docs`, `/redoc`: the API documentation, with Swagger UI's and ReDoc's assets served by the node itself from
  the installed `fastapi-offline` package (`/docs/assets/...`), so the pages work on networks without Internet.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from prometheus_client import CollectorRegistry

from node.context import NodeContext
from node.db import schema_problem
from node.deps import CtxDep, public
from node.errors import Forbidden, NotFound, Unauthorized
from node.ops.checks import is_loopback_host
from node.ops.metrics import CONTENT_TYPE_LATEST, HttpMetrics, NodeCollector, multiprocess_dir, render
from node.ops.middleware import ConcurrencyGate, RequestContextMiddleware, admitted_requests
from node.ops.openapi import install_openapi_roles
from node.ops.repository import ping

__all__ = ["install", "readiness", "router"]

router = APIRouter(tags=["operations"], dependencies=[Depends(public)])

_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
ASSETS_PATH = "/docs/assets"


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    """Liveness: the process serves requests. Reads nothing (no database); for a restart policy."""
    return {"status": "ok"}


def readiness(ctx: NodeContext) -> dict[str, str]:
    """Each check's result: "ok" or one line saying what is wrong."""
    checks: dict[str, str] = {}
    try:
        with ctx.engine.connect() as conn:
            ping(conn)
            checks["database"] = "ok"
            checks["schema"] = schema_problem(conn) or "ok"
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is "not ready"
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["schema"] = "unknown: the database is unreachable"
    checks["keys"] = _keys_problem(ctx) or "ok"
    return checks


def _keys_problem(ctx: NodeContext) -> str | None:
    try:
        key = ctx.identity.ring.current_key
    except (AttributeError, KeyError):
        return "no current signing key is loaded"
    if key.revoked:
        return f"the current signing key {key.key_id} is revoked: `creditnode keys rotate`, then restart"
    if key.expires and key.expires <= dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"):
        return f"the current signing key {key.key_id} has expired: `creditnode keys rotate`, then restart"
    return None


@router.get("/ready", summary="Readiness", responses={503: {"description": "not ready (`not_ready`); "
                                                                          "`detail.checks` says why"}})
def ready(ctx: CtxDep) -> JSONResponse:
    """Readiness: the database answers, its schema is at this software's migration head, and the node's signing
    keys are loaded. 200 `{"status": "ready", "checks": {...}}`, else 503 `not_ready` with each failed check's
    reason (for a load balancer or an orchestrator)."""
    checks = readiness(ctx)
    failed = {name: result for name, result in checks.items() if result != "ok"}
    if not failed:
        return JSONResponse({"status": "ready", "checks": checks})
    return JSONResponse({"code": "not_ready", "message": "; ".join(f"{k}: {v}" for k, v in failed.items()),
                         "detail": {"checks": checks}}, status_code=503)


def _metrics_allowed(request: Request, ctx: NodeContext) -> None:
    ops = ctx.settings.ops
    if not ops.metrics_enabled:
        raise NotFound("metrics are disabled (ops.metrics_enabled)")
    if ops.metrics_token is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        expected = ops.metrics_token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
            raise Unauthorized("/metrics needs the bearer token ops.metrics_token", code="metrics_token_required")
        return
    allowed = ops.metrics_public
    if allowed is None:
        from urllib.parse import urlsplit

        allowed = is_loopback_host(urlsplit(ctx.settings.base_url).hostname or "")
    if not allowed:
        raise Forbidden("/metrics is not public on this node: set ops.metrics_token (or ops.metrics_public)",
                        code="metrics_restricted")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}})
def metrics(request: Request, ctx: CtxDep) -> Response:
    """Prometheus metrics: requests by route template and status, latency histograms, outbox messages pending
    and dead per peer, import jobs by status, ledger and checkpoint size. Carries no personal data. Public when
    the base URL is a loopback address; otherwise needs `Authorization: Bearer <ops.metrics_token>`."""
    _metrics_allowed(request, ctx)
    return Response(render(request.app.state.metrics_registry, ctx), media_type=CONTENT_TYPE_LATEST)


assets_router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])


@assets_router.get(ASSETS_PATH + "/{name}")
async def docs_asset(name: str) -> FileResponse:
    """Swagger UI's and ReDoc's files, from the installed `fastapi-offline` package."""
    if name not in ASSETS:
        raise NotFound("no such documentation asset")
    return FileResponse(_ASSETS_DIR / name, media_type=ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})


_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def _allow_own_inline_scripts(page: HTMLResponse) -> HTMLResponse:
    """The docs pages start Swagger UI / ReDoc with an inline script: allow exactly those scripts by hash (the
    edge middleware keeps a CSP a route sets). Their UIs inject style elements at run time, hence inline styles."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(page.body.decode())
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return page


def docs_router(app: FastAPI) -> APIRouter:
    """`/docs` and `/redoc` pointing at the node's own copies of the assets (the app is created with
    `docs_url=None, redoc_url=None`)."""
    pages = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
    title = app.title
    redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @pages.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _allow_own_inline_scripts(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} · API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=f"{root}{redirect}",
            # no badge from the public online validator
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        ))

    @pages.get(redirect)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _allow_own_inline_scripts(get_swagger_ui_oauth2_redirect_html())

    @pages.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _allow_own_inline_scripts(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} · API",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png", with_google_fonts=False))

    return pages


def install(app: FastAPI, ctx: NodeContext) -> None:
    """Add the operations routes, the offline docs, the roles in the OpenAPI, and the request-context middleware
    (outermost: it wraps error handling and every other middleware) with the concurrency gate inside it."""
    registry: CollectorRegistry | None = None
    if not multiprocess_dir():
        registry = CollectorRegistry()
        registry.register(NodeCollector(ctx))
    app.state.metrics_registry = registry
    http_metrics = HttpMetrics(registry) if ctx.settings.ops.metrics_enabled else None
    app.include_router(router)
    app.include_router(assets_router)
    app.include_router(docs_router(app))
    install_openapi_roles(app)
    build_stack = app.build_middleware_stack

    gate_limit = admitted_requests(ctx.engine)
    app.state.admitted_requests = gate_limit

    def build_middleware_stack() -> Any:
        return RequestContextMiddleware(ConcurrencyGate(build_stack(), gate_limit), http_metrics,
                                        getattr(app.state, "access_log", None))

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
