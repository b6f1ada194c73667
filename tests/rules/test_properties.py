"""Invariants of the engine under random learners, rules and prior usage (hypothesis)."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from node.rules import Course, Outcome, PriorUsage, Programme, evaluate, evaluation_to_dict, parse_rule

ON = dt.date(2021, 6, 30)
CODES = ("A", "B", "C")
TYPES = ("vocational_qualification", "degree_course")
LEVELS = ("四级", "三级", "二级")
PROGRAMME = Programme(
    code="P", name="测试专业", institution_code="U", level="专科", graduation_credits=Decimal(40),
    courses={
        "K0": Course(code="K0", name="课程零", credits=Decimal(4), category="theory"),
        "K1": Course(code="K1", name="课程一", credits=Decimal(3), category="theory"),
        "K2": Course(code="K2", name="课程二", credits=Decimal("2.5"), category="practical"),
        "K3": Course(code="K3", name="课程三", credits=Decimal(5), category="theory", never_exempt=True),
        "K4": Course(code="K4", name="课程四", credits=Decimal(6), category="theory"),
    },
)

decimals = st.sampled_from(["1", "2", "2.5", "3", "4", "6", "8"])

leaf = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES), "catalogue_code": st.sampled_from(CODES)},
    optional={
        "min_level": st.sampled_from(LEVELS),
        "min_score": st.sampled_from(["60", "75", "90"]),
        "within_years": st.integers(3, 9),
    },
).map(lambda m: {"outcome": m})
condition = st.one_of(
    leaf,
    st.lists(leaf, min_size=2, max_size=3).map(lambda xs: {"all_of": xs}),
    st.lists(leaf, min_size=2, max_size=3).map(lambda xs: {"any_of": xs}),
    st.lists(leaf, min_size=2, max_size=3).map(lambda xs: {"at_least": 2, "of": xs}),
)
credits = st.one_of(
    st.just({"from": "course"}),
    decimals.map(lambda d: {"fixed": d}),
    st.just({"tiers": [{"min_score": "85", "credits": "4"}, {"min_grade": "中", "credits": "3"}, {"credits": "1"}]}),
)
caps = st.fixed_dictionaries({}, optional={
    "max_percent_of_graduation_credits": st.sampled_from(["10", "25", "50"]),
    "max_credits_per_source": st.sampled_from(["3", "5", "8"]),
    "max_credits_per_year": st.sampled_from(["4", "9", "15"]),
})


@st.composite
def rule_bodies(draw, index: int) -> dict:
    targets = draw(st.lists(st.sampled_from(sorted(PROGRAMME.courses)), min_size=1, max_size=3, unique=True))
    start = draw(st.sampled_from([dt.date(2015, 1, 1), dt.date(2015, 1, 1), dt.date(2021, 1, 1), dt.date(2022, 1, 1)]))
    body = {
        "id": f"R{index}", "version": draw(st.integers(1, 2)), "kind": "guidance", "title": f"规则{index}",
        "effective_from": start.isoformat(),
        "condition": draw(condition),
        "targets": [{"course": t, "credits": draw(credits)} for t in targets],
        "grade": draw(st.sampled_from([{"record": "免考"}, {"record": "合格"}, {"record": "source", "cap": "良"}])),
        "caps": draw(caps),
    }
    if draw(st.booleans()):
        body["never_exempt_categories"] = ["practical"]
    return body


@st.composite
def outcomes(draw) -> list[Outcome]:
    count = draw(st.integers(0, 10))
    result = []
    for i in range(count):
        earned = draw(st.dates(min_value=dt.date(2012, 1, 1), max_value=dt.date(2021, 6, 30)))
        expires = draw(st.one_of(st.none(), st.none(), st.dates(min_value=dt.date(2019, 1, 1), max_value=dt.date(2024, 1, 1))))
        result.append(Outcome(
            id=f"o{i}", type=draw(st.sampled_from(TYPES)), catalogue_code=draw(st.sampled_from(CODES)),
            title=f"成果{i}", level=draw(st.sampled_from(LEVELS)),
            score_text=draw(st.sampled_from(["55", "62", "78", "88", "95", "合格", "良", "优"])),
            earned_on=earned, expires_on=expires,
        ))
    return result


@st.composite
def scenarios(draw):
    count = draw(st.integers(1, 6))
    bodies = [draw(rule_bodies(i)) for i in range(count)]
    rules = [parse_rule(b) for b in bodies]
    learner = draw(outcomes())
    prior_total = Decimal(draw(st.sampled_from(["0", "3", "10"])))
    used_target = draw(st.one_of(st.none(), st.sampled_from(sorted(PROGRAMME.courses))))
    usage = PriorUsage(
        outcomes_by_target={f"course:P:{used_target}": frozenset({"o0"})} if used_target else {},
        credits_total=prior_total,
        credits_by_year={ON.year: prior_total / 2},
        credits_by_source={"o1": Decimal(2)},
    )
    seed = draw(st.integers(0, 2**32 - 1))
    return rules, learner, usage, seed


def _run(rules, learner, usage):
    return evaluate(achievements=learner, rules=rules, programme=PROGRAMME, on=ON, usage=usage)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_caps_are_never_exceeded(scenario):
    rules, learner, usage, _ = scenario
    result = _run(rules, learner, usage)
    by_ref = {(r.id, r.version): r for r in rules}
    total = usage.credits_total + result.credits_total
    year_total = usage.credits_by_year.get(ON.year, Decimal(0)) + result.credits_total
    per_source: dict[str, Decimal] = defaultdict(lambda: Decimal(0), usage.credits_by_source)
    for p in result.proposals:
        for s in p.source_outcome_ids:
            per_source[s] += p.credits
    for p in result.proposals:
        caps = by_ref[(p.rule_id, p.rule_version)].caps
        if caps.max_percent_of_graduation_credits is not None:
            assert total <= PROGRAMME.graduation_credits * caps.max_percent_of_graduation_credits / 100
        if caps.max_credits_per_year is not None:
            assert year_total <= caps.max_credits_per_year
        if caps.max_credits_per_source is not None:
            for s in p.source_outcome_ids:
                assert per_source[s] <= caps.max_credits_per_source
        assert all(c.fits and c.remaining_after >= 0 for c in p.explanation.caps)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_no_source_twice_no_target_twice_no_expired_no_never_exempt(scenario):
    rules, learner, usage, _ = scenario
    result = _run(rules, learner, usage)
    by_id = {o.id: o for o in learner}
    by_ref = {(r.id, r.version): r for r in rules}
    keys = [p.target.key for p in result.proposals]
    assert len(keys) == len(set(keys))
    for p in result.proposals:
        assert len(set(p.source_outcome_ids)) == len(p.source_outcome_ids)
        assert not set(p.source_outcome_ids) & usage.outcomes_by_target.get(p.target.key, frozenset())
        assert p.target.key not in usage.outcomes_by_target
        for s in p.source_outcome_ids:
            assert not by_id[s].expired_on(ON)
            assert by_id[s].earned_on <= ON
        course = PROGRAMME.courses[p.target.code]
        assert not course.never_exempt
        assert course.category not in by_ref[(p.rule_id, p.rule_version)].never_exempt_categories
        assert by_ref[(p.rule_id, p.rule_version)].in_force(ON)
        assert p.explanation.rule_id == p.rule_id and p.explanation.rule_version == p.rule_version


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_evaluation_is_deterministic_and_order_independent(scenario):
    rules, learner, usage, seed = scenario
    expected = evaluation_to_dict(_run(rules, learner, usage))
    shuffler = random.Random(seed)
    shuffled_rules, shuffled_learner = list(rules), list(learner)
    shuffler.shuffle(shuffled_rules)
    shuffler.shuffle(shuffled_learner)
    assert evaluation_to_dict(_run(shuffled_rules, shuffled_learner, usage)) == expected
    assert evaluation_to_dict(_run(rules, learner, usage)) == expected


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2021, 6, 29)))
def test_an_expired_certificate_never_converts(scenario, expiry):
    rules, learner, usage, _ = scenario
    expired = [o.__class__(**{**o.__dict__, "expires_on": expiry}) for o in learner]
    result = _run(rules, expired, usage)
    assert result.proposals == ()
