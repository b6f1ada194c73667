"""The individual-deposit review workflow (个人申请存入), as data.

A pure module: no database, no HTTP. `TRANSITIONS` is the whole state machine; `decide` looks an action up and
says what happens or raises the stable error. The diagram is in docs/review-workflow.md.

States::

    draft ──submit──▶ pending_first ──approve──▶ pending_second ──approve──▶ deposited
                          │ reject                   │ reject
                          ▼                          ▼
                    rejected_first             rejected_second
                          │ appeal (once)            │ appeal (once)
                          ▼                          ▼
                    appealed_first             appealed_second
                     │approve  │reject          │approve   │reject
            pending_second     rejected_final   deposited  rejected_final

Who acts: the *applicant* (the learner, or the outlet staff member who submitted on their behalf) submits and adds
evidence; only the learner appeals; a branch reviewer decides the first stage and a centre reviewer the second.
An appeal returns to the stage that rejected and is decided by a different reviewer than the one who rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from node.errors import BadRequest, Conflict, Forbidden

__all__ = [
    "FINAL_STATES",
    "TRANSITIONS",
    "Action",
    "Actor",
    "ReviewFacts",
    "State",
    "Transition",
    "check_reviewer",
    "decide",
]


class State(StrEnum):
    DRAFT = "draft"
    PENDING_FIRST = "pending_first"
    PENDING_SECOND = "pending_second"
    REJECTED_FIRST = "rejected_first"
    REJECTED_SECOND = "rejected_second"
    APPEALED_FIRST = "appealed_first"
    APPEALED_SECOND = "appealed_second"
    DEPOSITED = "deposited"
    REJECTED_FINAL = "rejected_final"


class Action(StrEnum):
    SUBMIT = "submit"
    ADD_EVIDENCE = "add_evidence"
    APPROVE = "approve"
    REJECT = "reject"
    APPEAL = "appeal"


class Actor(StrEnum):
    APPLICANT = "applicant"  # the learner or the outlet staff member who submitted for them
    LEARNER = "learner"  # the learner only
    BRANCH_REVIEWER = "branch_reviewer"
    CENTRE_REVIEWER = "centre_reviewer"


@dataclass(frozen=True)
class Transition:
    source: State
    action: Action
    target: State
    actor: Actor
    stage: str | None = None  # "first" | "second" for review decisions
    needs_reason: bool = False
    is_appeal_decision: bool = False


def _t(source: State, action: Action, target: State, actor: Actor, **kw: object) -> Transition:
    return Transition(source, action, target, actor, **kw)  # type: ignore[arg-type]


S, A = State, Action
TRANSITIONS: dict[tuple[State, Action], Transition] = {
    (t.source, t.action): t
    for t in (
        _t(S.DRAFT, A.ADD_EVIDENCE, S.DRAFT, Actor.APPLICANT),
        _t(S.DRAFT, A.SUBMIT, S.PENDING_FIRST, Actor.APPLICANT),
        _t(S.PENDING_FIRST, A.APPROVE, S.PENDING_SECOND, Actor.BRANCH_REVIEWER, stage="first"),
        _t(S.PENDING_FIRST, A.REJECT, S.REJECTED_FIRST, Actor.BRANCH_REVIEWER, stage="first", needs_reason=True),
        _t(S.PENDING_SECOND, A.APPROVE, S.DEPOSITED, Actor.CENTRE_REVIEWER, stage="second"),
        _t(S.PENDING_SECOND, A.REJECT, S.REJECTED_SECOND, Actor.CENTRE_REVIEWER, stage="second",
           needs_reason=True),
        # more evidence may be added after a rejection, before appealing
        _t(S.REJECTED_FIRST, A.ADD_EVIDENCE, S.REJECTED_FIRST, Actor.APPLICANT),
        _t(S.REJECTED_SECOND, A.ADD_EVIDENCE, S.REJECTED_SECOND, Actor.APPLICANT),
        _t(S.REJECTED_FIRST, A.APPEAL, S.APPEALED_FIRST, Actor.LEARNER, needs_reason=True),
        _t(S.REJECTED_SECOND, A.APPEAL, S.APPEALED_SECOND, Actor.LEARNER, needs_reason=True),
        _t(S.APPEALED_FIRST, A.APPROVE, S.PENDING_SECOND, Actor.BRANCH_REVIEWER, stage="first",
           is_appeal_decision=True),
        _t(S.APPEALED_FIRST, A.REJECT, S.REJECTED_FINAL, Actor.BRANCH_REVIEWER, stage="first", needs_reason=True,
           is_appeal_decision=True),
        _t(S.APPEALED_SECOND, A.APPROVE, S.DEPOSITED, Actor.CENTRE_REVIEWER, stage="second",
           is_appeal_decision=True),
        _t(S.APPEALED_SECOND, A.REJECT, S.REJECTED_FINAL, Actor.CENTRE_REVIEWER, stage="second",
           needs_reason=True, is_appeal_decision=True),
    )
}

FINAL_STATES = frozenset({State.DEPOSITED, State.REJECTED_FINAL})


def decide(state: str, action: str, *, appealed: bool, reason: str | None = None) -> Transition:
    """The transition `action` takes from `state`, or the stable error explaining why it cannot happen.

    `appealed`: whether the learner has already used their one appeal."""
    try:
        current, attempted = State(state), Action(action)
    except ValueError:
        raise Conflict(f"cannot {action} an application in state {state}", code="illegal_transition",
                       detail={"state": state, "action": action}) from None
    if attempted is Action.APPEAL and (appealed or current is State.REJECTED_FINAL):
        raise Conflict("the application has already been appealed once; the decision is final",
                       code="already_appealed", detail={"state": state, "action": action})
    transition = TRANSITIONS.get((current, attempted))
    if transition is None:
        raise Conflict(f"cannot {action} an application in state {state}", code="illegal_transition",
                       detail={"state": state, "action": action})
    if transition.needs_reason and not (reason and reason.strip()):
        raise BadRequest(f"a reason is required to {action}", code="reason_required")
    return transition


@dataclass(frozen=True)
class ReviewFacts:
    """What the reviewer checks need to know about an application (all staff ids)."""

    submitted_by: int | None
    first_stage_reviewers: frozenset[int]  # everyone who decided at the first stage (incl. appeal decisions)
    second_stage_reviewers: frozenset[int]
    rejected_by: int | None  # the reviewer whose rejection is being appealed


def check_reviewer(transition: Transition, reviewer_id: int, reviewer_roles: frozenset[str], facts: ReviewFacts) -> None:
    """Maker-checker rules for a review decision: right role for the stage, not one's own submission,
    not both stages, and an appeal decided by someone other than the reviewer who rejected."""
    if transition.stage is None:
        raise ValueError("not a review transition")
    if transition.actor.value not in reviewer_roles:
        raise Forbidden(f"the {transition.stage} review needs the role {transition.actor.value}", code="forbidden")
    if facts.submitted_by is not None and facts.submitted_by == reviewer_id:
        raise Forbidden("you submitted this application, so you cannot review it", code="self_review")
    other_stage = facts.second_stage_reviewers if transition.stage == "first" else facts.first_stage_reviewers
    if reviewer_id in other_stage:
        raise Forbidden("you reviewed the other stage of this application", code="same_reviewer")
    if transition.is_appeal_decision and facts.rejected_by == reviewer_id:
        raise Forbidden("an appeal is decided by a different reviewer than the one who rejected",
                        code="same_reviewer")
