"""`RuleIndex`: rules keyed by what they can match, built once and reused for many learners.

Keys: ("code", achievement type, catalogue code) and ("ref", achievement type, reference level); rules whose
condition names neither (wildcards) go to a small residual list. Rules restricted to programmes are bucketed per
programme code, so a learner evaluated for one programme only meets that programme's rules plus region-wide ones.
Institution rules are merged with the guidance standard they are based on when the index is built.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from node.rules.levels import seed_level_map
from node.rules.matching import OutcomeView
from node.rules.model import ACHIEVEMENT_TYPES, Condition, Leaf, LevelMap, Rule, RuleRef
from node.rules.parse import RuleInvalid, check_narrowing, merge_with_base, parse_rule

__all__ = ["IndexKey", "RuleIndex", "RuleProblem", "leaf_keys", "outcome_keys"]

IndexKey = tuple[str, str, str]
_ANY_PROGRAMME = "*"


@dataclass(frozen=True)
class RuleProblem:
    """A rule the index could not use (its base standard is missing, or it loosens it)."""

    rule: Rule
    reason: str
    detail: str


def leaf_keys(leaf: Leaf, level_map: LevelMap) -> frozenset[IndexKey] | None:
    """Every key under which an outcome satisfying the leaf must appear; None for a wildcard leaf."""
    m = leaf.matcher
    types = m.types or ACHIEVEMENT_TYPES
    if m.catalogue_codes:
        return frozenset(("code", t, c) for t in types for c in m.catalogue_codes)
    refs: tuple[str, ...] = m.reference_levels
    if m.min_reference_level:
        above = level_map.at_or_above(m.min_reference_level)
        refs = tuple(r for r in refs if r in above) if refs else above
    if refs:
        return frozenset(("ref", t, r) for t in types for r in refs)
    return None


def _anchor_keys(condition: Condition, level_map: LevelMap) -> frozenset[IndexKey] | None:
    """Keys such that the condition can only hold if some outcome has one of them (None = cannot tell)."""
    if isinstance(condition, Leaf):
        return leaf_keys(condition, level_map)
    child_keys = [_anchor_keys(child, level_map) for child in condition.children]
    if condition.operator == "all_of":
        known = [k for k in child_keys if k is not None]
        if not known:
            return None
        return min(known, key=lambda keys: (len(keys), sorted(keys)))  # the most selective required child
    if any(k is None for k in child_keys):
        return None
    return frozenset().union(*child_keys)  # type: ignore[arg-type]


def outcome_keys(view: OutcomeView) -> list[IndexKey]:
    o = view.outcome
    keys: list[IndexKey] = [("code", o.type, o.catalogue_code)]
    if view.reference_level:
        keys.append(("ref", o.type, view.reference_level))
    return keys


@dataclass
class _Bucket:
    keyed: dict[IndexKey, list[int]] = field(default_factory=lambda: defaultdict(list))
    residual: list[int] = field(default_factory=list)


class RuleIndex:
    """Build with `RuleIndex.build(rules=..., reference_levels=...)`; pass as `index=` to `evaluate`."""

    def __init__(self, *, rules: Sequence[Rule], problems: Sequence[RuleProblem], level_map: LevelMap) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.problems: tuple[RuleProblem, ...] = tuple(problems)
        self.level_map = level_map
        self._buckets: dict[str, _Bucket] = defaultdict(_Bucket)
        for position, rule in enumerate(self.rules):
            keys = _anchor_keys(rule.condition, level_map) if rule.condition is not None else None
            for programme in rule.scope.programmes or (_ANY_PROGRAMME,):
                bucket = self._buckets[programme]
                if keys is None:
                    bucket.residual.append(position)
                else:
                    for key in keys:
                        bucket.keyed[key].append(position)

    @classmethod
    def build(cls, *, rules: Iterable[Rule], reference_levels: LevelMap | None = None) -> RuleIndex:
        level_map = reference_levels or seed_level_map()
        all_rules = sorted(rules, key=lambda r: (r.id, r.version))
        by_ref: dict[RuleRef, Rule] = {}
        for rule in all_rules:
            if rule.ref in by_ref:
                raise ValueError(f"rule {rule.id} version {rule.version} is given twice")
            by_ref[rule.ref] = rule
        usable: list[Rule] = []
        problems: list[RuleProblem] = []
        for rule in all_rules:
            if rule.kind != "institution":
                usable.append(rule)
                continue
            base = by_ref.get(rule.based_on) if rule.based_on else None
            if base is None:
                problems.append(RuleProblem(rule, "base_rule_missing",
                                            f"guidance standard {rule.based_on} is not among the rules given"))
                continue
            loosening = check_narrowing(rule=rule.body, base=base.body)
            if loosening:
                problems.append(RuleProblem(rule, "loosens_base", "; ".join(loosening)))
                continue
            try:
                usable.append(parse_rule(merge_with_base(rule=rule.body, base=base.body)))
            except RuleInvalid as exc:
                problems.append(RuleProblem(rule, "invalid_after_merge", str(exc)))
        return cls(rules=usable, problems=problems, level_map=level_map)

    def __len__(self) -> int:
        return len(self.rules)

    def candidates(self, *, views: Iterable[OutcomeView], programme_code: str) -> list[Rule]:
        """The rules that could match these outcomes for this programme, in canonical (id, version) order."""
        keys = {key for view in views for key in outcome_keys(view)}
        positions: set[int] = set()
        for name in (programme_code, _ANY_PROGRAMME):
            bucket = self._buckets.get(name)
            if bucket is None:
                continue
            positions.update(bucket.residual)
            keyed = bucket.keyed
            if len(keys) < len(keyed):
                for key in keys:
                    hit = keyed.get(key)
                    if hit:
                        positions.update(hit)
            else:
                for key, hit in keyed.items():
                    if key in keys:
                        positions.update(hit)
        return [self.rules[p] for p in sorted(positions)]
