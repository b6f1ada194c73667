"""Individual deposits (个人申请存入): applications, two-stage review, appeals, deposit, corrections.

The rules live here; the state machine itself is data in `node.deposits.workflow`; SQL is in the repository.
Services flush, never commit: the request's session commits once (audit entries and ledger events included).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from node.audit.service import record
from node.deposits import repository as repo
from node.deposits import routing
from node.deposits.schemas import (
    AchievementClaim,
    AchievementCorrection,
    AchievementCreate,
    AchievementPublic,
    AchievementRecord,
    ApplicationPublic,
    ApplicationStaffView,
    dec_str,
    score_value,
)
from node.decisions import Decision, publish
from node.deposits.workflow import Action, Actor, ReviewFacts, State, Transition, check_reviewer, decide
from node.deps import Principal
from node.errors import BadRequest, Conflict, Forbidden, Gone, NodeError, NotFound
from node.evidence import repository as evidence_repo
from node.evidence.schemas import EvidencePublic
from node.evidence.storage import StoredFile
from node.ledger.service import EventSpec, append_events
from node.models import Achievement, DepositApplication, EvidenceFile, Learner, utcnow
from node.roles import Role

__all__ = [
    "achievement_public",
    "add_evidence",
    "appeal",
    "application_for_applicant",
    "application_for_learner",
    "application_for_staff",
    "check_can_add_evidence",
    "correct_achievement",
    "create_application",
    "learner_view",
    "learner_views",
    "review",
    "review_refusal",
    "staff_views",
    "submit",
]

_TARGET = "deposit_application"
# what a review decision means for the learner (the notice's `outcome`)
_OUTCOME = {State.PENDING_SECOND: "passed_first", State.REJECTED_FIRST: "rejected", State.REJECTED_SECOND: "rejected",
            State.DEPOSITED: "deposited", State.REJECTED_FINAL: "rejected"}


# -- reading --------------------------------------------------------------------------------------


def application_for_learner(session: Session, app_id: int, learner_id: int) -> DepositApplication:
    """The learner's own application; another learner's is reported as missing (no existence oracle)."""
    app = session.get(DepositApplication, app_id)
    if app is None or app.learner_id != learner_id:
        raise NotFound("no such application")
    return app


def application_for_staff(session: Session, app_id: int, staff: Principal) -> DepositApplication:
    """An application the staff member may see: one in their branch's queue (the centre: any), or one they
    started. Any other is reported as missing (no existence oracle across branches)."""
    app = session.get(DepositApplication, app_id)
    if app is None or not routing.can_see(routing.queue_scope(session, staff), staff, app):
        raise NotFound("no such application")
    return app


def application_for_applicant(session: Session, app_id: int, principal: Principal) -> DepositApplication:
    """An application the caller may act on as its applicant: the learner, or the outlet staff member who
    submitted it on the learner's behalf."""
    if principal.kind == "learner":
        return application_for_learner(session, app_id, principal.id)
    app = application_for_staff(session, app_id, principal)
    if principal.kind != "staff" or app.submitted_by_staff_id != principal.id:
        raise Forbidden("only the learner or the staff member who submitted this application may do that")
    return app


def _evidence_public(files: list[EvidenceFile]) -> list[EvidencePublic]:
    return [EvidencePublic(sha256=f.sha256, size=f.size, content_type=f.content_type,
                           original_name=f.original_name) for f in files]


def _public_fields(app: DepositApplication, files: list[EvidenceFile], branches: dict[int, str]) -> dict[str, Any]:
    return {
        "id": app.id,
        "state": app.state,
        "branch_code": branches.get(app.branch_id) if app.branch_id is not None else None,
        "version": app.version,
        "achievement": AchievementClaim.model_validate(app.claim),
        "evidence": _evidence_public(files),
        "submitted_on_behalf": app.submitted_by_staff_id is not None,
        "first_decision": app.first_decision,
        "first_reason": app.first_reason,
        "second_decision": app.second_decision,
        "second_reason": app.second_reason,
        "appeal_reason": app.appeal_reason,
        "appealed_at": app.appealed_at,
        "appeal_stage": app.appeal_stage,
        "appeal_decision": app.appeal_decision,
        "appeal_decision_reason": app.appeal_decision_reason,
        "achievement_id": app.achievement_id,
        "created_at": app.created_at,
        "submitted_at": app.submitted_at,
        "updated_at": app.updated_at,
    }


def learner_views(session: Session, apps: list[DepositApplication]) -> list[ApplicationPublic]:
    files = repo.evidence_by_application(session, [a.id for a in apps])
    branches = routing.branch_codes(session, apps)
    return [ApplicationPublic(**_public_fields(a, files[a.id], branches)) for a in apps]


def learner_view(session: Session, app: DepositApplication) -> ApplicationPublic:
    return learner_views(session, [app])[0]


def staff_views(session: Session, apps: list[DepositApplication]) -> list[ApplicationStaffView]:
    """Staff views of several applications: four queries however many there are."""
    files = repo.evidence_by_application(session, [a.id for a in apps])
    learners = repo.learners_by_id(session, {a.learner_id for a in apps})
    branches = routing.branch_codes(session, apps)
    return [
        ApplicationStaffView(
            **_public_fields(a, files[a.id], branches),
            learner_id=a.learner_id,
            learner_account_no=learners[a.learner_id].account_no,
            learner_id_number_masked=learners[a.learner_id].id_masked,
            submitted_by_staff_id=a.submitted_by_staff_id,
            first_reviewer_id=a.first_reviewer_id,
            second_reviewer_id=a.second_reviewer_id,
            appeal_reviewer_id=a.appeal_reviewer_id,
        )
        for a in apps
    ]


# -- the workflow ---------------------------------------------------------------------------------


def create_application(
    session: Session, *, learner_id: int, claim: AchievementCreate, actor: Principal,
    branch_code: str | None = None,
) -> DepositApplication:
    """A draft application, routed to a branch (`node.deposits.routing`); evidence is uploaded to it, then it
    is submitted."""
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    if learner.erased_at is not None:
        raise Gone("this learner's personal data has been erased", code="learner_erased")
    branch_id = routing.route_new(session, actor=actor, learner=learner, branch_code=branch_code)
    app = DepositApplication(
        learner_id=learner_id,
        state=State.DRAFT.value,
        claim=claim.model_dump(mode="json"),
        submitted_by_staff_id=actor.id if actor.kind == "staff" else None,
        branch_id=branch_id,
    )
    session.add(app)
    session.flush()
    record(session, actor=actor, action="deposit.create", target_type=_TARGET, target_id=app.id,
           detail={"type": claim.type, "learner_id": learner_id, "on_behalf": actor.kind == "staff",
                   "branch": routing.branch_codes(session, [app]).get(branch_id, "centre")})
    return app


def _transition(session: Session, app: DepositApplication, *, expected_version: int, values: dict[str, Any]) -> None:
    if app.version != expected_version or not repo.compare_and_set_application(
        session, app.id, expected_version=expected_version, values=values
    ):
        raise Conflict("the application changed since you read it; reload and try again", code="stale_version",
                       detail={"expected_version": expected_version})
    session.refresh(app)


def _check_applicant(transition: Transition, app: DepositApplication, principal: Principal) -> None:
    if transition.actor is Actor.LEARNER and principal.kind != "learner":
        raise Forbidden("only the learner may do that")
    if principal.kind == "learner":
        if app.learner_id != principal.id:
            raise NotFound("no such application")
        return
    if Role.OUTLET_STAFF not in principal.roles or app.submitted_by_staff_id != principal.id:
        raise Forbidden("only the learner or the staff member who submitted this application may do that")


def submit(session: Session, *, app: DepositApplication, actor: Principal, version: int) -> DepositApplication:
    transition = decide(app.state, Action.SUBMIT, appealed=app.appealed_at is not None)
    _check_applicant(transition, app, actor)
    if not repo.evidence_by_application(session, [app.id])[app.id]:
        raise Conflict("upload at least one evidence file before submitting", code="evidence_required")
    _transition(session, app, expected_version=version,
                values={"state": transition.target.value, "submitted_at": utcnow()})
    entry = record(session, actor=actor, action="deposit.submit", target_type=_TARGET, target_id=app.id,
                   detail={"state": app.state})
    publish(session, Decision(kind="deposit.submit", learner_id=app.learner_id, subject_id=app.id, at=entry.at,
                              subject=app))
    return app


def check_can_add_evidence(app: DepositApplication, actor: Principal) -> None:
    """Refuse early (before the upload is stored) when evidence cannot be added now or by this caller."""
    transition = decide(app.state, Action.ADD_EVIDENCE, appealed=app.appealed_at is not None)
    _check_applicant(transition, app, actor)


def add_evidence(
    session: Session, *, app: DepositApplication, actor: Principal, stored: StoredFile, original_name: str
) -> EvidenceFile:
    """Attach an uploaded file (already stored by content) to an application; bumps its version, so a
    reviewer who read the application before cannot decide on what they have not seen."""
    check_can_add_evidence(app, actor)
    row, created = evidence_repo.ensure_file(session, sha256=stored.sha256, size=stored.size,
                                             content_type=stored.content_type, original_name=original_name)
    linked = evidence_repo.link(session, app.id, stored.sha256)
    if linked:
        _transition(session, app, expected_version=app.version, values={})
    record(session, actor=actor, action="evidence.upload", target_type=_TARGET, target_id=app.id,
           detail={"sha256": stored.sha256, "size": stored.size, "content_type": stored.content_type,
                   "new_file": created, "newly_linked": linked})
    return row


def review_refusal(app: DepositApplication, reviewer: Principal) -> str | None:
    """Why `reviewer` cannot take the next review decision on `app` (the error code `review` would give), or None
    when they can: the same rules as `review`, asked before a form is shown (node.portal.staff)."""
    try:
        transition = decide(app.state, "approve", appealed=app.appealed_at is not None)
        if transition.stage is None:
            return "illegal_transition"
        check_reviewer(transition, reviewer.id, frozenset(reviewer.roles), _facts(app))
    except NodeError as exc:
        return exc.code
    return None


def _facts(app: DepositApplication) -> ReviewFacts:
    first = {app.first_reviewer_id}
    second = {app.second_reviewer_id}
    if app.appeal_reviewer_id is not None:
        (first if app.appeal_stage == "first" else second).add(app.appeal_reviewer_id)
    rejected_by = None
    if app.appeal_stage == "first":
        rejected_by = app.first_reviewer_id
    elif app.appeal_stage == "second":
        rejected_by = app.second_reviewer_id
    return ReviewFacts(
        submitted_by=app.submitted_by_staff_id,
        first_stage_reviewers=frozenset(i for i in first if i is not None),
        second_stage_reviewers=frozenset(i for i in second if i is not None),
        rejected_by=rejected_by,
    )


def review(
    session: Session,
    *,
    app: DepositApplication,
    reviewer: Principal,
    decision: str,
    reason: str | None,
    version: int,
) -> DepositApplication:
    """A first- or second-stage decision (or the decision on an appeal at that stage)."""
    if app.version != version:
        raise Conflict("the application changed since you read it; reload and try again", code="stale_version",
                       detail={"expected_version": version, "state": app.state})
    transition = decide(app.state, decision, appealed=app.appealed_at is not None, reason=reason)
    if transition.stage is None:  # submit/appeal are not reviewer decisions
        raise Conflict(f"cannot {decision} an application in state {app.state}", code="illegal_transition",
                       detail={"state": app.state, "action": decision})
    check_reviewer(transition, reviewer.id, frozenset(reviewer.roles), _facts(app))
    reason = reason.strip() if reason else None
    values: dict[str, Any] = {"state": transition.target.value}
    if transition.is_appeal_decision:
        values |= {"appeal_reviewer_id": reviewer.id, "appeal_decision": decision, "appeal_decision_reason": reason}
    elif transition.stage == "first":
        values |= {"first_reviewer_id": reviewer.id, "first_decision": decision, "first_reason": reason}
    else:
        values |= {"second_reviewer_id": reviewer.id, "second_decision": decision, "second_reason": reason}
    from_state = app.state
    _transition(session, app, expected_version=version, values=values)
    detail: dict[str, Any] = {"stage": transition.stage, "decision": decision, "from": from_state,
                              "to": app.state, "appeal": transition.is_appeal_decision}
    if transition.target is State.DEPOSITED:
        achievement, seq = _deposit(session, app)
        app.achievement_id = achievement.id
        session.add(app)
        session.flush()
        detail |= {"achievement_id": achievement.id, "ledger_seq": seq}
    entry = record(session, actor=reviewer, action=f"deposit.{decision}", target_type=_TARGET, target_id=app.id,
                   detail=detail | ({"reason": reason} if reason else {}))
    publish(session, Decision(kind=f"deposit.{decision}", learner_id=app.learner_id, subject_id=app.id, at=entry.at,
                              stage=transition.stage, appeal=transition.is_appeal_decision,
                              outcome=_OUTCOME[transition.target], subject=app))
    return app


def appeal(session: Session, *, app: DepositApplication, learner: Principal, reason: str | None, version: int) -> DepositApplication:
    """The learner's one appeal: back to the stage that rejected."""
    if app.version != version:
        raise Conflict("the application changed since you read it; reload and try again", code="stale_version",
                       detail={"expected_version": version, "state": app.state})
    transition = decide(app.state, Action.APPEAL, appealed=app.appealed_at is not None, reason=reason)
    _check_applicant(transition, app, learner)
    stage = "first" if transition.target is State.APPEALED_FIRST else "second"
    _transition(session, app, expected_version=version, values={
        "state": transition.target.value, "appeal_reason": (reason or "").strip(), "appealed_at": utcnow(),
        "appeal_stage": stage,
    })
    entry = record(session, actor=learner, action="deposit.appeal", target_type=_TARGET, target_id=app.id,
                   detail={"stage": stage})
    publish(session, Decision(kind="deposit.appeal", learner_id=app.learner_id, subject_id=app.id, at=entry.at,
                              stage=stage, subject=app))
    return app


def _deposit(session: Session, app: DepositApplication) -> tuple[Achievement, int]:
    """The approved claim becomes an achievement, with its `achievement.deposited` ledger event in the same
    transaction."""
    claim = AchievementClaim.model_validate(app.claim)
    learner = session.get(Learner, app.learner_id)
    assert learner is not None
    achievement = Achievement(
        learner_id=app.learner_id,
        type=claim.type,
        issuer_org_id=repo.organisation_id_by_code(session, claim.issuer_code),
        issuer_code=claim.issuer_code,
        issuer_name=claim.issuer_name,
        code=claim.code,
        title=claim.title,
        credits=claim.credits,
        hours=claim.hours,
        score_text=claim.score,
        score_value=score_value(claim.score),
        level=claim.level,
        certificate_no=claim.certificate_no,
        earned_on=claim.earned_on,
        expires_on=claim.expires_on,
        source="individual",
        status="deposited",
    )
    session.add(achievement)
    session.flush()
    (seq,) = append_events(session, [EventSpec(
        kind="achievement.deposited",
        learner_id=learner.id,
        pseudonym=learner.pseudonym,
        achievement_id=achievement.id,
        data={
            "achievement": achievement.id, "type": claim.type, "issuer": claim.issuer_code, "code": claim.code,
            "title": claim.title, "credits": dec_str(claim.credits), "hours": dec_str(claim.hours),
            "score": claim.score, "level": claim.level,
            "earned_on": claim.earned_on.isoformat() if claim.earned_on else None,
            "source": "individual", "application": app.id,
        },
    )])
    return achievement, seq


# -- achievements and corrections ------------------------------------------------------------------


def achievement_public(a: Achievement, application_id: int | None = None) -> AchievementPublic:
    return AchievementPublic(
        id=a.id, type=a.type, issuer_code=a.issuer_code, issuer_name=a.issuer_name, code=a.code, title=a.title,
        credits=a.credits, hours=a.hours, score=a.score_text, level=a.level, certificate_no=a.certificate_no,
        earned_on=a.earned_on, term=a.term,
        expires_on=a.expires_on, source=a.source, status=a.status, application_id=application_id,
        created_at=a.created_at,
    )


# API field -> column
_CORRECTABLE = {
    "title": "title", "code": "code", "credits": "credits", "hours": "hours", "score": "score_text",
    "level": "level", "earned_on": "earned_on", "expires_on": "expires_on",
}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return dec_str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def correct_achievement(
    session: Session, *, achievement_id: int, body: AchievementCorrection, actor: Principal
) -> tuple[Achievement, dict, dict, int]:
    """Correct fields of a deposited achievement: the row changes and an `achievement.corrected` ledger event
    records the old and new values and the reason. Returns (achievement, old, new, ledger seq)."""
    achievement = session.get(Achievement, achievement_id)
    if achievement is None:
        raise NotFound("no such achievement")
    if achievement.status != "deposited":
        raise Conflict(f"cannot correct an achievement in state {achievement.status}", code="illegal_transition",
                       detail={"state": achievement.status, "action": "correct"})
    if not (body.reason and body.reason.strip()):
        raise BadRequest("a reason is required to correct an achievement", code="reason_required")
    requested = body.model_dump(exclude_unset=True, exclude={"reason"})
    current = {field: getattr(achievement, column) for field, column in _CORRECTABLE.items()}
    merged = {"type": achievement.type, "issuer_code": achievement.issuer_code,
              "issuer_name": achievement.issuer_name, **current, **requested}
    try:
        checked = AchievementRecord.model_validate(merged)
    except ValidationError as exc:
        raise BadRequest("the corrected achievement is not valid", code="invalid_achievement",
                         detail={"errors": [e["msg"] for e in exc.errors()]}) from None
    changed = {f for f in requested if getattr(checked, f) != current[f]}
    if not changed:
        raise BadRequest("the correction changes nothing", code="nothing_to_correct")
    old_cols = {_CORRECTABLE[f]: current[f] for f in changed}
    new_cols = {_CORRECTABLE[f]: getattr(checked, f) for f in changed}
    if "score" in changed:
        new_cols["score_value"] = score_value(checked.score)
    if not repo.compare_and_set_achievement(session, achievement.id, old=old_cols, new=new_cols):
        raise Conflict("the achievement changed meanwhile; reload and try again", code="stale_version")
    session.refresh(achievement)
    old = {f: _plain(current[f]) for f in sorted(changed)}
    new = {f: _plain(getattr(checked, f)) for f in sorted(changed)}
    learner = session.get(Learner, achievement.learner_id)
    assert learner is not None
    reason = body.reason.strip()
    (seq,) = append_events(session, [EventSpec(
        kind="achievement.corrected",
        learner_id=learner.id,
        pseudonym=learner.pseudonym,
        achievement_id=achievement.id,
        data={"achievement": achievement.id, "issuer": achievement.issuer_code, "title": achievement.title,
              "old": old, "new": new, "reason": reason, "source": "correction"},
    )])
    record(session, actor=actor, action="achievement.correct", target_type="achievement",
           target_id=achievement.id, detail={"old": old, "new": new, "reason": reason, "ledger_seq": seq})
    return achievement, old, new, seq
