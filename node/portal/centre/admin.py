"""The centre's administration pages: the audit log with filters and keyset paging (auditors), organisations and
staff accounts with their roles (node administrators).

Through the API's own route functions (node.audit.router, node.org.router): the audit log's read is itself
audited (`audit.read`), every change and every refusal is audited by the route, the organisation kinds and the
roles a kind may hold are the API's rules. A form's bad input comes back next to its field."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from node.audit import router as audit_api
from node.deps import Principal, SessionDep, public
from node.errors import NodeError
from node.org import router as org_api
from node.org.schemas import OrganisationCreate, RolesChange, StaffCreate
from node.portal.centre.common import FormField as Field
from node.portal.centre.common import error_key, page, staff_page
from node.portal.web import check_csrf, redirect
from node.roles import ALL_STAFF_ROLES, ROLE_ORGANISATION_KINDS, Role

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
AUDITOR = frozenset({Role.AUDITOR})
NODE_ADMIN = frozenset({Role.NODE_ADMIN})
OUTCOMES = ("ok", "denied", "failed", "not_found")
ORG_KINDS = ("centre", "branch", "outlet", "institution")
STAFF_ROLES = tuple(sorted(ALL_STAFF_ROLES))
PAGE_SIZE = 50
RoleFields = Annotated[list[str] | None, Form()]
Username = Annotated[str, Path(min_length=3, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")]


def _clean(value: str, limit: int) -> str | None:
    """A filter's text: None if empty; refused (ValueError) if too long or holding control characters."""
    value = value.strip()
    if not value:
        return None
    if len(value) > limit or any(ord(c) < 0x20 for c in value):
        raise ValueError
    return value


def _day(value: str) -> dt.date | None:
    value = value.strip()
    return dt.date.fromisoformat(value) if value else None


# -- the audit log ----------------------------------------------------------------------------------------


@router.get("/centre/audit", response_class=HTMLResponse)
def audit_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Newest first, PAGE_SIZE a page; "next page" carries the last id shown (keyset paging, no total)."""
    me = staff_page(request, session, AUDITOR)
    q = request.query_params
    values = {"actor": q.get("actor", "")[:200], "action": q.get("action", "")[:200],
              "target": q.get("target", "")[:200], "outcome": q.get("outcome", "")[:20],
              "from": q.get("from", "")[:20], "to": q.get("to", "")[:20]}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, limit in (("actor", 100), ("action", 60), ("target", 110)):
        try:
            clean[name] = _clean(values[name], limit)
        except ValueError:
            errors[name] = "centre.audit.err_text"
    if values["outcome"] and values["outcome"] not in OUTCOMES:
        errors["outcome"] = "centre.audit.err_outcome"
    days: dict[str, dt.date | None] = {}
    for name in ("from", "to"):
        try:
            days[name] = _day(values[name])
        except ValueError:
            errors[name] = "centre.audit.err_date"
    if not errors and days["from"] and days["to"] and days["to"] < days["from"]:
        errors["to"] = "centre.audit.err_range"
    position = q.get("cursor", "")
    start = int(position) if position.isdigit() and len(position) < 19 else None
    if errors:
        return page(request, "centre/audit.html", me, status=400, title="centre.audit.title", values=values,
                    errors=errors, entries=[], next_url=None, outcomes=OUTCOMES, first_url=None)
    start_at = dt.datetime.combine(days["from"], dt.time(), dt.UTC) if days["from"] else None
    end_at = dt.datetime.combine(days["to"] + dt.timedelta(days=1), dt.time(), dt.UTC) if days["to"] else None
    filters = audit_api.filters(actor=clean["actor"], action=clean["action"], target=clean["target"],
                                outcome=values["outcome"] or None, from_=start_at, to=end_at)  # type: ignore[arg-type]
    result = audit_api.read_audit_log(session=session, auditor=me, f=filters, cursor=start, limit=PAGE_SIZE)
    from urllib.parse import urlencode

    kept = {k: v for k, v in values.items() if v}
    next_url = f"/centre/audit?{urlencode({**kept, 'cursor': result.next_cursor})}" if result.next_cursor else None
    first_url = f"/centre/audit?{urlencode(kept)}" if start is not None else None
    return page(request, "centre/audit.html", me, title="centre.audit.title", values=values, errors={},
                entries=result.items, next_url=next_url, first_url=first_url, outcomes=OUTCOMES)


# -- organisations ----------------------------------------------------------------------------------------

_ORG_FIELDS = {"code": "centre.org.err_code", "name": "centre.org.err_name", "kind": "centre.org.err_kind",
               "institution_type": "centre.org.err_institution_type", "parent_code": "centre.org.err_parent"}


def _organisations_page(request: Request, session: Session, me: Principal, *, values: dict[str, str],
                        errors: dict[str, str], status: int = 200, created: str = "") -> HTMLResponse:
    q = request.query_params
    kind = q.get("kind_filter", "") if q.get("kind_filter", "") in ORG_KINDS else ""
    after = q.get("after", "")[:32] or None
    orgs = org_api.list_organisations(session=session, _staff=me, kind=kind or None, parent=None, active=None,
                                      after=after, limit=PAGE_SIZE + 1)
    more = len(orgs) > PAGE_SIZE
    orgs = orgs[:PAGE_SIZE]
    from urllib.parse import urlencode

    next_url = f"/centre/organisations?{urlencode({'kind_filter': kind, 'after': orgs[-1].code})}" if more else None
    return page(request, "centre/organisations.html", me, status=status, title="centre.org.title",
                organisations=orgs, kinds=ORG_KINDS, kind_filter=kind, values=values, errors=errors,
                next_url=next_url, created=created)


@router.get("/centre/organisations", response_class=HTMLResponse)
def organisations_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = staff_page(request, session, NODE_ADMIN)
    return _organisations_page(request, session, me, values={"kind": "branch"}, errors={},
                               created=request.query_params.get("created", "")[:32])


def _field_errors(exc: ValidationError, keys: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = error.get("loc") or ("",)
        name = str(loc[0])
        errors.setdefault(name if name in keys else "", keys.get(name, "error.bad_request"))
    return errors


def _org_error_field(code: str) -> str:
    return {"duplicate": "code", "invalid_kind": "kind", "invalid_parent": "parent_code",
            "organisation_inactive": "parent_code", "not_found": "parent_code"}.get(code, "")


@router.post("/centre/organisations", response_class=HTMLResponse)
def organisation_submit(request: Request, session: SessionDep, code: Field = "", name: Field = "",
                        kind: Field = "", institution_type: Field = "", parent_code: Field = "",
                        csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, NODE_ADMIN)
    values = {"code": code[:64], "name": name[:300], "kind": kind[:20], "institution_type": institution_type[:40],
              "parent_code": parent_code[:64]}
    try:
        body = OrganisationCreate(code=code.strip(), name=name, kind=kind,  # type: ignore[arg-type]
                                  institution_type=institution_type.strip() or None,
                                  parent_code=parent_code.strip() or None)
    except ValidationError as exc:
        return _organisations_page(request, session, me, values=values, errors=_field_errors(exc, _ORG_FIELDS),
                                   status=400)
    try:
        created = org_api.add_organisation(body=body, session=session, admin=me)
    except NodeError as exc:
        return _organisations_page(request, session, me, values=values, status=exc.status_code,
                                   errors={_org_error_field(exc.code): error_key(exc)})
    return redirect(request, f"/centre/organisations?created={created.code}")


# -- staff ------------------------------------------------------------------------------------------------

_STAFF_FIELDS = {"username": "centre.staff.err_username", "display_name": "centre.staff.err_display_name",
                 "password": "centre.staff.err_password", "roles": "centre.staff.err_roles",
                 "organisation_code": "centre.staff.err_organisation"}


def _staff_list(request: Request, session: Session, me: Principal, *, values: dict[str, Any],
                errors: dict[str, str], status: int = 200, created: Any = None) -> HTMLResponse:
    q = request.query_params
    role = q.get("role", "") if q.get("role", "") in ALL_STAFF_ROLES else ""
    active = {"yes": True, "no": False}.get(q.get("active", ""))
    after = q.get("after", "")[:64] or None
    members = org_api.list_staff(session=session, _admin=me, organisation=None, role=role or None, active=active,
                                 after=after, limit=PAGE_SIZE + 1)
    more = len(members) > PAGE_SIZE
    members = members[:PAGE_SIZE]
    from urllib.parse import urlencode

    next_url = (f"/centre/staff?{urlencode({'role': role, 'active': q.get('active', ''), 'after': members[-1].username})}"
                if more else None)
    return page(request, "centre/staff.html", me, status=status, title="centre.staff.title", members=members,
                roles=STAFF_ROLES, role_filter=role, active_filter=q.get("active", ""), values=values,
                errors=errors, next_url=next_url, created=created, role_kinds=ROLE_ORGANISATION_KINDS)


@router.get("/centre/staff", response_class=HTMLResponse)
def staff_list_page(request: Request, session: SessionDep) -> HTMLResponse:
    me = staff_page(request, session, NODE_ADMIN)
    return _staff_list(request, session, me, values={"roles": []}, errors={})


def _staff_error_field(code: str) -> str:
    return {"duplicate": "username", "unknown_role": "roles", "role_not_allowed": "roles",
            "roles_required": "roles", "organisation_inactive": "organisation_code",
            "organisation_required": "organisation_code", "not_found": "organisation_code"}.get(code, "")


@router.post("/centre/staff", response_class=HTMLResponse)
def staff_submit(request: Request, session: SessionDep, username: Field = "", display_name: Field = "",
                 organisation_code: Field = "", roles: RoleFields = None, csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, NODE_ADMIN)
    text = {"username": username, "display_name": display_name, "organisation_code": organisation_code}
    roles = (roles or [])[:20]
    values = {**{k: v[:200] for k, v in text.items()}, "roles": roles}
    try:
        body = StaffCreate(username=text["username"].strip(), display_name=text["display_name"], roles=roles,
                           organisation_code=text["organisation_code"].strip() or None)
    except ValidationError as exc:
        return _staff_list(request, session, me, values=values, errors=_field_errors(exc, _STAFF_FIELDS),
                           status=400)
    try:
        created = org_api.add_staff(body=body, session=session, admin=me)
    except NodeError as exc:
        return _staff_list(request, session, me, values=values, status=exc.status_code,
                           errors={_staff_error_field(exc.code): error_key(exc)})
    # the generated password is shown once, on this page (never in a URL, never logged)
    return _staff_list(request, session, me, values={"roles": []}, errors={}, status=201, created=created)


def _member_page(request: Request, session: Session, me: Principal, username: str, *, errors: dict[str, str],
                 status: int = 200, notice: str = "") -> HTMLResponse:
    member = org_api.read_staff(username=username, session=session, _admin=me)
    return page(request, "centre/staff_member.html", me, status=status, title="centre.staff.member_title",
                page_title=member.display_name, member=member, roles=STAFF_ROLES, errors=errors, notice=notice,
                role_kinds=ROLE_ORGANISATION_KINDS)


@router.get("/centre/staff/{username}", response_class=HTMLResponse)
def staff_member_page(username: Username, request: Request, session: SessionDep) -> HTMLResponse:
    me = staff_page(request, session, NODE_ADMIN)
    notice = {"roles": "centre.staff.roles_saved", "disabled": "centre.staff.disabled_done",
              "enabled": "centre.staff.enabled_done"}.get(request.query_params.get("done", ""), "")
    return _member_page(request, session, me, username, errors={}, notice=notice)


@router.post("/centre/staff/{username}/roles", response_class=HTMLResponse)
def staff_roles_submit(username: Username, request: Request, session: SessionDep, roles: RoleFields = None,
                       csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, NODE_ADMIN)
    roles = (roles or [])[:20]
    try:
        body = RolesChange(set=roles)
    except ValidationError:
        return _member_page(request, session, me, username, errors={"roles": "centre.staff.err_roles"}, status=400)
    if not roles:
        return _member_page(request, session, me, username, errors={"roles": "centre.err.roles_required"},
                            status=400)
    try:
        org_api.change_staff_roles(username=username, body=body, session=session, admin=me)
    except NodeError as exc:
        if exc.code == "not_found":
            raise
        return _member_page(request, session, me, username, errors={"roles": error_key(exc)},
                            status=exc.status_code)
    return redirect(request, f"/centre/staff/{username}?done=roles")


@router.post("/centre/staff/{username}/{change}", response_class=HTMLResponse)
def staff_active_submit(username: Username, change: Annotated[str, Path(pattern="^(disable|enable)$")],
                        request: Request, session: SessionDep, csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, NODE_ADMIN)
    try:
        if change == "disable":
            org_api.disable_staff(username=username, session=session, admin=me)
        else:
            org_api.enable_staff(username=username, session=session, admin=me)
    except NodeError as exc:
        if exc.code == "not_found":
            raise
        return _member_page(request, session, me, username, errors={"active": error_key(exc)},
                            status=exc.status_code)
    return redirect(request, f"/centre/staff/{username}?done={change}d")
