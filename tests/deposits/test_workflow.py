"""The state machine as data: every pair of (state, action) is either in the table or refused with a code."""

from __future__ import annotations

import itertools

import pytest

from node.deposits.workflow import (
    FINAL_STATES,
    TRANSITIONS,
    Action,
    Actor,
    ReviewFacts,
    State,
    check_reviewer,
    decide,
)
from node.errors import BadRequest, Conflict, Forbidden


def _code(exc_info: pytest.ExceptionInfo) -> str:
    return exc_info.value.code


def test_happy_path_reaches_deposited() -> None:
    state = State.DRAFT
    for action in (Action.ADD_EVIDENCE, Action.SUBMIT, Action.APPROVE, Action.APPROVE):
        state = decide(state, action, appealed=False).target
    assert state is State.DEPOSITED


@pytest.mark.parametrize(("state", "action"), list(itertools.product(State, Action)))
def test_every_pair_outside_the_table_is_an_illegal_transition(state: State, action: Action) -> None:
    if (state, action) in TRANSITIONS:
        reason = "because" if TRANSITIONS[(state, action)].needs_reason else None
        assert decide(state, action, appealed=False, reason=reason).target in State
        return
    with pytest.raises(Conflict) as exc:
        decide(state, action, appealed=False, reason="because")
    expected = "already_appealed" if (action is Action.APPEAL and state is State.REJECTED_FINAL) else "illegal_transition"
    assert _code(exc) == expected
    if expected == "illegal_transition":
        assert exc.value.detail == {"state": state.value, "action": action.value}


def test_final_states_have_no_way_out_and_every_state_is_reachable() -> None:
    assert not [k for k in TRANSITIONS if k[0] in FINAL_STATES]
    reached, frontier = {State.DRAFT}, [State.DRAFT]
    while frontier:
        s = frontier.pop()
        for (src, _), t in TRANSITIONS.items():
            if src is s and t.target not in reached:
                reached.add(t.target)
                frontier.append(t.target)
    assert reached == set(State)


def test_appeal_goes_back_to_the_stage_that_rejected_and_only_once() -> None:
    assert decide(State.REJECTED_FIRST, Action.APPEAL, appealed=False, reason="r").target is State.APPEALED_FIRST
    assert decide(State.REJECTED_SECOND, Action.APPEAL, appealed=False, reason="r").target is State.APPEALED_SECOND
    with pytest.raises(Conflict) as exc:
        decide(State.REJECTED_SECOND, Action.APPEAL, appealed=True, reason="again")
    assert _code(exc) == "already_appealed"
    assert decide(State.APPEALED_FIRST, Action.REJECT, appealed=True, reason="r").target is State.REJECTED_FINAL
    assert decide(State.APPEALED_SECOND, Action.APPROVE, appealed=True).target is State.DEPOSITED


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_rejections_and_appeals_need_a_reason(reason: str | None) -> None:
    for state, action in ((State.PENDING_FIRST, Action.REJECT), (State.PENDING_SECOND, Action.REJECT),
                          (State.REJECTED_FIRST, Action.APPEAL)):
        with pytest.raises(BadRequest) as exc:
            decide(state, action, appealed=False, reason=reason)
        assert _code(exc) == "reason_required"


def _facts(**kw: object) -> ReviewFacts:
    base = dict(submitted_by=None, first_stage_reviewers=frozenset(), second_stage_reviewers=frozenset(),
                rejected_by=None)
    base.update(kw)
    return ReviewFacts(**base)  # type: ignore[arg-type]


def test_reviewer_rules() -> None:
    first = TRANSITIONS[(State.PENDING_FIRST, Action.APPROVE)]
    second = TRANSITIONS[(State.PENDING_SECOND, Action.APPROVE)]
    appeal_first = TRANSITIONS[(State.APPEALED_FIRST, Action.APPROVE)]
    branch, centre = frozenset({Actor.BRANCH_REVIEWER.value}), frozenset({Actor.CENTRE_REVIEWER.value})
    check_reviewer(first, 1, branch, _facts())
    check_reviewer(second, 2, centre, _facts(first_stage_reviewers=frozenset({1})))
    cases = [
        (first, 1, centre, _facts(), "forbidden"),
        (second, 2, branch, _facts(), "forbidden"),
        (first, 7, branch, _facts(submitted_by=7), "self_review"),
        (second, 1, branch | centre, _facts(first_stage_reviewers=frozenset({1})), "same_reviewer"),
        (appeal_first, 3, branch, _facts(rejected_by=3, first_stage_reviewers=frozenset({3})), "same_reviewer"),
    ]
    for transition, who, roles, facts, code in cases:
        with pytest.raises(Forbidden) as exc:
            check_reviewer(transition, who, roles, facts)
        assert _code(exc) == code, (transition, who, code)
    check_reviewer(appeal_first, 4, branch, _facts(rejected_by=3, first_stage_reviewers=frozenset({3})))
