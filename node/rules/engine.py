"""The evaluation engine: a pure function from a learner's outcomes, the rules in force and a programme to
conversion proposals, each with a structured explanation (PIPL art. 24). No database, no I/O, no clock."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from node.rules.grades import cap_grade_text, grade_word
from node.rules.index import RuleIndex, leaf_keys
from node.rules.matching import OutcomeView, SolveResult, add_years, leaves_of, solve
from node.rules.model import (
    CapCheck,
    Caps,
    CreditSpec,
    Evaluation,
    Expiring,
    Explanation,
    GradeSpec,
    LevelMap,
    NotApplicable,
    Outcome,
    PriorUsage,
    Programme,
    Proposal,
    Rule,
    Target,
    course_target_key,
    exemption_target_key,
)

__all__ = ["evaluate"]

ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_GRADE_RANK_REQUIRED = {"优": 4, "良": 3, "中": 2, "及格": 1, "合格": 1}


@dataclass(frozen=True)
class _Option:
    rule: Rule
    target: Target
    sources: tuple[str, ...]
    credits: Decimal
    grade: str
    explanation: Explanation
    never_exempt_reason: str | None
    until: tuple[dt.date, str] | None

    def preference(self) -> tuple:
        return (0 if self.rule.kind == "institution" else 1, -self.credits, self.rule.id, -self.rule.version)


def _in_scope(rule: Rule, programme: Programme) -> str | None:
    scope = rule.scope
    if scope.programmes and programme.code not in scope.programmes:
        return f"applies to programmes {', '.join(scope.programmes)}, not {programme.code}"
    if scope.institutions and programme.institution_code not in scope.institutions:
        return f"applies to institutions {', '.join(scope.institutions)}, not {programme.institution_code}"
    if scope.levels and programme.level not in scope.levels:
        return f"applies to levels {', '.join(scope.levels)}, not {programme.level}"
    if rule.kind == "institution" and rule.institution_code != programme.institution_code:
        return f"an institution rule of {rule.institution_code}, the programme belongs to {programme.institution_code}"
    return None


def _primary(solved: SolveResult, rule: Rule, name: str | None) -> OutcomeView | None:
    leaves = leaves_of(rule.condition)  # type: ignore[arg-type]
    for leaf in leaves:
        if (name is None or leaf.name == name) and leaf.path in solved.assignment:
            return solved.assignment[leaf.path]
    return None


def _credits(spec: CreditSpec, *, course_credits: Decimal | None, solved: SolveResult, rule: Rule
             ) -> tuple[Decimal | None, str]:
    if spec.kind == "from_course":
        return course_credits, f"课程学分 {course_credits}（course credits）"
    if spec.kind == "fixed":
        return spec.fixed, f"固定 {spec.fixed} 学分（fixed）"
    view = _primary(solved, rule, spec.score_of)
    if view is None:
        return None, "无可比较的成绩（no score to compare）"
    shown = view.outcome.score_text or (str(view.number) if view.number is not None else "—")
    for tier in spec.tiers:
        if tier.min_score is not None:
            if view.number is not None and view.number >= tier.min_score:
                return tier.credits, f"成绩 {shown} ≥ {tier.min_score}，按档 {tier.credits} 学分（tier）"
        elif tier.min_grade is not None:
            if view.rank is not None and view.rank >= _GRADE_RANK_REQUIRED[tier.min_grade]:
                return tier.credits, f"成绩 {shown} 不低于 {tier.min_grade}，按档 {tier.credits} 学分（tier）"
        else:
            return tier.credits, f"成绩 {shown}，按最低档 {tier.credits} 学分（tier）"
    return None, f"成绩 {shown} 未达到任何学分档（no tier reached）"


def _grade(spec: GradeSpec, *, solved: SolveResult, rule: Rule) -> tuple[str, str]:
    if spec.record != "source":
        return spec.record, f"记 {spec.record}"
    view = _primary(solved, rule, spec.of)
    text = view.outcome.score_text if view else None
    value = view.outcome.score_value if view else None
    if spec.cap is None:
        recorded = grade_word(text) if text else (str(value) if value is not None else "合格")
        return recorded, f"记原成绩 {recorded}"
    recorded = cap_grade_text(score_text=text, score_value=value, cap=spec.cap)
    return recorded, f"记原成绩，最高记 {grade_word(spec.cap)}（原成绩 {text or value}）"


def _convertible_until(rule: Rule, solved: SolveResult) -> tuple[dt.date, str] | None:
    limits: list[tuple[dt.date, str]] = []
    for leaf in leaves_of(rule.condition):  # type: ignore[arg-type]
        view = solved.assignment.get(leaf.path)
        if view is None:
            continue
        if view.outcome.expires_on is not None:
            limits.append((view.outcome.expires_on, "certificate_expires"))
        if leaf.matcher.within_years is not None:
            last = add_years(view.outcome.earned_on, leaf.matcher.within_years)
            limits.append((last, "within_years"))
    if rule.effective_to is not None:
        limits.append((rule.effective_to, "rule_ends"))
    return min(limits) if limits else None


def _options_for(rule: Rule, solved: SolveResult, programme: Programme, not_applicable: list[NotApplicable]
                 ) -> list[_Option]:
    sources = tuple(sorted(v.outcome.id for v in solved.assignment.values()))
    until = _convertible_until(rule, solved)
    options: list[_Option] = []

    def explanation(credits_basis: str, grade_basis: str) -> Explanation:
        return Explanation(
            rule_id=rule.id, rule_version=rule.version, rule_title=rule.title, rule_kind=rule.kind,
            based_on=rule.based_on, mode=rule.mode, leaves=solved.leaves, groups=solved.groups,
            credits_basis=credits_basis, grade_basis=grade_basis, convertible_until=until[0] if until else None,
        )

    if rule.exemption is not None:
        ex = rule.exemption
        name = ex.title or f"{ex.certificate}（{ex.level or ''}）{ {'theory': '理论考核', 'skills': '技能考核', 'all': '证书'}[ex.component] }"
        target = Target(kind="exemption", key=exemption_target_key(ex.certificate, ex.level, ex.component),
                        code=ex.certificate, name=name, level=ex.level, component=ex.component)
        grade, grade_basis = _grade(ex.grade, solved=solved, rule=rule)
        options.append(_Option(rule, target, sources, ZERO, grade, explanation("不转换学分（exemption only）", grade_basis),
                               None, until))
        return options
    for spec in rule.targets:
        key = course_target_key(programme.code, spec.course)
        course = programme.courses.get(spec.course)
        if course is None:
            not_applicable.append(NotApplicable(rule_id=rule.id, rule_version=rule.version, target_key=key,
                                                reason="unknown_course",
                                                detail=f"course {spec.course} is not in programme {programme.code}"))
            continue
        target = Target(kind="course", key=key, code=course.code, name=course.name, programme_code=programme.code)
        credits, credits_basis = _credits(spec.credits, course_credits=course.credits, solved=solved, rule=rule)
        grade, grade_basis = _grade(spec.grade, solved=solved, rule=rule)
        if credits is None:
            not_applicable.append(NotApplicable(rule_id=rule.id, rule_version=rule.version, target_key=key,
                                                reason="conditions_not_met", detail=credits_basis,
                                                explanation=explanation(credits_basis, grade_basis)))
            continue
        never = None
        if course.never_exempt:
            never = f"course {course.code} is flagged never_exempt"
        elif course.category is not None and course.category in rule.never_exempt_categories:
            never = f"course category {course.category} is never exempted under this rule"
        options.append(_Option(rule, target, sources, credits, grade, explanation(credits_basis, grade_basis),
                               never, until))
    return options


class _Ledger:
    """Running credit totals and the caps in force (a cap, once a proposal relied on it, binds all later ones)."""

    def __init__(self, usage: PriorUsage, programme: Programme, year: int) -> None:
        self.programme = programme
        self.year = year
        self.total = usage.credits_total
        self.year_total = usage.credits_by_year.get(year, ZERO)
        self.by_source: dict[str, Decimal] = defaultdict(lambda: ZERO, usage.credits_by_source)
        self.percent_limit: Decimal | None = None
        self.year_limit: Decimal | None = None
        self.source_limits: dict[str, Decimal] = {}

    @staticmethod
    def _min(a: Decimal | None, b: Decimal | None) -> Decimal | None:
        if a is None:
            return b
        if b is None:
            return a
        return min(a, b)

    def checks(self, caps: Caps, credits: Decimal, sources: Sequence[str]) -> list[CapCheck]:
        result: list[CapCheck] = []
        percent_limit = self._min(
            self.percent_limit,
            None if caps.max_percent_of_graduation_credits is None
            else self.programme.graduation_credits * caps.max_percent_of_graduation_credits / _HUNDRED,
        )
        if percent_limit is not None:
            after = percent_limit - self.total - credits
            result.append(CapCheck(cap="percent_of_graduation_credits", limit=percent_limit, used_before=self.total,
                                   credits=credits, remaining_after=after, fits=after >= 0,
                                   subject=self.programme.code))
        year_limit = self._min(self.year_limit, caps.max_credits_per_year)
        if year_limit is not None:
            after = year_limit - self.year_total - credits
            result.append(CapCheck(cap="per_year", limit=year_limit, used_before=self.year_total, credits=credits,
                                   remaining_after=after, fits=after >= 0, subject=str(self.year)))
        for source in sources:
            limit = self._min(self.source_limits.get(source), caps.max_credits_per_source)
            if limit is not None:
                after = limit - self.by_source[source] - credits
                result.append(CapCheck(cap="per_source", limit=limit, used_before=self.by_source[source],
                                       credits=credits, remaining_after=after, fits=after >= 0, subject=source))
        return result

    def commit(self, caps: Caps, credits: Decimal, sources: Sequence[str]) -> None:
        if caps.max_percent_of_graduation_credits is not None:
            self.percent_limit = self._min(
                self.percent_limit,
                self.programme.graduation_credits * caps.max_percent_of_graduation_credits / _HUNDRED,
            )
        self.year_limit = self._min(self.year_limit, caps.max_credits_per_year)
        for source in sources:
            if caps.max_credits_per_source is not None:
                self.source_limits[source] = self._min(self.source_limits.get(source), caps.max_credits_per_source)  # type: ignore[assignment]
            self.by_source[source] += credits
        self.total += credits
        self.year_total += credits


def _drop_superseded(rules: list[Rule], not_applicable: list[NotApplicable]) -> list[Rule]:
    newest: dict[str, int] = {}
    for rule in rules:
        newest[rule.id] = max(newest.get(rule.id, 0), rule.version)
    adopted_by: dict[str, Rule] = {}
    for rule in rules:
        if rule.kind == "institution" and rule.based_on is not None and newest[rule.id] == rule.version:
            adopted_by.setdefault(rule.based_on.id, rule)
    kept: list[Rule] = []
    for rule in rules:
        if rule.version < newest[rule.id]:
            not_applicable.append(NotApplicable(rule_id=rule.id, rule_version=rule.version, target_key=None,
                                                reason="superseded",
                                                detail=f"version {newest[rule.id]} of {rule.id} is in force"))
        elif rule.kind == "guidance" and rule.id in adopted_by:
            by = adopted_by[rule.id]
            not_applicable.append(NotApplicable(rule_id=rule.id, rule_version=rule.version, target_key=None,
                                                reason="superseded",
                                                detail=f"the institution applies it as {by.id} version {by.version}"))
        else:
            kept.append(rule)
    return kept


def evaluate(
    *,
    achievements: Sequence[Outcome],
    rules: Sequence[Rule],
    programme: Programme,
    on: dt.date,
    usage: PriorUsage | None = None,
    reference_levels: LevelMap | None = None,
    index: RuleIndex | None = None,
) -> Evaluation:
    """Propose conversions for one learner into one programme on a given day.

    `rules` are all rules that might be in force (drafts excluded by the caller); when `index` is given it was
    built from those rules once and `rules` is not read again. Deterministic: the result does not depend on the
    order of `achievements` or `rules`.
    """
    usage = usage or PriorUsage()
    if index is None:
        index = RuleIndex.build(rules=rules, reference_levels=reference_levels)
    level_map = reference_levels or index.level_map
    outcomes = sorted(achievements, key=lambda o: o.id)
    for first, second in zip(outcomes, outcomes[1:]):
        if first.id == second.id:
            raise ValueError(f"outcome id {first.id} is given twice")
    views = [OutcomeView.of(o, level_map) for o in outcomes]
    by_key: dict[tuple[str, str, str], list[OutcomeView]] = defaultdict(list)
    for view in views:
        by_key[("code", view.outcome.type, view.outcome.catalogue_code)].append(view)
        if view.reference_level:
            by_key[("ref", view.outcome.type, view.reference_level)].append(view)

    not_applicable: list[NotApplicable] = []
    for problem in index.problems:
        if problem.rule.institution_code == programme.institution_code:
            not_applicable.append(NotApplicable(rule_id=problem.rule.id, rule_version=problem.rule.version,
                                                target_key=None, reason=problem.reason, detail=problem.detail))

    candidates = index.candidates(views=views, programme_code=programme.code)
    live: list[Rule] = []
    for rule in candidates:
        if not rule.in_force(on):
            not_applicable.append(NotApplicable(rule_id=rule.id, rule_version=rule.version, target_key=None,
                                                reason="not_in_force",
                                                detail=f"in force {rule.effective_from} – {rule.effective_to or '…'}"))
            continue
        outside = _in_scope(rule, programme)
        if outside:
            not_applicable.append(NotApplicable(rule_id=rule.id, rule_version=rule.version, target_key=None,
                                                reason="out_of_scope", detail=outside))
            continue
        live.append(rule)
    live = _drop_superseded(live, not_applicable)

    options: dict[str, list[_Option]] = defaultdict(list)
    for rule in live:
        pools = {}
        for leaf in leaves_of(rule.condition):  # type: ignore[arg-type]
            keys = leaf_keys(leaf, level_map)
            if keys is None:
                pools[leaf.path] = views
            else:
                seen: dict[str, OutcomeView] = {}
                for key in sorted(keys):
                    for view in by_key.get(key, ()):
                        seen[view.outcome.id] = view
                pools[leaf.path] = [seen[i] for i in sorted(seen)]
        solved = solve(rule.condition, pools, on=on, level_map=level_map)  # type: ignore[arg-type]
        if not solved.satisfied:
            not_applicable.append(NotApplicable(
                rule_id=rule.id, rule_version=rule.version, target_key=None, reason="conditions_not_met",
                detail="the conditions are not met by distinct outcomes",
                explanation=Explanation(rule_id=rule.id, rule_version=rule.version, rule_title=rule.title,
                                        rule_kind=rule.kind, based_on=rule.based_on, mode=rule.mode,
                                        leaves=solved.leaves, groups=solved.groups, credits_basis="",
                                        grade_basis=""),
            ))
            continue
        for option in _options_for(rule, solved, programme, not_applicable):
            options[option.target.key].append(option)

    ledger = _Ledger(usage, programme, on.year)
    proposals: list[Proposal] = []
    expiring: list[Expiring] = []
    for key in sorted(options):
        choices = sorted(options[key], key=_Option.preference)
        prior = usage.outcomes_by_target.get(key)
        accepted: Proposal | None = None
        for option in choices:
            rule = option.rule

            def skip(reason: str, detail: str, caps: tuple[CapCheck, ...] = (), option: _Option = option,
                     key: str = key) -> None:
                explanation = option.explanation
                if caps:
                    explanation = _with_caps(explanation, caps)
                not_applicable.append(NotApplicable(rule_id=option.rule.id, rule_version=option.rule.version,
                                                    target_key=key, reason=reason, detail=detail,
                                                    explanation=explanation))

            if prior:
                skip("already_converted", f"already converted earlier from {', '.join(sorted(prior))}")
                continue
            if accepted is not None:
                skip("target_already_converted",
                     f"converted in this evaluation by {accepted.rule_id} version {accepted.rule_version}")
                continue
            if option.never_exempt_reason:
                skip("never_exempt", option.never_exempt_reason)
                continue
            caps = tuple(ledger.checks(rule.caps, option.credits, option.sources))
            failing = [c for c in caps if not c.fits]
            if failing:
                skip("cap_exceeded", "; ".join(f"{c.cap} limit {c.limit}: {c.used_before} used, "
                                               f"{c.credits} more would exceed it" for c in failing), caps)
                continue
            ledger.commit(rule.caps, option.credits, option.sources)
            accepted = Proposal(rule_id=rule.id, rule_version=rule.version, target=option.target,
                                source_outcome_ids=option.sources, credits=option.credits,
                                recorded_grade=option.grade, explanation=_with_caps(option.explanation, caps))
            proposals.append(accepted)
            if option.until is not None:
                expiring.append(Expiring(rule_id=rule.id, rule_version=rule.version, target_key=key,
                                         source_outcome_ids=option.sources, convertible_until=option.until[0],
                                         cause=option.until[1]))

    not_applicable.sort(key=lambda n: (n.rule_id, n.rule_version, n.target_key or "", n.reason, n.detail))
    expiring.sort(key=lambda e: (e.convertible_until, e.target_key, e.rule_id))
    return Evaluation(
        on=on,
        programme_code=programme.code,
        proposals=tuple(proposals),
        not_applicable=tuple(not_applicable),
        expiring=tuple(expiring),
        credits_total=sum((p.credits for p in proposals), ZERO),
        candidate_rule_count=len(candidates),
    )


def _with_caps(explanation: Explanation, caps: tuple[CapCheck, ...]) -> Explanation:
    return replace(explanation, caps=caps)
