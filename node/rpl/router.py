"""`/api/v1/me/rpl/...` (the learner's portfolio) and `/api/v1/rpl/...` (assessors and the centre): recognition of
prior learning. Every step audited, refusals too (docs/projects.md)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, UploadFile
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from node.audit.service import record, refusals_recorded
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.errors import NotFound
from node.evidence.router import Sha256, _file_response
from node.evidence.service import store_upload
from node.models.projects import RplApplication
from node.models.types import Int64
from node.roles import Role
from node.rpl import service
from node.rpl.schemas import Assessment, Decision, EvidenceView, RplCreate, RplPublic, VersionOnly

__all__ = ["router", "rpl_view"]

router = APIRouter(prefix="/api/v1", tags=["rpl"])

LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
Assessor = Annotated[Principal, Depends(require_roles(Role.ASSESSOR))]
CentreReviewer = Annotated[Principal, Depends(require_roles(Role.CENTRE_REVIEWER))]
StaffReader = Annotated[Principal, Depends(require_roles(Role.ASSESSOR, Role.CENTRE_REVIEWER, Role.AUDITOR))]
StateFilter = Annotated[str | None, Query(pattern="^(draft|submitted|assessed|confirmed|rejected)$")]
_TARGET = "rpl_application"


def rpl_view(session: Session, app: RplApplication) -> RplPublic:
    return RplPublic(
        id=app.id, learner_id=app.learner_id, kind=app.kind, title=app.title, description=app.description,
        employer=app.employer, hours=app.hours, started_on=app.started_on, ended_on=app.ended_on, state=app.state,
        programme=app.programme_code, course=app.course_code, proposed_credits=app.proposed_credits,
        assessment=app.assessment, decision_reason=app.decision_reason, achievement_id=app.achievement_id,
        ledger_seq=app.ledger_seq,
        evidence=[EvidenceView(sha256=e.sha256, size=e.size, content_type=e.content_type,
                               original_name=e.original_name) for e in service.evidence_of(session, app.id)],
        version=app.version, created_at=app.created_at, updated_at=app.updated_at,
    )


# -- the learner ------------------------------------------------------------------------------------


@router.post("/me/rpl", response_model=RplPublic, status_code=201)
def apply_for_rpl(body: RplCreate, session: SessionDep, me: LearnerOnly) -> RplPublic:
    """Start an application for recognition of informal or work-based learning (a draft until submitted with its
    portfolio)."""
    with refusals_recorded(session, actor=me, action="rpl.create", target_type=_TARGET):
        app = service.create(session, learner=me, kind=body.kind, title=body.title, description=body.description,
                             employer=body.employer, hours=body.hours, started_on=body.started_on,
                             ended_on=body.ended_on)
    return rpl_view(session, app)


@router.get("/me/rpl", response_model=list[RplPublic])
def my_rpl_applications(session: SessionDep, me: LearnerOnly) -> list[RplPublic]:
    """The learner's own RPL applications, newest first."""
    return [rpl_view(session, a) for a in service.applications(session, learner_id=me.id)]


@router.get("/me/rpl/{app_id}", response_model=RplPublic)
def my_rpl_application(app_id: Int64, session: SessionDep, me: LearnerOnly) -> RplPublic:
    """One of the learner's RPL applications, with the assessment and the decision."""
    return rpl_view(session, service.application_for_learner(session, app_id, me.id))


@router.post("/me/rpl/{app_id}/evidence", response_model=EvidenceView, status_code=201)
def upload_rpl_evidence(app_id: Int64, file: UploadFile, response: Response, ctx: CtxDep, session: SessionDep,
                        me: LearnerOnly) -> EvidenceView:
    """Add a portfolio file (PDF, JPEG or PNG by default) to a draft application."""
    with refusals_recorded(session, actor=me, action="rpl.evidence", target_type=_TARGET, target_id=app_id):
        app = service.application_for_learner(session, app_id, me.id)
        service.expect(app, ("draft",), "add evidence")  # before writing anything to storage
        stored = store_upload(ctx, file)
        name = re.sub(r"[\x00-\x1f/\\]", "_", file.filename or "")[:255]
        row, linked = service.add_evidence(session, app=app, learner=me, stored=stored, original_name=name)
    response.status_code = 201 if linked else 200
    return EvidenceView(sha256=row.sha256, size=row.size, content_type=row.content_type,
                        original_name=row.original_name)


@router.post("/me/rpl/{app_id}/submit", response_model=RplPublic)
def submit_rpl(app_id: Int64, body: VersionOnly, session: SessionDep, me: LearnerOnly) -> RplPublic:
    """Submit the application with its portfolio for assessment."""
    with refusals_recorded(session, actor=me, action="rpl.submit", target_type=_TARGET, target_id=app_id):
        app = service.application_for_learner(session, app_id, me.id)
        service.submit(session, app=app, learner=me, version=body.version)
    return rpl_view(session, app)


# -- assessors and the centre -----------------------------------------------------------------------


@router.get("/rpl", response_model=list[RplPublic])
def rpl_queue(session: SessionDep, who: StaffReader, state: StateFilter = None) -> list[RplPublic]:
    """Submitted applications (newest first), optionally in one state: the assessors' and the centre's queue."""
    return [rpl_view(session, a) for a in service.applications(session, state=state)]


@router.get("/rpl/{app_id}", response_model=RplPublic)
def read_rpl(app_id: Int64, session: SessionDep, who: StaffReader) -> RplPublic:
    """One submitted application. Audited (it is a learner's portfolio)."""
    app = service.application_for_staff(session, app_id)
    record(session, actor=who, action="rpl.read", target_type="learner", target_id=app.learner_id,
           detail={"rpl_application": app.id})
    return rpl_view(session, app)


@router.get("/rpl/{app_id}/evidence/{sha256}", response_class=StreamingResponse)
def download_rpl_evidence(app_id: Int64, sha256: Sha256, ctx: CtxDep, session: SessionDep,
                          who: StaffReader) -> StreamingResponse:
    """A portfolio file of a submitted application. Audited, refusals too."""
    with refusals_recorded(session, actor=who, action="rpl.evidence_download", target_type=_TARGET,
                           target_id=app_id):
        app = service.application_for_staff(session, app_id)
        row = next((e for e in service.evidence_of(session, app.id) if e.sha256 == sha256), None)
        if row is None:
            raise NotFound("no such portfolio file on this application")
        record(session, actor=who, action="rpl.evidence_download", target_type="learner", target_id=app.learner_id,
               detail={"rpl_application": app.id, "sha256": sha256})
        return _file_response(ctx, row)


@router.post("/rpl/{app_id}/assessment", response_model=RplPublic)
def assess_rpl(app_id: Int64, body: Assessment, session: SessionDep, me: Assessor) -> RplPublic:
    """Evaluate the portfolio against a catalogue course of a programme and propose credits (≤ the course's)."""
    with refusals_recorded(session, actor=me, action="rpl.assess", target_type=_TARGET, target_id=app_id):
        app = service.application_for_staff(session, app_id)
        service.assess(session, app=app, assessor=me, programme=body.programme, course=body.course,
                       credits=body.credits, comment=body.comment, version=body.version)
    return rpl_view(session, app)


@router.post("/rpl/{app_id}/decision", response_model=RplPublic)
def decide_rpl(app_id: Int64, body: Decision, session: SessionDep, me: CentreReviewer) -> RplPublic:
    """The centre confirms the assessment (the outcome becomes an achievement), sends it back for a new
    assessment, or rejects it (a reason for both); never by the assessor."""
    with refusals_recorded(session, actor=me, action=f"rpl.{body.decision}", target_type=_TARGET, target_id=app_id):
        app = service.application_for_staff(session, app_id)
        service.decide(session, app=app, reviewer=me, decision=body.decision, reason=body.reason,
                       version=body.version)
    return rpl_view(session, app)
