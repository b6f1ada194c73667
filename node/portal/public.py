"""The public pages (issue 15, item 6): the region's home page, the standards catalogue, the 双证融通 handbook
searchable by certificate or course, and the member regions. Verification stays at /verify
(node.credentials.router). Every page reads through the same services as the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from node.deps import CtxDep, SessionDep, public
from node.portal.web import page_principal, render
from node.rules.handbook import handbook_entries
from node.standards.service import build_catalogue, rules_for_engine

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])

SearchText = Annotated[str, Query(max_length=100)]


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep) -> HTMLResponse:
    page_principal(request, session, required=False)
    return render(request, "home.html", title="home.title")


def _matches(query: str, *texts: str | None) -> bool:
    q = query.casefold()
    return any(q in (text or "").casefold() for text in texts)


@router.get("/standards", response_class=HTMLResponse)
def standards(request: Request, session: SessionDep, q: SearchText = "") -> HTMLResponse:
    """Programmes (with their courses) and certificates in force today, filtered by `q`."""
    page_principal(request, session, required=False)
    catalogue = build_catalogue(session)
    query = q.strip()
    institutions = catalogue.institutions
    programmes = []
    for p in sorted(catalogue.programmes.values(), key=lambda p: p.code):
        courses = sorted(p.courses.values(), key=lambda c: c.code)
        inst = institutions.get(p.institution_code)
        if query and not _matches(query, p.name, p.code, inst.name if inst else None) and not any(
                _matches(query, c.name, c.code) for c in courses):
            continue
        programmes.append({"code": p.code, "name": p.name, "level": p.level,
                           "institution": inst.name if inst else p.institution_code,
                           "graduation_credits": p.graduation_credits, "courses": courses})
    certificates = [c for c in sorted(catalogue.certificates.values(), key=lambda c: c.code)
                    if not query or _matches(query, c.name, c.code, c.issuer_name)]
    return render(request, "standards.html", title="standards.title", q=query, programmes=programmes,
                  certificates=certificates)


@router.get("/handbook", response_class=HTMLResponse)
def handbook(request: Request, session: SessionDep, q: SearchText = "",
             programme: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    """The 双证融通 handbook: which courses a certificate converts to or exempts, per programme (the approved
    rules, rendered by the same code as the API's /api/v1/standards/handbook/{programme})."""
    page_principal(request, session, required=False)
    catalogue = build_catalogue(session)
    rules = rules_for_engine(session)
    query = q.strip()
    chosen = [catalogue.programmes[programme]] if programme in catalogue.programmes else sorted(
        catalogue.programmes.values(), key=lambda p: p.code)
    sections = []
    if query or programme:
        for prog in chosen:
            entries = handbook_entries(programme=prog, rules=rules, catalogue=catalogue)
            if query:
                entries = [e for e in entries if _matches(query, e.title, *e.sources, *e.conversions)]
            if entries:
                inst = catalogue.institutions.get(prog.institution_code)
                sections.append({"programme": prog, "institution": inst.name if inst else prog.institution_code,
                                 "entries": entries})
    programmes = sorted(catalogue.programmes.values(), key=lambda p: p.code)
    return render(request, "handbook.html", title="handbook.title", q=query, programme=programme,
                  programmes=programmes, sections=sections, searched=bool(query or programme),
                  found=sum(len(s["entries"]) for s in sections))


@router.get("/members", response_class=HTMLResponse)
def members(request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    """The regions of the federation, as the membership document this node holds names them."""
    from federation.membership import held_document

    page_principal(request, session, required=False)
    document = held_document(session)
    rows = sorted(document.members, key=lambda m: m.node_id) if document else []
    return render(request, "members.html", title="members.title", members=rows, this_node=ctx.node_id,
                  version=document.version if document else None)
