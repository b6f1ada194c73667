"""In-portal notices of decisions and deadlines, the learner's choices, and the delivery queue (docs/engage.md).

Decisions are noticed where they are made, without touching the services that make them: a `before_flush`
listener (`install_hooks`) sees a conversion request or a transfer change state, or a deposit application's
review being audited (`deposit.approve` / `deposit.reject`: the review itself is a compare-and-set UPDATE), in
a session, and adds the notice to the same unit of work: a notice exists exactly when the decision committed.
Deadlines are found by the daily job `engage.deadline_notices` (a certificate whose validity ends within
`engage.expiry_notice_days`), once per certificate and end date (`notice.dedupe_key`).

A notice the learner receives by e-mail or SMS too gets one `notice_delivery` row per channel, sent by
`node.engage.delivery` (claimed, retried with backoff, dead after `engage.delivery_max_attempts`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from node.db import is_sqlite, session_scope
from node.models import Achievement, AuditEntry, DepositApplication, utcnow
from node.models.engage import Notice, NoticeDelivery, NoticePreference

__all__ = ["KINDS", "deadline_notices", "install_hooks", "notify", "preference_of", "unread_count"]

# What a learner may be told; each kind has texts `notice.kind.<kind>` (portal) and may be muted.
KINDS = ("review_decided", "appeal_answered", "conversion_decided", "transfer_completed", "certificate_expiring",
         "correction_answered")


def preference_of(session: Session, learner_id: int) -> NoticePreference | None:
    return session.get(NoticePreference, learner_id)


def _insert(session: Session):
    if is_sqlite(session.get_bind()):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


def notify(session: Session, *, learner_id: int, kind: str, params: dict | None = None, link: str | None = None,
           dedupe_key: str | None = None) -> int | None:
    """A notice to the learner (unless they muted its kind), with its e-mail/SMS deliveries as they chose.
    Returns its id, or None when muted or already given (same `dedupe_key`). Core inserts: also safe inside a
    flush (the hooks)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    conn = session.connection()
    pref = _preference_row(conn, learner_id)
    if pref is not None and kind in (pref.get("muted_kinds") or []):
        return None
    now = utcnow()
    values = dict(learner_id=learner_id, kind=kind, params=params or {}, link=link, dedupe_key=dedupe_key,
                  created_at=now)
    stmt = _insert(session)(Notice.__table__).values(**values)
    if dedupe_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    notice_id = conn.execute(stmt.returning(Notice.__table__.c.id)).scalar()
    if notice_id is None:
        return None
    channels = []
    if pref is not None:
        if kind in (pref.get("email_kinds") or []) and pref.get("email_cipher"):
            channels.append("email")
        if kind in (pref.get("sms_kinds") or []) and pref.get("phone_cipher"):
            channels.append("sms")
    for channel in channels:
        conn.execute(sa.insert(NoticeDelivery.__table__).values(
            notice_id=notice_id, learner_id=learner_id, channel=channel, state="pending", attempts=0,
            next_attempt_at=now, created_at=now))
    return notice_id


def _preference_row(conn: sa.Connection, learner_id: int) -> dict | None:
    row = conn.execute(sa.select(NoticePreference.__table__).where(
        NoticePreference.__table__.c.learner_id == learner_id)).mappings().first()
    return dict(row) if row is not None else None


def unread_count(session: Session, learner_id: int) -> int:
    return session.exec(select(sa.func.count()).select_from(Notice).where(
        Notice.learner_id == learner_id, Notice.read_at.is_(None))).one()


# -- decisions: seen in the session that makes them ------------------------------------------------------


def _state_change(obj: Any) -> tuple[str | None, str | None] | None:
    history = inspect(obj).attrs.state.history
    if not history.has_changes():
        return None
    old = history.deleted[0] if history.deleted else None
    new = history.added[0] if history.added else None
    return (old, new) if old != new else None


_DEPOSIT_DECIDED = {"pending_second": "passed_first", "rejected_first": "rejected", "rejected_second": "rejected",
                    "deposited": "deposited", "rejected_final": "rejected"}


def _deposit_notice(session: OrmSession, entry: AuditEntry) -> tuple[int, str, dict, str] | None:
    """A deposit application's review is written with a compare-and-set UPDATE (node.deposits.repository), not
    through the ORM; its audit entry (`deposit.approve` / `deposit.reject`, detail `from` → `to`) is."""
    detail = entry.detail or {}
    new, old = detail.get("to"), detail.get("from")
    if new not in _DEPOSIT_DECIDED or entry.target_id is None or not str(entry.target_id).isdigit():
        return None
    with session.no_autoflush:
        app = session.get(DepositApplication, int(entry.target_id))
    if app is None:
        return None
    kind = "appeal_answered" if (old or "").startswith("appealed") or detail.get("appeal") else "review_decided"
    return app.learner_id, kind, {"id": app.id, "application": app.id, "outcome": _DEPOSIT_DECIDED[new]}, \
        f"/me/applications/{app.id}"


def _orm_notice(obj: Any, new: str | None) -> tuple[int, str, dict, str | None] | None:
    from node.models.standards import ConversionRequest
    from node.models.transfers import Transfer

    if isinstance(obj, ConversionRequest) and new in ("decided", "closed"):
        kind = "appeal_answered" if new == "closed" else "conversion_decided"
        return obj.learner_id, kind, {"conversion": obj.id, "outcome": new}, None
    if isinstance(obj, Transfer) and new == "completed":
        return obj.learner_id, "transfer_completed", {"transfer": obj.id}, None
    return None


def _before_flush(session: OrmSession, _context: Any, _instances: Any) -> None:
    from node.models.standards import ConversionRequest
    from node.models.transfers import Transfer

    pending: list = []
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, AuditEntry):
            if obj in session.new and obj.outcome == "ok" and obj.action in ("deposit.approve", "deposit.reject") \
                    and obj.target_type == "deposit_application":
                notice = _deposit_notice(session, obj)
                if notice is not None:
                    pending.append((None, notice))
            continue
        if not isinstance(obj, ConversionRequest | Transfer):
            continue
        change = (None, obj.state) if obj in session.new else _state_change(obj)
        if change is not None:
            pending.append((obj, change))
    if pending:
        session.info.setdefault("engage_pending", []).extend(pending)


def _after_flush(session: OrmSession, _context: Any) -> None:
    pending = session.info.pop("engage_pending", None)
    if not pending:
        return
    for obj, change in pending:
        notice = change if obj is None else _orm_notice(obj, change[1])
        if notice is not None and notice[0] is not None:
            learner_id, kind, params, link = notice
            if obj is not None:
                params = {**params, "id": getattr(obj, "id", None)}
            notify(session, learner_id=learner_id, kind=kind, params=params, link=link)  # type: ignore[arg-type]


_installed = False


def install_hooks() -> None:
    """Listen for decisions in every session of the process (once)."""
    global _installed
    if _installed:
        return
    event.listen(OrmSession, "before_flush", _before_flush)
    event.listen(OrmSession, "after_flush", _after_flush)
    _installed = True


# -- deadlines ------------------------------------------------------------------------------------------


def deadline_notices(ctx: Any, *, today: dt.date | None = None, batch: int = 10_000) -> dict:
    """A notice for each deposited certificate whose validity ends within `engage.expiry_notice_days` (once
    per certificate and end date)."""
    today = today or dt.date.today()
    horizon = today + dt.timedelta(days=ctx.settings.engage.expiry_notice_days)
    given = 0
    with session_scope(ctx.engine) as session:
        rows = session.execute(select(Achievement.id, Achievement.learner_id, Achievement.title,
                                      Achievement.expires_on).where(
            Achievement.status == "deposited", Achievement.expires_on >= today, Achievement.expires_on <= horizon)
            .order_by(Achievement.id).limit(batch)).all()
        for row in rows:
            if notify(session, learner_id=row.learner_id, kind="certificate_expiring",
                      params={"id": row.id, "title": row.title, "expires_on": row.expires_on.isoformat()},
                      link=f"/me/records/{row.id}",
                      dedupe_key=f"expiry:{row.id}:{row.expires_on.isoformat()}") is not None:
                given += 1
    return {"notices": given, "considered": len(rows)}
