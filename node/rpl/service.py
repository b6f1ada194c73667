"""The RPL workflow. Services only flush; the request's session commits.

draft ──submit (learner; a portfolio file at least)──▶ submitted ──assess (assessor: a catalogue course of a
programme as the standard, credits ≤ the course's)──▶ assessed ──confirm (centre reviewer ≠ assessor)──▶ confirmed
(an achievement, source `rpl`, with its `achievement.deposited` ledger event naming the application, the standard,
the assessor and the confirmer);  assessed ──reassess──▶ submitted;  submitted | assessed ──reject (reason)──▶ rejected.

Every step is audited and appended to the ledger as a private event about the learner (docs/ledger.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from node.audit.service import record
from node.decisions import Decision, publish
from node.deposits.schemas import dec_str
from node.deps import Principal
from node.errors import BadRequest, Conflict, Forbidden, NotFound
from node.evidence import repository as evidence_repo
from node.evidence.storage import StoredFile
from node.ledger.service import EventSpec, append_events
from node.projects.steps import expect_state, touch
from node.models import Achievement, EvidenceFile, Learner, Organisation, utcnow
from node.models.projects import RplApplication, RplEvidence
from node.standards import service as standards

__all__ = ["add_evidence", "application_for_learner", "application_for_staff", "applications", "assess", "create",
           "decide", "evidence_of", "submit"]

_TARGET = "rpl_application"


def _event(session: Session, app: RplApplication, event_kind: str, /, **data: Any) -> int:
    learner = session.get(Learner, app.learner_id)
    assert learner is not None
    (seq,) = append_events(session, [EventSpec(kind=event_kind, learner_id=learner.id, pseudonym=learner.pseudonym,
                                               data={"rpl_application": app.id, "state": app.state, **data})])
    return seq


def _touch(session: Session, app: RplApplication, state: str | None = None) -> None:
    touch(session, app, state)


def expect(app: RplApplication, states: tuple[str, ...], action: str, version: int | None = None) -> None:
    """Check the state (and the version the caller read) on the row as it is now (node.projects.steps)."""
    expect_state(app, states, action, version, noun="application", code="rpl_illegal_transition")


def application_for_learner(session: Session, app_id: int, learner_id: int) -> RplApplication:
    app = session.get(RplApplication, app_id)
    if app is None or app.learner_id != learner_id:
        raise NotFound(f"no RPL application {app_id}", code="rpl_not_found")
    return app


def application_for_staff(session: Session, app_id: int) -> RplApplication:
    app = session.get(RplApplication, app_id)
    if app is None or app.state == "draft":  # a draft is the learner's own until submitted
        raise NotFound(f"no RPL application {app_id}", code="rpl_not_found")
    return app


def applications(session: Session, *, learner_id: int | None = None, state: str | None = None,
                 limit: int = 200) -> list[RplApplication]:
    stmt = select(RplApplication)
    if learner_id is not None:
        stmt = stmt.where(RplApplication.learner_id == learner_id)
    else:
        stmt = stmt.where(RplApplication.state != "draft")
    if state:
        stmt = stmt.where(RplApplication.state == state)
    return list(session.exec(stmt.order_by(RplApplication.id.desc()).limit(limit)).all())  # type: ignore[union-attr]


def evidence_of(session: Session, app_id: int) -> list[EvidenceFile]:
    return list(session.exec(select(EvidenceFile).join(RplEvidence, RplEvidence.sha256 == EvidenceFile.sha256)
                             .where(RplEvidence.application_id == app_id).order_by(EvidenceFile.sha256)).all())


def create(session: Session, *, learner: Principal, kind: str, title: str, description: str, employer: str | None,
           hours: Decimal | None, started_on: Any, ended_on: Any) -> RplApplication:
    app = RplApplication(learner_id=learner.id, kind=kind, title=title.strip(), description=description.strip(),
                         employer=(employer or "").strip() or None, hours=hours, started_on=started_on,
                         ended_on=ended_on, state="draft")
    session.add(app)
    session.flush()
    record(session, actor=learner, action="rpl.create", target_type=_TARGET, target_id=app.id,
           detail={"kind": kind})
    return app


def add_evidence(session: Session, *, app: RplApplication, learner: Principal, stored: StoredFile,
                 original_name: str) -> tuple[EvidenceFile, bool]:
    expect(app, ("draft",), "add evidence")
    row, _ = evidence_repo.ensure_file(session, sha256=stored.sha256, size=stored.size,
                                       content_type=stored.content_type, original_name=original_name)
    linked = session.get(RplEvidence, (app.id, stored.sha256)) is None
    if linked:
        session.add(RplEvidence(application_id=app.id, sha256=stored.sha256))
        _touch(session, app)
    record(session, actor=learner, action="rpl.evidence", target_type=_TARGET, target_id=app.id,
           detail={"sha256": stored.sha256, "size": stored.size, "newly_linked": linked})
    return row, linked


def submit(session: Session, *, app: RplApplication, learner: Principal, version: int) -> RplApplication:
    expect(app, ("draft",), "submit", version)
    if not evidence_of(session, app.id):
        raise Conflict("attach the portfolio (evidence) before submitting", code="evidence_required")
    _touch(session, app, "submitted")
    seq = _event(session, app, "rpl.submitted", kind=app.kind, title=app.title)
    record(session, actor=learner, action="rpl.submit", target_type=_TARGET, target_id=app.id,
           detail={"ledger_seq": seq})
    return app


def assess(session: Session, *, app: RplApplication, assessor: Principal, programme: str, course: str,
           credits: Decimal | None, comment: str, version: int) -> RplApplication:
    """The assessor evaluates the portfolio against a catalogue course (the standard) and proposes credits, at
    most the course's own; 0 proposes no recognition."""
    expect(app, ("submitted",), "assess", version)
    try:
        prog = standards.build_programme(session, programme)
    except NotFound as exc:
        raise BadRequest(str(exc), code="rpl_standard_unknown") from exc
    target = prog.courses.get(course)
    if target is None:
        raise BadRequest(f"programme {programme} has no course {course}", code="rpl_standard_unknown")
    if credits is None or credits > target.credits:
        raise BadRequest(f"credits are between 0 and the course's {dec_str(target.credits)}",
                         code="rpl_credits_invalid", detail={"course_credits": dec_str(target.credits)})
    if target.never_exempt:
        raise BadRequest(f"course {course} is never granted by recognition", code="rpl_credits_invalid")
    app.programme_code, app.course_code, app.proposed_credits = programme, course, credits
    app.assessment, app.assessor_id, app.assessed_at = comment.strip(), assessor.id, utcnow()
    _touch(session, app, "assessed")
    seq = _event(session, app, "rpl.assessed", programme=programme, course=course, credits=dec_str(credits))
    record(session, actor=assessor, action="rpl.assess", target_type=_TARGET, target_id=app.id,
           detail={"programme": programme, "course": course, "credits": dec_str(credits), "ledger_seq": seq})
    return app


def decide(session: Session, *, app: RplApplication, reviewer: Principal, decision: str, reason: str | None,
           version: int) -> RplApplication:
    if decision == "reject":
        expect(app, ("submitted", "assessed"), "reject", version)
    else:
        expect(app, ("assessed",), decision, version)
    if reviewer.id == app.assessor_id:
        raise Forbidden("the centre's confirmation is someone other than the assessor", code="rpl_same_person")
    reason = (reason or "").strip()
    if decision in ("reject", "reassess") and not reason:
        raise BadRequest("give a reason", code="reason_required")
    app.decided_by, app.decided_at, app.decision_reason = reviewer.id, utcnow(), reason[:1000] or None
    detail: dict[str, Any] = {"decision": decision}
    if decision == "reassess":
        _touch(session, app, "submitted")
    elif decision == "reject":
        _touch(session, app, "rejected")
        detail["ledger_seq"] = _event(session, app, "rpl.rejected")
    else:
        if not app.proposed_credits:
            raise Conflict("the assessment proposes no credits: reject it or send it back", code="rpl_nothing_proposed")
        achievement, seq = _deposit(session, app, reviewer)
        app.achievement_id, app.ledger_seq = achievement.id, seq
        _touch(session, app, "confirmed")
        detail |= {"achievement_id": achievement.id, "ledger_seq": seq}
    entry = record(session, actor=reviewer, action=f"rpl.{decision}", target_type=_TARGET, target_id=app.id,
                   detail=detail | ({"reason": reason[:200]} if reason else {}))
    publish(session, Decision(kind=f"rpl.{decision}", learner_id=app.learner_id, subject_id=app.id, at=entry.at,
                              outcome=app.state, subject=app))
    return app


def _deposit(session: Session, app: RplApplication, reviewer: Principal) -> tuple[Achievement, int]:
    """The confirmed outcome: an achievement like any other (the archive, transcripts and credentials read it),
    source `rpl`, the course as its catalogue code, with its provenance in the ledger event and the remark."""
    learner = session.get(Learner, app.learner_id)
    assert learner is not None and app.programme_code and app.course_code
    programme = standards.build_programme(session, app.programme_code)
    course = programme.courses[app.course_code]
    centre = session.get(Organisation, reviewer.organisation_id) if reviewer.organisation_id else None
    provenance = {"source": "rpl", "rpl_application": app.id, "kind": app.kind,
                  "standard": {"programme": app.programme_code, "course": app.course_code},
                  "assessor": f"staff:{app.assessor_id}", "confirmed_by": f"staff:{reviewer.id}",
                  "evidence": [e.sha256 for e in evidence_of(session, app.id)]}
    achievement = Achievement(
        learner_id=learner.id, type="informal", issuer_org_id=centre.id if centre else None,
        issuer_code=(centre.code if centre else "RPL")[:32], issuer_name=(centre.name if centre else "")[:200],
        code=course.code, title=f"{course.name}（先前学习认定）"[:200], programme_name=programme.name[:200],
        credits=app.proposed_credits, hours=app.hours, score_text="合格", earned_on=utcnow().date(),
        source="rpl", status="deposited",
        remark=(f"RPL {app.id} ({app.kind}: {app.title}); assessed against {app.programme_code}/{app.course_code} "
                f"by staff:{app.assessor_id}; confirmed by staff:{reviewer.id}")[:500],
    )
    session.add(achievement)
    session.flush()
    (seq,) = append_events(session, [EventSpec(
        kind="achievement.deposited", learner_id=learner.id, pseudonym=learner.pseudonym,
        achievement_id=achievement.id,
        data={"achievement": achievement.id, "type": "informal", "issuer": achievement.issuer_code,
              "code": course.code, "title": achievement.title, "credits": dec_str(achievement.credits),
              "hours": dec_str(achievement.hours), "score": "合格", "level": None,
              "earned_on": achievement.earned_on.isoformat(), **provenance},
    )])
    return achievement, seq
