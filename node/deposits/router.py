"""Individual deposit applications: the learner (or outlet staff on their behalf) applies with evidence, a branch
reviewer decides the first stage, a centre reviewer the second; the learner may appeal once. Also corrections of
deposited achievements by the centre. Every staff action, and every refusal, is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from node.audit.service import record, refusals_recorded
from node.deposits import repository as repo
from node.deposits import service
from node.deposits.schemas import (
    AchievementCorrection,
    AppealCreate,
    ApplicationCreate,
    ApplicationPublic,
    ApplicationStaffCreate,
    ApplicationStaffView,
    CorrectionPublic,
    ReviewDecision,
    SubmitRequest,
)
from node.deposits.workflow import State
from node.deps import Principal, SessionDep, require_roles
from node.errors import Forbidden
from node.roles import Role
from node.models.types import Int64

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["deposits"])

LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
OutletStaff = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF))]
Reviewer = Annotated[Principal, Depends(require_roles(Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER))]
DepositStaff = Annotated[
    Principal, Depends(require_roles(Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER))
]
CentreReviewer = Annotated[Principal, Depends(require_roles(Role.CENTRE_REVIEWER))]
_TARGET = "deposit_application"


class ApplicationPage(BaseModel):
    items: list[ApplicationStaffView]
    next_cursor: int | None = None


def _is_reviewer(p: Principal) -> bool:
    return Role.BRANCH_REVIEWER in p.roles or Role.CENTRE_REVIEWER in p.roles


# -- the learner --------------------------------------------------------------------------------------


@router.post("/me/deposit-applications", response_model=ApplicationPublic, status_code=201)
def apply_for_deposit(body: ApplicationCreate, session: SessionDep, me: LearnerOnly) -> ApplicationPublic:
    """Start an application (a draft): upload evidence to it, then submit it."""
    app = service.create_application(session, learner_id=me.id, claim=body.achievement, actor=me)
    return service.learner_view(session, app)


@router.get("/me/deposit-applications", response_model=list[ApplicationPublic])
def list_my_applications(
    session: SessionDep, me: LearnerOnly, cursor: Int64 | None = None,
    limit: Annotated[Int64, Query(ge=1, le=200)] = 50,
) -> list[ApplicationPublic]:
    apps = repo.applications(session, learner_id=me.id, before_id=cursor, limit=limit)
    return service.learner_views(session, apps)


@router.get("/me/deposit-applications/{app_id}", response_model=ApplicationPublic)
def read_my_application(app_id: Int64, session: SessionDep, me: LearnerOnly) -> ApplicationPublic:
    return service.learner_view(session, service.application_for_learner(session, app_id, me.id))


@router.post("/me/deposit-applications/{app_id}/submit", response_model=ApplicationPublic)
def submit_my_application(app_id: Int64, body: SubmitRequest, session: SessionDep, me: LearnerOnly) -> ApplicationPublic:
    app = service.application_for_learner(session, app_id, me.id)
    return service.learner_view(session, service.submit(session, app=app, actor=me, version=body.version))


@router.post("/me/deposit-applications/{app_id}/appeal", response_model=ApplicationPublic)
def appeal_my_application(app_id: Int64, body: AppealCreate, session: SessionDep, me: LearnerOnly) -> ApplicationPublic:
    """Appeal a rejection once, with a reason; it returns to the stage that rejected."""
    app = service.application_for_learner(session, app_id, me.id)
    app = service.appeal(session, app=app, learner=me, reason=body.reason, version=body.version)
    return service.learner_view(session, app)


# -- staff ------------------------------------------------------------------------------------------


@router.post("/deposit-applications", response_model=ApplicationStaffView, status_code=201)
def apply_on_behalf(body: ApplicationStaffCreate, session: SessionDep, staff: OutletStaff) -> ApplicationStaffView:
    """Outlet staff start an application for a learner (recorded as submitted by them)."""
    with refusals_recorded(session, actor=staff, action="deposit.create", target_type="learner",
                           target_id=body.learner_id):
        app = service.create_application(session, learner_id=body.learner_id, claim=body.achievement, actor=staff)
    return service.staff_views(session, [app])[0]


@router.post("/deposit-applications/{app_id}/submit", response_model=ApplicationStaffView)
def submit_on_behalf(app_id: Int64, body: SubmitRequest, session: SessionDep, staff: OutletStaff) -> ApplicationStaffView:
    with refusals_recorded(session, actor=staff, action="deposit.submit", target_type=_TARGET, target_id=app_id):
        app = service.application_for_applicant(session, app_id, staff)
        app = service.submit(session, app=app, actor=staff, version=body.version)
    return service.staff_views(session, [app])[0]


@router.get("/deposit-applications", response_model=ApplicationPage)
def list_applications(
    session: SessionDep,
    staff: DepositStaff,
    state: Annotated[list[State] | None, Query()] = None,
    learner_id: Int64 | None = None,
    cursor: Int64 | None = None,
    limit: Annotated[Int64, Query(ge=1, le=200)] = 50,
) -> ApplicationPage:
    """The review queue (newest first). Reviewers see every application; outlet staff those they submitted.
    Drafts are shown only to whoever started them."""
    states = [s.value for s in state] if state else None
    if states is None and _is_reviewer(staff):
        states = [s.value for s in State if s is not State.DRAFT]
    submitted_by = None if _is_reviewer(staff) else staff.id
    apps = repo.applications(session, learner_id=learner_id, states=states, submitted_by=submitted_by,
                             before_id=cursor, limit=limit + 1)
    more = len(apps) > limit
    apps = apps[:limit]
    record(session, actor=staff, action="deposit.list", target_type=_TARGET,
           detail={"states": states, "learner_id": learner_id, "count": len(apps)})
    return ApplicationPage(items=service.staff_views(session, apps), next_cursor=apps[-1].id if more else None)


@router.get("/deposit-applications/{app_id}", response_model=ApplicationStaffView)
def read_application(app_id: Int64, session: SessionDep, staff: DepositStaff) -> ApplicationStaffView:
    with refusals_recorded(session, actor=staff, action="deposit.read", target_type=_TARGET, target_id=app_id):
        app = service.application_for_staff(session, app_id)
        if not _is_reviewer(staff) and app.submitted_by_staff_id != staff.id:
            raise Forbidden("outlet staff see the applications they submitted")
    record(session, actor=staff, action="deposit.read", target_type=_TARGET, target_id=app_id)
    return service.staff_views(session, [app])[0]


@router.post("/deposit-applications/{app_id}/decision", response_model=ApplicationStaffView)
def decide_application(app_id: Int64, body: ReviewDecision, session: SessionDep,
                       reviewer: Reviewer) -> ApplicationStaffView:
    """First review (branch reviewer) or second review (centre reviewer), or the decision on an appeal at that
    stage. A rejection needs a reason. `version` must be the version you read (else 409 `stale_version`)."""
    with refusals_recorded(session, actor=reviewer, action=f"deposit.{body.decision}", target_type=_TARGET,
                           target_id=app_id):
        app = service.application_for_staff(session, app_id)
        app = service.review(session, app=app, reviewer=reviewer, decision=body.decision, reason=body.reason,
                             version=body.version)
    return service.staff_views(session, [app])[0]


@router.post("/achievements/{achievement_id}/corrections", response_model=CorrectionPublic, status_code=201)
def correct_achievement(achievement_id: Int64, body: AchievementCorrection, session: SessionDep,
                        staff: CentreReviewer) -> CorrectionPublic:
    """Correct a deposited achievement: the change is a new `achievement.corrected` ledger event with the old
    and new values and the reason."""
    with refusals_recorded(session, actor=staff, action="achievement.correct", target_type="achievement",
                           target_id=achievement_id):
        achievement, old, new, seq = service.correct_achievement(
            session, achievement_id=achievement_id, body=body, actor=staff
        )
    return CorrectionPublic(achievement=service.achievement_public(achievement), old=old, new=new, ledger_seq=seq)
