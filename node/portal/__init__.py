"""The portal: server-rendered pages for people, in the same app as the API (docs/portal.md).

`public` — the region's home page, standards catalogue, handbook, member regions (anyone);
`learner` — activation, sign-in, the archive, records, transcript, password, accesses (learners);
`conversions`, `transfers` — what-if and conversion requests, consents and cross-region transfers (learners).
Texts are in Babel catalogues (`locale/`), assets in `static/` (served by the node: no CDN, no build step).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "install"]

STATIC_DIR = Path(__file__).parent / "static"


def _here(request: Request) -> str:
    """The page asked for, query included (a report's date range, a queue's filters), to return to after signing in;
    a query too long to carry is dropped (node.portal.web.safe_next takes paths under 300 characters)."""
    path, query = request.url.path, request.url.query
    return f"{path}?{query}" if query and len(path) + len(query) < 299 else path


def install(app: FastAPI) -> None:
    """Add the portal's pages, its static files (/static/portal/) and its refusal pages to the app."""
    from node.portal import (applications, conversions, engage, federation, institution, learner, projects, public,
                             staff, stats, transfers)
    from node.portal.centre import router as centre_router
    from node.portal.web import PageRefused, render, render_error

    app.include_router(public.router)
    app.include_router(learner.router)
    app.include_router(applications.router)
    app.include_router(projects.router)  # 双证融通 projects and RPL (docs/projects.md)
    app.include_router(conversions.router)
    app.include_router(transfers.router)
    app.include_router(federation.router)
    app.include_router(centre_router)
    app.include_router(stats.router)
    app.include_router(engage.router)  # points, notices, data rights, counselling (issue 16)
    app.include_router(staff.router)  # staff and institutions (docs/staff-portal.md)
    app.include_router(institution.router)
    app.mount("/static/portal", StaticFiles(directory=STATIC_DIR), name="portal-static")

    @app.exception_handler(PageRefused)
    async def _refused(request: Request, exc: PageRefused) -> HTMLResponse:
        if exc.status == 401:  # the sign-in form in the page's place; back here after signing in
            return render(request, "sign_in.html", status=401, title="signin.title", errors={},
                          values={"next": _here(request)}, notice="signin.required")
        return render_error(request, exc.status, exc.key)
