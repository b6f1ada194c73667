"""Conversion requests on top of the pure engine (node.rules.evaluate).

proposed ──confirm (outlet staff; keep or narrow, never exceed)──▶ confirmed ──review (reviewer ≠ confirmer)──▶
decided ──appeal (learner, once, if an item was rejected)──▶ appealed ──review (≠ confirmer, ≠ first reviewer)──▶
closed.

The engine's inputs come from the database: the learner's deposited outcomes, the approved rules, the programme
as catalogued on the day, and `PriorUsage` from `conversion_usage` (sources already used per target, credits
already converted), so "one source at most once per target" and the caps hold across requests. At approval the
engine runs again with the usage as it is then; an item it no longer proposes (another request used the target,
a cap filled up) is refused with `conversion_stale`. Approved items are appended to the ledger as
`conversion.approved` events linked to their sources; course targets become `source=conversion` achievements,
exemption targets get a signed exemption statement (statement.py).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from node.audit.service import record
from node.decisions import Decision, publish
from node.deps import Principal
from node.errors import BadRequest, Conflict, Forbidden, NotFound
from node.ledger.service import EventSpec, append_events
from node.models import Achievement, Learner, utcnow
from node.models.standards import ConversionItem, ConversionRequest, ConversionUsage, ExemptionStatement
from node.rules import Evaluation, Outcome, PriorUsage, evaluate, evaluation_to_dict, explain_zh, to_jsonable
from node.standards import service as standards

__all__ = [
    "appeal",
    "confirm",
    "create_request",
    "evaluate_for",
    "items_of",
    "items_of_requests",
    "learner_outcomes",
    "prior_usage",
    "request_for_learner",
    "request_for_staff",
    "review",
    "what_if",
]

_TARGET = "conversion_request"


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


# -- engine inputs ----------------------------------------------------------------------------------


def learner_outcomes(session: Session, learner_id: int) -> list[Outcome]:
    """The learner's deposited outcomes as the engine sees them (conversions themselves are not sources)."""
    rows = session.exec(select(Achievement).where(Achievement.learner_id == learner_id,
                                                  Achievement.status == "deposited",
                                                  Achievement.source != "conversion")).all()
    outcomes = []
    for a in rows:
        if a.earned_on is None:
            continue
        outcomes.append(Outcome(
            id=str(a.id), type=a.type, catalogue_code=a.code or "", title=a.title, earned_on=a.earned_on,
            issuer_code=a.issuer_code, level=a.level, score_text=a.score_text, score_value=a.score_value,
            credits=a.credits or Decimal(0), hours=int(a.hours) if a.hours is not None else None,
            expires_on=a.expires_on,
        ))
    return outcomes


def prior_usage(session: Session, learner_id: int, programme_code: str) -> PriorUsage:
    rows = session.exec(select(ConversionUsage).where(ConversionUsage.learner_id == learner_id)).all()
    by_target: dict[str, set[str]] = defaultdict(set)
    items: dict[int, ConversionUsage] = {}
    by_source: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        by_target[row.target_key].add(str(row.achievement_id))
        if row.programme_code == programme_code:
            items.setdefault(row.item_id, row)
            by_source[str(row.achievement_id)] += row.credits
    by_year: dict[int, Decimal] = defaultdict(Decimal)
    for row in items.values():
        by_year[row.year] += row.credits
    return PriorUsage(
        outcomes_by_target={k: frozenset(v) for k, v in by_target.items()},
        credits_total=sum((r.credits for r in items.values()), Decimal(0)),
        credits_by_year=dict(by_year),
        credits_by_source=dict(by_source),
    )


def evaluate_for(session: Session, ctx: Any, *, learner_id: int, programme_code: str, on: dt.date) -> Evaluation:
    programme = standards.build_programme(session, programme_code, on)
    level_map = standards.build_level_map(session, ctx.settings.node.region, on)
    return evaluate(
        achievements=learner_outcomes(session, learner_id),
        rules=(),
        programme=programme,
        on=on,
        usage=prior_usage(session, learner_id, programme_code),
        reference_levels=level_map,
        index=standards.rule_index(session, level_map),
    )


def what_if(session: Session, ctx: Any, *, learner_id: int, programme_code: str, on: dt.date) -> dict:
    """What the learner could convert on `on`, and until when; nothing is stored."""
    evaluation = evaluate_for(session, ctx, learner_id=learner_id, programme_code=programme_code, on=on)
    return evaluation_to_dict(evaluation)


# -- requests ---------------------------------------------------------------------------------------


def request_for_learner(session: Session, request_id: int, learner_id: int) -> ConversionRequest:
    req = session.get(ConversionRequest, request_id)
    if req is None or req.learner_id != learner_id:  # another learner's request does not exist for them
        raise NotFound(f"no conversion request {request_id}")
    return req


def request_for_staff(session: Session, request_id: int) -> ConversionRequest:
    req = session.get(ConversionRequest, request_id)
    if req is None:
        raise NotFound(f"no conversion request {request_id}")
    return req


def items_of(session: Session, request_id: int) -> list[ConversionItem]:
    return list(session.exec(select(ConversionItem).where(ConversionItem.request_id == request_id)
                             .order_by(ConversionItem.id)).all())


def items_of_requests(session: Session, request_ids: list[int | None]) -> dict[int, list[ConversionItem]]:
    """The items of several requests in one query (a page of a list): request id → its items in id order."""
    out: dict[int, list[ConversionItem]] = {}
    if request_ids:
        for item in session.exec(select(ConversionItem).where(ConversionItem.request_id.in_(request_ids))  # type: ignore[attr-defined]
                                 .order_by(ConversionItem.id)).all():
            out.setdefault(item.request_id, []).append(item)
    return out


def create_request(session: Session, ctx: Any, *, learner_id: int, programme_code: str, actor: Principal,
                   on: dt.date | None = None) -> ConversionRequest:
    """Run the engine and store its proposals as the request's items (state `proposed`)."""
    if session.get(Learner, learner_id) is None:
        raise NotFound(f"no learner {learner_id}")
    on = on or dt.date.today()
    evaluation = evaluate_for(session, ctx, learner_id=learner_id, programme_code=programme_code, on=on)
    if not evaluation.proposals:
        raise Conflict("the rules in force propose nothing for this programme (see what-if for the reasons)",
                       code="conversion_nothing_proposed")
    req = ConversionRequest(learner_id=learner_id, programme_code=programme_code, on_date=on, state="proposed",
                            requested_by=standards.actor_ref(actor), evaluation=evaluation_to_dict(evaluation))
    session.add(req)
    session.flush()
    for p in evaluation.proposals:
        session.add(ConversionItem(
            request_id=req.id, target_key=p.target.key, target=to_jsonable(p.target), rule_id=p.rule_id,
            rule_version=p.rule_version, sources=sorted(int(s) for s in p.source_outcome_ids),
            proposed_credits=p.credits, credits=p.credits, recorded_grade=p.recorded_grade,
            explanation=to_jsonable(p.explanation), explanation_zh=explain_zh(p), status="proposed",
        ))
    session.flush()
    record(session, actor=actor, action="conversion.create", target_type=_TARGET, target_id=req.id,
           detail={"learner": learner_id, "programme": programme_code, "items": len(evaluation.proposals)})
    return req


def _expect(req: ConversionRequest, states: tuple[str, ...], action: str, version: int | None) -> None:
    if req.state not in states:
        if action == "appeal" and req.state in ("appealed", "closed"):
            raise Conflict("the request's one appeal has been used", code="already_appealed")
        raise Conflict(f"the request is {req.state}: cannot {action}", code="conversion_illegal_transition",
                       detail={"state": req.state, "action": action})
    if version is not None and version != req.version:
        raise Conflict("the request changed since it was read", code="stale_version",
                       detail={"expected_version": req.version})


def _touch(session: Session, req: ConversionRequest, state: str) -> None:
    req.state, req.version, req.updated_at = state, req.version + 1, utcnow()
    session.add(req)


def confirm(session: Session, *, req: ConversionRequest, staff: Principal, keep: list[dict] | None,
            version: int | None) -> ConversionRequest:
    """Outlet staff confirm the proposal or narrow it: keep a subset of items, possibly with fewer credits.
    Anything beyond the proposal (an unknown item, more credits) is refused: `conversion_exceeds_proposal`."""
    _expect(req, ("proposed",), "confirm", version)
    items = {i.id: i for i in items_of(session, req.id)}
    chosen: dict[int, Decimal | None] = {}
    if keep is None:
        chosen = {i: None for i in items}
    else:
        for entry in keep:
            item_id = entry["item_id"]
            if item_id not in items or item_id in chosen:
                raise Conflict(f"item {item_id} is not (or twice) in the proposal", code="conversion_exceeds_proposal",
                               detail={"item_id": item_id})
            credits = entry.get("credits")
            if credits is not None:
                credits = Decimal(str(credits))
                if not credits.is_finite() or credits != credits.quantize(Decimal("0.001")):
                    raise BadRequest(f"item {item_id}: credits are kept to three decimal places",
                                     detail={"item_id": item_id})
                if credits < 0 or credits > items[item_id].proposed_credits:
                    raise Conflict(f"item {item_id}: {credits} credits exceed the proposed "
                                   f"{items[item_id].proposed_credits}", code="conversion_exceeds_proposal",
                                   detail={"item_id": item_id, "proposed": _dec(items[item_id].proposed_credits)})
            chosen[item_id] = credits
    if not chosen:
        raise BadRequest("keep at least one item (or let the learner withdraw)", code="conversion_empty")
    for item in items.values():
        if item.id in chosen:
            item.status = "confirmed"
            if chosen[item.id] is not None:
                item.credits = chosen[item.id]  # type: ignore[assignment]
        else:
            item.status, item.reason = "dropped", "not confirmed by the outlet"
        session.add(item)
    req.confirmed_by, req.confirmed_at = staff.id, utcnow()
    _touch(session, req, "confirmed")
    record(session, actor=staff, action="conversion.confirm", target_type=_TARGET, target_id=req.id,
           detail={"kept": sorted(chosen), "narrowed": sorted(i for i, c in chosen.items() if c is not None)})
    return req


def _lock_learner(session: Session, learner_id: int) -> None:
    """Approvals for one learner run one at a time (usage and caps are read, then written)."""
    stmt = sa.select(Learner.id).where(Learner.id == learner_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    session.execute(stmt)


def review(session: Session, ctx: Any, *, req: ConversionRequest, reviewer: Principal, decisions: list[dict],
           version: int | None) -> ConversionRequest:
    """Approve or reject each confirmed item (rejections need a reason); on appeal, each rejected item again."""
    appeal_stage = req.state == "appealed"
    _expect(req, ("confirmed", "appealed"), "review", version)
    if reviewer.id == req.confirmed_by or (appeal_stage and reviewer.id == req.reviewed_by):
        raise Forbidden("the reviewer must be someone other than the outlet staff who confirmed"
                        + (" and the reviewer who rejected" if appeal_stage else ""),
                        code="conversion_same_person")
    _lock_learner(session, req.learner_id)
    open_status = "rejected" if appeal_stage else "confirmed"
    pending = {i.id: i for i in items_of(session, req.id) if i.status == open_status}
    given = {d["item_id"]: d for d in decisions}
    if set(given) != set(pending):
        raise BadRequest("decide every open item exactly once", code="conversion_decision_missing",
                         detail={"open_items": sorted(pending)})
    for d in given.values():
        if d["decision"] == "reject" and not (d.get("reason") or "").strip():
            raise BadRequest(f"item {d['item_id']}: a rejection needs a reason", code="reason_required")
    approved = [pending[i] for i in sorted(given) if given[i]["decision"] == "approve"]
    if approved:
        _check_still_proposed(session, ctx, req, approved)
    stage = "appeal" if appeal_stage else "review"
    seqs: list[int] = []
    for item_id in sorted(given):
        item, d = pending[item_id], given[item_id]
        item.decided_stage = stage
        if d["decision"] == "reject":
            item.status, item.reason = "rejected", d["reason"].strip()[:1000]
            session.add(item)
    if approved:
        seqs = _apply(session, ctx, req, approved)
    if appeal_stage:
        req.appeal_reviewed_by = reviewer.id
    else:
        req.reviewed_by, req.reviewed_at = reviewer.id, utcnow()
    _touch(session, req, "closed" if appeal_stage else "decided")
    action = "conversion.appeal_review" if appeal_stage else "conversion.review"
    entry = record(session, actor=reviewer, action=action, target_type=_TARGET, target_id=req.id,
                   detail={"approved": [i.id for i in approved],
                           "rejected": sorted(i for i, d in given.items() if d["decision"] == "reject"),
                           "ledger_seqs": seqs})
    publish(session, Decision(kind=action, learner_id=req.learner_id, subject_id=req.id, at=entry.at,
                              appeal=appeal_stage, outcome=req.state, subject=req))
    return req


def _check_still_proposed(session: Session, ctx: Any, req: ConversionRequest, approved: list[ConversionItem]) -> None:
    evaluation = evaluate_for(session, ctx, learner_id=req.learner_id, programme_code=req.programme_code,
                              on=req.on_date)
    proposals = {p.target.key: p for p in evaluation.proposals}
    reasons = {n.target_key: n.reason for n in evaluation.not_applicable if n.target_key}
    for item in approved:
        p = proposals.get(item.target_key)
        if (p is None or (p.rule_id, p.rule_version) != (item.rule_id, item.rule_version)
                or sorted(int(s) for s in p.source_outcome_ids) != item.sources or p.credits < item.credits):
            raise Conflict(f"item {item.id} ({item.target_key}) is no longer proposed by the rules in force",
                           code="conversion_stale",
                           detail={"item_id": item.id, "reason": reasons.get(item.target_key, "changed")})


def _apply(session: Session, ctx: Any, req: ConversionRequest, approved: list[ConversionItem]) -> list[int]:
    """Ledger events, converted achievements, usage marks and exemption statements for approved items."""
    from node.conversion.statement import issue_statement

    learner = session.get(Learner, req.learner_id)
    assert learner is not None
    programme = standards.build_programme(session, req.programme_code, req.on_date)
    catalogue = standards.build_catalogue(session, req.on_date)
    institution = catalogue.institutions.get(programme.institution_code)
    today = dt.date.today()
    specs: list[EventSpec] = []
    for item in approved:
        new_achievement: Achievement | None = None
        if item.target.get("kind") == "course":
            course = programme.courses[item.target["code"]]
            new_achievement = Achievement(
                learner_id=req.learner_id, type="degree_course", issuer_code=programme.institution_code,
                issuer_name=institution.name if institution else programme.institution_code, code=course.code,
                title=course.name, programme_name=programme.name, credits=item.credits, hours=None,
                score_text=item.recorded_grade, earned_on=today, source="conversion", status="deposited",
                remark=f"converted under {item.rule_id} v{item.rule_version} from "
                       f"{', '.join(str(s) for s in item.sources)}"[:500],
            )
            session.add(new_achievement)
            session.flush()
            item.achievement_id = new_achievement.id
        item.status = "approved"
        for source in item.sources:
            session.add(ConversionUsage(learner_id=req.learner_id, programme_code=req.programme_code,
                                        target_key=item.target_key, achievement_id=source, item_id=item.id,
                                        credits=item.credits, year=req.on_date.year))
        specs.append(EventSpec(
            kind="conversion.approved", learner_id=learner.id,
            pseudonym=learner.pseudonym,
            achievement_id=new_achievement.id if new_achievement else None,
            data={"request": req.id, "item": item.id, "programme": req.programme_code, "target": item.target_key,
                  "credits": _dec(item.credits), "grade": item.recorded_grade,
                  "rule": {"id": item.rule_id, "version": item.rule_version},
                  "sources": list(item.sources),
                  "achievement": new_achievement.id if new_achievement else None},
        ))
    session.flush()
    seqs = append_events(session, specs)
    for item, seq in zip(approved, seqs, strict=True):
        item.ledger_seq = seq
        session.add(item)
        if item.target.get("kind") == "exemption":
            issue_statement(session, ctx, req=req, item=item, learner=learner)
    session.flush()
    return seqs


def appeal(session: Session, *, req: ConversionRequest, learner: Principal, reason: str | None,
           version: int | None) -> ConversionRequest:
    """The learner's one appeal against rejected items; a different reviewer decides them again."""
    _expect(req, ("decided",), "appeal", version)
    if not (reason or "").strip():
        raise BadRequest("an appeal needs a reason", code="reason_required")
    if not any(i.status == "rejected" for i in items_of(session, req.id)):
        raise Conflict("no item was rejected: there is nothing to appeal", code="conversion_nothing_to_appeal")
    req.appeal_reason, req.appealed_at = reason.strip()[:1000], utcnow()  # type: ignore[union-attr]
    _touch(session, req, "appealed")
    record(session, actor=learner, action="conversion.appeal", target_type=_TARGET, target_id=req.id)
    return req


def withdraw(session: Session, *, req: ConversionRequest, learner: Principal, version: int | None) -> ConversionRequest:
    """The learner withdraws a request nobody has decided yet (proposed or confirmed): nothing is converted, the
    items are closed and the sources stay free for a later request."""
    _expect(req, ("proposed", "confirmed"), "withdraw", version)
    for item in items_of(session, req.id):
        if item.status in ("proposed", "confirmed"):
            item.status, item.reason = "withdrawn", "withdrawn by the learner"
            session.add(item)
    _touch(session, req, "withdrawn")
    record(session, actor=learner, action="conversion.withdraw", target_type=_TARGET, target_id=req.id)
    return req


def statement_for(session: Session, *, item_id: int, learner_id: int) -> ExemptionStatement:
    row = session.exec(select(ExemptionStatement).where(ExemptionStatement.item_id == item_id,
                                                        ExemptionStatement.learner_id == learner_id)).first()
    if row is None:
        raise NotFound(f"no exemption statement for item {item_id}")
    item = session.get(ConversionItem, item_id)
    if item is not None and item.status == "revoked":
        raise Conflict(f"the exemption was revoked: {item.reason}", code="exemption_revoked")
    return row
