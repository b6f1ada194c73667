"""The node's web application: `create_app(settings)` builds it; its lifespan owns the resources."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from config.settings import Settings
from node.context import NodeContext
from node.deps import end_request_transaction
from node.errors import NodeError
from node.fastlane import FastLane, Lane
from node.logging import configure_logging
from node.middleware import BodyTooLarge, EdgeMiddleware, refuse_unstorable_form_text
from node.openapi import openapi_with_errors
from node.ops.web import install as install_ops
from node.portal import install as install_portal
from node.portal.web import is_page_request, render_error

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger("creditnode")

# Framework HTTP errors (routing, body parsing) → the node's codes (docs/errors.md).
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type"}


_NO_TELEMETRY = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.node.log_level, settings.node.log_format)
    ctx = NodeContext.build(settings, engine=engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in app.state.startup_hooks:
            hook(ctx)
        yield
        for hook in reversed(app.state.shutdown_hooks):
            hook(ctx)
        if engine is None:
            ctx.engine.dispose()

    app = FastAPI(
        title=f"creditnode · {settings.region.name_en}",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(refuse_unstorable_form_text)],  # the edge's check of form text (node.middleware)
        docs_url=None,  # /docs and /redoc with local assets: node.ops
        redoc_url=None,
        telemetry=None if settings.ops.opentelemetry else _NO_TELEMETRY,
    )
    app.state.ctx = ctx
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    _install_error_handlers(app)
    _include_routers(app)
    install_portal(app)  # the pages for people under / (node/portal, docs/portal.md)
    _end_transactions_in_endpoint_threads(app)
    app.state.startup_hooks.append(lambda _ctx: _end_transactions_in_endpoint_threads(app))
    # The hottest reads in their plain case, past the framework (node/fastlane.py): innermost, so every
    # middleware below applies to them as to any request.
    lane = Lane(ctx)
    app.state.shutdown_hooks.append(lambda _ctx: lane.close())
    app.add_middleware(FastLane, lane=lane, enabled=settings.node.fast_reads)
    # The HTTP edge (node/middleware.py): security headers, body limits, text no database stores, bad JSON.
    app.add_middleware(EdgeMiddleware, settings=settings)
    app.openapi = functools.partial(openapi_with_errors, app)  # the node's ErrorBody (node/openapi.py)
    # operations: /health /ready /metrics, offline /docs, x-roles in the OpenAPI, request id + metrics (outermost)
    install_ops(app, ctx)
    return app


def create_app_from_env() -> FastAPI:
    """The app of one worker process of `creditnode serve --workers N` (uvicorn's factory, imported by each
    process): the settings from `$CREDITNODE_CONFIG` and the environment, which the parent process found, checked
    and exported before starting the workers."""
    from config.settings import find_settings
    from node.logging import AccessLog

    settings = find_settings()
    app = create_app(settings)
    app.state.access_log = AccessLog(settings.node.log_level, settings.node.log_format)  # as `serve` (one worker)
    return app


def _include_routers(app: FastAPI) -> None:
    from node.routers import ROUTERS

    for router in ROUTERS:
        app.include_router(router)


def _end_transactions_in_endpoint_threads(app: FastAPI) -> int:
    """Every plain (`def`) endpoint commits the request session's transaction in its own worker thread as it
    returns (node.deps.get_session says why). FastAPI calls `dependant.call` of the route (or, for a route of an
    included router, of its per-inclusion copy) in the threadpool; those calls are wrapped here, once
    (coroutines and generators are left alone). Returns how many endpoints are wrapped; also run at startup."""
    count = 0
    for dependant in _dependants(app.router):
        call = dependant.call
        if getattr(call, "_ends_transaction", False):
            count += 1
            continue
        if call is None or inspect.iscoroutinefunction(call) or inspect.isgeneratorfunction(call) or \
                inspect.isasyncgenfunction(call) or not inspect.isfunction(call):
            continue
        dependant.call = _ending_transaction(call)
        count += 1
    return count


def _dependants(router: Any) -> Any:
    candidates = router.effective_candidates() if hasattr(router, "effective_candidates") else router.routes
    for candidate in candidates:
        if hasattr(candidate, "effective_candidates") or isinstance(getattr(candidate, "routes", None), list):
            yield from _dependants(candidate)
        elif isinstance(getattr(candidate, "dependant", None), Dependant):
            yield candidate.dependant
    for candidate in getattr(router, "effective_low_priority_routes", lambda: [])():
        if isinstance(getattr(candidate, "dependant", None), Dependant):
            yield candidate.dependant


def _ending_transaction(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def endpoint(*args: Any, **kwargs: Any) -> Any:
        result = call(*args, **kwargs)
        end_request_transaction()
        return result

    endpoint._ends_transaction = True  # type: ignore[attr-defined]
    return endpoint


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NodeError)
    async def _node_error(request: Request, exc: NodeError) -> Response:
        if is_page_request(request):
            return render_error(request, exc.status_code, f"err.{exc.code}")
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if is_page_request(request):
            return render_error(request, 400)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"code": "validation_error", "message": "the request is not valid", "detail": {"errors": errors}},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if is_page_request(request):
            return render_error(request, exc.status_code)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        body: dict = {"code": code, "message": str(exc.detail)}
        if isinstance(exc, BodyTooLarge):
            body["detail"] = {"max_bytes": exc.limit}
        elif exc.status_code == 400 and str(exc.detail) == "There was an error parsing the body":
            body = {"code": "invalid_json", "message": "the body cannot be parsed"}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error: %s", type(exc).__name__)
        if is_page_request(request):
            return render_error(request, 500)
        return JSONResponse({"code": "internal_error", "message": "internal error"}, status_code=500)
