"""Who may call each operation, written into the OpenAPI from the routes' declared dependencies.

The same declarations the route-policy test walks (`tests/node/test_route_policy.py`): a route depends on
`require_roles(...)` (its `allowed_roles`), on `public`, or — `/federation/v1/*` — on the peer signature check
(`peer_only`). When the OpenAPI is built, each operation gets an `x-roles` list (the role names; `["public"]`;
`["peer"]`) and a sentence at the end of its description saying the same for people reading `/docs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

__all__ = ["declared_access", "install_openapi_roles", "roles_sentence", "undocumented_routes"]

PUBLIC = "public"
PEER = "peer"


def _calls(route: APIRoute) -> Iterable[Callable[..., Any]]:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        yield dep.call
        stack.extend(dep.dependencies)


def declared_access(route: APIRoute) -> list[str]:
    """The route's roles (sorted), `["peer"]` for a signed peer request, `["public"]`, or `[]` (undeclared)."""
    calls = list(_calls(route))
    if any(getattr(call, "peer_only", False) for call in calls):
        return [PEER]
    roles = sorted({role for call in calls for role in getattr(call, "allowed_roles", ())})
    if roles:
        return roles
    if any(getattr(call, "is_public", False) for call in calls):
        return [PUBLIC]
    return []


def roles_sentence(access: list[str]) -> str:
    if access == [PUBLIC]:
        return "**Access:** public, no sign-in."
    if access == [PEER]:
        return ("**Access:** member nodes only: an RFC 9421 signed request by a key of a node in the federation's "
                "membership.")
    if not access:
        return "**Access:** not declared."
    named = ", ".join(f"`{role}`" for role in access)
    return f"**Roles:** {named} (any one of them)." if len(access) > 1 else f"**Roles:** {named}."


def _operations(app: FastAPI) -> Iterable[tuple[str, APIRoute]]:
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield context.path, route


def undocumented_routes(app: FastAPI) -> list[str]:
    """Operations with neither a docstring (description) nor an explicit summary, as `METHOD /path`."""
    return sorted(f"{method} {path}" for path, route in _operations(app)
                  if not (route.description or "").strip() and not route.summary
                  for method in sorted(route.methods))


def install_openapi_roles(app: FastAPI) -> None:
    """Wrap `app.openapi` so the built document carries `x-roles` and the access sentence per operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        paths = schema.get("paths", {})
        for path, route in _operations(app):
            access = declared_access(route)
            for method in route.methods:
                operation = paths.get(path, {}).get(method.lower())
                if operation is None:
                    continue
                operation["x-roles"] = access
                text = (operation.get("description") or "").rstrip()
                operation["description"] = f"{text}\n\n{roles_sentence(access)}" if text else roles_sentence(access)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
