"""SQL of the deposit workflow and of achievements (built from the caller's session)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from node.models import (
    Achievement,
    ApplicationEvidence,
    DepositApplication,
    EvidenceFile,
    Learner,
    Organisation,
    utcnow,
)

__all__ = [
    "applications",
    "compare_and_set_achievement",
    "compare_and_set_application",
    "evidence_by_application",
    "learners_by_id",
    "open_application_ids",
    "organisation_by_code",
    "organisation_id_by_code",
    "organisations_by_id",
]

_app = DepositApplication.__table__
_ach = Achievement.__table__


def compare_and_set_application(session: Session, app_id: int, *, expected_version: int, values: dict[str, Any]) -> bool:
    """Update the application only if nobody changed it since `expected_version`; bump the version.
    On PostgreSQL a concurrent writer blocks on the row and then finds the version changed: exactly one wins."""
    result = session.execute(
        sa.update(_app)
        .where(_app.c.id == app_id, _app.c.version == expected_version)
        .values(**values, version=expected_version + 1, updated_at=utcnow())
    )
    return result.rowcount == 1


def compare_and_set_achievement(session: Session, achievement_id: int, *, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Update columns of a deposited achievement only if they still hold `old` (a correction made on stale
    values would record wrong old values in the ledger)."""
    conditions = [_ach.c.id == achievement_id, _ach.c.status == "deposited"]
    for column, value in old.items():
        conditions.append(_ach.c[column].is_(None) if value is None else _ach.c[column] == value)
    return session.execute(sa.update(_ach).where(*conditions).values(**new)).rowcount == 1


def applications(
    session: Session,
    *,
    learner_id: int | None = None,
    states: Iterable[str] | None = None,
    submitted_by: int | None = None,
    branches: Iterable[int | None] = (),
    cursor: int | None = None,
    oldest_first: bool = False,
    limit: int = 50,
    types: Iterable[str] | None = None,
    submitted_from: dt.datetime | None = None,
    submitted_before: dt.datetime | None = None,
) -> list[DepositApplication]:
    """Newest first (or oldest first); `cursor` is the last id of the previous page (keyset paging).
    Each entry of `branches` must hold: the application is routed to that branch (None: the centre's queue).
    `types`: the claimed achievement's type; `submitted_from` ≤ submitted_at < `submitted_before`."""
    stmt = select(DepositApplication)
    if types:
        stmt = stmt.where(DepositApplication.claim["type"].as_string().in_(list(types)))
    if submitted_from is not None:
        stmt = stmt.where(DepositApplication.submitted_at >= submitted_from)
    if submitted_before is not None:
        stmt = stmt.where(DepositApplication.submitted_at < submitted_before)
    if learner_id is not None:
        stmt = stmt.where(DepositApplication.learner_id == learner_id)
    if states:
        stmt = stmt.where(DepositApplication.state.in_(list(states)))
    if submitted_by is not None:
        stmt = stmt.where(DepositApplication.submitted_by_staff_id == submitted_by)
    for branch_id in branches:
        stmt = stmt.where(DepositApplication.branch_id.is_(None) if branch_id is None
                          else DepositApplication.branch_id == branch_id)
    if cursor is not None:
        stmt = stmt.where(DepositApplication.id > cursor if oldest_first else DepositApplication.id < cursor)
    order = DepositApplication.id.asc() if oldest_first else DepositApplication.id.desc()
    return list(session.exec(stmt.order_by(order).limit(limit)))


def open_application_ids(session: Session, *, branch_id: int, final_states: Iterable[str]) -> list[int]:
    """Applications routed to a branch that are not final yet (what re-routing moves)."""
    stmt = select(DepositApplication.id).where(DepositApplication.branch_id == branch_id,
                                               DepositApplication.state.not_in(list(final_states)))
    return list(session.exec(stmt.order_by(DepositApplication.id)))


def organisation_by_code(session: Session, code: str) -> Organisation | None:
    return session.exec(select(Organisation).where(Organisation.code == code)).first()


def organisations_by_id(session: Session, ids: Iterable[int | None]) -> dict[int, Organisation]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {o.id: o for o in session.exec(select(Organisation).where(Organisation.id.in_(wanted)))}


def evidence_by_application(session: Session, app_ids: Iterable[int]) -> dict[int, list[EvidenceFile]]:
    """The evidence files of several applications, in one query."""
    ids = list(app_ids)
    out: dict[int, list[EvidenceFile]] = {i: [] for i in ids}
    if not ids:
        return out
    stmt = (
        select(ApplicationEvidence.application_id, EvidenceFile)
        .join(EvidenceFile, EvidenceFile.sha256 == ApplicationEvidence.sha256)
        .where(ApplicationEvidence.application_id.in_(ids))
        .order_by(ApplicationEvidence.application_id, EvidenceFile.created_at, EvidenceFile.sha256)
    )
    for app_id, evidence in session.exec(stmt):
        out[app_id].append(evidence)
    return out


def learners_by_id(session: Session, ids: Iterable[int]) -> dict[int, Learner]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {lr.id: lr for lr in session.exec(select(Learner).where(Learner.id.in_(wanted)))}


def organisation_id_by_code(session: Session, code: str) -> int | None:
    return session.exec(select(Organisation.id).where(Organisation.code == code)).first()
