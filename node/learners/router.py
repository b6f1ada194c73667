"""Learner accounts: opened at an outlet by staff or online by the learner; staff search by ID number or
account number (through the blind index); a learner reads only their own account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlmodel import select

from node.audit.service import record
from node.deps import CtxDep, Principal, SessionDep, public, require_roles
from node.errors import BadRequest, Conflict, NotFound
from node.learners.schemas import LearnerCreate, LearnerPublic, LearnerRegister
from node.learners.service import find_learner, learner_public, open_account
from node.models import Learner
from node.roles import Role
from node.models.types import Int64

router = APIRouter(prefix="/api/v1", tags=["learners"])

_STAFF_FRONT = (Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER)
StaffFront = Annotated[Principal, Depends(require_roles(*_STAFF_FRONT))]
LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]


@router.post("/learners", response_model=LearnerPublic, status_code=201)
def open_learner_account(
    body: LearnerCreate, response: Response, ctx: CtxDep, session: SessionDep, staff: StaffFront
) -> LearnerPublic:
    learner, created = open_account(
        session, ctx, id_type=body.id_type, id_number=body.id_number, name=body.name, password=body.password
    )
    if not created:
        response.status_code = 200
    elif staff.organisation_id is not None:
        learner.home_org_id = staff.organisation_id  # its branch takes the learner's applications
        session.add(learner)
    record(session, actor=staff, action="learner.open", target_type="learner", target_id=learner.id,
           detail={"created": created})
    return learner_public(ctx, learner)


@router.post("/learners/register", response_model=LearnerPublic, status_code=201, dependencies=[Depends(public)])
def register_online(body: LearnerRegister, ctx: CtxDep, session: SessionDep) -> LearnerPublic:
    learner, created = open_account(
        session, ctx, id_type=body.id_type, id_number=body.id_number, name=body.name, password=body.password
    )
    if not created:
        raise Conflict("an account already exists for this person; sign in or ask an outlet",
                       code="account_exists")
    return learner_public(ctx, learner)


@router.get("/learners/search", response_model=LearnerPublic)
def search_learner(
    ctx: CtxDep,
    session: SessionDep,
    staff: Annotated[Principal, Depends(require_roles(*_STAFF_FRONT, Role.AUDITOR))],
    id_type: str = "resident_id",
    id_number: Annotated[str | None, Query(max_length=40)] = None,
    account_no: Annotated[str | None, Query(max_length=20)] = None,
) -> LearnerPublic:
    if bool(id_number) == bool(account_no):
        raise BadRequest("give either id_number or account_no", code="invalid_query")
    if id_number:
        learner = find_learner(session, ctx, id_type=id_type, id_number=id_number)
    else:
        learner = session.exec(select(Learner).where(Learner.account_no == account_no)).first()
    record(session, actor=staff, action="learner.search", target_type="learner",
           target_id=learner.id if learner else None, outcome="ok" if learner else "not_found",
           detail={"by": "id_number" if id_number else "account_no"})
    if learner is None:
        raise NotFound("no learner matches")
    return learner_public(ctx, learner)


@router.get("/learners/{learner_id}", response_model=LearnerPublic)
def read_learner(learner_id: Int64, ctx: CtxDep, session: SessionDep, staff: StaffFront) -> LearnerPublic:
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    record(session, actor=staff, action="learner.read", target_type="learner", target_id=learner_id)
    return learner_public(ctx, learner)


@router.get("/me", response_model=LearnerPublic)
def read_me(ctx: CtxDep, session: SessionDep, me: LearnerOnly) -> LearnerPublic:
    learner = session.get(Learner, me.id)
    if learner is None:
        raise NotFound("no such learner")
    return learner_public(ctx, learner)
