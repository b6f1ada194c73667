"""Agreement pages for federation administrators (issue 15, journey 5): the list; propose; counter-propose; amend
an agreement in force (its terms prefilled, the changes shown term by term before they are signed and sent); the
head shown side by side with the version before it (changed terms marked with <ins>/<del>, and a table of them);
sign, suspend, terminate; the verifiable history (each version's signatures and hash, its JSON, a verification).

Every action calls the admin API's own route function (federation.agreements.router: propose, counter, amend,
sign, suspend, terminate — each audited there as `federation.agreement.<verb>`); a refused action is rolled back
and audited with its code, and the page shows the refusal in the page's language."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from federation.agreements import router as api
from federation.membership import held_document
from node.audit.service import record
from node.deposits.schemas import ACHIEVEMENT_TYPES
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import Conflict, NodeError
from node.portal.agreement_form import (
    MAPPING_FIELDS,
    AgreementForm,
    changes_from,
    form_from_document,
    parse_form,
    with_blank_rows,
)
from node.portal.agreement_terms import agreement_terms, compare_terms
from node.portal.i18n import translator
from node.portal.web import PageRefused, check_csrf, page_language, page_principal, redirect, render
from node.roles import Role

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
ADMIN = frozenset({Role.FEDERATION_ADMIN})
AgreementId = Annotated[str, Path(min_length=1, max_length=200)]
Hash = Annotated[str, Form(max_length=64)]


def _admin(request: Request, session: Any) -> Principal:
    principal = page_principal(request, session, roles=ADMIN)
    assert principal is not None
    return principal


def error_key(exc: NodeError) -> str:
    """The page text of an API refusal: the federation pages' own (fed.err.<code>), else the portal's."""
    key = f"fed.err.{exc.code}"
    return key if translator("zh").has(key) else f"err.{exc.code}"


def audit_refusal(session: Any, me: Principal, action: str, target: str | None, exc: NodeError, *,
                  target_type: str = "agreement") -> None:
    """A refused action leaves nothing behind but its audit entry (like the API's refusals)."""
    session.rollback()
    record(session, actor=me, action=action, outcome="failed", target_type=target_type,
           target_id=target[:200] if target else None, detail={"code": exc.code, "status": exc.status_code})
    session.commit()


def _partners(session: Any, me: str) -> list[dict]:
    held = held_document(session)
    return [{"node_id": m.node_id, "name_zh": m.name_zh, "name_en": m.name_en}
            for m in (held.members if held else ()) if m.node_id != me]


@router.get("/federation/agreements", response_class=HTMLResponse)
def agreements_page(request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    me = _admin(request, session)
    listed = api.list_agreements(session=session, admin=me)
    return render(request, "federation/agreements.html", title="fed.agreements.title", agreements=listed,
                  this_node=ctx.node_id, proposed=request.query_params.get("proposed"))


def _form_page(request: Request, session: Any, ctx: Any, form: AgreementForm, *, head: dict | None = None,
               status: int = 200, mode: str = "", preview: dict | None = None) -> HTMLResponse:
    """The agreement form: `mode` propose (no head), counter (a pending head) or amend (a head in force, with
    the `preview` of the changes once the form has been checked)."""
    mode = mode or ("counter" if head else "propose")
    return render(request, "federation/agreement_form.html", status=status, title=f"fed.{mode}.title", form=form,
                  head=head, mode=mode, preview=preview, partners=_partners(session, ctx.node_id),
                  types=ACHIEVEMENT_TYPES, this_node=ctx.node_id, mapping_fields=MAPPING_FIELDS)


@router.get("/federation/agreements/new", response_class=HTMLResponse)
def propose_page(request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    _admin(request, session)
    values = {"agreement": "", "title": "", "partner": "", "hpc_own": str(ctx.settings.region.hours_per_credit),
              "hpc_partner": "", "recognition": "automatic", "valid_from": "", "valid_to": "",
              "types": ["degree_course"]}
    return _form_page(request, session, ctx, AgreementForm(values, with_blank_rows([], ctx.node_id, 3), {}))


@router.post("/federation/agreements/new", response_class=HTMLResponse)
async def propose_submit(request: Request, session: SessionDep, ctx: CtxDep) -> Response:
    form = await request.form()
    check_csrf(request, form)
    me = _admin(request, session)
    page, terms = parse_form(form, me=ctx.node_id, partners=[p["node_id"] for p in _partners(session, ctx.node_id)])
    if page.errors:
        page.mappings = with_blank_rows(page.mappings, ctx.node_id, 0)
        return _form_page(request, session, ctx, page, status=400)
    try:
        view = api.propose(ctx=ctx, session=session, admin=me, draft=terms)
    except NodeError as exc:
        audit_refusal(session, me, "federation.agreement.propose", terms["agreement"], exc)
        page.errors = {"agreement" if exc.code == "agreement_exists" else "": error_key(exc)}
        return _form_page(request, session, ctx, page, status=exc.status_code)
    return redirect(request, f"/federation/agreements/{_q(view['agreement'])}?done=propose")


def _q(agreement: str) -> str:
    from urllib.parse import quote

    return quote(agreement, safe=":")


def _history(session: Any, ctx: Any, me: Principal, agreement: str) -> dict:
    """The API's view of one agreement (history and verification); an unknown one is a 404 page in the page's
    language."""
    try:
        return api.get_agreement(agreement=agreement, ctx=ctx, session=session, admin=me)
    except NodeError as exc:
        raise PageRefused(exc.status_code, error_key(exc)) from None


def _version(history: list[dict], digest: str) -> tuple[int, dict]:
    found = next(((i, v) for i, v in enumerate(history) if v["hash"] == digest), None)
    if found is None:
        raise PageRefused(404, "fed.err.version_not_found")
    return found


def _comparison(request: Request, history: list[dict], index: int) -> dict:
    """Version `history[index]` beside the version it is chained to (by hash), term by term."""
    t = translator(page_language(request))
    this = history[index]
    previous = next((v for v in history if v["hash"] == this["previous"]), None) if this["previous"] else None
    rows = compare_terms(agreement_terms(previous["document"], t) if previous else None,
                         agreement_terms(this["document"], t))
    return {"this": this, "previous": previous, "rows": rows,
            "changed": [r for r in rows if r.change != "same"]}


def _detail(request: Request, session: Any, ctx: Any, me: Principal, agreement: str, *, errors: dict | None = None,
            status: int = 200, values: dict | None = None) -> HTMLResponse:
    view = _history(session, ctx, me, agreement)
    history = view["history"]
    head = history[-1]
    in_force = next((v for v in reversed(history) if v["complete"]), None)
    verified = {v["hash"]: v for v in view["verification"]["versions"]}
    signed_by_me = ctx.node_id in (verified.get(head["hash"], {}).get("signers") or [])
    parties = head["document"].get("parties") or []
    waiting = [p for p in parties if p not in (verified.get(head["hash"], {}).get("signers") or [])]
    return render(request, "federation/agreement.html", status=status, title="fed.agreement.title",
                  page_title=agreement, agreement=agreement, q=_q(agreement), history=history, head=head,
                  in_force=in_force, verification=view["verification"], verified=verified,
                  signed_by_me=signed_by_me, waiting=waiting, this_node=ctx.node_id,
                  comparison=_comparison(request, history, len(history) - 1), errors=errors or {},
                  values=values or {}, done=request.query_params.get("done"))


@router.get("/federation/agreements/{agreement}", response_class=HTMLResponse)
def agreement_page(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    me = _admin(request, session)
    return _detail(request, session, ctx, me, agreement)


@router.get("/federation/agreements/{agreement}/compare", response_class=HTMLResponse)
def compare_page(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep,
                 hash: str = "") -> HTMLResponse:
    me = _admin(request, session)
    history = _history(session, ctx, me, agreement)["history"]
    index, _ = _version(history, hash)
    return render(request, "federation/compare.html", title="fed.compare.title", page_title=agreement,
                  agreement=agreement, q=_q(agreement), comparison=_comparison(request, history, index))


@router.get("/federation/agreements/{agreement}/verify", response_class=HTMLResponse)
def verify_page(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    me = _admin(request, session)
    view = _history(session, ctx, me, agreement)
    record(session, actor=me, action="federation.agreement.verify", target_type="agreement",
           target_id=agreement, detail={"ok": view["verification"]["ok"]})
    return render(request, "federation/verify.html", title="fed.verify.title", page_title=agreement,
                  agreement=agreement, q=_q(agreement), history=view["history"],
                  verification=view["verification"],
                  verified={v["hash"]: v for v in view["verification"]["versions"]})


@router.get("/federation/agreements/{agreement}/versions/{digest}.json")
def version_document(agreement: AgreementId, digest: Annotated[str, Path(max_length=64)], request: Request,
                     session: SessionDep, ctx: CtxDep) -> Response:
    """One version's signed document, as the parties hold it (to verify it anywhere)."""
    me = _admin(request, session)
    _, version = _version(_history(session, ctx, me, agreement)["history"], digest)
    body = json.dumps(version["document"], ensure_ascii=False, indent=2, sort_keys=True)
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="agreement-v{version["version"]}-{digest[:12]}.json"',
        "Cache-Control": "no-store"})


# -- counter-proposal -----------------------------------------------------------------------------------------


@router.get("/federation/agreements/{agreement}/counter", response_class=HTMLResponse)
def counter_page(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    me = _admin(request, session)
    head = _history(session, ctx, me, agreement)["history"][-1]
    return _form_page(request, session, ctx, form_from_document(head["document"], me=ctx.node_id), head=head)


async def _posted_changes(agreement: str, request: Request, session: Any, ctx: Any) -> tuple:
    """A posted counter-proposal or amendment read against the version it was made from (`base`, else the
    latest): (form, admin, history, base, that version, the parsed page, its changes — empty when the page has
    errors, "no changes" being one; the page's mapping rows then get their blank rows back)."""
    form = await request.form()
    check_csrf(request, form)
    me = _admin(request, session)
    history = _history(session, ctx, me, agreement)["history"]
    base = str(form.get("base") or "")[:64]
    head = next((v for v in history if v["hash"] == base), history[-1])
    page, terms = parse_form(form, me=ctx.node_id, partners=[], fixed=head["document"])
    changes: dict = {}
    if not page.errors:
        changes = changes_from(head["document"], terms)
        if not changes:
            page.errors = {"": "fed.err.no_changes"}
    if page.errors:
        page.mappings = with_blank_rows(page.mappings, ctx.node_id, 0)
    return form, me, history, base, head, page, changes


@router.post("/federation/agreements/{agreement}/counter", response_class=HTMLResponse)
async def counter_submit(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep) -> Response:
    _form, me, history, base, head, page, changes = await _posted_changes(agreement, request, session, ctx)
    if page.errors:
        return _form_page(request, session, ctx, page, head=head, status=400)
    try:
        api.counter(agreement=agreement, request=api.Change(base=_hash_or_refuse(base), changes=changes), ctx=ctx,
                    session=session, admin=me)
    except NodeError as exc:
        audit_refusal(session, me, "federation.agreement.counter", agreement, exc)
        page.errors = {"": error_key(exc)}
        return _form_page(request, session, ctx, page, head=history[-1], status=exc.status_code)
    return redirect(request, f"/federation/agreements/{_q(agreement)}?done=counter")


# -- sign, suspend, terminate ---------------------------------------------------------------------------------


def _act(request: Request, session: Any, ctx: Any, me: Principal, agreement: str, verb: str, call: Any,
         field: str = "") -> Response:
    try:
        call()
    except NodeError as exc:
        audit_refusal(session, me, f"federation.agreement.{verb}", agreement, exc)
        return _detail(request, session, ctx, me, agreement, errors={field: error_key(exc)},
                       status=exc.status_code)
    return redirect(request, f"/federation/agreements/{_q(agreement)}?done={verb}")


def _hash_or_refuse(value: str) -> str:
    """A version hash from a form; anything else is the API's `stale_base` (the page showed another version)."""
    if len(value) != 64:
        raise Conflict("the form names no current version", code="stale_base")
    return value


@router.post("/federation/agreements/{agreement}/sign", response_class=HTMLResponse)
def sign_submit(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep, hash: Hash = "",
                csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _admin(request, session)
    return _act(request, session, ctx, me, agreement, "sign", lambda: api.sign(
        agreement=agreement, request=api.SignRequest(hash=_hash_or_refuse(hash)), ctx=ctx, session=session,
        admin=me))


@router.post("/federation/agreements/{agreement}/suspend", response_class=HTMLResponse)
def suspend_submit(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep, base: Hash = "",
                   csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _admin(request, session)
    return _act(request, session, ctx, me, agreement, "suspend", lambda: api.suspend(
        agreement=agreement, request=api.Base(base=_hash_or_refuse(base)), ctx=ctx, session=session, admin=me))


@router.post("/federation/agreements/{agreement}/terminate", response_class=HTMLResponse)
def terminate_submit(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep, base: Hash = "",
                     confirm: Annotated[str, Form(max_length=10)] = "",
                     csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _admin(request, session)
    if confirm != "yes":
        return _detail(request, session, ctx, me, agreement, errors={"confirm": "fed.err.confirm_terminate"},
                       status=400)
    return _act(request, session, ctx, me, agreement, "terminate", lambda: api.terminate(
        agreement=agreement, request=api.Base(base=_hash_or_refuse(base)), ctx=ctx, session=session, admin=me),
        field="")


# -- amend an agreement in force ------------------------------------------------------------------------------


def _amendable(session: Any, ctx: Any, me: Principal, agreement: str) -> dict:
    """The head, if it can be amended (signed by every party and not terminated); else the API's refusal as a
    page (409)."""
    head = _history(session, ctx, me, agreement)["history"][-1]
    if not head["complete"]:
        raise PageRefused(409, "fed.err.agreement_pending")
    if head["status"] == "terminated":
        raise PageRefused(409, "fed.err.agreement_terminated")
    return head


def _preview_token(base: str, changes: dict) -> str:
    """Binds a confirmation to the changes that were shown (and to the version they change)."""
    text = json.dumps({"base": base, "changes": changes}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _preview(request: Request, head: dict, changes: dict, me: str) -> dict:
    """The amended version beside the version in force, term by term, as the agreement page shows a version
    beside the one before it (federation/_diff.html); the new version has no hash until it is signed."""
    t = translator(page_language(request))
    document = {**head["document"], **changes, "status": "active"}
    rows = compare_terms(agreement_terms(head["document"], t), agreement_terms(document, t))
    this = {"version": head["version"] + 1, "proposer": me, "hash": ""}
    return {"this": this, "previous": head, "rows": rows, "changed": [r for r in rows if r.change != "same"],
            "token": _preview_token(head["hash"], changes)}


@router.get("/federation/agreements/{agreement}/amend", response_class=HTMLResponse)
def amend_page(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    me = _admin(request, session)
    head = _amendable(session, ctx, me, agreement)
    return _form_page(request, session, ctx, form_from_document(head["document"], me=ctx.node_id), head=head,
                      mode="amend")


@router.post("/federation/agreements/{agreement}/amend", response_class=HTMLResponse)
async def amend_submit(agreement: AgreementId, request: Request, session: SessionDep, ctx: CtxDep) -> Response:
    """First post: the changes shown beside the version in force, with a confirmation button. A confirmed post
    whose changes are the ones shown: the API's amend (signed by this node, sent to the other parties)."""
    form, me, history, base, head, page, changes = await _posted_changes(agreement, request, session, ctx)
    if page.errors:
        return _form_page(request, session, ctx, page, head=head, mode="amend", status=400)
    preview = _preview(request, head, changes, ctx.node_id)
    confirmed = form.get("confirm") == "yes" and form.get("preview") == preview["token"]
    if not confirmed:  # show the changes first (again, if the form changed since they were shown)
        page.mappings = with_blank_rows(page.mappings, ctx.node_id, 0)
        if form.get("confirm") == "yes":
            page.errors = {"": "fed.err.preview_changed"}
        return _form_page(request, session, ctx, page, head=head, mode="amend", preview=preview,
                          status=400 if page.errors else 200)
    try:
        api.amend(agreement=agreement, request=api.Change(base=_hash_or_refuse(base), changes=changes), ctx=ctx,
                  session=session, admin=me)
    except NodeError as exc:
        audit_refusal(session, me, "federation.agreement.amend", agreement, exc)
        page.errors = {"": error_key(exc)}
        page.mappings = with_blank_rows(page.mappings, ctx.node_id, 0)
        return _form_page(request, session, ctx, page, head=history[-1], mode="amend", status=exc.status_code)
    return redirect(request, f"/federation/agreements/{_q(agreement)}?done=amend")
