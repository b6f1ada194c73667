"""Typed values of the rules engine: inputs (outcomes, programmes, prior usage, level map, rules) and outputs
(proposals with explanations, items that do not apply, what expires). All frozen; credits are `Decimal`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Union

__all__ = [
    "ACHIEVEMENT_TYPES",
    "CapCheck",
    "Caps",
    "Condition",
    "Course",
    "CreditSpec",
    "CreditTier",
    "Evaluation",
    "ExemptionSpec",
    "Expiring",
    "Explanation",
    "FieldCheck",
    "GradeSpec",
    "Group",
    "GroupCheck",
    "Leaf",
    "LeafCheck",
    "LevelMap",
    "NotApplicable",
    "Outcome",
    "OutcomeMatcher",
    "PriorUsage",
    "Programme",
    "Proposal",
    "Rule",
    "RuleRef",
    "Scope",
    "Target",
    "TargetSpec",
    "course_target_key",
    "exemption_target_key",
]

ACHIEVEMENT_TYPES: tuple[str, ...] = (
    "degree_course",
    "self_study_course",
    "vocational_qualification",
    "skill_level",
    "training",
    "community",
    "informal",
    "university_course_certificate",
    "cultural_leisure",
)

ZERO = Decimal(0)


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """One learning outcome in a learner's archive."""

    id: str
    type: str
    catalogue_code: str
    title: str
    earned_on: dt.date
    issuer_code: str | None = None
    level: str | None = None  # native level, e.g. 三级 or 专科
    reference_level: str | None = None  # shared reference level, e.g. R3; else looked up in the LevelMap
    score_text: str | None = None  # 85, 优, 合格 …
    score_value: Decimal | None = None
    credits: Decimal = ZERO
    hours: int | None = None
    expires_on: dt.date | None = None  # last day of validity; None = does not expire
    category: str | None = None

    def expired_on(self, day: dt.date) -> bool:
        return self.expires_on is not None and self.expires_on < day


@dataclass(frozen=True, kw_only=True)
class Course:
    code: str
    name: str
    credits: Decimal
    hours: int | None = None
    category: str | None = None  # e.g. theory, practical, thesis, general
    never_exempt: bool = False


@dataclass(frozen=True, kw_only=True)
class Programme:
    code: str
    name: str
    institution_code: str
    level: str  # native level, e.g. 专科
    graduation_credits: Decimal
    courses: Mapping[str, Course] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PriorUsage:
    """What has already been converted for this learner (into this programme, for credit totals)."""

    outcomes_by_target: Mapping[str, frozenset[str]] = field(default_factory=dict)
    credits_total: Decimal = ZERO
    credits_by_year: Mapping[int, Decimal] = field(default_factory=dict)
    credits_by_source: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LevelMap:
    """One region's native levels → shared reference levels (never member → member directly).

    `reference_order` lists the reference levels from lowest to highest.
    """

    region: str
    native_to_reference: Mapping[str, str]
    reference_order: tuple[str, ...]

    def reference_of(self, native: str | None) -> str | None:
        return None if native is None else self.native_to_reference.get(native)

    def rank(self, reference: str | None) -> int | None:
        if reference is None or reference not in self.reference_order:
            return None
        return self.reference_order.index(reference)

    def at_or_above(self, reference: str) -> tuple[str, ...]:
        rank = self.rank(reference)
        return () if rank is None else self.reference_order[rank:]


# ---------------------------------------------------------------- rules


@dataclass(frozen=True, kw_only=True)
class OutcomeMatcher:
    """What one source outcome must be. Empty tuples / None mean "any"."""

    types: tuple[str, ...] = ()
    catalogue_codes: tuple[str, ...] = ()
    issuer_codes: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    min_level: str | None = None
    reference_levels: tuple[str, ...] = ()
    min_reference_level: str | None = None
    min_score: Decimal | None = None
    min_grade: str | None = None
    within_years: int | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Leaf:
    path: str
    name: str
    matcher: OutcomeMatcher


@dataclass(frozen=True, kw_only=True)
class Group:
    path: str
    operator: Literal["all_of", "any_of", "at_least"]
    required: int
    children: tuple[Condition, ...]


Condition = Union[Leaf, Group]


@dataclass(frozen=True, kw_only=True)
class CreditTier:
    credits: Decimal
    min_score: Decimal | None = None
    min_grade: str | None = None


@dataclass(frozen=True, kw_only=True)
class CreditSpec:
    kind: Literal["from_course", "fixed", "tiers", "none"]
    fixed: Decimal | None = None
    tiers: tuple[CreditTier, ...] = ()
    score_of: str | None = None


@dataclass(frozen=True, kw_only=True)
class GradeSpec:
    record: Literal["免考", "合格", "source"]
    cap: str | None = None
    of: str | None = None


@dataclass(frozen=True, kw_only=True)
class TargetSpec:
    course: str
    credits: CreditSpec
    grade: GradeSpec


@dataclass(frozen=True, kw_only=True)
class ExemptionSpec:
    certificate: str
    level: str | None
    component: Literal["theory", "skills", "all"]
    title: str | None
    grade: GradeSpec


@dataclass(frozen=True, kw_only=True)
class Caps:
    max_percent_of_graduation_credits: Decimal | None = None
    max_credits_per_source: Decimal | None = None
    max_credits_per_year: Decimal | None = None

    def is_empty(self) -> bool:
        return (
            self.max_percent_of_graduation_credits is None
            and self.max_credits_per_source is None
            and self.max_credits_per_year is None
        )


@dataclass(frozen=True, kw_only=True)
class Scope:
    programmes: tuple[str, ...] = ()
    institutions: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class RuleRef:
    id: str
    version: int


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A conversion rule (guidance standard or institution rule), parsed from its JSON body."""

    id: str
    version: int
    kind: Literal["guidance", "institution"]
    title: str
    effective_from: dt.date
    effective_to: dt.date | None = None
    mode: str | None = None
    institution_code: str | None = None
    based_on: RuleRef | None = None
    scope: Scope = Scope()
    condition: Condition | None = None
    targets: tuple[TargetSpec, ...] = ()
    exemption: ExemptionSpec | None = None
    caps: Caps = Caps()
    never_exempt_categories: tuple[str, ...] = ()
    illustrative: bool = False
    resolved: bool = True  # False for an institution rule whose based_on has not been merged in yet
    body: Mapping = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def ref(self) -> RuleRef:
        return RuleRef(self.id, self.version)

    def in_force(self, day: dt.date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


# ---------------------------------------------------------------- outputs


def course_target_key(programme_code: str, course_code: str) -> str:
    return f"course:{programme_code}:{course_code}"


def exemption_target_key(certificate: str, level: str | None, component: str) -> str:
    return f"exemption:{certificate}:{level or '-'}:{component}"


@dataclass(frozen=True, kw_only=True)
class Target:
    kind: Literal["course", "exemption"]
    key: str
    code: str  # course code, or the certificate's catalogue code
    name: str  # course name, or e.g. 电工（三级）理论考核
    programme_code: str | None = None
    level: str | None = None
    component: str | None = None


@dataclass(frozen=True, kw_only=True)
class FieldCheck:
    field: str
    required: str
    actual: str | None
    met: bool


@dataclass(frozen=True, kw_only=True)
class LeafCheck:
    path: str
    name: str
    met: bool  # some outcome satisfies this condition
    used: bool  # that outcome is one of the proposal's sources
    outcome_id: str | None
    outcome_title: str | None
    checks: tuple[FieldCheck, ...]


@dataclass(frozen=True, kw_only=True)
class GroupCheck:
    path: str
    operator: str
    required: int
    met_count: int
    met: bool


@dataclass(frozen=True, kw_only=True)
class CapCheck:
    cap: Literal["percent_of_graduation_credits", "per_source", "per_year"]
    limit: Decimal
    used_before: Decimal
    credits: Decimal
    remaining_after: Decimal
    fits: bool
    subject: str | None = None  # the source outcome id or the year


@dataclass(frozen=True, kw_only=True)
class Explanation:
    rule_id: str
    rule_version: int
    rule_title: str
    rule_kind: str
    based_on: RuleRef | None
    mode: str | None
    leaves: tuple[LeafCheck, ...]
    groups: tuple[GroupCheck, ...]
    credits_basis: str
    grade_basis: str
    caps: tuple[CapCheck, ...] = ()
    convertible_until: dt.date | None = None


@dataclass(frozen=True, kw_only=True)
class Proposal:
    rule_id: str
    rule_version: int
    target: Target
    source_outcome_ids: tuple[str, ...]
    credits: Decimal
    recorded_grade: str
    explanation: Explanation


@dataclass(frozen=True, kw_only=True)
class NotApplicable:
    rule_id: str
    rule_version: int
    target_key: str | None
    reason: str  # a code: not_in_force, out_of_scope, superseded, conditions_not_met, cap_exceeded, …
    detail: str
    explanation: Explanation | None = None


@dataclass(frozen=True, kw_only=True)
class Expiring:
    rule_id: str
    rule_version: int
    target_key: str
    source_outcome_ids: tuple[str, ...]
    convertible_until: dt.date
    cause: str  # certificate_expires, within_years, rule_ends


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    on: dt.date
    programme_code: str
    proposals: tuple[Proposal, ...]
    not_applicable: tuple[NotApplicable, ...]
    expiring: tuple[Expiring, ...]
    credits_total: Decimal
    candidate_rule_count: int = 0
