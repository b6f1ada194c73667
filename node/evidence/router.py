"""Evidence files of deposit applications: the applicant uploads (multipart), the owner learner and the
reviewers download. Files are stored once by SHA-256 (see `node.evidence.storage`)."""

from __future__ import annotations

import re
from typing import Annotated

from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Response, UploadFile
from fastapi.responses import StreamingResponse

from node.audit.service import record, refusals_recorded
from node.deposits.service import (
    add_evidence,
    application_for_applicant,
    application_for_learner,
    application_for_staff,
    check_can_add_evidence,
)
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.errors import NotFound
from node.evidence import repository as repo
from node.evidence.schemas import EvidencePublic
from node.evidence.service import open_evidence_file, store_upload
from node.models import EvidenceFile
from node.roles import Role
from node.models.types import Int64

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["evidence"])

LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
OutletStaff = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF))]
Reviewer = Annotated[Principal, Depends(require_roles(Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER))]
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
_TARGET = "deposit_application"


def _upload(ctx: CtxDep, session: SessionDep, principal: Principal, app_id: int, file: UploadFile,
            response: Response) -> EvidencePublic:
    with refusals_recorded(session, actor=principal, action="evidence.upload", target_type=_TARGET,
                           target_id=app_id):
        app = application_for_applicant(session, app_id, principal)
        check_can_add_evidence(app, principal)  # before writing anything to storage
        stored = store_upload(ctx, file)
        name = re.sub(r"[\x00-\x1f/\\]", "_", file.filename or "")[:255]
        already = repo.is_linked(session, app.id, stored.sha256)
        row = add_evidence(session, app=app, actor=principal, stored=stored, original_name=name)
    response.status_code = 200 if already else 201
    return _public(row)


def _public(row: EvidenceFile) -> EvidencePublic:
    return EvidencePublic(sha256=row.sha256, size=row.size, content_type=row.content_type,
                          original_name=row.original_name)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(64 * 1024):
            yield chunk


def _file_response(ctx: CtxDep, row: EvidenceFile) -> StreamingResponse:
    """The file decrypted as it streams out, as an attachment under its original name (RFC 6266)."""
    stream = open_evidence_file(ctx, row)
    filename = row.original_name or row.sha256
    quoted = quote(filename)
    disposition = (f'attachment; filename="{filename}"' if quoted == filename
                   else f"attachment; filename*=utf-8''{quoted}")
    return StreamingResponse(
        _chunks(stream),
        media_type=row.content_type,
        headers={"Content-Disposition": disposition, "Content-Length": str(row.size),
                 "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"},
    )


@router.post("/me/deposit-applications/{app_id}/evidence", response_model=EvidencePublic, status_code=201)
def upload_own_evidence(app_id: Int64, file: UploadFile, response: Response, ctx: CtxDep, session: SessionDep,
                        me: LearnerOnly) -> EvidencePublic:
    """Upload an evidence file (PDF, JPEG or PNG by default) to one of your own applications."""
    return _upload(ctx, session, me, app_id, file, response)


@router.post("/deposit-applications/{app_id}/evidence", response_model=EvidencePublic, status_code=201)
def upload_evidence_for_learner(app_id: Int64, file: UploadFile, response: Response, ctx: CtxDep,
                                session: SessionDep, staff: OutletStaff) -> EvidencePublic:
    """Outlet staff upload evidence to an application they submitted on a learner's behalf."""
    return _upload(ctx, session, staff, app_id, file, response)


@router.get("/me/deposit-applications/{app_id}/evidence/{sha256}", response_class=StreamingResponse)
def download_own_evidence(app_id: Int64, sha256: Sha256, ctx: CtxDep, session: SessionDep,
                          me: LearnerOnly) -> StreamingResponse:
    """Download an evidence file (by its SHA-256) of one of the learner's own applications,
    decrypted as it streams, as an attachment under its original name."""
    app = application_for_learner(session, app_id, me.id)
    row = repo.linked_file(session, app.id, sha256)
    if row is None:
        raise NotFound("no such evidence file on this application")
    return _file_response(ctx, row)


@router.get("/deposit-applications/{app_id}/evidence/{sha256}", response_class=StreamingResponse)
def download_evidence(app_id: Int64, sha256: Sha256, ctx: CtxDep, session: SessionDep,
                      reviewer: Reviewer) -> StreamingResponse:
    """Download an evidence file (by its SHA-256) of an application in the reviewer's queue,
    decrypted as it streams, as an attachment. Audited as `evidence.download`, a refusal too."""
    with refusals_recorded(session, actor=reviewer, action="evidence.download", target_type=_TARGET,
                           target_id=app_id):
        app = application_for_staff(session, app_id, reviewer)
        row = repo.linked_file(session, app.id, sha256)
        if row is None:
            raise NotFound("no such evidence file on this application")
        response = _file_response(ctx, row)
    record(session, actor=reviewer, action="evidence.download", target_type=_TARGET, target_id=app_id,
           detail={"sha256": sha256})
    return response
