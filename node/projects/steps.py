"""One step of a reviewed workflow on a row that carries `state` and `version` (a 双证融通 project, an RPL
application): check the row as it is now, then move it on. Shared by node.projects.service and node.rpl.service."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import object_session
from sqlmodel import Session

from node.errors import Conflict
from node.models import utcnow

__all__ = ["expect_state", "touch"]


def touch(session: Session, row: Any, state: str | None = None) -> None:
    """Move `row` to `state` (if given), bump its version and flush."""
    if state is not None:
        row.state = state
    row.version += 1
    row.updated_at = utcnow()
    session.add(row)
    session.flush()


def expect_state(row: Any, states: tuple[str, ...], action: str, version: int | None, *, noun: str,
                 code: str) -> None:
    """Check the state (and the version the caller read) on the row as it is now: re-read and, on PostgreSQL,
    locked until the request commits, so two concurrent steps on one row run one after the other."""
    session = object_session(row)
    if session is not None and row.id is not None and row in session and row not in session.new:
        session.refresh(row, with_for_update=True)
    if row.state not in states:
        raise Conflict(f"the {noun} is {row.state}: cannot {action}", code=code,
                       detail={"state": row.state, "action": action})
    if version is not None and version != row.version:
        raise Conflict(f"the {noun} changed since it was read", code="stale_version",
                       detail={"expected_version": row.version})
