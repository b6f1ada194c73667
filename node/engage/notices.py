"""In-portal notices of decisions and deadlines, the learner's choices, and the delivery queue (docs/engage.md).

Decisions are noticed where they are made: the workflow that decides publishes one event (`node.decisions`) in
its own transaction, and `on_decision` adds the notice to the same unit of work — a notice exists exactly when
the decision committed (a deposit review, a conversion review or its appeal, a transfer completed, an RPL
confirmation or rejection).
Deadlines are found by the daily job `engage.deadline_notices` (a certificate whose validity ends within
`engage.expiry_notice_days`), once per certificate and end date (`notice.dedupe_key`).

A notice the learner receives by e-mail or SMS too gets one `notice_delivery` row per channel, sent by
`node.engage.delivery` (claimed, retried with backoff, dead after `engage.delivery_max_attempts`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from node.db import is_sqlite, session_scope
from node.decisions import Decision
from node.models import Achievement, utcnow
from node.models.engage import Notice, NoticeDelivery, NoticePreference

__all__ = ["KINDS", "deadline_notices", "notify", "on_decision", "preference_of", "unread_count"]

# What a learner may be told; each kind has texts `notice.kind.<kind>` (portal) and may be muted.
KINDS = ("review_decided", "appeal_answered", "conversion_decided", "transfer_completed", "certificate_expiring",
         "correction_answered", "rpl_decided", "conversion_window_closing")


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
    Returns its id, or None when muted or already given (same `dedupe_key`). Core inserts on the session's
    connection: the notice commits (or rolls back) with the caller's transaction."""
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


# -- decisions: told by the workflow that takes them ----------------------------------------------------

# workflow step (node.decisions) -> the notice's kind; a deposit decision on an appeal is an answered appeal
_KIND_OF = {"deposit.approve": "review_decided", "deposit.reject": "review_decided",
            "conversion.review": "conversion_decided", "conversion.appeal_review": "appeal_answered",
            "transfer.complete": "transfer_completed", "rpl.confirm": "rpl_decided", "rpl.reject": "rpl_decided"}


def on_decision(session: Session, decision: Decision) -> None:
    """The notices' listener of the workflow's steps (node.decisions): one notice per decision the learner
    waits for, in the decision's transaction."""
    kind = _KIND_OF.get(decision.kind)
    if kind is None:
        return
    if decision.kind.startswith("deposit."):
        if decision.appeal:
            kind = "appeal_answered"
        notify(session, learner_id=decision.learner_id, kind=kind,
               params={"id": decision.subject_id, "application": decision.subject_id, "outcome": decision.outcome},
               link=f"/me/applications/{decision.subject_id}")
    elif decision.kind.startswith("conversion."):
        notify(session, learner_id=decision.learner_id, kind=kind,
               params={"conversion": decision.subject_id, "outcome": decision.outcome, "id": decision.subject_id})
    elif decision.kind.startswith("rpl."):
        notify(session, learner_id=decision.learner_id, kind=kind,
               params={"id": decision.subject_id, "outcome": decision.outcome},
               link=f"/me/rpl/{decision.subject_id}")
    else:
        notify(session, learner_id=decision.learner_id, kind=kind,
               params={"transfer": decision.subject_id, "id": decision.subject_id})


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
