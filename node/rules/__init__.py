"""Conversion rules: the rule language (JSON + schema), the pure evaluation engine, handbooks and standards bundles.

The database, HTTP API and review workflow call into this package; nothing here does I/O.
"""

from node.rules.catalogue import Catalogue, Certificate, Institution
from node.rules.engine import evaluate
from node.rules.explain import evaluation_to_dict, explain_not_applicable_zh, explain_zh, to_jsonable
from node.rules.index import RuleIndex
from node.rules.levels import seed_level_map
from node.rules.model import (
    Course,
    Evaluation,
    Expiring,
    Explanation,
    LevelMap,
    NotApplicable,
    Outcome,
    PriorUsage,
    Programme,
    Proposal,
    Rule,
    RuleRef,
    Target,
)
from node.rules.parse import RuleInvalid, check_narrowing, merge_with_base, parse_rule, validate_rule
from node.rules.standards import StandardsBundle, StandardsInvalid, parse_standards_bundle

__all__ = [
    "Catalogue",
    "Certificate",
    "Course",
    "Evaluation",
    "Expiring",
    "Explanation",
    "Institution",
    "LevelMap",
    "NotApplicable",
    "Outcome",
    "PriorUsage",
    "Programme",
    "Proposal",
    "Rule",
    "RuleIndex",
    "RuleInvalid",
    "RuleRef",
    "StandardsBundle",
    "StandardsInvalid",
    "Target",
    "check_narrowing",
    "evaluate",
    "evaluation_to_dict",
    "explain_not_applicable_zh",
    "explain_zh",
    "merge_with_base",
    "parse_rule",
    "parse_standards_bundle",
    "seed_level_map",
    "to_jsonable",
    "validate_rule",
]
