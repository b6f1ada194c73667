"""Writing audit entries. Entries are only ever inserted; there is no update or delete path: the API has no such
route and the ORM refuses to flush a change to or deletion of an entry (`AppendOnlyViolation`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlmodel import Session

from node.errors import NodeError
from node.logging import current_request_id
from node.models import AuditEntry

if TYPE_CHECKING:
    from node.deps import Principal

__all__ = ["AppendOnlyViolation", "accesses_to_learner", "record", "refusals_recorded"]


def record(
    session: Session,
    *,
    actor: Principal | None,
    action: str,
    outcome: str = "ok",
    target_type: str | None = None,
    target_id: Any = None,
    detail: dict | None = None,
) -> AuditEntry:
    """Add an audit entry to the caller's unit of work (committed with the action it describes). Written while
    serving a request, its detail carries the request's id (`request_id`, as in the log lines and the
    response's `X-Request-ID`)."""
    detail = dict(detail or {})
    request_id = current_request_id()
    if request_id is not None:
        detail.setdefault("request_id", request_id)
    entry = AuditEntry(
        actor_kind=actor.kind if actor else "anonymous",
        actor_id=str(actor.id) if actor and actor.id is not None else None,
        actor_name=actor.name if actor else None,
        role=",".join(actor.roles) if actor else None,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        outcome=outcome,
        detail=detail,
    )
    session.add(entry)
    return entry


def accesses_to_learner(session: Session, *, learner_id: int, limit: int = 200) -> list[AuditEntry]:
    """The newest entries whose target is this learner's account (reads, searches, codes issued, sign-ins...),
    newest first: what the learner's "who accessed my data" page shows (PIPL)."""
    from sqlmodel import select

    stmt = (select(AuditEntry).where(AuditEntry.target_type == "learner", AuditEntry.target_id == str(learner_id))
            .order_by(AuditEntry.id.desc()).limit(limit))
    return list(session.exec(stmt).all())


@contextlib.contextmanager
def refusals_recorded(
    session: Session, *, actor: Principal | None, action: str, target_type: str | None = None, target_id: Any = None
) -> Iterator[None]:
    """Audit a refused or failed action, then let the error propagate: the request's work so far is rolled
    back and the audit entry alone committed, in the request's own session (a second connection would wait
    on SQLite's write lock, which the request's transaction holds). `denied` for 401/403/404, else `failed`."""
    try:
        yield
    except NodeError as exc:
        session.rollback()
        record(session, actor=actor, action=action, target_type=target_type, target_id=target_id,
               outcome="denied" if exc.status_code in (401, 403, 404) else "failed", detail={"code": exc.code})
        session.commit()
        raise


class AppendOnlyViolation(RuntimeError):
    """Something tried to change or delete an audit entry through the ORM."""


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(_mapper: Any, _connection: Any, target: AuditEntry) -> None:
    raise AppendOnlyViolation(f"audit entries are append-only (tried to update entry {target.id})")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(_mapper: Any, _connection: Any, target: AuditEntry) -> None:
    raise AppendOnlyViolation(f"audit entries are append-only (tried to delete entry {target.id})")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state: Any) -> None:
    """ORM-enabled `update(AuditEntry)` / `delete(AuditEntry)` statements bypass the mapper events above."""
    if (state.is_update or state.is_delete) and any(m.class_ is AuditEntry for m in state.all_mappers):
        raise AppendOnlyViolation("audit entries are append-only (bulk update/delete refused)")
