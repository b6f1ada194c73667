"""Individual deposit applications: the learner (or outlet staff on their behalf) applies with evidence, a branch
reviewer decides the first stage, a centre reviewer the second; the learner may appeal once. Also corrections of
deposited achievements by the centre. Every staff action, and every refusal, is audited."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from node.audit.service import record, refusals_recorded
from node.deposits import repository as repo
from node.deposits import routing, service
from node.deposits.schemas import (
    AchievementCorrection,
    AchievementType,
    AppealCreate,
    ApplicationCreate,
    ApplicationPublic,
    ApplicationRoute,
    ApplicationStaffCreate,
    ApplicationStaffView,
    CorrectionPublic,
    ReviewDecision,
    SubmitRequest,
)
from node.deposits.workflow import State
from node.deps import Principal, SessionDep, require_roles
from node.errors import BadRequest
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


# -- the learner --------------------------------------------------------------------------------------


@router.post("/me/deposit-applications", response_model=ApplicationPublic, status_code=201)
def apply_for_deposit(body: ApplicationCreate, session: SessionDep, me: LearnerOnly) -> ApplicationPublic:
    """Start an application (a draft): upload evidence to it, then submit it."""
    app = service.create_application(session, learner_id=me.id, claim=body.achievement, actor=me,
                                     branch_code=body.branch_code)
    return service.learner_view(session, app)


@router.get("/me/deposit-applications", response_model=list[ApplicationPublic])
def list_my_applications(
    session: SessionDep, me: LearnerOnly, cursor: Int64 | None = None,
    limit: Annotated[Int64, Query(ge=1, le=200)] = 50,
) -> list[ApplicationPublic]:
    """The signed-in learner's deposit applications, newest first; `cursor` is the last id of the
    previous page."""
    apps = repo.applications(session, learner_id=me.id, cursor=cursor, limit=limit)
    return service.learner_views(session, apps)


@router.get("/me/deposit-applications/{app_id}", response_model=ApplicationPublic)
def read_my_application(app_id: Int64, session: SessionDep, me: LearnerOnly) -> ApplicationPublic:
    """One of the signed-in learner's deposit applications, with its evidence; another learner's
    is reported as missing."""
    return service.learner_view(session, service.application_for_learner(session, app_id, me.id))


@router.post("/me/deposit-applications/{app_id}/submit", response_model=ApplicationPublic)
def submit_my_application(app_id: Int64, body: SubmitRequest, session: SessionDep, me: LearnerOnly) -> ApplicationPublic:
    """Submit the learner's draft application to the first review stage at `version`; refused
    without at least one evidence file or when the version is stale. Audited as `deposit.submit`."""
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
    """Outlet staff start an application for a learner (recorded as submitted by them); it goes to their
    branch's queue unless `branch_code` names another."""
    with refusals_recorded(session, actor=staff, action="deposit.create", target_type="learner",
                           target_id=body.learner_id):
        app = service.create_application(session, learner_id=body.learner_id, claim=body.achievement, actor=staff,
                                         branch_code=body.branch_code)
    return service.staff_views(session, [app])[0]


@router.post("/deposit-applications/{app_id}/submit", response_model=ApplicationStaffView)
def submit_on_behalf(app_id: Int64, body: SubmitRequest, session: SessionDep, staff: OutletStaff) -> ApplicationStaffView:
    """Submit an application this outlet staff member started for the learner, at `version`;
    refused without evidence. Audited as `deposit.submit`, a refusal too."""
    with refusals_recorded(session, actor=staff, action="deposit.submit", target_type=_TARGET, target_id=app_id):
        app = service.application_for_applicant(session, app_id, staff)
        app = service.submit(session, app=app, actor=staff, version=body.version)
    return service.staff_views(session, [app])[0]


@router.get("/deposit-applications", response_model=ApplicationPage)
def list_applications(
    session: SessionDep,
    staff: DepositStaff,
    state: Annotated[list[State] | None, Query()] = None,
    branch: Annotated[str | None, Query(max_length=32, description="a branch's code, or the centre's for its "
                                                                      "own queue")] = None,
    learner_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    type: Annotated[list[AchievementType] | None, Query(description="the claimed achievement's type")] = None,
    submitted_from: Annotated[dt.date | None, Query(description="submitted on or after this day (UTC)")] = None,
    submitted_to: Annotated[dt.date | None, Query(description="submitted on or before this day (UTC)")] = None,
    order: Literal["newest", "oldest"] = "newest",
    cursor: Annotated[int | None, Query(ge=0, le=2**62, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ApplicationPage:
    """The review queue, with keyset paging. A branch reviewer sees their branch's applications, the centre's
    reviewers every branch's (filter with `branch`); outlet staff the applications they started. Drafts are
    shown only to whoever started them. Filters: `state`, `type`, `submitted_from`/`submitted_to` (days)."""
    states = [s.value for s in state] if state else None
    if submitted_from is not None and submitted_to is not None and submitted_to < submitted_from:
        raise BadRequest("submitted_to is before submitted_from", code="invalid_query")
    since = dt.datetime.combine(submitted_from, dt.time(), dt.UTC) if submitted_from else None
    until = (dt.datetime.combine(submitted_to, dt.time(), dt.UTC) + dt.timedelta(days=1)
             if submitted_to and submitted_to < dt.date.max else None)
    scope = routing.queue_scope(session, staff)
    branches: list[int | None] = []
    if scope.empty:
        submitted_by = staff.id
    else:
        submitted_by = None
        states = states or [s.value for s in State if s is not State.DRAFT]
        if not scope.everything:
            branches.append(scope.branch_id)
    if branch is not None:
        org = repo.organisation_by_code(session, branch)
        if org is None or org.kind not in ("branch", "centre"):
            raise BadRequest(f"no branch with code {branch!r}", code="invalid_query")
        branches.append(None if org.kind == "centre" else org.id)
    apps = repo.applications(session, learner_id=learner_id, states=states, submitted_by=submitted_by,
                             branches=branches, cursor=cursor, oldest_first=order == "oldest", limit=limit + 1,
                             types=type, submitted_from=since, submitted_before=until)
    more = len(apps) > limit
    apps = apps[:limit]
    record(session, actor=staff, action="deposit.list", target_type=_TARGET,
           detail={"states": states, "branch": branch, "learner_id": learner_id, "types": type,
                   "submitted_from": submitted_from and submitted_from.isoformat(),
                   "submitted_to": submitted_to and submitted_to.isoformat(), "count": len(apps)})
    return ApplicationPage(items=service.staff_views(session, apps), next_cursor=apps[-1].id if more else None)


@router.get("/deposit-applications/{app_id}", response_model=ApplicationStaffView)
def read_application(app_id: Int64, session: SessionDep, staff: DepositStaff) -> ApplicationStaffView:
    """One application: in the reader's branch queue (the centre: any), or one they started."""
    with refusals_recorded(session, actor=staff, action="deposit.read", target_type=_TARGET, target_id=app_id):
        app = service.application_for_staff(session, app_id, staff)
    record(session, actor=staff, action="deposit.read", target_type=_TARGET, target_id=app_id)
    return service.staff_views(session, [app])[0]


@router.post("/deposit-applications/{app_id}/route", response_model=ApplicationStaffView)
def route_application(app_id: Int64, body: ApplicationRoute, session: SessionDep,
                      reviewer: Reviewer) -> ApplicationStaffView:
    """The centre moves an open application to another branch's queue (or to its own, with the centre's
    code). `version` must be the version you read."""
    with refusals_recorded(session, actor=reviewer, action="deposit.route", target_type=_TARGET,
                           target_id=app_id):
        app = service.application_for_staff(session, app_id, reviewer)
        app = routing.reroute(session, app=app, to_code=body.branch_code, actor=reviewer, version=body.version)
    return service.staff_views(session, [app])[0]


@router.post("/deposit-applications/{app_id}/decision", response_model=ApplicationStaffView)
def decide_application(app_id: Int64, body: ReviewDecision, session: SessionDep,
                       reviewer: Reviewer) -> ApplicationStaffView:
    """First review (branch reviewer) or second review (centre reviewer), or the decision on an appeal at that
    stage. A rejection needs a reason. `version` must be the version you read (else 409 `stale_version`)."""
    with refusals_recorded(session, actor=reviewer, action=f"deposit.{body.decision}", target_type=_TARGET,
                           target_id=app_id):
        app = service.application_for_staff(session, app_id, reviewer)
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
