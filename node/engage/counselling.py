"""Counselling at an outlet (issue 16, item 8): staff run a what-if for a learner they advise, with the learner's
consent recorded, and print it.

Consent: the learner makes a one-time code on their page (or through the API); the code is shown once, only an
HMAC of it is stored (as activation codes are), it is valid for `engage.counselling_code_minutes` and for one
what-if session. Staff give the learner's account number and the code; the what-if is the conversion service's
own (`node.conversion.service.what_if`), stored with the session for printing, and both the consent's use and
every reading of the session are audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from sqlmodel import Session, select

from node.audit.service import record
from node.conversion.service import what_if
from node.deps import Principal
from node.errors import BadRequest, NotFound
from node.models import Learner, utcnow
from node.models.engage import CounsellingConsent, CounsellingSession

__all__ = ["CODE_ALPHABET", "create_consent", "run_session", "session_for_staff"]

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud at a desk
CODE_LENGTH = 8


def _hash(ctx: Any, code: str) -> str:
    key = hmac.new(ctx.token_secret, b"counselling-consent", hashlib.sha256).digest()
    return hmac.new(key, code.upper().replace("-", "").replace(" ", "").encode(), hashlib.sha256).hexdigest()


def create_consent(session: Session, ctx: Any, *, learner: Principal) -> tuple[str, CounsellingConsent]:
    """A new code for the learner; earlier unused codes are revoked (one valid code at a time)."""
    now = utcnow()
    for old in session.exec(select(CounsellingConsent).where(
            CounsellingConsent.learner_id == learner.id, CounsellingConsent.used_at.is_(None),
            CounsellingConsent.revoked_at.is_(None))).all():
        old.revoked_at = now
        session.add(old)
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    consent = CounsellingConsent(learner_id=learner.id, code_hash=_hash(ctx, code), created_at=now,
                                 expires_at=now + dt.timedelta(minutes=ctx.settings.engage.counselling_code_minutes))
    session.add(consent)
    session.flush()
    record(session, actor=learner, action="counselling.consent", target_type="learner", target_id=learner.id,
           detail={"consent": consent.id, "expires_at": consent.expires_at.isoformat()})
    return f"{code[:4]}-{code[4:]}", consent


def run_session(session: Session, ctx: Any, *, staff: Principal, account_no: str, code: str, programme: str,
                on: dt.date) -> CounsellingSession:
    """Check the learner's code (one answer for every failure: wrong, used, expired, another learner's) and run
    the what-if; the code is used up."""
    learner = session.exec(select(Learner).where(Learner.account_no == account_no)).first()
    now = utcnow()
    consent = None
    if learner is not None:
        consent = session.exec(select(CounsellingConsent).where(
            CounsellingConsent.learner_id == learner.id, CounsellingConsent.code_hash == _hash(ctx, code),
            CounsellingConsent.used_at.is_(None), CounsellingConsent.revoked_at.is_(None))
            .with_for_update()).first()
    if learner is None or consent is None or _aware(consent.expires_at) <= now:
        raise BadRequest("the learner's consent code is wrong, used or expired", code="invalid_consent_code")
    result = what_if(session, ctx, learner_id=learner.id, programme_code=programme, on=on)
    consent.used_at, consent.used_by = now, staff.id
    session.add(consent)
    row = CounsellingSession(learner_id=learner.id, consent_id=consent.id, staff_id=staff.id,
                             organisation_id=staff.organisation_id, programme_code=programme, on_date=on,
                             result=result)
    session.add(row)
    session.flush()
    record(session, actor=staff, action="counselling.what_if", target_type="learner", target_id=learner.id,
           detail={"session": row.id, "consent": consent.id, "programme": programme, "on": on.isoformat()})
    return row


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def session_for_staff(session: Session, *, staff: Principal, session_id: int) -> CounsellingSession:
    """A session the staff member ran (or one of their organisation's); audited as a reading of the learner."""
    row = session.get(CounsellingSession, session_id)
    if row is None or (row.staff_id != staff.id and (row.organisation_id is None
                                                     or row.organisation_id != staff.organisation_id)):
        raise NotFound("no such counselling session")
    record(session, actor=staff, action="counselling.read", target_type="learner", target_id=row.learner_id,
           detail={"session": row.id})
    return row
