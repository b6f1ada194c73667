"""SQL of evidence files and their links to applications."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from node.models import ApplicationEvidence, EvidenceFile

__all__ = ["ensure_file", "is_linked", "link", "linked_file"]


def ensure_file(session: Session, *, sha256: str, size: int, content_type: str, original_name: str) -> tuple[EvidenceFile, bool]:
    """The file's row, inserted if new: (row, created). Concurrent identical uploads keep one row."""
    existing = session.get(EvidenceFile, sha256)
    if existing is not None:
        return existing, False
    row = EvidenceFile(sha256=sha256, size=size, content_type=content_type, original_name=original_name[:255])
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        existing = session.get(EvidenceFile, sha256)
        if existing is None:
            raise
        return existing, False
    return row, True


def is_linked(session: Session, application_id: int, sha256: str) -> bool:
    return session.get(ApplicationEvidence, (application_id, sha256)) is not None


def link(session: Session, application_id: int, sha256: str) -> bool:
    """Attach a file to an application; False when it already was."""
    if is_linked(session, application_id, sha256):
        return False
    session.add(ApplicationEvidence(application_id=application_id, sha256=sha256))
    session.flush()
    return True


def linked_file(session: Session, application_id: int, sha256: str) -> EvidenceFile | None:
    stmt = (
        select(EvidenceFile)
        .join(ApplicationEvidence, ApplicationEvidence.sha256 == EvidenceFile.sha256)
        .where(ApplicationEvidence.application_id == application_id, EvidenceFile.sha256 == sha256)
    )
    return session.exec(stmt).first()
