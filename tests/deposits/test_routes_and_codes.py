"""Deny by default for this area's routes, and every error code the node raises is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from node.archive.router import router as archive_router
from node.audit.router import router as audit_router
from node.deposits.router import router as deposits_router
from node.evidence.router import router as evidence_router

ROOT = Path(__file__).resolve().parents[2]


def _roles(route: APIRoute) -> frozenset[str]:
    stack, roles = list(route.dependant.dependencies), set()
    while stack:
        dep = stack.pop()
        roles |= set(getattr(dep.call, "allowed_roles", ()))
        stack.extend(dep.dependencies)
    return frozenset(roles)


@pytest.mark.parametrize("router", [deposits_router, evidence_router, archive_router, audit_router])
def test_every_route_names_its_roles(router) -> None:
    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    assert routes
    assert [r.path for r in routes if not _roles(r)] == []
    me_routes = [r for r in routes if r.path.startswith("/api/v1/me/")]
    assert all(_roles(r) == {"learner"} for r in me_routes)


def test_every_error_code_in_node_is_documented() -> None:
    doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+)`", doc))
    used: set[str] = set()
    for path in (ROOT / "node").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'\bcode="([a-z_]+)"', text))
        used |= set(re.findall(r'^\s+code = "([a-z_]+)"', text, flags=re.MULTILINE))
    assert used, "the scan found no codes"
    assert sorted(used - documented) == []
