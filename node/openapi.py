"""The node's error body in the OpenAPI document: one `ErrorBody` schema for every 4xx/5xx response.

FastAPI documents 422 as its own `HTTPValidationError` (`{"detail": [...]}`), which is not what the node returns
(`{"code", "message", "detail": {"errors": [...]}}`, node.app). `openapi_with_errors` replaces it and adds the
refusals each operation can give, derived from the route itself (docs/errors.md):

* every operation: 422 `validation_error` (path, query or body; text no database stores), `4XX` (any other
  refusal with a documented code) and 500 `internal_error`;
* an operation with parameters or a body: 400 (`bad_request`, `invalid_json`, `invalid_*` codes);
* an operation with a body: 413 `payload_too_large`;
* an operation with path parameters: 404 `not_found`;
* an operation behind `require_roles`: 401 (`not_authenticated`, `invalid_token`, ...) and 403 `forbidden`;
* a peer operation (`/federation/v1/*`): 401 (signature refusals), 403, 409.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

__all__ = ["ERROR_BODY", "openapi_with_errors"]

_REF = {"$ref": "#/components/schemas/ErrorBody"}

ERROR_BODY: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "description": "Every error the node returns (docs/errors.md). `code` is stable; `message` is for people. "
                   "422 `validation_error` carries `detail.errors`: a list of `{loc, msg, type}`.",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "stable machine-readable code (docs/errors.md)"},
        "message": {"type": "string"},
        "detail": {"type": "object", "additionalProperties": True},
    },
}

_MEANING = {
    "400": "Bad request: `bad_request`, `invalid_json` or an `invalid_*` code",
    "401": "Not authenticated: `not_authenticated`, `invalid_token`, `token_expired`, `invalid_api_key`, ...",
    "403": "Forbidden: `forbidden` (the caller's roles do not allow it) or a rule's refusal",
    "404": "Not found: `not_found` or a more specific code",
    "409": "Conflict: a state or sequence refusal",
    "413": "Payload too large: `payload_too_large`, `detail.max_bytes`",
    "422": "Validation error: `validation_error`, `detail.errors`",
    "4XX": "Any other refusal with a documented code (docs/errors.md)",
    "500": "Internal error: `internal_error` (details are logged, never returned)",
}


def _calls(route: APIRoute) -> list:
    stack, calls = list(route.dependant.dependencies), []
    while stack:
        dep = stack.pop()
        calls.append(dep.call)
        stack.extend(dep.dependencies)
    return calls


def _codes(path: str, route: APIRoute) -> list[str]:
    calls = _calls(route)
    codes = ["422", "4XX", "500"]
    flat = route.dependant
    has_params = bool(flat.path_params or flat.query_params or route.body_field)
    if has_params:
        codes.append("400")
    if route.body_field is not None or path.startswith("/federation/"):
        codes += ["400", "413"]
    if "{" in path:
        codes.append("404")
    if any(getattr(call, "allowed_roles", None) for call in calls):
        codes += ["401", "403"]
    if path.startswith("/federation/"):
        codes += ["401", "403", "409"]
    return sorted(set(codes))


def openapi_with_errors(app: FastAPI) -> dict[str, Any]:
    """`app.openapi` with the node's error body (cached on the app like FastAPI's own)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                         description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["ErrorBody"] = ERROR_BODY
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods:
            operation = schema["paths"].get(context.path, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in _codes(context.path, route):
                entry = responses.setdefault(status, {"description": _MEANING[status]})
                entry["content"] = {"application/json": {"schema": _REF}}
            for status, entry in responses.items():
                if status[0] in "45" and status not in _MEANING:
                    entry["content"] = {"application/json": {"schema": _REF}}
    app.openapi_schema = schema
    return schema
