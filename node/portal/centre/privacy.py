"""The centre's erasure page (node administrators, docs/privacy.md): ask to erase a person's personal data
(account number, basis, the document it rests on, the reason), and confirm or withdraw what another
administrator asked. Through the API's own route functions (node.privacy.router): maker-checker, the rules an
erasure waits for and every audit entry are the API's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError
from node.portal.centre.common import FormField as Field
from node.portal.centre.common import error_key, page, staff_page
from node.portal.web import check_csrf, redirect
from node.privacy import router as erasure_api
from node.privacy.erasure import BASES
from node.roles import Role

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
NODE_ADMIN = frozenset({Role.NODE_ADMIN})
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
_FIELD_OF = {"learner_erased": "account_no", "not_found": "account_no", "erasure_open_work": "account_no",
             "duplicate": "account_no", "erasure_not_allowed": "basis", "legal_reference_required": "legal_reference",
             "reason_required": "reason"}


def _page(request: Request, session: Session, me: Principal, *, values: dict[str, str], errors: dict[str, str],
          status: int = 200) -> HTMLResponse:
    rows = erasure_api.list_erasures(session=session, admin=me, state=None)
    return page(request, "centre/erasures.html", me, status=status, title="centre.erase.title", values=values,
                errors=errors, bases=BASES, waiting=[r for r in rows if r.state == "requested"],
                decided=[r for r in rows if r.state != "requested"], me_id=me.id,
                notice={"requested": "centre.erase.requested", "done": "centre.erase.done",
                        "cancelled": "centre.erase.cancelled"}.get(request.query_params.get("done", "")))


@router.get("/centre/erasures", response_class=HTMLResponse)
def erasures_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = staff_page(request, session, NODE_ADMIN)
    return _page(request, session, me, values={"basis": "learner_request"}, errors={})


@router.post("/centre/erasures", response_class=HTMLResponse)
def erasure_ask_submit(request: Request, session: SessionDep, ctx: CtxDep, account_no: Field = "",
                       basis: Field = "", legal_reference: Field = "", reason: Field = "",
                       csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, NODE_ADMIN)
    values = {"account_no": account_no.strip()[:20], "basis": basis[:30], "legal_reference": legal_reference[:300],
              "reason": reason.strip()[:1000]}
    errors: dict[str, str] = {}
    if not (values["account_no"].isdigit()):
        errors["account_no"] = "centre.erase.err_account"
    if basis not in BASES:
        errors["basis"] = "centre.erase.err_basis"
    if not values["reason"]:
        errors["reason"] = "centre.err.reason_missing"
    if len(legal_reference) > 300:
        errors["legal_reference"] = "centre.erase.err_reference_long"
    if errors:
        return _page(request, session, me, values=values, errors=errors, status=400)
    try:
        body = erasure_api.ErasureCreate(account_no=values["account_no"], basis=basis,  # type: ignore[arg-type]
                                         legal_reference=legal_reference.strip() or None, reason=values["reason"])
    except ValidationError:
        return _page(request, session, me, values=values, errors={"account_no": "centre.erase.err_account"},
                     status=400)
    try:
        erasure_api.ask_erasure(body=body, ctx=ctx, session=session, admin=me)
    except NodeError as exc:
        return _page(request, session, me, values=values, status=exc.status_code,
                     errors={_FIELD_OF.get(exc.code, "account_no"): error_key(exc)})
    return redirect(request, "/centre/erasures?done=requested")


@router.post("/centre/erasures/{request_id}", response_class=HTMLResponse)
def erasure_step_submit(request_id: Id, request: Request, session: SessionDep, ctx: CtxDep, tasks: BackgroundTasks,
                        action: Field = "", version: Field = "", csrf: Field = "") -> Response:
    """Confirm (a second administrator) or withdraw a waiting request."""
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, NODE_ADMIN)
    key = f"step_{request_id}"
    if action not in ("confirm", "cancel") or not (version.isdigit() and len(version) < 10):
        return _page(request, session, me, values={"basis": "learner_request"},
                     errors={key: "centre.erase.err_step"}, status=400)
    step = erasure_api.ErasureStep(version=int(version))
    try:
        if action == "confirm":
            erasure_api.confirm_erasure(request_id=request_id, body=step, ctx=ctx, session=session, admin=me,
                                        tasks=tasks)
        else:
            erasure_api.cancel_erasure(request_id=request_id, body=step, session=session, admin=me)
    except NodeError as exc:
        if exc.code == "not_found":
            raise
        return _page(request, session, me, values={"basis": "learner_request"}, status=exc.status_code,
                     errors={key: error_key(exc)})
    return redirect(request, f"/centre/erasures?done={'done' if action == 'confirm' else 'cancelled'}")
