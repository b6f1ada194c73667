"""Reading and exporting the audit log (auditors only). Reading or exporting is itself audited.

The log is append-only: this router offers no update or delete, and the ORM refuses both
(`node.audit.service.AppendOnlyViolation`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from node.audit.service import record
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.errors import BadRequest
from node.models import AuditEntry
from node.roles import Role
from node.models.types import Int64

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Auditor = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]

_log = AuditEntry.__table__
_COLUMNS = ("id", "at", "actor_kind", "actor_id", "actor_name", "role", "action", "target_type", "target_id",
            "outcome", "detail")
_EXPORT_BATCH = 1000


class AuditEntryPublic(BaseModel):
    id: int
    at: dt.datetime
    actor_kind: str
    actor_id: str | None
    actor_name: str | None
    role: str | None
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    detail: dict


class AuditPage(BaseModel):
    items: list[AuditEntryPublic]
    next_cursor: int | None = None


class AuditFilters(BaseModel):
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    outcome: str | None = None
    from_: dt.datetime | None = None
    to: dt.datetime | None = None

    def conditions(self, *, actor: bool = True) -> list[sa.ColumnElement[bool]]:
        """The filters as SQL conditions (`actor=False`: all but the actor's, which the page reads apart)."""
        out: list[sa.ColumnElement[bool]] = []
        if self.actor and actor:
            out.append(sa.or_(_log.c.actor_id == self.actor, _log.c.actor_name == self.actor))
        if self.action:
            if self.action.endswith("*"):
                prefix = self.action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                out.append(_log.c.action.like(prefix + "%", escape="\\"))
            else:
                out.append(_log.c.action == self.action)
        if self.target:
            kind, sep, ident = self.target.partition(":")
            out.append(_log.c.target_type == kind)
            if sep:
                out.append(_log.c.target_id == ident)
        if self.outcome:
            out.append(_log.c.outcome == self.outcome)
        if self.from_:
            out.append(_log.c.at >= _aware(self.from_))
        if self.to:
            out.append(_log.c.at < _aware(self.to))
        return out

    def as_detail(self) -> dict[str, str]:
        return {k.rstrip("_"): (v.isoformat() if isinstance(v, dt.datetime) else v)
                for k, v in self.model_dump().items() if v is not None}


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def filters(
    actor: Annotated[str | None, Query(max_length=100, description="actor id or name")] = None,
    action: Annotated[str | None, Query(max_length=60, description="exact, or a prefix ending in *")] = None,
    target: Annotated[str | None, Query(max_length=110, description="type, or type:id")] = None,
    outcome: Annotated[Literal["ok", "denied", "failed", "not_found"] | None, Query()] = None,
    from_: Annotated[dt.datetime | None, Query(alias="from", description="inclusive")] = None,
    to: Annotated[dt.datetime | None, Query(description="exclusive")] = None,
) -> AuditFilters:
    if from_ and to and _aware(to) <= _aware(from_):
        raise BadRequest("'to' must be after 'from'", code="invalid_query")
    return AuditFilters(actor=actor, action=action, target=target, outcome=outcome, from_=from_, to=to)


FiltersDep = Annotated[AuditFilters, Depends(filters)]


def _row_public(row: sa.Row) -> AuditEntryPublic:
    return AuditEntryPublic(**{c: getattr(row, c) for c in _COLUMNS})


@router.get("", response_model=AuditPage)
def read_audit_log(
    session: SessionDep,
    auditor: Auditor,
    f: FiltersDep,
    cursor: Annotated[Int64 | None, Query(ge=0, description="the next_cursor of the previous page")] = None,
    limit: Annotated[Int64, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Newest first; pass `next_cursor` back as `cursor` for the following page. There is no total: counting
    a log of millions of entries would cost more than the page (docs/scaling.md)."""
    conditions = f.conditions(actor=False)
    if cursor is not None:
        conditions.append(_log.c.id < cursor)
    stmt = sa.select(_log).where(*conditions)
    if f.actor:
        # actor id or name: each read newest first from its own (column, id) index, at most a page from each,
        # rather than an OR that collects and sorts every entry of the actor (docs/scaling.md)
        parts = [sa.select(_log.c.id).where(column == f.actor, *conditions).order_by(_log.c.id.desc())
                 .limit(limit + 1).subquery() for column in (_log.c.actor_id, _log.c.actor_name)]
        stmt = sa.select(_log).where(_log.c.id.in_(sa.union(*(sa.select(p.c.id) for p in parts))))
    rows = session.execute(stmt.order_by(_log.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    record(session, actor=auditor, action="audit.read", target_type="audit_log",
           detail={"filters": f.as_detail(), "cursor": cursor, "count": len(rows)})
    return AuditPage(items=[_row_public(r) for r in rows], next_cursor=rows[-1].id if more else None)


def _batches(engine: Engine, conditions: list[sa.ColumnElement[bool]], upto: int) -> Iterator[sa.Row]:
    """The filtered log in id order, read in keyset batches with a connection of its own (the request's
    session has committed before the response streams). Stops at `upto`, the export's own audit entry, so
    entries written while it streams are not chased forever."""
    last = 0
    with engine.connect() as conn:
        while True:
            rows = conn.execute(
                sa.select(_log).where(*conditions, _log.c.id > last, _log.c.id <= upto)
                .order_by(_log.c.id).limit(_EXPORT_BATCH)
            ).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].id


def _plain(row: sa.Row) -> dict[str, Any]:
    out = {c: getattr(row, c) for c in _COLUMNS}
    out["at"] = _aware(out["at"]).isoformat() if out["at"] else None
    return out


def _csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(rows: Iterator[sa.Row]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(_COLUMNS)
    for i, row in enumerate(rows):
        plain = _plain(row)
        plain["detail"] = json.dumps(plain["detail"], ensure_ascii=False, sort_keys=True)
        writer.writerow([_csv_cell(plain[c]) for c in _COLUMNS])
        if i % 200 == 199:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _jsonl(rows: Iterator[sa.Row]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(_plain(row), ensure_ascii=False, sort_keys=True) + "\n"


@router.get("/export")
def export_audit_log(
    ctx: CtxDep,
    session: SessionDep,
    auditor: Auditor,
    f: FiltersDep,
    format: Literal["csv", "jsonl"] = "jsonl",
) -> StreamingResponse:
    """The whole filtered log, streamed, oldest first, as CSV or JSON Lines."""
    entry = record(session, actor=auditor, action="audit.export", target_type="audit_log",
                   detail={"filters": f.as_detail(), "format": format})
    session.flush()
    upto = entry.id  # the export covers the log up to and including its own entry
    # Committed here, not at the boundary: the export must be on record before a single byte leaves, and the
    # streaming reader's connection must not wait on this transaction (SQLite's write lock).
    session.commit()
    rows = _batches(ctx.engine, f.conditions(), upto)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    if format == "csv":
        body, media = _csv(rows), "text/csv; charset=utf-8"
    else:
        body, media = _jsonl(rows), "application/x-ndjson"
    return StreamingResponse(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="audit-{stamp}.{format}"',
        "Cache-Control": "no-store",
    })
