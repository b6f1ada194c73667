"""Rules engine benchmark: one learner with 500 achievements against 5,000 rules (evaluations per second), and
how the time per evaluation grows from 500 to 5,000 to 50,000 rules with the index built once.

Synthetic data, generated deterministically (seed 2016):
- rules are mostly programme-specific (50 per programme, so the number of programmes grows with the rules) and 10 %
  are region-wide; the catalogue of certificate/course codes grows with the rules (at least 5,000 codes);
- the learner's 500 outcomes (200 certificates, 300 course grades) use codes from the first 5,000;
- two region-wide rules are keyed by reference level ("any vocational qualification at R3 or above, score ≥ 80"),
  so about 200 of the learner's certificates are checked against them at every scale.
Run: python bench/rules.py    (prints figures, asserts nothing)
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from node.rules import Course, Outcome, Programme, RuleIndex, evaluate, parse_rule

SEED = 2016
ON = dt.date(2021, 6, 30)
RULES_PER_PROGRAMME = 50
LEARNER_CODES = 5_000


def make_programme(number: int) -> Programme:
    courses = {
        f"K{j}": Course(code=f"K{j}", name=f"课程{j}", credits=Decimal(2 + j % 4),
                                  category="practical" if j % 10 == 9 else "theory", never_exempt=j == 39)
        for j in range(40)
    }
    return Programme(code=f"P{number}", name=f"专业{number}", institution_code="U", level="专科",
                     graduation_credits=Decimal(120), courses=courses)


def make_rules(count: int, rng: random.Random) -> list:
    universe = max(LEARNER_CODES, count)
    programmes = max(1, count // RULES_PER_PROGRAMME)
    rules = []
    for i in range(count):
        region_wide = i % 10 == 9
        programme = i % programmes
        code_space = universe if region_wide else LEARNER_CODES
        kind = rng.random()
        if i in (9, 19):  # two region-wide rules keyed by reference level, at every scale
            condition = {"outcome": {"type": "vocational_qualification", "min_reference_level": "R3",
                                     "min_score": "80"}}
        elif kind < 0.6:
            condition = {"outcome": {"type": "vocational_qualification", "catalogue_code": f"C{rng.randrange(code_space)}",
                                     "min_level": rng.choice(["四级", "三级"])}}
        elif kind < 0.85:
            condition = {"outcome": {"type": "degree_course", "catalogue_code": f"D{rng.randrange(code_space)}",
                                     "min_score": "60", "within_years": 8}}
        else:
            condition = {"all_of": [
                {"outcome": {"type": "degree_course", "catalogue_code": f"D{rng.randrange(code_space)}", "min_grade": "及格"}},
                {"outcome": {"type": "degree_course", "catalogue_code": f"D{rng.randrange(code_space)}", "min_grade": "及格"}},
            ]}
        targets = [{"course": f"K{j}"} for j in sorted(rng.sample(range(40), rng.choice([1, 1, 2])))]
        body = {
            "id": f"B-{i:06d}", "version": 1, "kind": "guidance", "title": f"合成规则 {i}",
            "effective_from": "2015-01-01", "condition": condition, "targets": targets,
            "credits": {"from": "course"} if rng.random() < 0.7 else {"fixed": "2"},
            "caps": {"max_percent_of_graduation_credits": "50", "max_credits_per_source": "8"},
            "never_exempt_categories": ["practical"],
        }
        if not region_wide:
            body["applies_to"] = {"programmes": [f"P{programme}"]}
        rules.append(parse_rule(body, validate=False))
    return rules


def make_learner(rng: random.Random) -> list[Outcome]:
    outcomes = []
    for i in range(500):
        if i < 200:
            outcomes.append(Outcome(
                id=f"o{i:03d}", type="vocational_qualification", catalogue_code=f"C{rng.randrange(LEARNER_CODES)}",
                title=f"证书{i}", level=rng.choice(["四级", "三级", "二级"]), score_text=str(rng.randrange(55, 100)),
                earned_on=ON - dt.timedelta(days=rng.randrange(3_000)),
                expires_on=None if rng.random() < 0.8 else ON + dt.timedelta(days=rng.randrange(-400, 2_000)),
            ))
        else:
            outcomes.append(Outcome(
                id=f"o{i:03d}", type="degree_course", catalogue_code=f"D{rng.randrange(LEARNER_CODES)}",
                title=f"课程成绩{i}", level="专科", score_text=rng.choice(["58", "66", "74", "83", "92", "合格", "良"]),
                credits=Decimal(rng.choice([2, 3, 4])), earned_on=ON - dt.timedelta(days=rng.randrange(4_000)),
            ))
    rng.shuffle(outcomes)
    return outcomes


def per_evaluation(index: RuleIndex, learner: list[Outcome], programme: Programme, *, min_seconds: float = 1.5):
    evaluate(achievements=learner, rules=(), programme=programme, on=ON, index=index)  # warm-up
    runs, start = 0, time.perf_counter()
    while True:
        result = evaluate(achievements=learner, rules=(), programme=programme, on=ON, index=index)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and runs >= 3:
            return elapsed / runs, result


def main() -> None:
    rng = random.Random(SEED)
    learner = make_learner(rng)
    programme = make_programme(0)
    print("rules engine benchmark: 1 learner, 500 achievements, programme P0 (index built once, reused)")
    print(f"{'rules':>8} {'index build s':>14} {'candidates':>11} {'proposals':>10} {'ms/eval':>9} {'evals/s':>9}")
    timings = {}
    for count in (500, 5_000, 50_000):
        rules = make_rules(count, random.Random(SEED + count))
        start = time.perf_counter()
        index = RuleIndex.build(rules=rules)
        build = time.perf_counter() - start
        seconds, result = per_evaluation(index, learner, programme)
        timings[count] = seconds
        print(f"{count:>8} {build:>14.3f} {result.candidate_rule_count:>11} {len(result.proposals):>10} "
              f"{seconds * 1000:>9.2f} {1 / seconds:>9.1f}")
    print()
    print(f"at 5,000 rules: {1 / timings[5_000]:.1f} evaluations per second")
    print(f"growth 500 → 5,000 rules (×10):    time ×{timings[5_000] / timings[500]:.2f}")
    print(f"growth 5,000 → 50,000 rules (×10): time ×{timings[50_000] / timings[5_000]:.2f}")
    print(f"growth 500 → 50,000 rules (×100):  time ×{timings[50_000] / timings[500]:.2f}  (linear would be ×100)")


if __name__ == "__main__":
    main()
