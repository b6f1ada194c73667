"""What every centre page shares: who may open which section, the centre's navigation, API refusals as texts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from node.deps import Principal
from node.errors import NodeError
from node.portal.i18n import translator
from node.portal.web import page_principal, render
from node.roles import Role

__all__ = ["CENTRE_ROLES", "SECTIONS", "FormField", "error_key", "page", "staff_page"]

FormField = Annotated[str, Form()]

# Who the centre's home serves, and which of its sections each role opens (the API's own role checks apply
# again inside every route function a page calls).
CENTRE_ROLES = frozenset({Role.STANDARDS_ADMIN, Role.CENTRE_REVIEWER, Role.BRANCH_REVIEWER, Role.NODE_ADMIN,
                          Role.AUDITOR})
REVIEWERS = frozenset({Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER})
SECTIONS = (
    ("standards", "/centre/standards", frozenset({Role.STANDARDS_ADMIN})),
    ("catalogue", "/centre/catalogue", frozenset({Role.STANDARDS_ADMIN})),
    ("conversions", "/centre/conversions", REVIEWERS),
    ("transfers", "/centre/transfers", REVIEWERS),
    ("revocations", "/centre/revocations", frozenset({Role.CENTRE_REVIEWER})),
    ("organisations", "/centre/organisations", frozenset({Role.NODE_ADMIN})),
    ("staff", "/centre/staff", frozenset({Role.NODE_ADMIN})),
    ("erasures", "/centre/erasures", frozenset({Role.NODE_ADMIN})),
    ("audit", "/centre/audit", frozenset({Role.AUDITOR})),
)


def staff_page(request: Request, session: Session, roles: frozenset[str]) -> Principal:
    """The signed-in staff member holding one of `roles` (else the sign-in form, or a 403 page, audited)."""
    principal = page_principal(request, session, roles=roles)
    assert principal is not None
    return principal


def sections_of(me: Principal) -> list[tuple[str, str]]:
    return [(name, url) for name, url, roles in SECTIONS if me.has_any(roles)]


def page(request: Request, template: str, me: Principal, **values: Any) -> HTMLResponse:
    """A centre page: the layout plus the centre's own navigation (the sections this person's roles open)."""
    return render(request, template, centre_nav=sections_of(me), **values)


def error_key(exc: NodeError) -> str:
    """The page text of an API refusal: the centre's own wording when it has one, else the portal's."""
    key = f"centre.err.{exc.code}"
    return key if translator("zh").has(key) else f"err.{exc.code}"
