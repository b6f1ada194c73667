"""`/api/v1/projects/...`: 双证融通 projects — the institution applies, the centre assigns a panel, experts vote,
the centre publishes (through the rules' maker-checker), suspends, ends and reports exemptions to the appraisal
centre as a signed list. Every step audited, refusals too (docs/projects.md)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, UploadFile
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from node.audit.service import refusals_recorded
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.errors import NotFound
from node.evidence.router import Sha256, _file_response
from node.evidence.service import store_upload
from node.models.projects import DcProject
from node.models.types import Int64
from node.projects import service
from node.projects.report import issue_report
from node.projects.schemas import (
    EvidenceView,
    PROJECT_STATES,
    PanelAssign,
    ProjectCreate,
    ProjectPublic,
    Reason,
    VersionOnly,
    VoteCreate,
    VoteView,
)
from node.roles import Role

__all__ = ["router", "project_view"]

router = APIRouter(prefix="/api/v1", tags=["projects"])

Institution = Annotated[Principal, Depends(require_roles(Role.INSTITUTION_UPLOADER))]
Admin = Annotated[Principal, Depends(require_roles(Role.STANDARDS_ADMIN))]
Expert = Annotated[Principal, Depends(require_roles(Role.EXPERT))]
Reader = Annotated[Principal, Depends(require_roles(Role.INSTITUTION_UPLOADER, Role.STANDARDS_ADMIN, Role.EXPERT,
                                                     Role.AUDITOR))]
Centre = Annotated[Principal, Depends(require_roles(Role.STANDARDS_ADMIN, Role.AUDITOR))]
_TARGET = "dc_project"
_STATES = "^(" + "|".join(PROJECT_STATES) + ")$"
StateFilter = Annotated[str | None, Query(pattern=_STATES)]


def project_view(session: Session, project: DcProject) -> ProjectPublic:
    return ProjectPublic(
        id=project.id, institution_code=project.institution_code, title=project.title,
        programme=project.programme_code, certificate=project.certificate_code, level=project.certificate_level,
        mode=project.mode, discipline=project.discipline, description=project.description,
        rules=project.proposed_rules, rule_refs=project.rule_refs, state=project.state,
        decision_reason=project.decision_reason, panel=service.panel_of(session, project.id),
        votes=[VoteView(expert=v.staff_id, vote=v.vote, comment=v.comment, at=v.created_at)
               for v in service.votes_of(session, project.id)],
        evidence=[EvidenceView(sha256=e.sha256, size=e.size, content_type=e.content_type,
                               original_name=e.original_name) for e in service.evidence_of(session, project.id)],
        version=project.version, created_at=project.created_at, updated_at=project.updated_at,
        published_at=project.published_at,
    )


# -- the institution --------------------------------------------------------------------------------


@router.post("/projects", response_model=ProjectPublic, status_code=201)
def apply_for_project(body: ProjectCreate, session: SessionDep, me: Institution) -> ProjectPublic:
    """An institution's application for a 双证融通 project (a draft until submitted with its materials): programme,
    certificate and level, mode, and the proposed rules (validated against the rule schema)."""
    with refusals_recorded(session, actor=me, action="project.create", target_type=_TARGET):
        project = service.create_project(session, principal=me, title=body.title, programme=body.programme,
                                         certificate=body.certificate, level=body.level, mode=body.mode,
                                         discipline=body.discipline, description=body.description,
                                         rules=body.rules)
    return project_view(session, project)


@router.get("/projects/mine", response_model=list[ProjectPublic])
def my_projects(session: SessionDep, me: Institution, state: StateFilter = None) -> list[ProjectPublic]:
    """The institution's own projects, newest first."""
    return [project_view(session, p) for p in service.projects(session, me, scope="mine", state=state)]


@router.post("/projects/{project_id}/evidence", response_model=EvidenceView, status_code=201)
def upload_project_evidence(project_id: Int64, file: UploadFile, response: Response, ctx: CtxDep,
                            session: SessionDep, me: Institution) -> EvidenceView:
    """Attach a material (PDF, JPEG or PNG by default) to a draft project."""
    with refusals_recorded(session, actor=me, action="project.evidence", target_type=_TARGET, target_id=project_id):
        project = service.project_for(session, project_id, me)
        if project.organisation_id != me.organisation_id:
            raise NotFound(f"no project {project_id}", code="project_not_found")
        service.expect(project, ("draft",), "add evidence")  # before writing anything to storage
        stored = store_upload(ctx, file)
        name = re.sub(r"[\x00-\x1f/\\]", "_", file.filename or "")[:255]
        row, linked = service.add_evidence(session, project=project, principal=me, stored=stored,
                                           original_name=name)
    response.status_code = 201 if linked else 200
    return EvidenceView(sha256=row.sha256, size=row.size, content_type=row.content_type,
                        original_name=row.original_name)


@router.post("/projects/{project_id}/submit", response_model=ProjectPublic)
def submit_project(project_id: Int64, body: VersionOnly, session: SessionDep, me: Institution) -> ProjectPublic:
    """Submit a draft project with its materials to the centre."""
    with refusals_recorded(session, actor=me, action="project.submit", target_type=_TARGET, target_id=project_id):
        project = service.project_for(session, project_id, me)
        service.submit(session, project=project, principal=me, version=body.version)
    return project_view(session, project)


# -- reading (institution, centre, panel) -----------------------------------------------------------


@router.get("/projects/{project_id}", response_model=ProjectPublic)
def read_project(project_id: Int64, session: SessionDep, who: Reader) -> ProjectPublic:
    """A project with its panel, votes and comments, materials and published rule versions: for the applying
    institution, the centre and the project's panel (404 for anyone else)."""
    return project_view(session, service.project_for(session, project_id, who))


@router.get("/projects/{project_id}/evidence/{sha256}", response_class=StreamingResponse)
def download_project_evidence(project_id: Int64, sha256: Sha256, ctx: CtxDep, session: SessionDep,
                              who: Reader) -> StreamingResponse:
    """A material of a project, for those who may read the project. Audited."""
    with refusals_recorded(session, actor=who, action="project.evidence_download", target_type=_TARGET,
                           target_id=project_id):
        project = service.project_for(session, project_id, who)
        row = next((e for e in service.evidence_of(session, project.id) if e.sha256 == sha256), None)
        if row is None:
            raise NotFound("no such material on this project")
        from node.audit.service import record
        record(session, actor=who, action="project.evidence_download", target_type=_TARGET, target_id=project_id,
               detail={"sha256": sha256})
        return _file_response(ctx, row)


# -- the centre -------------------------------------------------------------------------------------


@router.get("/centre/projects", response_model=list[ProjectPublic])
def all_projects(session: SessionDep, who: Centre, state: StateFilter = None) -> list[ProjectPublic]:
    """Every project (newest first), optionally in one state: the centre's queue."""
    return [project_view(session, p) for p in service.projects(session, who, scope="all", state=state)]


@router.post("/projects/{project_id}/panel", response_model=ProjectPublic)
def assign_panel(project_id: Int64, body: PanelAssign, session: SessionDep, admin: Admin) -> ProjectPublic:
    """Assign the expert panel of the project's discipline (staff holding `expert`, none from the applicant)."""
    with refusals_recorded(session, actor=admin, action="project.panel", target_type=_TARGET, target_id=project_id):
        project = service.project_for(session, project_id, admin)
        service.assign_panel(session, project=project, admin=admin, experts=body.experts, version=body.version)
    return project_view(session, project)


def _step(action: str, project_id: int, session: Session, admin: Principal, **kw) -> ProjectPublic:
    with refusals_recorded(session, actor=admin, action=f"project.{action}", target_type=_TARGET,
                           target_id=project_id):
        project = service.project_for(session, project_id, admin)
        getattr(service, action)(session, project=project, admin=admin, **kw)
    return project_view(session, project)


@router.post("/projects/{project_id}/publish", response_model=ProjectPublic)
def publish_project(project_id: Int64, body: VersionOnly, session: SessionDep, admin: Admin) -> ProjectPublic:
    """A recommended project's rules become rule drafts made by this standards admin (maker)."""
    return _step("publish", project_id, session, admin, version=body.version)


@router.post("/projects/{project_id}/activate", response_model=ProjectPublic)
def activate_project(project_id: Int64, body: VersionOnly, session: SessionDep, admin: Admin) -> ProjectPublic:
    """A second standards admin (checker ≠ maker) approves the project's rule drafts: the rules are in force."""
    return _step("activate", project_id, session, admin, version=body.version)


@router.post("/projects/{project_id}/reject", response_model=ProjectPublic)
def reject_project(project_id: Int64, body: Reason, session: SessionDep, admin: Admin) -> ProjectPublic:
    """Reject a project before it is published (with a reason); its rule drafts, if any, are rejected too."""
    return _step("reject", project_id, session, admin, reason=body.reason, version=body.version)


@router.post("/projects/{project_id}/suspend", response_model=ProjectPublic)
def suspend_project(project_id: Int64, body: Reason, session: SessionDep, admin: Admin) -> ProjectPublic:
    """Suspend a published project: its rule versions are retired (no new conversions under them)."""
    return _step("suspend", project_id, session, admin, reason=body.reason, version=body.version)


@router.post("/projects/{project_id}/reinstate", response_model=ProjectPublic)
def reinstate_project(project_id: Int64, body: VersionOnly, session: SessionDep, admin: Admin) -> ProjectPublic:
    """New versions of a suspended project's rules, as drafts, to be activated by a second standards admin."""
    return _step("reinstate", project_id, session, admin, version=body.version)


@router.post("/projects/{project_id}/end", response_model=ProjectPublic)
def end_project(project_id: Int64, body: Reason, session: SessionDep, admin: Admin) -> ProjectPublic:
    """End a published or suspended project: its rules are retired for good."""
    return _step("end", project_id, session, admin, reason=body.reason, version=body.version)


@router.post("/projects/{project_id}/exemption-reports", status_code=201)
def report_exemptions(project_id: Int64, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """The signed list of the exemptions granted under the project, for the skills appraisal centre (a
    Verifiable Credential of type `ExemptionReport`; `POST /api/v1/verify` checks it)."""
    with refusals_recorded(session, actor=admin, action="project.report", target_type=_TARGET,
                           target_id=project_id):
        project = service.project_for(session, project_id, admin)
        report = issue_report(session, ctx, project=project, admin=admin)
    return report.document


@router.get("/projects/{project_id}/exemption-reports")
def list_exemption_reports(project_id: Int64, session: SessionDep, who: Centre) -> list[dict]:
    """The reports issued for a project: id, count, time, ledger sequence."""
    project = service.project_for(session, project_id, who)
    return [{"id": r.id, "count": r.count, "created_at": r.created_at.isoformat(), "ledger_seq": r.ledger_seq,
             "document_id": r.document.get("id")} for r in service.reports_of(session, project.id)]


@router.get("/projects/{project_id}/exemption-reports/{report_id}")
def read_exemption_report(project_id: Int64, report_id: Int64, session: SessionDep, who: Centre) -> dict:
    """A report as issued (signed)."""
    project = service.project_for(session, project_id, who)
    return service.report_for(session, project=project, report_id=report_id).document


# -- the panel --------------------------------------------------------------------------------------


@router.get("/expert/projects", response_model=list[ProjectPublic])
def my_panel_projects(session: SessionDep, me: Expert, state: StateFilter = None) -> list[ProjectPublic]:
    """The projects whose panel the expert sits on."""
    return [project_view(session, p) for p in service.projects(session, me, scope="panel", state=state)]


@router.post("/projects/{project_id}/votes", response_model=ProjectPublic, status_code=201)
def vote_on_project(project_id: Int64, body: VoteCreate, session: SessionDep, me: Expert) -> ProjectPublic:
    """A panel member's one vote (approve or reject) with a comment; the last vote decides the recommendation
    (a strict majority of approvals recommends)."""
    with refusals_recorded(session, actor=me, action="project.vote", target_type=_TARGET, target_id=project_id):
        project = service.project_for(session, project_id, me)
        service.vote(session, project=project, expert=me, decision=body.vote, comment=body.comment)
    return project_view(session, project)
