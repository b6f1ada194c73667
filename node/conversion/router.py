"""Conversion requests: the learner's own (`/api/v1/me/conversions`), staff's (`/api/v1/conversions`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from node.audit.service import record, refusals_recorded
from node.conversion import service
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.models.standards import ConversionItem, ConversionRequest
from node.roles import Role
from node.models.types import Int32, Int64

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["conversion"])

LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
OutletStaff = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF))]
Reviewer = Annotated[Principal, Depends(require_roles(Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER))]
ConversionStaff = Annotated[
    Principal, Depends(require_roles(Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER))
]
_TARGET = "conversion_request"


class ItemView(BaseModel):
    id: int
    target_key: str
    target: dict
    rule_id: str
    rule_version: int
    sources: list[int]
    proposed_credits: Decimal
    credits: Decimal
    recorded_grade: str
    status: str
    reason: str | None
    decided_stage: str | None
    explanation_zh: str
    explanation: dict
    ledger_seq: int | None
    achievement_id: int | None
    has_statement: bool


class RequestView(BaseModel):
    id: int
    learner_id: int
    programme_code: str
    on_date: dt.date
    state: str
    version: int
    appeal_reason: str | None
    items: list[ItemView]
    created_at: dt.datetime
    updated_at: dt.datetime


class StaffRequestView(RequestView):
    requested_by: str
    confirmed_by: int | None
    reviewed_by: int | None
    appeal_reviewed_by: int | None
    evaluation: dict


def _item(i: ConversionItem) -> ItemView:
    return ItemView(id=i.id, target_key=i.target_key, target=i.target, rule_id=i.rule_id, rule_version=i.rule_version,
                    sources=i.sources, proposed_credits=i.proposed_credits, credits=i.credits,
                    recorded_grade=i.recorded_grade, status=i.status, reason=i.reason, decided_stage=i.decided_stage,
                    explanation_zh=i.explanation_zh, explanation=i.explanation, ledger_seq=i.ledger_seq,
                    achievement_id=i.achievement_id,
                    has_statement=i.target.get("kind") == "exemption" and i.status == "approved")


def _view(session: Session, req: ConversionRequest, *, staff: bool = False,
          items: list | None = None) -> RequestView:
    """A request with its items (`items`: already read, e.g. for a whole page by `service.items_of_requests`)."""
    if items is None:
        items = service.items_of(session, req.id)
    fields = {"id": req.id, "learner_id": req.learner_id, "programme_code": req.programme_code, "on_date": req.on_date,
                  "state": req.state, "version": req.version, "appeal_reason": req.appeal_reason,
                  "items": [_item(i) for i in items], "created_at": req.created_at,
                  "updated_at": req.updated_at}
    if staff:
        return StaffRequestView(**fields, requested_by=req.requested_by, confirmed_by=req.confirmed_by,
                                reviewed_by=req.reviewed_by, appeal_reviewed_by=req.appeal_reviewed_by,
                                evaluation=req.evaluation)
    return RequestView(**fields)


class MyRequestCreate(BaseModel):
    programme: str = Field(min_length=1, max_length=64)


class StaffRequestCreate(MyRequestCreate):
    learner_id: Int64


class KeepItem(BaseModel):
    item_id: Int64
    credits: Decimal | None = Field(default=None, ge=0, max_digits=9, decimal_places=3)  # at most the proposed


class Confirm(BaseModel):
    version: Int32
    keep: list[KeepItem] | None = None  # None: confirm the whole proposal


class ItemDecision(BaseModel):
    item_id: Int64
    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=1000)


class Review(BaseModel):
    version: Int32
    decisions: list[ItemDecision]


class Appeal(BaseModel):
    version: Int32
    reason: str = Field(max_length=1000)


# -- the learner ------------------------------------------------------------------------------------


@router.get("/me/conversions/what-if")
def what_if(session: SessionDep, ctx: CtxDep, me: LearnerOnly, programme: Annotated[str, Query(max_length=64)],
            on: dt.date | None = None) -> dict:
    """What the learner could convert into `programme` (and what expires when), without applying anything."""
    return service.what_if(session, ctx, learner_id=me.id, programme_code=programme, on=on or dt.date.today())


@router.post("/me/conversions", response_model=RequestView, status_code=201)
def request_conversion(body: MyRequestCreate, session: SessionDep, ctx: CtxDep, me: LearnerOnly) -> RequestView:
    """Ask for a conversion into `programme`: the rules in force propose the items (state
    `proposed`); refused when they propose nothing. Audited as `conversion.create`."""
    req = service.create_request(session, ctx, learner_id=me.id, programme_code=body.programme, actor=me)
    return _view(session, req)


@router.get("/me/conversions", response_model=list[RequestView])
def my_conversions(session: SessionDep, me: LearnerOnly) -> list[RequestView]:
    """The signed-in learner's conversion requests with their items, newest first."""
    rows = session.exec(select(ConversionRequest).where(ConversionRequest.learner_id == me.id)
                        .order_by(ConversionRequest.id.desc())).all()  # type: ignore[union-attr]
    items = service.items_of_requests(session, [r.id for r in rows])
    return [_view(session, r, items=items.get(r.id, [])) for r in rows]


@router.get("/me/conversions/{request_id}", response_model=RequestView)
def my_conversion(request_id: Int64, session: SessionDep, me: LearnerOnly) -> RequestView:
    """One of the signed-in learner's conversion requests with its items; 404 if it is not theirs."""
    return _view(session, service.request_for_learner(session, request_id, me.id))


@router.post("/me/conversions/{request_id}/appeal", response_model=RequestView)
def appeal(request_id: Int64, body: Appeal, session: SessionDep, me: LearnerOnly) -> RequestView:
    """Appeal the rejected items once, with a reason."""
    req = service.request_for_learner(session, request_id, me.id)
    return _view(session, service.appeal(session, req=req, learner=me, reason=body.reason, version=body.version))


class Withdraw(BaseModel):
    version: Int32


@router.post("/me/conversions/{request_id}/withdraw", response_model=RequestView)
def withdraw(request_id: Int64, body: Withdraw, session: SessionDep, me: LearnerOnly) -> RequestView:
    """Withdraw a request before a reviewer decides it."""
    req = service.request_for_learner(session, request_id, me.id)
    return _view(session, service.withdraw(session, req=req, learner=me, version=body.version))


@router.get("/me/conversions/{request_id}/items/{item_id}/statement")
def my_statement(request_id: Int64, item_id: Int64, session: SessionDep, me: LearnerOnly) -> dict:
    """The signed exemption statement of an approved exemption item."""
    service.request_for_learner(session, request_id, me.id)
    return service.statement_for(session, item_id=item_id, learner_id=me.id).document


# -- staff ------------------------------------------------------------------------------------------


@router.post("/conversions", response_model=StaffRequestView, status_code=201)
def request_on_behalf(body: StaffRequestCreate, session: SessionDep, ctx: CtxDep, staff: OutletStaff
                      ) -> StaffRequestView:
    """Outlet staff ask for a learner's conversion into `programme` (state `proposed`); refused
    when the rules propose nothing. Audited as `conversion.create`, a refusal too."""
    with refusals_recorded(session, actor=staff, action="conversion.create", target_type="learner",
                           target_id=body.learner_id):
        req = service.create_request(session, ctx, learner_id=body.learner_id, programme_code=body.programme,
                                     actor=staff)
    return _view(session, req, staff=True)  # type: ignore[return-value]


@router.get("/conversions", response_model=list[StaffRequestView])
def list_conversions(session: SessionDep, staff: ConversionStaff,
                     state: Annotated[list[str] | None, Query()] = None, learner_id: Int64 | None = None,
                     cursor: Annotated[Int64 | None, Query(ge=0, description=(
                         "the id of the last request of the previous page: the page after it (keyset paging, "
                         "docs/scaling.md)"))] = None,
                     limit: Annotated[Int64, Query(ge=1, le=200)] = 50) -> list[StaffRequestView]:
    """Conversion requests, newest first, `limit` of them after `cursor` (pass the last id shown for the next
    page). A personal-data read: audited as `conversion.list`, with the learners whose requests were shown."""
    stmt = select(ConversionRequest).order_by(ConversionRequest.id.desc()).limit(limit)  # type: ignore[union-attr]
    if state:
        stmt = stmt.where(ConversionRequest.state.in_(state))  # type: ignore[attr-defined]
    if learner_id is not None:
        stmt = stmt.where(ConversionRequest.learner_id == learner_id)
    if cursor is not None:
        stmt = stmt.where(ConversionRequest.id < cursor)
    rows = session.exec(stmt).all()
    record(session, actor=staff, action="conversion.list", target_type="learner" if learner_id is not None else None,
           target_id=learner_id, detail={"state": state, "cursor": cursor, "requests": [r.id for r in rows],
                                         "learners": sorted({r.learner_id for r in rows})})
    items = service.items_of_requests(session, [r.id for r in rows])
    return [_view(session, r, staff=True, items=items.get(r.id, [])) for r in rows]  # type: ignore[misc]


@router.get("/conversions/{request_id}", response_model=StaffRequestView)
def read_conversion(request_id: Int64, session: SessionDep, staff: ConversionStaff) -> StaffRequestView:
    """One conversion request with its evaluation (audited as `conversion.read`; a refusal too)."""
    with refusals_recorded(session, actor=staff, action="conversion.read", target_type=_TARGET,
                           target_id=request_id):
        req = service.request_for_staff(session, request_id)
    record(session, actor=staff, action="conversion.read", target_type=_TARGET, target_id=request_id,
           detail={"learner_id": req.learner_id})
    return _view(session, req, staff=True)  # type: ignore[return-value]


@router.post("/conversions/{request_id}/confirm", response_model=StaffRequestView)
def confirm(request_id: Int64, body: Confirm, session: SessionDep, staff: OutletStaff) -> StaffRequestView:
    """Confirm the proposal, or narrow it (fewer items, fewer credits); never more."""
    with refusals_recorded(session, actor=staff, action="conversion.confirm", target_type=_TARGET,
                           target_id=request_id):
        req = service.request_for_staff(session, request_id)
        keep = None if body.keep is None else [k.model_dump() for k in body.keep]
        req = service.confirm(session, req=req, staff=staff, keep=keep, version=body.version)
    return _view(session, req, staff=True)  # type: ignore[return-value]


@router.post("/conversions/{request_id}/review", response_model=StaffRequestView)
def review(request_id: Int64, body: Review, session: SessionDep, ctx: CtxDep, reviewer: Reviewer) -> StaffRequestView:
    """Approve or reject each confirmed item (or, after an appeal, each rejected one); approvals go to the ledger."""
    with refusals_recorded(session, actor=reviewer, action="conversion.review", target_type=_TARGET,
                           target_id=request_id):
        req = service.request_for_staff(session, request_id)
        req = service.review(session, ctx, req=req, reviewer=reviewer,
                             decisions=[d.model_dump() for d in body.decisions], version=body.version)
    return _view(session, req, staff=True)  # type: ignore[return-value]
