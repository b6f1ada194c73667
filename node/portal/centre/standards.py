"""The centre's standards pages (issue 15, journey 4) — the rules as data with a
readable rendering, maker-checker (propose a version, see its difference from the version in force, approve or
reject by a second standards admin), the catalogue and the handbook.

Every read and write goes through the API's own route functions (node.standards.router), so validation, the
four-eyes rule (`rule_self_approval`), the lifecycle and the audit entries (refusals too) are the API's.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from node.deps import Principal, SessionDep, public
from node.errors import NodeError
from node.portal.centre.common import FormField as Field
from node.portal.centre.common import error_key, page, staff_page
from node.portal.centre.rule_text import Names, line_diff, pretty_json, rule_lines
from node.portal.i18n import translator
from node.portal.web import check_csrf, page_language, redirect
from node.roles import Role
from node.standards import router as api
from node.standards.service import build_catalogue

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
RuleId = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Version = Annotated[int, Path(ge=1, le=2_147_483_647)]

ADMIN = frozenset({Role.STANDARDS_ADMIN})
MAX_RULE_BYTES = 64 * 1024

# -- standards --------------------------------------------------------------------------------------------


def _names(session: Session) -> Names:
    catalogue = build_catalogue(session)
    courses: dict[str, str] = {}
    for programme in catalogue.programmes.values():
        courses.update({code: course.name for code, course in programme.courses.items()})
    return Names(courses=courses, certificates={c: v.name for c, v in catalogue.certificates.items()},
                 programmes={c: v.name for c, v in catalogue.programmes.items()},
                 institutions={c: v.name for c, v in catalogue.institutions.items()})


STATUS_FILTERS = ("draft", "approved", "rejected", "retired")


@router.get("/centre/standards", response_class=HTMLResponse)
def standards_page(request: Request, session: SessionDep, status: str = "", q: str = "") -> HTMLResponse:
    """Every rule version (drafts awaiting a second admin first), filtered by status and a search text."""
    me = staff_page(request, session, ADMIN)
    chosen = status if status in STATUS_FILTERS else ""
    query = q.strip()[:100].casefold()
    rules = api.list_rules(session=session, _=me, status=[chosen] if chosen else None)
    if query:
        rules = [r for r in rules if query in r.rule_id.casefold() or query in r.title.casefold()]
    drafts = [r for r in rules if r.status == "draft"]
    others = [r for r in rules if r.status != "draft"]
    catalogue = build_catalogue(session)
    return page(request, "centre/standards.html", me, title="centre.standards.title", drafts=drafts, rules=others,
                  status_filter=chosen, statuses=STATUS_FILTERS, q=q.strip()[:100],
                  counts={"programmes": len(catalogue.programmes), "certificates": len(catalogue.certificates),
                          "institutions": len(catalogue.institutions)})


def _in_force(session: Session, me: Principal, rule_id: str, below: int | None = None) -> Any:
    """The version of `rule_id` in force today (else the newest approved one), below `below` if given."""
    rows = [r for r in api.list_rules(session=session, _=me, status=["approved"])
            if r.rule_id == rule_id and (below is None or r.version < below)]
    effective = [r for r in rows if r.state == "effective"]
    pool = effective or rows
    return max(pool, key=lambda r: r.version) if pool else None


def _rendering(request: Request, body: dict, names: Names) -> list:
    return rule_lines(body, translator(page_language(request)), names)


def _diff(request: Request, old: dict | None, new: dict, names: Names) -> dict:
    new_lines = _rendering(request, new, names)
    old_lines = _rendering(request, old, names) if old is not None else []
    return {
        "sentences": line_diff([l.text for l in old_lines], [l.text for l in new_lines],
                               old_depths=[l.depth for l in old_lines], new_depths=[l.depth for l in new_lines]),
        "json": line_diff(pretty_json(old) if old is not None else [], pretty_json(new)),
    }


def _person(session: Session, ref: str | None) -> str:
    """Who made or checked a rule (`staff:<id>` as stored) as the person's name and user name."""
    from node.models import StaffAccount

    kind, _, ident = (ref or "").partition(":")
    if kind == "staff" and ident.isdigit() and len(ident) < 19:
        staff = session.get(StaffAccount, int(ident))
        if staff is not None:
            return f"{staff.display_name} ({staff.username})" if staff.display_name != staff.username \
                else staff.username
    return ref or ""


def _rule_page(request: Request, session: Session, me: Principal, rule_id: str, version: int, *,
               errors: dict[str, str] | None = None, status: int = 200, notice: str = "",
               reason: str = "") -> HTMLResponse:
    rule = api.read_rule(rule_id=rule_id, version=version, session=session, _=me)
    names = _names(session)
    base = _in_force(session, me, rule_id, below=version if rule.status == "draft" else None)
    if base is not None and base.version == rule.version:
        base = None
    versions = [r for r in api.list_rules(session=session, _=me) if r.rule_id == rule_id]
    can_decide = rule.status == "draft" and me.has_any(ADMIN)
    can_retire = rule.status == "approved" and me.has_any(ADMIN)
    shown = {"approve": can_decide, "reason": can_decide, "retire_reason": can_retire}
    # an error about a form no longer shown (the version moved on) goes to the summary alone
    errors = {(field if shown.get(field) else ""): key for field, key in (errors or {}).items()}
    return page(request, "centre/rule.html", me, status=status, title="centre.rule.title", page_title=rule.title,
                  rule=rule, lines=_rendering(request, rule.body, names), base=base,
                  diff=_diff(request, base.body if base else None, rule.body, names) if rule.status == "draft"
                  else None, versions=versions, errors=errors, notice=notice, reason=reason,
                  can_decide=can_decide, can_retire=can_retire,
                  json_text="\n".join(pretty_json(rule.body)), maker=_person(session, rule.created_by),
                  checker=_person(session, rule.approved_by))


@router.get("/centre/standards/rules/{rule_id}/{version}", response_class=HTMLResponse)
def rule_page(rule_id: RuleId, version: Version, request: Request, session: SessionDep) -> HTMLResponse:
    me = staff_page(request, session, ADMIN)
    notice = {"proposed": "centre.rule.proposed", "approved": "centre.rule.approved",
              "rejected": "centre.rule.rejected", "retired": "centre.rule.retired"}.get(request.query_params.get("done", ""), "")
    return _rule_page(request, session, me, rule_id, version, notice=notice)


@router.post("/centre/standards/rules/{rule_id}/{version}/approve", response_class=HTMLResponse)
def approve_submit(rule_id: RuleId, version: Version, request: Request, session: SessionDep,
                   csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, ADMIN)
    try:
        api.approve_rule(rule_id=rule_id, version=version, session=session, admin=me, body=api.Decision())
    except NodeError as exc:  # refused: the API has audited it and committed the entry
        return _rule_page(request, session, me, rule_id, version, errors={"approve": error_key(exc)},
                          status=exc.status_code)
    return redirect(request, f"/centre/standards/rules/{rule_id}/{version}?done=approved")


@router.post("/centre/standards/rules/{rule_id}/{version}/reject", response_class=HTMLResponse)
def reject_submit(rule_id: RuleId, version: Version, request: Request, session: SessionDep, reason: Field = "",
                  csrf: Field = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, ADMIN)
    text = reason.strip()
    if not text or len(text) > 1000 or "\x00" in text:
        key = "centre.err.reason_long" if len(text) > 1000 else "centre.err.reason_missing"
        return _rule_page(request, session, me, rule_id, version, errors={"reason": key}, status=400,
                          reason=reason[:1000])
    try:
        api.reject_rule(rule_id=rule_id, version=version, body=api.Decision(reason=text), session=session, admin=me)
    except NodeError as exc:
        return _rule_page(request, session, me, rule_id, version, errors={"reason": error_key(exc)},
                          status=exc.status_code, reason=text)
    return redirect(request, f"/centre/standards/rules/{rule_id}/{version}?done=rejected")


@router.post("/centre/standards/rules/{rule_id}/{version}/retire", response_class=HTMLResponse)
def retire_submit(rule_id: RuleId, version: Version, request: Request, session: SessionDep,
                  retire_reason: Field = "", csrf: Field = "") -> Response:
    """Take an approved version out of service (it stays readable for old decisions' explanations)."""
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, ADMIN)
    text = retire_reason.strip()
    if len(text) > 1000:
        return _rule_page(request, session, me, rule_id, version, errors={"retire_reason": "centre.err.reason_long"},
                          status=400, reason=text[:1000])
    try:
        api.retire_rule(rule_id=rule_id, version=version, session=session, admin=me,
                        body=api.Decision(reason=text or None))
    except NodeError as exc:
        return _rule_page(request, session, me, rule_id, version, errors={"retire_reason": error_key(exc)},
                          status=exc.status_code)
    return redirect(request, f"/centre/standards/rules/{rule_id}/{version}?done=retired")


# -- propose a version ------------------------------------------------------------------------------------


def _propose_form(request: Request, me: Principal, *, body_text: str, errors: dict[str, str], problems: list[str] | None = None,
                  status: int = 200) -> HTMLResponse:
    return page(request, "centre/propose.html", me, status=status, title="centre.propose.title",
                body_text=body_text, errors=errors, problems=problems or [])


@router.get("/centre/standards/propose", response_class=HTMLResponse)
def propose_page(request: Request, session: SessionDep, rule: str = "", version: str = "") -> HTMLResponse:
    """The form; `rule` (and `version`) prefill it with that version's body as the next version."""
    me = staff_page(request, session, ADMIN)
    body_text = ""
    if rule and len(rule) <= 128:
        rows = [r for r in api.list_rules(session=session, _=me) if r.rule_id == rule]
        chosen = [r for r in rows if str(r.version) == version] or rows
        if chosen:
            start = max(chosen, key=lambda r: r.version)
            body = dict(start.body)
            body["version"] = max(r.version for r in rows) + 1
            body_text = "\n".join(pretty_json(body))
    return _propose_form(request, me, body_text=body_text, errors={})


@router.post("/centre/standards/propose", response_class=HTMLResponse)
def propose_submit(request: Request, session: SessionDep, body: Field = "", csrf: Field = "",
                   file: Annotated[UploadFile | None, File()] = None) -> Response:
    """A new draft version from the JSON in the text box, or from an uploaded .json file (the file wins)."""
    check_csrf(request, {"csrf": csrf})
    me = staff_page(request, session, ADMIN)
    field, text = "body", body
    if file is not None and file.filename:
        field = "file"
        raw = file.file.read(MAX_RULE_BYTES + 1)
        if len(raw) > MAX_RULE_BYTES:
            return _propose_form(request, me, body_text=body, errors={"file": "centre.err.rule_too_large"}, status=413)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return _propose_form(request, me, body_text=body, errors={"file": "centre.err.rule_encoding"}, status=400)
    if not text.strip():
        return _propose_form(request, me, body_text=body, errors={field: "centre.err.rule_missing"}, status=400)
    if len(text.encode("utf-8")) > MAX_RULE_BYTES:
        return _propose_form(request, me, body_text=body[:MAX_RULE_BYTES], errors={field: "centre.err.rule_too_large"},
                             status=413)
    shown = text if field == "body" else body
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return page(request, "centre/propose.html", me, status=400, title="centre.propose.title", body_text=shown,
                      errors={field: "centre.err.json_syntax"}, problems=[],
                      json_at={"line": exc.lineno, "column": exc.colno})
    except RecursionError:
        return _propose_form(request, me, body_text=shown, errors={field: "centre.err.rule_not_object"}, status=400)
    if not isinstance(doc, dict):
        return _propose_form(request, me, body_text=shown, errors={field: "centre.err.rule_not_object"}, status=400)
    try:
        created = api.create_rule(body=api.RuleWrite(body=doc), session=session, admin=me)
    except NodeError as exc:  # audited by the API (refusals_recorded) and committed
        problems = [str(p)[:300] for p in (exc.detail or {}).get("errors", [])][:30] if exc.detail else []
        key = error_key(exc)
        return page(request, "centre/propose.html", me, status=exc.status_code, title="centre.propose.title",
                      body_text=shown, errors={field: key}, problems=problems,
                      next_version=(exc.detail or {}).get("next_version"))
    except (ValueError, TypeError, RecursionError):
        return _propose_form(request, me, body_text=shown, errors={field: "centre.err.rule_invalid"}, status=400)
    return redirect(request, f"/centre/standards/rules/{created.rule_id}/{created.version}?done=proposed")
