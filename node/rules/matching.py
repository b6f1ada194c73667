"""Does an outcome satisfy a condition leaf, and which distinct outcomes satisfy a whole condition tree."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from node.rules.grades import grade_rank, numeric_score
from node.rules.levels import vocational_rank
from node.rules.model import (
    Condition,
    FieldCheck,
    Group,
    GroupCheck,
    Leaf,
    LeafCheck,
    LevelMap,
    Outcome,
    OutcomeMatcher,
)

__all__ = ["OutcomeView", "SolveResult", "add_years", "field_checks", "leaves_of", "solve"]

_GRADE_RANK_REQUIRED = {"优": 4, "良": 3, "中": 2, "及格": 1, "合格": 1}
_SEARCH_BUDGET = 50_000


def add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class OutcomeView:
    """An outcome with what the engine derives once: its reference level, grade rank and numeric score."""

    outcome: Outcome
    reference_level: str | None
    rank: int | None
    number: Decimal | None

    @classmethod
    def of(cls, outcome: Outcome, level_map: LevelMap) -> OutcomeView:
        return cls(
            outcome=outcome,
            reference_level=outcome.reference_level or level_map.reference_of(outcome.level),
            rank=grade_rank(score_text=outcome.score_text, score_value=outcome.score_value),
            number=numeric_score(score_text=outcome.score_text, score_value=outcome.score_value),
        )

    def preference(self) -> tuple:
        """Best candidate first: higher score, then more recent, then id."""
        number = self.number if self.number is not None else Decimal(-1)
        return (-number, -self.outcome.earned_on.toordinal(), self.outcome.id)


def _join(values: Sequence[str]) -> str:
    return " / ".join(values)


def field_checks(matcher: OutcomeMatcher, view: OutcomeView | None, *, on: dt.date, level_map: LevelMap) -> tuple[FieldCheck, ...]:
    """One check per requirement of the leaf (actual None when there is no outcome to compare)."""
    o = view.outcome if view else None
    checks: list[FieldCheck] = []

    def add(name: str, required: str, actual: str | None, met: bool) -> None:
        checks.append(FieldCheck(field=name, required=required, actual=actual, met=bool(o) and met))

    if matcher.types:
        add("type", _join(matcher.types), o and o.type, bool(o) and o.type in matcher.types)
    if matcher.catalogue_codes:
        add("catalogue_code", _join(matcher.catalogue_codes), o and o.catalogue_code,
            bool(o) and o.catalogue_code in matcher.catalogue_codes)
    if matcher.issuer_codes:
        add("issuer_code", _join(matcher.issuer_codes), o and o.issuer_code, bool(o) and o.issuer_code in matcher.issuer_codes)
    if matcher.levels:
        add("level", _join(matcher.levels), o and o.level, bool(o) and o.level in matcher.levels)
    if matcher.min_level:
        met = False
        if o:
            have, need = vocational_rank(o.level), vocational_rank(matcher.min_level)
            if have is not None and need is not None:
                met = have >= need
            else:
                have_ref = level_map.rank(view.reference_level)
                need_ref = level_map.rank(level_map.reference_of(matcher.min_level))
                met = have_ref is not None and need_ref is not None and have_ref >= need_ref
        add("min_level", matcher.min_level, o and o.level, met)
    if matcher.reference_levels:
        add("reference_level", _join(matcher.reference_levels), view and view.reference_level,
            bool(view) and view.reference_level in matcher.reference_levels)
    if matcher.min_reference_level:
        have = level_map.rank(view.reference_level) if view else None
        need = level_map.rank(matcher.min_reference_level)
        add("min_reference_level", matcher.min_reference_level, view and view.reference_level,
            have is not None and need is not None and have >= need)
    if matcher.min_score is not None:
        number = view.number if view else None
        add("min_score", str(matcher.min_score), o and (o.score_text or (str(number) if number is not None else None)),
            number is not None and number >= matcher.min_score)
    if matcher.min_grade:
        rank = view.rank if view else None
        add("min_grade", matcher.min_grade, o and o.score_text,
            rank is not None and rank >= _GRADE_RANK_REQUIRED[matcher.min_grade])
    if matcher.within_years is not None:
        add("within_years", f"{matcher.within_years} 年内取得（不早于 {add_years(on, -matcher.within_years).isoformat()}）",
            o and o.earned_on.isoformat(), bool(o) and o.earned_on >= add_years(on, -matcher.within_years))
    if matcher.categories:
        add("category", _join(matcher.categories), o and o.category, bool(o) and o.category in matcher.categories)
    add("not_expired", f"{on.isoformat()} 仍有效", o and (o.expires_on.isoformat() if o.expires_on else "长期有效"),
        bool(o) and not o.expired_on(on))
    add("earned_before", f"不晚于 {on.isoformat()}", o and o.earned_on.isoformat(), bool(o) and o.earned_on <= on)
    return tuple(checks)


def leaves_of(condition: Condition) -> list[Leaf]:
    if isinstance(condition, Leaf):
        return [condition]
    return [leaf for child in condition.children for leaf in leaves_of(child)]


def groups_of(condition: Condition) -> list[Group]:
    if isinstance(condition, Leaf):
        return []
    return [condition, *(g for child in condition.children for g in groups_of(child))]


@dataclass(frozen=True)
class SolveResult:
    satisfied: bool
    assignment: Mapping[str, OutcomeView]  # leaf path → outcome used
    leaves: tuple[LeafCheck, ...]
    groups: tuple[GroupCheck, ...]


class _Budget:
    def __init__(self) -> None:
        self.left = _SEARCH_BUDGET

    def spend(self) -> bool:
        self.left -= 1
        return self.left >= 0


def _solutions(node: Condition, used: frozenset[str], candidates: Mapping[str, list[OutcomeView]],
               budget: _Budget) -> Iterator[dict[str, OutcomeView]]:
    if isinstance(node, Leaf):
        for view in candidates[node.path]:
            if not budget.spend():
                return
            if view.outcome.id not in used:
                yield {node.path: view}
        return
    if node.operator == "any_of":
        for child in node.children:
            yield from _solutions(child, used, candidates, budget)
        return
    combos = [node.children] if node.operator == "all_of" else itertools.combinations(node.children, node.required)
    for combo in combos:
        yield from _all(tuple(combo), used, candidates, budget)


def _all(children: tuple[Condition, ...], used: frozenset[str], candidates: Mapping[str, list[OutcomeView]],
         budget: _Budget) -> Iterator[dict[str, OutcomeView]]:
    if not children:
        yield {}
        return
    first, rest = children[0], children[1:]
    for partial in _solutions(first, used, candidates, budget):
        taken = used | {v.outcome.id for v in partial.values()}
        for more in _all(rest, taken, candidates, budget):
            yield {**partial, **more}


def _individually_met(node: Condition, candidates: Mapping[str, list[OutcomeView]]) -> int:
    """How many children of a group hold on their own (for the explanation); for a leaf 1 or 0."""
    if isinstance(node, Leaf):
        return int(bool(candidates[node.path]))
    return sum(1 for child in node.children if _holds_alone(child, candidates))


def _holds_alone(node: Condition, candidates: Mapping[str, list[OutcomeView]]) -> bool:
    if isinstance(node, Leaf):
        return bool(candidates[node.path])
    return _individually_met(node, candidates) >= node.required


def solve(condition: Condition, pools: Mapping[str, Sequence[OutcomeView]], *, on: dt.date,
          level_map: LevelMap) -> SolveResult:
    """Assign distinct outcomes to the leaves so that the condition holds (first solution in preference order).

    `pools` gives, per leaf path, the outcomes worth checking (the index narrows them by catalogue code).
    """
    leaves = leaves_of(condition)
    candidates: dict[str, list[OutcomeView]] = {}
    checks_by_leaf: dict[str, dict[str, tuple[FieldCheck, ...]]] = {}
    for leaf in leaves:
        passing: list[OutcomeView] = []
        per_outcome: dict[str, tuple[FieldCheck, ...]] = {}
        for view in pools[leaf.path]:
            checks = field_checks(leaf.matcher, view, on=on, level_map=level_map)
            per_outcome[view.outcome.id] = checks
            if all(c.met for c in checks):
                passing.append(view)
        passing.sort(key=OutcomeView.preference)
        candidates[leaf.path] = passing
        checks_by_leaf[leaf.path] = per_outcome
    assignment = next(_solutions(condition, frozenset(), candidates, _Budget()), None)
    leaf_checks: list[LeafCheck] = []
    for leaf in leaves:
        chosen = assignment.get(leaf.path) if assignment else None
        shown = chosen or (candidates[leaf.path][0] if candidates[leaf.path] else None)
        if shown is None and pools[leaf.path]:  # the closest miss: fewest failed checks, then best preference
            per_outcome = checks_by_leaf[leaf.path]
            shown = min(pools[leaf.path], key=lambda v: (sum(not c.met for c in per_outcome[v.outcome.id]), v.preference()))
        checks = (checks_by_leaf[leaf.path][shown.outcome.id] if shown is not None
                  else field_checks(leaf.matcher, None, on=on, level_map=level_map))
        leaf_checks.append(LeafCheck(
            path=leaf.path, name=leaf.name, met=bool(candidates[leaf.path]), used=chosen is not None,
            outcome_id=shown.outcome.id if shown else None, outcome_title=shown.outcome.title if shown else None,
            checks=checks,
        ))
    group_checks = tuple(
        GroupCheck(path=g.path, operator=g.operator, required=g.required,
                   met_count=_individually_met(g, candidates), met=_holds_alone(g, candidates))
        for g in groups_of(condition)
    )
    return SolveResult(satisfied=assignment is not None, assignment=assignment or {}, leaves=tuple(leaf_checks),
                       groups=group_checks)
