"""`/api/v1/standards/...`: the catalogue and the rules (reads: staff; writes: standards admins, audited) and the
public handbook of a programme."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import select

from node.audit.service import refusals_recorded
from node.deps import Principal, SessionDep, public, require_roles
from node.errors import NotFound
from node.models.standards import CatalogueEntry, StandardRule
from node.roles import ALL_STAFF_ROLES, Role
from node.rules import parse_rule
from node.rules.handbook import handbook_html, handbook_markdown
from node.standards import service
from node.models.types import Int32

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/standards", tags=["standards"])

StaffReader = Annotated[Principal, Depends(require_roles(*sorted(ALL_STAFF_ROLES)))]
Admin = Annotated[Principal, Depends(require_roles(Role.STANDARDS_ADMIN))]

# URL segment → catalogue kind
_KIND_PATHS = {
    "institutions": "institution",
    "programmes": "programme",
    "certificates": "certificate",
    "reference-levels": "reference_level",
    "level-maps": "level_map",
    "code-lists": "code_list",
}


def _kind(segment: str) -> str:
    try:
        return _KIND_PATHS[segment]
    except KeyError:
        raise NotFound(f"no catalogue kind {segment!r}; known: {', '.join(_KIND_PATHS)}") from None


class EntryView(BaseModel):
    kind: str
    code: str
    version: int
    effective_from: dt.date
    effective_to: dt.date | None
    data: dict
    source: str
    created_by: str
    created_at: dt.datetime


def _entry(e: CatalogueEntry) -> EntryView:
    return EntryView(kind=e.kind, code=e.code, version=e.version, effective_from=e.effective_from,
                     effective_to=e.effective_to, data=e.data, source=e.source, created_by=e.created_by,
                     created_at=e.created_at)


class EntryWrite(BaseModel):
    effective_from: dt.date
    data: dict[str, Any]


class RuleView(BaseModel):
    rule_id: str
    version: int
    kind: str
    title: str
    status: str
    state: str  # status plus dates: effective / expired for approved versions
    effective_from: dt.date
    effective_to: dt.date | None
    source: str
    created_by: str
    approved_by: str | None
    approved_at: dt.datetime | None
    retired_at: dt.datetime | None
    decision_reason: str | None
    body: dict


def _rule(r: StandardRule) -> RuleView:
    return RuleView(rule_id=r.rule_id, version=r.version, kind=r.kind, title=r.title, status=r.status,
                    state=service.rule_state(r, dt.date.today()), effective_from=r.effective_from,
                    effective_to=r.effective_to, source=r.source, created_by=r.created_by, approved_by=r.approved_by,
                    approved_at=r.approved_at, retired_at=r.retired_at, decision_reason=r.decision_reason,
                    body=r.body)


class RuleWrite(BaseModel):
    body: dict[str, Any]


class Decision(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


# -- rules -------------------------------------------------------------------------------------------


@router.get("/rules", response_model=list[RuleView])
def list_rules(session: SessionDep, _: StaffReader,
               status: Annotated[list[str] | None, Query()] = None) -> list[RuleView]:
    """Every rule version, by rule id and version, optionally filtered by `status` (draft, approved,
    rejected, retired), each with its state today."""
    stmt = select(StandardRule).order_by(StandardRule.rule_id, StandardRule.version)
    if status:
        stmt = stmt.where(StandardRule.status.in_(status))  # type: ignore[attr-defined]
    return [_rule(r) for r in session.exec(stmt).all()]


@router.post("/rules", response_model=RuleView, status_code=201)
def create_rule(body: RuleWrite, session: SessionDep, admin: Admin) -> RuleView:
    """A new rule version, as a draft (validated against the rule schema)."""
    with refusals_recorded(session, actor=admin, action="standards.rule.create", target_type="standard_rule",
                           target_id=str(body.body.get("id"))[:60]):
        return _rule(service.create_rule(session, body=body.body, actor=admin))


@router.get("/rules/{rule_id}/versions/{version}", response_model=RuleView)
def read_rule(rule_id: str, version: Int32, session: SessionDep, _: StaffReader) -> RuleView:
    """One rule version with its body, status and decisions; 404 if unknown."""
    return _rule(service.rule_row(session, rule_id, version))


@router.put("/rules/{rule_id}/versions/{version}", response_model=RuleView)
def update_rule(rule_id: str, version: Int32, body: RuleWrite, session: SessionDep, admin: Admin) -> RuleView:
    """Replace a draft's body; the editor becomes its maker. Refused for a version that is not a draft
    (approved versions never change). Audited, refusals too."""
    with refusals_recorded(session, actor=admin, action="standards.rule.update", target_type="standard_rule",
                           target_id=f"{rule_id}@{version}"):
        row = service.rule_row(session, rule_id, version)
        return _rule(service.update_draft(session, row=row, body=body.body, actor=admin))


def _decide(action: str, rule_id: str, version: int, decision: Decision, session: Any, admin: Principal) -> RuleView:
    with refusals_recorded(session, actor=admin, action=f"standards.rule.{action}", target_type="standard_rule",
                           target_id=f"{rule_id}@{version}"):
        row = service.rule_row(session, rule_id, version)
        if action == "approve":
            row = service.approve_rule(session, row=row, actor=admin)
        elif action == "reject":
            row = service.reject_rule(session, row=row, actor=admin, reason=decision.reason)
        else:
            row = service.retire_rule(session, row=row, actor=admin, reason=decision.reason)
    return _rule(row)


@router.post("/rules/{rule_id}/versions/{version}/approve", response_model=RuleView)
def approve_rule(rule_id: str, version: Int32, session: SessionDep, admin: Admin,
                 body: Decision | None = None) -> RuleView:
    """Maker-checker: only a standards admin other than the draft's maker may approve it."""
    return _decide("approve", rule_id, version, body or Decision(), session, admin)


@router.post("/rules/{rule_id}/versions/{version}/reject", response_model=RuleView)
def reject_rule(rule_id: str, version: Int32, body: Decision, session: SessionDep, admin: Admin) -> RuleView:
    """Reject a draft, with a reason, by a standards admin other than its maker. Audited, refusals too."""
    return _decide("reject", rule_id, version, body, session, admin)


@router.post("/rules/{rule_id}/versions/{version}/retire", response_model=RuleView)
def retire_rule(rule_id: str, version: Int32, session: SessionDep, admin: Admin,
                body: Decision | None = None) -> RuleView:
    """Take an approved version out of service (it stays readable for the explanations of old
    decisions), with an optional reason. Audited, refusals too."""
    return _decide("retire", rule_id, version, body or Decision(), session, admin)


# -- handbook (public) -------------------------------------------------------------------------------


@router.get("/handbook/{programme}", dependencies=[Depends(public)], response_class=Response)
def handbook(programme: str, session: SessionDep, on: dt.date | None = None,
             format: Annotated[str, Query(pattern="^(md|html)$")] = "md") -> Response:
    """The programme's conversion handbook (the rules approved and, with `on`, in force that day)."""
    catalogue = service.build_catalogue(session, on)
    if programme not in catalogue.programmes:
        raise NotFound(f"no programme {programme!r}")
    rows = session.exec(select(StandardRule).where(StandardRule.status == "approved")).all()
    rules = [parse_rule(r.body) for r in rows]
    render = handbook_html if format == "html" else handbook_markdown
    text = render(programme=catalogue.programmes[programme], rules=rules, catalogue=catalogue, on=on)
    if format == "html":
        return HTMLResponse(text)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


# -- catalogue ---------------------------------------------------------------------------------------


@router.get("/{segment}", response_model=list[EntryView])
def list_entries(segment: str, session: SessionDep, _: StaffReader, on: dt.date | None = None) -> list[EntryView]:
    """The entries in force on `on` (default: the newest version of each)."""
    return [_entry(e) for e in service.entries_in_force(session, _kind(segment), on)]


@router.get("/{segment}/{code}", response_model=EntryView)
def read_entry(segment: str, code: str, session: SessionDep, _: StaffReader, on: dt.date | None = None) -> EntryView:
    """A catalogue entry: the version in force on `on` (default: the newest); 404 if none."""
    return _entry(service.entry_in_force(session, _kind(segment), code, on))


@router.get("/{segment}/{code}/versions", response_model=list[EntryView])
def entry_versions(segment: str, code: str, session: SessionDep, _: StaffReader) -> list[EntryView]:
    """Every version of a catalogue entry; 404 if unknown."""
    return [_entry(e) for e in service.entry_versions(session, _kind(segment), code)]


@router.put("/{segment}/{code}", response_model=EntryView)
def put_entry(segment: str, code: str, body: EntryWrite, session: SessionDep, admin: Admin) -> EntryView:
    """Create the entry or a new version of it (the previous version ends the day before)."""
    kind = _kind(segment)
    with refusals_recorded(session, actor=admin, action="standards.catalogue.put", target_type=f"catalogue.{kind}",
                           target_id=code):
        entry, _ = service.put_entry(session, kind=kind, code=code, data=body.data,
                                     effective_from=body.effective_from, actor=admin)
    return _entry(entry)


class EntryEnd(BaseModel):
    effective_to: dt.date


@router.post("/{segment}/{code}/end", response_model=EntryView)
def end_entry(segment: str, code: str, body: EntryEnd, session: SessionDep, admin: Admin) -> EntryView:
    """Withdraw the entry: its newest version ends on `effective_to` (older versions stay readable)."""
    kind = _kind(segment)
    with refusals_recorded(session, actor=admin, action="standards.catalogue.end", target_type=f"catalogue.{kind}",
                           target_id=code):
        entry = service.end_entry(session, kind=kind, code=code, effective_to=body.effective_to, actor=admin)
    return _entry(entry)
