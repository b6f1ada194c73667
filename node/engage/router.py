"""The engagement API (issue 16, items 5–8): points, notices and their preferences, data rights, counselling.

Learner routes under `/api/v1/me/...`; staff handle correction requests (centre reviewers, with the existing
correction of `node.deposits`), run counselling what-ifs (outlet staff); institutions download what they
deposited. Every staff action and every export is audited."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session, select

from node.audit.service import record, refusals_recorded
from node.deposits.router import correct_achievement
from node.deposits.schemas import AchievementCorrection
from node.deps import CtxDep, Principal, SessionDep, public, require_roles
from node.engage import counselling, points, rights
from node.engage.notices import KINDS, notify
from node.errors import BadRequest, Conflict, NotFound
from node.models import utcnow
from node.models.engage import CorrectionRequest, CounsellingSession, Notice, NoticePreference
from node.models.types import Int64
from node.roles import Role

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["engagement"])

LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
CentreReviewer = Annotated[Principal, Depends(require_roles(Role.CENTRE_REVIEWER))]
OutletStaff = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF))]
Uploader = Annotated[Principal, Depends(require_roles(Role.INSTITUTION_UPLOADER))]

NoticeKind = Literal["review_decided", "appeal_answered", "conversion_decided", "transfer_completed",
                     "certificate_expiring", "correction_answered", "rpl_decided",
                     "conversion_window_closing"]
assert set(NoticeKind.__args__) == set(KINDS)  # type: ignore[attr-defined]


# -- points ---------------------------------------------------------------------------------------------


class PointsEntryPublic(BaseModel):
    id: int
    points: int
    kind: str
    rule_id: str
    achievement_id: int | None
    note: str
    expires_on: dt.date | None
    created_at: dt.datetime


class BenefitPublic(BaseModel):
    id: str
    cost: int
    name_zh: str
    name_en: str
    per_learner: int | None
    valid_from: dt.date | None
    valid_to: dt.date | None
    open: bool


class RulePublic(BaseModel):
    id: str
    event: str
    types: list[str]
    points: int
    max_per_year: int | None
    name_zh: str
    name_en: str


class PointsPublic(BaseModel):
    balance: int
    earned: int
    spent: int
    lapsing: int
    lapsing_on: dt.date | None
    entries: list[PointsEntryPublic]
    benefits: list[BenefitPublic]
    rules: list[RulePublic]


class RedemptionCreate(BaseModel):
    benefit: str = Field(min_length=1, max_length=64)


def points_view(session: Session, ctx, learner_id: int) -> PointsPublic:
    config = points.points_config(ctx)
    summary = points.points_summary(session, learner_id)
    today = dt.date.today()
    return PointsPublic(
        balance=summary.balance, earned=summary.earned, spent=summary.spent, lapsing=summary.lapsing,
        lapsing_on=summary.lapsing_on,
        entries=[PointsEntryPublic.model_validate(e, from_attributes=True) for e in summary.entries[:500]],
        benefits=[BenefitPublic(id=b.id, cost=b.cost, name_zh=b.name_zh, name_en=b.name_en,
                                per_learner=b.per_learner, valid_from=b.valid_from, valid_to=b.valid_to,
                                open=b.open_on(today)) for b in config.benefits],
        rules=[RulePublic(id=r.id, event=r.event, types=sorted(r.types), points=r.points,
                          max_per_year=r.max_per_year, name_zh=r.name_zh, name_en=r.name_en)
               for r in config.rules])


@router.get("/me/points", response_model=PointsPublic)
def my_points(session: SessionDep, ctx: CtxDep, me: LearnerOnly) -> PointsPublic:
    """The learner's points: balance (lapsed points left out), the entries, the benefits and the earning rules."""
    return points_view(session, ctx, me.id)


@router.post("/me/points/redemptions", response_model=PointsEntryPublic, status_code=201)
def redeem_points(body: RedemptionCreate, session: SessionDep, ctx: CtxDep, me: LearnerOnly) -> PointsEntryPublic:
    """Exchange points for a benefit (409 `insufficient_points`, `benefit_closed`, `benefit_limit`,
    `benefit_unavailable`; 404 for an unknown benefit)."""
    with refusals_recorded(session, actor=me, action="points.redeem", target_type="learner", target_id=me.id):
        entry = points.redeem(session, ctx, learner_id=me.id, benefit_id=body.benefit, actor=me.name)
    record(session, actor=me, action="points.redeem", target_type="learner", target_id=me.id,
           detail={"benefit": body.benefit, "points": -entry.points})
    return PointsEntryPublic.model_validate(entry, from_attributes=True)


# -- notices --------------------------------------------------------------------------------------------


class NoticePublic(BaseModel):
    id: int
    kind: str
    params: dict
    link: str | None
    read_at: dt.datetime | None
    created_at: dt.datetime


class NoticePage(BaseModel):
    items: list[NoticePublic]
    unread: int
    next_cursor: int | None


def notices_of(session: Session, learner_id: int, *, cursor: int | None, limit: int) -> NoticePage:
    query = select(Notice).where(Notice.learner_id == learner_id)
    if cursor is not None:
        query = query.where(Notice.id < cursor)
    rows = session.exec(query.order_by(Notice.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    unread = session.exec(select(sa.func.count()).select_from(Notice).where(
        Notice.learner_id == learner_id, Notice.read_at.is_(None))).one()
    return NoticePage(items=[NoticePublic.model_validate(r, from_attributes=True) for r in rows], unread=unread,
                      next_cursor=rows[-1].id if more and rows else None)


@router.get("/me/notices", response_model=NoticePage)
def my_notices(session: SessionDep, me: LearnerOnly, cursor: Int64 | None = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50) -> NoticePage:
    """The learner's notices, newest first (keyset: `cursor` = the last id seen)."""
    return notices_of(session, me.id, cursor=cursor, limit=limit)


def mark_read(session: Session, learner_id: int, notice_id: int | None) -> int:
    """Mark one notice (or all, with None) read; returns how many changed."""
    stmt = sa.update(Notice).where(Notice.learner_id == learner_id, Notice.read_at.is_(None))
    if notice_id is not None:
        if session.exec(select(Notice.id).where(Notice.id == notice_id, Notice.learner_id == learner_id)).first() \
                is None:
            raise NotFound("no such notice")
        stmt = stmt.where(Notice.id == notice_id)
    return session.execute(stmt.values(read_at=utcnow())).rowcount or 0


@router.post("/me/notices/{notice_id}/read", status_code=204)
def read_notice(notice_id: Int64, session: SessionDep, me: LearnerOnly) -> Response:
    """Mark one of the learner's notices as read; 404 for a notice that is not theirs."""
    mark_read(session, me.id, notice_id)
    return Response(status_code=204)


@router.post("/me/notices/read-all", status_code=204)
def read_all_notices(session: SessionDep, me: LearnerOnly) -> Response:
    """Mark every notice of the learner as read."""
    mark_read(session, me.id, None)
    return Response(status_code=204)


class PreferencesPublic(BaseModel):
    kinds: list[str]
    muted_kinds: list[str]
    email_kinds: list[str]
    sms_kinds: list[str]
    email: str | None
    phone: str | None


class PreferencesUpdate(BaseModel):
    muted_kinds: list[NoticeKind] = Field(default_factory=list, max_length=20)
    email_kinds: list[NoticeKind] = Field(default_factory=list, max_length=20)
    sms_kinds: list[NoticeKind] = Field(default_factory=list, max_length=20)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=20)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        local, _, domain = value.rpartition("@")
        if not local or "." not in domain or any(c.isspace() or c in "<>,;\"" for c in value) or \
                not value.isprintable():
            raise ValueError("not an e-mail address")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        digits = value.strip().replace(" ", "").replace("-", "")
        if not (digits.lstrip("+").isdigit() and 6 <= len(digits.lstrip("+")) <= 15 and digits.isascii()):
            raise ValueError("not a phone number")
        return digits


def preferences_view(session: Session, ctx, learner_id: int) -> PreferencesPublic:
    pref = session.get(NoticePreference, learner_id)
    decrypt = (lambda c: ctx.cipher.decrypt(c, pref.key_id) if c and pref and pref.key_id else None)
    return PreferencesPublic(kinds=list(KINDS), muted_kinds=pref.muted_kinds if pref else [],
                             email_kinds=pref.email_kinds if pref else [], sms_kinds=pref.sms_kinds if pref else [],
                             email=decrypt(pref.email_cipher) if pref else None,
                             phone=decrypt(pref.phone_cipher) if pref else None)


def save_preferences(session: Session, ctx, me: Principal, body: PreferencesUpdate) -> PreferencesPublic:
    if body.email_kinds and not body.email:
        raise BadRequest("an e-mail address is needed to receive notices by e-mail", code="address_required",
                         detail={"field": "email"})
    if body.sms_kinds and not body.phone:
        raise BadRequest("a phone number is needed to receive notices by SMS", code="address_required",
                         detail={"field": "phone"})
    pref = session.get(NoticePreference, me.id) or NoticePreference(learner_id=me.id)
    pref.muted_kinds = sorted(set(body.muted_kinds))
    pref.email_kinds = sorted(set(body.email_kinds) - set(body.muted_kinds))
    pref.sms_kinds = sorted(set(body.sms_kinds) - set(body.muted_kinds))
    key_id = ctx.settings.security.database_key_id
    pref.email_cipher = ctx.cipher.encrypt(body.email) if body.email else None
    pref.phone_cipher = ctx.cipher.encrypt(body.phone) if body.phone else None
    pref.key_id, pref.updated_at = key_id, utcnow()
    session.add(pref)
    session.flush()
    record(session, actor=me, action="notice.preferences", target_type="learner", target_id=me.id,
           detail={"muted": pref.muted_kinds, "email": pref.email_kinds, "sms": pref.sms_kinds,
                   "has_email": body.email is not None, "has_phone": body.phone is not None})
    return preferences_view(session, ctx, me.id)


@router.get("/me/notice-preferences", response_model=PreferencesPublic)
def my_preferences(session: SessionDep, ctx: CtxDep, me: LearnerOnly) -> PreferencesPublic:
    """The learner's notice settings: per kind of notice, in the portal only, by e-mail or by SMS, or muted."""
    return preferences_view(session, ctx, me.id)


@router.put("/me/notice-preferences", response_model=PreferencesPublic)
def update_preferences(body: PreferencesUpdate, session: SessionDep, ctx: CtxDep, me: LearnerOnly) -> PreferencesPublic:
    """What the learner receives: muted kinds are neither shown nor sent; e-mail and SMS kinds are also sent
    there (400 `address_required` without the address)."""
    return save_preferences(session, ctx, me, body)


# -- data rights ----------------------------------------------------------------------------------------


def export_for(session: Session, ctx, me: Principal, fmt: str) -> dict:
    export = rights.data_export(session, ctx, me.id)
    record(session, actor=me, action="rights.export", target_type="learner", target_id=me.id, detail={"format": fmt})
    return export


@router.get("/me/data-export")
def my_data_export(session: SessionDep, ctx: CtxDep, me: LearnerOnly) -> Response:
    """Everything the node holds about the learner, as JSON (PIPL art. 45)."""
    export = export_for(session, ctx, me, "json")
    return Response(json.dumps(export, ensure_ascii=False, indent=1), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="my-data-{export["account"]["account_no"]}.json"',
        "Cache-Control": "no-store"})


@router.get("/me/data-export.pdf")
def my_data_export_pdf(session: SessionDep, ctx: CtxDep, me: LearnerOnly) -> Response:
    """The same copy as a readable PDF."""
    export = export_for(session, ctx, me, "pdf")
    region = ctx.settings.region
    pdf = rights.export_pdf(export, region_zh=region.name_zh, region_en=region.name_en)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="my-data-{export["account"]["account_no"]}.pdf"',
        "Cache-Control": "no-store"})


class RetentionRule(BaseModel):
    key: str
    what: str
    kept: str
    days: int | None = None


@router.get("/retention", response_model=list[RetentionRule], dependencies=[Depends(public)])
def retention(ctx: CtxDep) -> list[RetentionRule]:
    """What the node keeps and for how long (docs/privacy.md)."""
    return [RetentionRule(**r) for r in rights.retention_rules(ctx)]


class CorrectionRequestCreate(BaseModel):
    achievement_id: Int64
    message: str = Field(min_length=1, max_length=1000)


class CorrectionRequestPublic(BaseModel):
    id: int
    learner_id: int
    achievement_id: int
    message: str
    state: str
    answer: str | None
    ledger_seq: int | None
    created_at: dt.datetime
    handled_at: dt.datetime | None


def _cr(row: CorrectionRequest) -> CorrectionRequestPublic:
    return CorrectionRequestPublic.model_validate(row, from_attributes=True)


@router.post("/me/correction-requests", response_model=CorrectionRequestPublic, status_code=201)
def request_correction(body: CorrectionRequestCreate, session: SessionDep, me: LearnerOnly) -> CorrectionRequestPublic:
    """Ask the centre to correct one of the learner's records (PIPL art. 46); 409 `duplicate` while one waits."""
    message = body.message.strip()
    if not message:
        raise BadRequest("say what is wrong", code="reason_required")
    return _cr(rights.open_correction(session, learner=me, achievement_id=body.achievement_id, message=message))


@router.get("/me/correction-requests", response_model=list[CorrectionRequestPublic])
def my_correction_requests(session: SessionDep, me: LearnerOnly) -> list[CorrectionRequestPublic]:
    """The learner's correction requests, newest first (at most 200), with each one's state and answer."""
    rows = session.exec(select(CorrectionRequest).where(CorrectionRequest.learner_id == me.id)
                        .order_by(CorrectionRequest.id.desc()).limit(200)).all()
    return [_cr(r) for r in rows]


@router.get("/correction-requests", response_model=list[CorrectionRequestPublic])
def correction_queue(session: SessionDep, staff: CentreReviewer,
                     state: Literal["open", "corrected", "declined"] = "open",
                     cursor: Int64 | None = None,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[CorrectionRequestPublic]:
    """Learners' correction requests, oldest first (keyset: `cursor` = the last id seen)."""
    query = select(CorrectionRequest).where(CorrectionRequest.state == state)
    if cursor is not None:
        query = query.where(CorrectionRequest.id > cursor)
    rows = session.exec(query.order_by(CorrectionRequest.id).limit(limit)).all()
    record(session, actor=staff, action="correction.list", target_type="correction_request",
           detail={"state": state, "count": len(rows)})
    return [_cr(r) for r in rows]


class CorrectionResolve(BaseModel):
    correction: AchievementCorrection


class CorrectionDecline(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


def _open_request(session: Session, request_id: int) -> CorrectionRequest:
    row = session.exec(select(CorrectionRequest).where(CorrectionRequest.id == request_id)
                       .with_for_update()).first()
    if row is None:
        raise NotFound("no such correction request")
    if row.state != "open":
        raise Conflict("the request was already handled", code="illegal_transition",
                       detail={"state": row.state, "action": "handle"})
    return row


@router.post("/correction-requests/{request_id}/correct", response_model=CorrectionRequestPublic)
def resolve_correction(request_id: Int64, body: CorrectionResolve, session: SessionDep,
                       staff: CentreReviewer) -> CorrectionRequestPublic:
    """Correct the record through the existing correction (`POST /api/v1/achievements/{id}/corrections`: an
    `achievement.corrected` ledger event with old and new values and the reason) and close the request."""
    with refusals_recorded(session, actor=staff, action="correction.resolve", target_type="correction_request",
                           target_id=request_id):
        row = _open_request(session, request_id)
    result = correct_achievement(achievement_id=row.achievement_id, body=body.correction, session=session,
                                 staff=staff)  # audits its own refusals
    row.state, row.handled_by, row.handled_at = "corrected", staff.id, utcnow()
    row.answer, row.ledger_seq = body.correction.reason, result.ledger_seq
    session.add(row)
    record(session, actor=staff, action="correction.resolve", target_type="correction_request", target_id=row.id,
           detail={"achievement_id": row.achievement_id, "ledger_seq": result.ledger_seq})
    notify(session, learner_id=row.learner_id, kind="correction_answered",
           params={"id": row.id, "outcome": "corrected"}, link="/me/data")
    return _cr(row)


@router.post("/correction-requests/{request_id}/decline", response_model=CorrectionRequestPublic)
def decline_correction(request_id: Int64, body: CorrectionDecline, session: SessionDep,
                       staff: CentreReviewer) -> CorrectionRequestPublic:
    """Decline with a reason the learner reads."""
    reason = body.reason.strip()
    if not reason:
        raise BadRequest("a reason is required", code="reason_required")
    with refusals_recorded(session, actor=staff, action="correction.decline", target_type="correction_request",
                           target_id=request_id):
        row = _open_request(session, request_id)
    row.state, row.handled_by, row.handled_at, row.answer = "declined", staff.id, utcnow(), reason
    session.add(row)
    record(session, actor=staff, action="correction.decline", target_type="correction_request", target_id=row.id,
           detail={"achievement_id": row.achievement_id})
    notify(session, learner_id=row.learner_id, kind="correction_answered",
           params={"id": row.id, "outcome": "declined"}, link="/me/data")
    return _cr(row)


@router.get("/institution/deposits.csv", response_class=StreamingResponse)
def institution_extract(ctx: CtxDep, session: SessionDep, staff: Uploader) -> StreamingResponse:
    """Everything the caller's institution deposited, as CSV (UTF-8 with BOM), streamed in id order."""
    if staff.organisation_id is None:
        raise BadRequest("the caller belongs to no institution", code="unknown_institution")
    record(session, actor=staff, action="rights.institution_extract", target_type="organisation",
           target_id=staff.organisation_id)
    org_id = staff.organisation_id

    def lines():
        with Session(ctx.engine) as own:
            yield from rights.institution_rows(own, org_id)

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="deposits-{org_id}.csv"', "Cache-Control": "no-store"})


# -- counselling ----------------------------------------------------------------------------------------


class ConsentCode(BaseModel):
    code: str
    expires_at: dt.datetime


@router.post("/me/counselling-consents", response_model=ConsentCode, status_code=201)
def give_consent(session: SessionDep, ctx: CtxDep, me: LearnerOnly) -> ConsentCode:
    """A one-time code the learner gives an outlet's counsellor to run one what-if for them (shown once)."""
    code, consent = counselling.create_consent(session, ctx, learner=me)
    return ConsentCode(code=code, expires_at=consent.expires_at)


class CounsellingCreate(BaseModel):
    account_no: str = Field(min_length=1, max_length=20)
    code: str = Field(min_length=1, max_length=20)
    programme: str = Field(min_length=1, max_length=64)
    on: dt.date | None = None


class CounsellingPublic(BaseModel):
    id: int
    learner_id: int
    staff_id: int
    programme_code: str
    on_date: dt.date
    result: dict
    created_at: dt.datetime


@router.post("/counselling/sessions", response_model=CounsellingPublic, status_code=201)
def run_counselling(body: CounsellingCreate, session: SessionDep, ctx: CtxDep, staff: OutletStaff) -> CounsellingPublic:
    """Run a what-if for the learner whose consent code is given (400 `invalid_consent_code`)."""
    with refusals_recorded(session, actor=staff, action="counselling.what_if", target_type="counselling_session"):
        row = counselling.run_session(session, ctx, staff=staff, account_no=body.account_no.strip(),
                                      code=body.code, programme=body.programme.strip(),
                                      on=body.on or dt.date.today())
    return CounsellingPublic.model_validate(row, from_attributes=True)


@router.get("/counselling/sessions/{session_id}", response_model=CounsellingPublic)
def read_counselling(session_id: Int64, session: SessionDep, staff: OutletStaff) -> CounsellingPublic:
    """One counselling session this outlet ran: the learner's consent and the what-if result, for printing."""
    row = counselling.session_for_staff(session, staff=staff, session_id=session_id)
    return CounsellingPublic.model_validate(row, from_attributes=True)


_ = CounsellingSession  # re-exported type for the portal
