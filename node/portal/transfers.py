"""The learner's cross-region pages (issue 15, item 1; docs/agreements.md "Consent and transfer").

At the **origin** (where the records are): grant a consent for another region (the records or categories, the
purpose, how long, and the holder binding the destination gave), see each consent with its receipts and download
the signed document, revoke it. At the **destination** (where the learner now lives): get a holder binding for
an origin, present the consent document (pasted or uploaded), and follow the transfer step by step — consent
checked, records pulled, checkpoint and credentials verified, recognised under the agreement (or waiting for a
reviewer), the signed receipt sent to the origin.

Every action calls the API's own route functions (federation.transfers.router: `grant`, `my_consents`,
`my_consent`, `revoke`, `intent`, `ask_transfer`, `my_transfers`, `my_transfer`), so the checks, the ledger
events and the audit are the API's."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from federation.transfers.consent import CATEGORIES, MAX_CONSENT_DAYS
from federation.transfers.router import (
    ConsentCreate,
    IntentCreate,
    TransferCreate,
    ask_transfer,
    grant,
    intent,
    my_consent,
    my_consents,
    my_transfer,
    my_transfers,
    revoke,
)
from node.archive.service import learner_archive
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError
from node.middleware import unstorable_json_text
from node.models.types import Int64
from node.portal.web import check_csrf, page_principal, redirect, render
from node.roles import Role

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
LEARNER = frozenset({Role.LEARNER})
Field = Annotated[str, Form()]
MAX_CONSENT_TEXT = 256 * 1024  # a consent document is ~2 KiB; a pasted or uploaded one may not be more than this
# The categories offered on the form (the credential groups; the API takes the achievement kinds too).
FORM_CATEGORIES = ("degree", "certificate", "training", "other")
# The verification checks of a released credential (node.credentials.verify, federation.transfers.transfer).
CHECKS = ("consent", "dates", "format", "inclusion", "issuer", "ledger_event", "signature", "status", "subject",
          "checkpoint", "consistency")
# Which field of the consent form a refusal is about.
_CONSENT_FIELDS = {"unknown_destination": "destination", "consent_scope_empty": "records",
                   "invalid_expiry": "valid_days", "not_found": "records"}


def _learner(request: Request, session) -> Principal:
    principal = page_principal(request, session, roles=LEARNER)
    assert principal is not None
    return principal


def _members(session, ctx) -> list[Any]:
    """The other member regions, as the membership this node holds names them."""
    from federation.membership import held_document

    document = held_document(session)
    if document is None:
        return []
    return sorted((m for m in document.members if m.node_id != ctx.node_id), key=lambda m: m.node_id)


def _member_names(session, ctx) -> dict[str, Any]:
    return {m.node_id: m for m in _members(session, ctx)}


# Refusals with a text of their own on these pages (docs/errors.md, "Consent and transfer"); any other code
# shows the portal's `err.<code>` (or its general message), never the API's English.
CODES = frozenset({"consent_unknown", "consent_invalid", "consent_revoked", "consent_expired", "consent_scope_empty",
                   "invalid_expiry", "already_revoked", "unknown_destination", "unknown_origin",
                   "wrong_destination", "binding_mismatch", "no_agreement", "checkpoint_invalid",
                   "checkpoint_inconsistent", "release_invalid", "unknown_peer", "peer_unavailable", "not_found",
                   "validation_error"})


def _error_key(exc: NodeError) -> str:
    return f"transfer.err.{exc.code}" if exc.code in CODES else f"err.{exc.code}"


def _safe_id(consent_id: str) -> bool:
    return 0 < len(consent_id) <= 64 and consent_id.isprintable()


# -- consents (this region is the origin) ---------------------------------------------------------------


@router.get("/me/consents", response_class=HTMLResponse)
def consents_page(request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    rows = my_consents(session=session, me=me)
    return render(request, "learner/consents.html", title="consent.list_title", consents=list(reversed(rows)),
                  members=_member_names(session, ctx))


def _consent_form(request: Request, session, ctx, me: Principal, *, values: dict, errors: dict[str, str],
                  status: int = 200) -> HTMLResponse:
    archive = learner_archive(session, ctx, me.id)
    records = [item for group in archive.groups for item in group.items if item.status == "deposited"]
    return render(request, "learner/consent_new.html", status=status, title="consent.new_title", values=values,
                  errors=errors, members=_members(session, ctx), records=records, categories=FORM_CATEGORIES,
                  max_days=MAX_CONSENT_DAYS)


@router.get("/me/consents/new", response_class=HTMLResponse)
def new_consent_page(request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    return _consent_form(request, session, ctx, me, values={"valid_days": "90", "records": [], "categories": []},
                         errors={})


@router.post("/me/consents/new", response_class=HTMLResponse)
def new_consent_submit(request: Request, ctx: CtxDep, session: SessionDep, destination: Field = "",
                       purpose: Field = "", valid_days: Field = "", holder_binding: Field = "",
                       records: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
                       categories: Annotated[list[str], Form()] = [],  # noqa: B006
                       csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    values = {"destination": destination.strip(), "purpose": purpose.strip(), "valid_days": valid_days.strip(),
              "holder_binding": holder_binding.strip(), "records": records[:1000], "categories": categories[:20]}
    errors: dict[str, str] = {}
    if not values["destination"]:
        errors["destination"] = "consent.err.destination_missing"
    chosen: list[int] = []
    for value in values["records"]:
        if not value.isdigit() or len(value) > 18:
            errors["records"] = "consent.err.records"
            break
        chosen.append(int(value))
    if not chosen and not values["categories"]:
        errors.setdefault("records", "consent.err.scope_empty")
    if any(c not in CATEGORIES for c in values["categories"]):
        errors.setdefault("records", "consent.err.scope_empty")
    if not values["purpose"]:
        errors["purpose"] = "consent.err.purpose_missing"
    elif len(values["purpose"]) > 500:
        errors["purpose"] = "consent.err.purpose_long"
    days = values["valid_days"]
    if not days.isdigit() or not 1 <= int(days) <= MAX_CONSENT_DAYS:
        errors["valid_days"] = "consent.err.valid_days"
    binding = values["holder_binding"]
    if not binding:
        errors["holder_binding"] = "consent.err.binding_missing"
    elif not 8 <= len(binding) <= 128 or not binding.isprintable():
        errors["holder_binding"] = "consent.err.binding_invalid"
    if errors:
        return _consent_form(request, session, ctx, me, values=values, errors=errors, status=400)
    try:
        body = ConsentCreate(destination=values["destination"][:64], achievement_ids=chosen,
                             categories=values["categories"], purpose=values["purpose"], valid_days=int(days),
                             holder_binding=binding)
    except ValidationError:
        return _consent_form(request, session, ctx, me, values=values, errors={"": "error.bad_request"}, status=400)
    try:
        view = grant(body=body, ctx=ctx, session=session, me=me)
    except NodeError as exc:
        session.rollback()
        field = _CONSENT_FIELDS.get(exc.code, "")
        key = "consent.err.records_unknown" if exc.code == "not_found" else _error_key(exc)
        return _consent_form(request, session, ctx, me, values=values, errors={field: key},
                             status=exc.status_code if 400 <= exc.status_code < 500 else 400)
    return redirect(request, f"/me/consents/{view['consent_id']}?granted=1")


def _consent_view(request: Request, session, me: Principal, consent_id: str) -> dict:
    if not _safe_id(consent_id):
        from node.errors import NotFound

        raise NotFound("no such consent")
    return my_consent(consent_id=consent_id, session=session, me=me)


@router.get("/me/consents/{consent_id}", response_class=HTMLResponse)
def consent_page(consent_id: str, request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    view = _consent_view(request, session, me, consent_id)
    notice = next((f"consent.notice.{f}" for f in ("granted", "revoked") if request.query_params.get(f) == "1"),
                  None)
    return _consent_detail(request, session, ctx, me, view, notice=notice, errors={})


def _consent_detail(request: Request, session, ctx, me: Principal, view: dict, *, notice: str | None,
                    errors: dict[str, str], status: int = 200) -> HTMLResponse:
    archive = learner_archive(session, ctx, me.id)
    titles = {item.id: item.title for group in archive.groups for item in group.items}
    return render(request, "learner/consent.html", status=status, title="consent.detail_title", consent=view,
                  notice=notice, members=_member_names(session, ctx), errors=errors, titles=titles,
                  document_text=json.dumps(view["document"], ensure_ascii=False, indent=2))


@router.get("/me/consents/{consent_id}/consent.json")
def consent_file(consent_id: str, request: Request, session: SessionDep) -> Response:
    """The signed consent document, to take to the destination region."""
    me = _learner(request, session)
    view = _consent_view(request, session, me, consent_id)
    name = view["consent_id"].rsplit(":", 1)[-1][:40]  # urn:uuid:<uuid>
    return JSONResponse(view["document"], media_type="application/ld+json", headers={
        "Content-Disposition": f'attachment; filename="consent-{name}.jsonld"', "Cache-Control": "no-store"})


@router.post("/me/consents/{consent_id}/revoke", response_class=HTMLResponse)
def revoke_submit(consent_id: str, request: Request, ctx: CtxDep, session: SessionDep,
                  csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    view = _consent_view(request, session, me, consent_id)
    try:
        revoke(consent_id=view["consent_id"], session=session, me=me)
    except NodeError as exc:
        session.rollback()
        view = _consent_view(request, session, me, consent_id)
        return _consent_detail(request, session, ctx, me, view, notice=None, errors={"": _error_key(exc)},
                               status=exc.status_code)
    return redirect(request, f"/me/consents/{view['consent_id']}?revoked=1")


# -- transfers (this region is the destination) -----------------------------------------------------------


@router.get("/me/transfers", response_class=HTMLResponse)
def transfers_page(request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    rows = my_transfers(session=session, me=me)
    return render(request, "learner/transfers.html", title="transfer.list_title", transfers=list(reversed(rows)),
                  members=_member_names(session, ctx))


def _transfer_form(request: Request, session, ctx, *, values: dict, errors: dict[str, str],
                   binding: dict | None = None, status: int = 200) -> HTMLResponse:
    return render(request, "learner/transfer_new.html", status=status, title="transfer.new_title", values=values,
                  errors=errors, binding=binding, members=_members(session, ctx))


@router.get("/me/transfers/new", response_class=HTMLResponse)
def new_transfer_page(request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    _learner(request, session)
    return _transfer_form(request, session, ctx, values={}, errors={})


@router.post("/me/transfers/binding", response_class=HTMLResponse)
def binding_submit(request: Request, ctx: CtxDep, session: SessionDep, origin: Field = "",
                   csrf: Field = "") -> HTMLResponse:
    """Step 1: a holder binding for `origin`, shown once on this page (to be pasted into the consent there)."""
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    values = {"origin": origin.strip()}
    if not values["origin"]:
        return _transfer_form(request, session, ctx, values=values, status=400,
                              errors={"origin": "transfer.err.origin_missing"})
    try:
        made = intent(body=IntentCreate(origin=values["origin"][:64]), ctx=ctx, session=session, me=me)
    except NodeError as exc:
        session.rollback()
        return _transfer_form(request, session, ctx, values=values, errors={"origin": _error_key(exc)},
                              status=exc.status_code if 400 <= exc.status_code < 500 else 400)
    return _transfer_form(request, session, ctx, values=values, errors={}, binding=made)


def _consent_document(text: str) -> dict:
    """The pasted or uploaded consent as a JSON object; ValueError with a message key when it is not one."""
    if len(text) > MAX_CONSENT_TEXT:
        raise ValueError("transfer.err.consent_too_large")
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError("transfer.err.consent_json") from None
    except ValueError:
        raise ValueError("transfer.err.consent_json") from None
    if not isinstance(document, dict):
        raise ValueError("transfer.err.consent_json")
    try:
        if unstorable_json_text(document) is not None:
            raise ValueError("transfer.err.consent_json")
    except ValueError:
        raise ValueError("transfer.err.consent_json") from None
    return document


@router.post("/me/transfers/new", response_class=HTMLResponse)
def new_transfer_submit(request: Request, ctx: CtxDep, session: SessionDep, consent: Field = "",
                        csrf: Field = "", consent_file: Annotated[UploadFile | None, File()] = None) -> Response:
    """Step 2: present the consent: the destination checks it, pulls and verifies the records, recognises them."""
    check_csrf(request, {"csrf": csrf})
    me = _learner(request, session)
    text = consent.strip()
    if not text and consent_file is not None and consent_file.filename:
        raw = consent_file.file.read(MAX_CONSENT_TEXT + 1)
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return _transfer_form(request, session, ctx, values={}, status=400,
                                  errors={"consent": "transfer.err.consent_json"})
    if not text:
        return _transfer_form(request, session, ctx, values={}, status=400,
                              errors={"consent": "transfer.err.consent_missing"})
    try:
        document = _consent_document(text)
    except ValueError as exc:
        return _transfer_form(request, session, ctx, values={"consent": text[:MAX_CONSENT_TEXT]}, status=400,
                              errors={"consent": str(exc)})
    # The transfer runs in short transactions of its own around the peer request (federation.transfers.transfer):
    # end the one that reading the session began (on SQLite an open one would hold the write lock).
    session.rollback()
    try:
        view = ask_transfer(body=TransferCreate(consent=document), ctx=ctx, response=Response(), me=me)
    except NodeError as exc:
        session.rollback()
        return _transfer_form(request, session, ctx, values={"consent": text}, errors={"consent": _error_key(exc)},
                              status=exc.status_code if 400 <= exc.status_code < 500 else 400)
    return redirect(request, f"/me/transfers/{view['id']}?requested=1")


def _transfer_steps(view: dict) -> list[dict[str, Any]]:
    """The steps of docs/agreements.md "Consent and transfer" as this destination saw them."""
    items = view["items"]
    verification = view.get("verification") or {}
    checkpoint = verification.get("checkpoint") or {}
    verified = [i for i in items if i["state"] not in ("credential_invalid", "credential_revoked")]
    waiting = [i for i in items if i["state"] == "awaiting_review"]
    steps = [
        {"key": "transfer.step.consent", "done": True, "detail": view["consent_id"]},
        {"key": "transfer.step.pulled", "done": bool(view.get("release_receipt")),
         "detail_key": "transfer.step.pulled_detail", "n": len(items), "origin": view["origin"]},
        {"key": "transfer.step.checkpoint", "done": bool(checkpoint),
         "detail_key": "transfer.step.checkpoint_detail", "size": checkpoint.get("size"),
         "root": str(checkpoint.get("root") or "")[:16]},
        {"key": "transfer.step.verified", "done": True, "detail_key": "transfer.step.verified_detail",
         "n": len(verified), "of": len(items)},
        {"key": "transfer.step.recognised", "done": not waiting, "detail_key": "transfer.step.recognised_detail",
         "credits": view["recognised_credits"], "waiting": len(waiting)},
        {"key": "transfer.step.receipt", "done": view.get("receipt") is not None,
         "detail": (view.get("receipt") or {}).get("id")},
    ]
    current = next((s for s in steps if not s["done"]), None)
    if current is not None:
        current["current"] = True
    return steps


@router.get("/me/transfers/{transfer_id}", response_class=HTMLResponse)
def transfer_page(transfer_id: Int64, request: Request, ctx: CtxDep, session: SessionDep) -> HTMLResponse:
    me = _learner(request, session)
    view = my_transfer(transfer_id=transfer_id, session=session, me=me)
    return render(request, "learner/transfer.html", title="transfer.detail_title", transfer=view,
                  steps=_transfer_steps(view), members=_member_names(session, ctx), checks_known=CHECKS,
                  notice="transfer.notice.requested" if request.query_params.get("requested") == "1" else None)


@router.get("/me/transfers/{transfer_id}/receipt.json")
def receipt_file(transfer_id: Int64, request: Request, session: SessionDep) -> Response:
    """This region's signed receipt of the transfer (sent to the origin), saved as a file."""
    me = _learner(request, session)
    view = my_transfer(transfer_id=transfer_id, session=session, me=me)
    if view.get("receipt") is None:
        from node.errors import NotFound

        raise NotFound("no receipt yet")
    return JSONResponse(view["receipt"], media_type="application/ld+json", headers={
        "Content-Disposition": f'attachment; filename="transfer-receipt-{transfer_id}.jsonld"',
        "Cache-Control": "no-store"})

