"""The centre's erasure of a person (docs/privacy.md): node administrators, maker-checker; every step and every
refusal audited. `node.privacy.erasure` holds the rules."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query
from pydantic import BaseModel, Field, model_validator
from sqlmodel import Session

from node.audit.service import record, refusals_recorded
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.errors import NotFound
from node.learners.service import find_learner_by_account
from node.models import Learner
from node.models.engage import ErasureRequest
from node.models.types import Int32, Int64
from node.privacy import erasure
from node.roles import Role

__all__ = ["ErasureCreate", "ErasurePublic", "router"]

router = APIRouter(prefix="/api/v1/admin", tags=["privacy"])
Admin = Annotated[Principal, Depends(require_roles(Role.NODE_ADMIN))]
_TARGET = "erasure_request"


class ErasureCreate(BaseModel):
    """Whom to erase (the account's id or its account number), on which basis, and why."""

    learner_id: Int64 | None = None
    account_no: str | None = Field(default=None, min_length=1, max_length=20, pattern=r"^[0-9]+$")
    basis: Literal["learner_request", "legal_obligation", "retention_expired"]
    legal_reference: str | None = Field(default=None, max_length=300)
    reason: str = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_learner(self) -> ErasureCreate:
        if (self.learner_id is None) == (self.account_no is None):
            raise ValueError("give either learner_id or account_no")
        return self


class ErasureStep(BaseModel):
    version: Int32
    reason: str | None = Field(default=None, max_length=1000)


class ErasurePublic(BaseModel):
    id: int
    learner_id: int
    account_no: str
    basis: str
    legal_reference: str | None
    reason: str
    state: str
    requested_by: int
    confirmed_by: int | None
    result: dict
    version: int
    created_at: dt.datetime
    decided_at: dt.datetime | None


def public_view(session: Session, row: ErasureRequest) -> ErasurePublic:
    learner = session.get(Learner, row.learner_id)
    return ErasurePublic(id=row.id, learner_id=row.learner_id, account_no=learner.account_no if learner else "",
                         basis=row.basis, legal_reference=row.legal_reference, reason=row.reason, state=row.state,
                         requested_by=row.requested_by, confirmed_by=row.confirmed_by, result=row.result or {},
                         version=row.version, created_at=row.created_at, decided_at=row.decided_at)


@router.post("/erasures", response_model=ErasurePublic, status_code=201)
def ask_erasure(body: ErasureCreate, ctx: CtxDep, session: SessionDep, admin: Admin) -> ErasurePublic:
    """Ask to erase a learner's personal data; a second node administrator confirms. Refused while the learner
    has work in a queue (409 `erasure_open_work`), before the retention period ran out on that basis (409
    `erasure_not_allowed`), without the legal reference a request or legal obligation rests on (400
    `legal_reference_required`), or for an account already erased (410 `learner_erased`)."""
    with refusals_recorded(session, actor=admin, action="erasure.request", target_type="learner",
                           target_id=body.learner_id):
        learner_id = body.learner_id
        if learner_id is None:
            found = find_learner_by_account(session, body.account_no or "")
            if found is None:
                raise NotFound("no such learner")
            learner_id = found.id
        row = erasure.request(session, ctx, learner_id=learner_id, basis=body.basis,
                              legal_reference=body.legal_reference, reason=body.reason, admin=admin)
    return public_view(session, row)


@router.get("/erasures", response_model=list[ErasurePublic])
def list_erasures(session: SessionDep, admin: Admin,
                  state: Annotated[Literal["requested", "done", "cancelled"] | None, Query()] = None
                  ) -> list[ErasurePublic]:
    """The latest erasure requests (50), newest first. Audited as `erasure.list`."""
    rows = erasure.erasures(session, state=state)
    record(session, actor=admin, action="erasure.list", target_type=_TARGET, detail={"state": state})
    return [public_view(session, r) for r in rows]


@router.get("/erasures/{request_id}", response_model=ErasurePublic)
def read_erasure(request_id: Int64, session: SessionDep, admin: Admin) -> ErasurePublic:
    """One erasure request: its basis, state and, once done, what was shredded (counts). Audited."""
    with refusals_recorded(session, actor=admin, action="erasure.read", target_type=_TARGET, target_id=request_id):
        row = erasure.erasure_for(session, request_id)
    record(session, actor=admin, action="erasure.read", target_type=_TARGET, target_id=request_id)
    return public_view(session, row)


@router.post("/erasures/{request_id}/confirm", response_model=ErasurePublic)
def confirm_erasure(request_id: Int64, body: ErasureStep, ctx: CtxDep, session: SessionDep, admin: Admin,
                    tasks: BackgroundTasks) -> ErasurePublic:
    """Confirm (a second node administrator: 403 `erasure_same_person` for the one who asked): the erasure runs
    now, in this request's transaction; the evidence files it deleted are removed from storage just after."""
    with refusals_recorded(session, actor=admin, action="erasure.confirm", target_type=_TARGET,
                           target_id=request_id):
        row = erasure.erasure_for(session, request_id)
        row, files = erasure.confirm(session, ctx, row=row, admin=admin, version=body.version)
    if files:
        tasks.add_task(erasure.purge_evidence_files, ctx, files)
    return public_view(session, row)


@router.post("/erasures/{request_id}/cancel", response_model=ErasurePublic)
def cancel_erasure(request_id: Int64, body: ErasureStep, session: SessionDep, admin: Admin) -> ErasurePublic:
    """Withdraw a request not yet confirmed (either administrator)."""
    with refusals_recorded(session, actor=admin, action="erasure.cancel", target_type=_TARGET,
                           target_id=request_id):
        row = erasure.erasure_for(session, request_id)
        row = erasure.cancel(session, row=row, admin=admin, version=body.version, reason=body.reason)
    return public_view(session, row)
