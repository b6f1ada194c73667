"""The centre's pages (issue 15, journey 4), under /centre: the centre's home, the standards (node.portal.centre
.standards), the conversion and transfer review queues and the revocations (…centre.queues), organisations,
staff and roles and the audit log (…centre.admin), the erasure of a person (…centre.privacy). Pages call the
API's own route functions: roles, validation, four-eyes rules and audit entries are the API's
(docs/centre-portal.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from node.deps import SessionDep, public
from node.portal.centre import admin, catalogue, privacy, queues, standards
from node.portal.centre.common import CENTRE_ROLES, page, sections_of, staff_page
from node.portal.web import display_name
from node.roles import Role

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])


@router.get("/centre", response_class=HTMLResponse)
def centre_home(request: Request, session: SessionDep) -> HTMLResponse:
    """Links to the sections the visitor's roles open."""
    me = staff_page(request, session, CENTRE_ROLES)
    return page(request, "centre/home.html", me, title="centre.home.title", sections=sections_of(me),
                roles=sorted(r for r in me.roles if r != Role.LEARNER), greeting_name=display_name(session, me))


router.include_router(standards.router)
router.include_router(catalogue.router)
router.include_router(admin.router)
router.include_router(queues.router)
router.include_router(privacy.router)
