"""The learner's conversions (issue 15, item 1): what-if — pick a programme from a searchable list and see which of
one's courses would be converted or exempted and why — then request the conversion and follow it (list, and a
page per request with each step, withdraw before review, one appeal).

Every read and write goes through the API's own route functions (node.conversion.router: `what_if`,
`request_conversion`, `my_conversions`, `my_conversion`, `withdraw`, `appeal`, `my_statement`), so the engine,
the states and the audit are the API's; the page turns the answers into a page. The explanation is the
engine's: Chinese as stored (`explanation_zh`), English written from the same structured explanation
(node.rules.explain_en)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from node.conversion.router import (
    Appeal,
    MyRequestCreate,
    RequestView,
    Withdraw,
    appeal,
    my_conversion,
    my_conversions,
    my_statement,
    request_conversion,
    what_if,
    withdraw,
)
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError
from node.models.types import Int64
from node.portal.web import check_csrf, page_language, page_principal, redirect, render
from node.roles import Role
from node.rules.explain_en import explain_en, explain_not_applicable_en, grade_en
from node.standards.service import build_catalogue

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
LEARNER = frozenset({Role.LEARNER})
Field = Annotated[str, Form()]
SearchText = Annotated[str, Query(max_length=100)]
ProgrammeCode = Annotated[str, Query(max_length=64)]
# The steps a request goes through (docs/conversion.md §4), and the states at which each is done.
_STEP_DONE = {
    "requested": {"proposed", "confirmed", "decided", "appealed", "closed", "withdrawn"},
    "confirmed": {"confirmed", "decided", "appealed", "closed"},
    "reviewed": {"decided", "appealed", "closed"},
}


def _learner(request: Request, session) -> Principal:
    principal = page_principal(request, session, roles=LEARNER)
    assert principal is not None
    return principal


# Refusals with a text of their own on these pages; any other code shows the portal's `err.<code>` (or its
# general message), never the API's English.
CODES = frozenset({"not_found", "conversion_nothing_proposed", "conversion_illegal_transition", "stale_version",
                   "already_appealed", "conversion_nothing_to_appeal", "reason_required"})


def _key_of(exc: NodeError) -> str:
    return f"conv.err.{exc.code}" if exc.code in CODES else f"err.{exc.code}"


def _matches(query: str, *texts: str | None) -> bool:
    q = query.casefold()
    return any(q in (text or "").casefold() for text in texts)


def _programmes(session, query: str) -> list[dict]:
    """The programmes in force today whose name, code or institution matches `query` (all without one)."""
    catalogue = build_catalogue(session)
    out = []
    for p in sorted(catalogue.programmes.values(), key=lambda p: p.code):
        inst = catalogue.institutions.get(p.institution_code)
        inst_name = inst.name if inst else p.institution_code
        if query and not _matches(query, p.name, p.code, inst_name):
            continue
        out.append({"code": p.code, "name": p.name, "level": p.level, "institution": inst_name,
                    "graduation_credits": p.graduation_credits})
    return out


def _explained(lang: str, evaluation: dict) -> dict:
    """The what-if answer with each proposal's and each refusal's explanation in the page's language."""
    proposals = []
    for p in evaluation.get("proposals") or ():
        text = p.get("explanation_zh", "") if lang == "zh" else explain_en(
            target=p["target"], credits=p["credits"], recorded_grade=p["recorded_grade"],
            explanation=p["explanation"])
        proposals.append({**p, "text": text, "grade": p["recorded_grade"] if lang == "zh"
                          else grade_en(p["recorded_grade"])})
    not_applicable = []
    for n in evaluation.get("not_applicable") or ():
        if n.get("reason") in ("out_of_scope", "superseded"):
            continue  # rules for other programmes, older versions: not about this learner's courses
        text = n.get("explanation_zh", "") if lang == "zh" else explain_not_applicable_en(n)
        not_applicable.append({**n, "text": text})
    return {"proposals": proposals, "not_applicable": not_applicable,
            "expiring": evaluation.get("expiring") or (), "credits_total": evaluation.get("credits_total"),
            "on": evaluation.get("on")}


def _what_if_page(request: Request, session, ctx, me: Principal, *, q: str, programme: str,
                  errors: dict[str, str], status: int = 200) -> HTMLResponse:
    lang = page_language(request)
    every = _programmes(session, "")
    programmes = [p for p in every if not q or _matches(q, p["name"], p["code"], p["institution"])]
    chosen = next((p for p in every if p["code"] == programme), None) if programme else None
    result = None
    if chosen is not None:
        try:
            result = _explained(lang, what_if(session=session, ctx=ctx, me=me, programme=programme, on=None))
        except NodeError as exc:
            session.rollback()
            errors = {**errors, "programme": _key_of(exc)}
    elif programme and "programme" not in errors:
        errors = {**errors, "programme": "whatif.err.unknown_programme"}
        status = 404
    return render(request, "learner/what_if.html", status=status, title="whatif.title", q=q,
                  programmes=programmes, programme=programme, chosen=chosen, result=result, errors=errors)


@router.get("/me/what-if", response_class=HTMLResponse)
def what_if_page(request: Request, ctx: CtxDep, session: SessionDep, q: SearchText = "",
                 programme: ProgrammeCode = "") -> HTMLResponse:
    """Search the programmes; with one chosen, the engine's answer: what converts, what is exempted, why not."""
    me = _learner(request, session)
    return _what_if_page(request, session, ctx, me, q=q.strip(), programme=programme.strip(), errors={})


@router.post("/me/conversions/new", response_class=HTMLResponse)
def request_submit(request: Request, ctx: CtxDep, session: SessionDep, programme: Field = "",
                   csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    programme = programme.strip()
    try:
        body = MyRequestCreate(programme=programme)
    except ValidationError:
        return _what_if_page(request, session, ctx, me, q="", programme="",
                             errors={"programme": "whatif.err.unknown_programme"}, status=400)
    try:
        view = request_conversion(body=body, session=session, ctx=ctx, me=me)
    except NodeError as exc:
        session.rollback()
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return _what_if_page(request, session, ctx, me, q="", programme=programme,
                             errors={"programme": _key_of(exc)}, status=status)
    return redirect(request, f"/me/conversions/{view.id}?created=1")


@router.get("/me/conversions", response_class=HTMLResponse)
def conversions_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    rows = my_conversions(session=session, me=me)
    names = {p["code"]: p["name"] for p in _programmes(session, "")}
    return render(request, "learner/conversions.html", title="conv.list_title", requests=rows, names=names)


def _steps(view: RequestView) -> list[dict[str, Any]]:
    """Each step of the request (docs/conversion.md §4) with whether it is done, for the step list."""
    state = view.state
    steps = [{"key": "conv.step.requested", "done": True, "when": view.created_at.strftime("%Y-%m-%d")},
             {"key": "conv.step.confirmed", "done": state in _STEP_DONE["confirmed"]},
             {"key": "conv.step.reviewed", "done": state in _STEP_DONE["reviewed"]}]
    if state in ("appealed", "closed"):
        steps.append({"key": "conv.step.appeal", "done": state == "closed", "reason": view.appeal_reason})
    if state == "withdrawn":
        steps = steps[:1] + [{"key": "conv.step.withdrawn", "done": True}]
    current = next((s for s in steps if not s["done"]), None)
    if current is not None:
        current["current"] = True
    return steps


def _items(lang: str, view: RequestView) -> list[dict]:
    out = []
    for i in view.items:
        text = i.explanation_zh if lang == "zh" else explain_en(
            target=i.target, credits=i.credits, recorded_grade=i.recorded_grade, explanation=i.explanation)
        out.append({"item": i, "text": text, "grade": i.recorded_grade if lang == "zh" else grade_en(i.recorded_grade)})
    return out


def _detail(request: Request, session, me: Principal, request_id: int, *, errors: dict[str, str],
            status: int = 200, reason: str = "") -> HTMLResponse:
    view = my_conversion(request_id=request_id, session=session, me=me)
    names = {p["code"]: p["name"] for p in _programmes(session, "")}
    can_withdraw = view.state in ("proposed", "confirmed")
    can_appeal = view.state == "decided" and any(i.status == "rejected" for i in view.items)
    return render(request, "learner/conversion.html", status=status, title="conv.detail_title", req=view,
                  programme_name=names.get(view.programme_code, ""), items=_items(page_language(request), view),
                  steps=_steps(view), can_withdraw=can_withdraw, can_appeal=can_appeal, errors=errors,
                  reason=reason, notice=_notice(request))


def _notice(request: Request) -> str | None:
    for flag in ("created", "withdrawn", "appealed"):
        if request.query_params.get(flag) == "1":
            return f"conv.notice.{flag}"
    return None


@router.get("/me/conversions/{request_id}", response_class=HTMLResponse)
def conversion_page(request_id: Int64, request: Request, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    return _detail(request, session, me, request_id, errors={})


def _version(text: str) -> int:
    return int(text) if text.isdigit() and len(text) < 10 else -1


@router.post("/me/conversions/{request_id}/withdraw", response_class=HTMLResponse)
def withdraw_submit(request_id: Int64, request: Request, session: SessionDep, version: Field = "",
                    csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    try:
        withdraw(request_id=request_id, body=Withdraw(version=_version(version)), session=session, me=me)
    except NodeError as exc:
        session.rollback()
        if exc.status_code == 404:
            raise
        return _detail(request, session, me, request_id, errors={"": _key_of(exc)}, status=exc.status_code)
    return redirect(request, f"/me/conversions/{request_id}?withdrawn=1")


@router.post("/me/conversions/{request_id}/appeal", response_class=HTMLResponse)
def appeal_submit(request_id: Int64, request: Request, session: SessionDep, reason: Field = "",
                  version: Field = "", csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    text = reason.strip()
    if not text:
        return _detail(request, session, me, request_id, errors={"reason": "conv.err.reason_missing"}, status=400)
    if len(text) > 1000:
        return _detail(request, session, me, request_id, errors={"reason": "conv.err.reason_long"}, status=400,
                       reason=text[:1000])
    try:
        appeal(request_id=request_id, body=Appeal(version=_version(version), reason=text), session=session, me=me)
    except NodeError as exc:
        session.rollback()
        if exc.status_code == 404:
            raise
        return _detail(request, session, me, request_id, errors={"": _key_of(exc)}, status=exc.status_code,
                       reason=text)
    return redirect(request, f"/me/conversions/{request_id}?appealed=1")


@router.get("/me/conversions/{request_id}/items/{item_id}/statement.json")
def statement_file(request_id: Int64, item_id: Int64, request: Request, session: SessionDep) -> Response:
    """The signed exemption statement of an approved exemption item, as the API serves it, saved as a file."""
    me = _learner(request, session)
    document = my_statement(request_id=request_id, item_id=item_id, session=session, me=me)
    return JSONResponse(document, media_type="application/ld+json", headers={
        "Content-Disposition": f'attachment; filename="exemption-statement-{item_id}.jsonld"',
        "Cache-Control": "no-store"})
