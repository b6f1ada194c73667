"""The rule language: JSON Schema validation with readable errors, parsing into typed `Rule`s, and how an
institution rule is merged with the guidance standard it is `based_on`."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from node.rules.model import (
    Caps,
    Condition,
    CreditSpec,
    CreditTier,
    ExemptionSpec,
    GradeSpec,
    Group,
    Leaf,
    OutcomeMatcher,
    Rule,
    RuleRef,
    Scope,
    TargetSpec,
)

__all__ = [
    "RuleInvalid",
    "check_narrowing",
    "merge_with_base",
    "parse_rule",
    "rule_schema",
    "validate_rule",
]

_VOCATIONAL_ALIASES = {"初级": "五级", "中级": "四级", "高级": "三级", "技师": "二级", "高级技师": "一级"}


class RuleInvalid(ValueError):
    """A rule body that does not validate; `errors` holds the readable messages."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


@lru_cache(maxsize=1)
def rule_schema() -> dict:
    text = resources.files("node.rules").joinpath("rule.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(rule_schema())


def _where(path: Sequence[Any]) -> str:
    out = "rule"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _readable(error: ValidationError) -> str:
    where = _where(error.absolute_path)
    if error.validator == "pattern":
        pattern = error.validator_value
        if "[0-9]{4}-" in pattern:
            return f"{where}: {error.instance!r} is not a date written YYYY-MM-DD"
        if pattern.startswith("^[0-9]+(") or pattern.startswith("^(优"):
            return f"{where}: {error.instance!r} is not a decimal written as a string (e.g. \"4\" or \"2.5\")" + (
                " or a grade word" if pattern.startswith("^(优") else ""
            )
        return f"{where}: {error.instance!r} has characters that are not allowed (letters, digits, . _ : -)"
    if error.validator == "oneOf":
        instance = error.instance
        if where.endswith(".type"):
            return f"{where}: {instance!r} is not an achievement type or a list of them"
        if where.endswith("effective_to"):
            return f"{where}: {instance!r} is neither a date YYYY-MM-DD nor null"
        if where.endswith("credits") and isinstance(instance, dict):
            return f"{where}: credits are given by exactly one of from, fixed or tiers"
        if isinstance(instance, dict) and {"outcome", "all_of", "any_of", "at_least", "of"} & set(instance):
            return f"{where}: a condition has exactly one of outcome, all_of, any_of, or at_least with of"
        if isinstance(instance, dict):
            return f"{where}: give exactly one of the alternatives allowed here"
        return f"{where}: {instance!r} is not a code or a list of codes"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"{where}: {error.instance!r} is not one of {allowed}"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message.replace('Additional properties are not allowed', 'unknown field')}"
    if error.validator == "required":
        return f"{where}: {error.message.replace('is a required property', 'is required')}"
    return f"{where}: {error.message}"


def _walk_conditions(node: Mapping, path: str, leaves: list[tuple[str, Mapping]], errors: list[str]) -> None:
    if "outcome" in node:
        leaves.append((path, node))
        matcher = node["outcome"]
        if "type" not in matcher and "catalogue_code" not in matcher:
            errors.append(f"{path}.outcome: name at least a type or a catalogue_code (else it matches anything)")
        return
    if "at_least" in node:
        if node["at_least"] > len(node["of"]):
            errors.append(f"{path}: at_least {node['at_least']} of only {len(node['of'])} conditions can never hold")
        for i, child in enumerate(node["of"]):
            _walk_conditions(child, f"{path}.of[{i}]", leaves, errors)
        return
    for operator in ("all_of", "any_of"):
        if operator in node:
            for i, child in enumerate(node[operator]):
                _walk_conditions(child, f"{path}.{operator}[{i}]", leaves, errors)


def _leaf_names(doc: Mapping) -> list[tuple[str, str]]:
    leaves: list[tuple[str, Mapping]] = []
    if isinstance(doc.get("condition"), Mapping):
        _walk_conditions(doc["condition"], "rule.condition", leaves, [])
    return [(path, node.get("as") or f"s{i + 1}") for i, (path, node) in enumerate(leaves)]


def _semantic_errors(doc: Mapping) -> list[str]:
    errors: list[str] = []
    try:
        start = dt.date.fromisoformat(doc["effective_from"])
    except ValueError:
        errors.append(f"rule.effective_from: {doc['effective_from']!r} is not a real date")
        start = None
    end = None
    if doc.get("effective_to") is not None:
        try:
            end = dt.date.fromisoformat(doc["effective_to"])
        except ValueError:
            errors.append(f"rule.effective_to: {doc['effective_to']!r} is not a real date")
    if start and end and end < start:
        errors.append("rule.effective_to: ends before effective_from")

    kind = doc["kind"]
    adopting = bool(doc.get("adopt"))
    if kind == "guidance":
        for name in ("based_on", "institution_code", "adopt", "narrow"):
            if name in doc:
                errors.append(f"rule.{name}: only an institution rule has {name} (a guidance standard is region-wide)")
    else:
        if "institution_code" not in doc:
            errors.append("rule.institution_code: an institution rule names its institution")
        if "based_on" not in doc:
            errors.append("rule.based_on: an institution rule references the guidance standard it applies (id, version)")
    if not adopting:
        if "condition" not in doc:
            errors.append("rule.condition: is required (unless an institution rule adopts its based_on standard)")
        if "targets" not in doc and "exemption" not in doc:
            errors.append("rule: give targets (courses) or exemption (a certificate's exam)")
    if "targets" in doc and "exemption" in doc:
        errors.append("rule: give either targets or exemption, not both")
    if "exemption" in doc and "credits" in doc:
        errors.append("rule.credits: an exemption converts no credits")

    leaves: list[tuple[str, Mapping]] = []
    if "condition" in doc:
        _walk_conditions(doc["condition"], "rule.condition", leaves, errors)
    names = [name for _, name in _leaf_names(doc)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            errors.append(f"rule.condition: the name {name!r} (as) is used by two conditions")
        seen.add(name)

    def check_credits(credits: Mapping | None, where: str) -> None:
        if not credits:
            return
        if credits.get("score_of") is not None and credits["score_of"] not in seen:
            errors.append(f"{where}.score_of: no condition is named {credits['score_of']!r}")
        tiers = credits.get("tiers") or []
        for i, tier in enumerate(tiers):
            if "min_score" not in tier and "min_grade" not in tier and i != len(tiers) - 1:
                errors.append(f"{where}.tiers[{i}]: only the last tier may have no minimum (later tiers are unreachable)")
            if "min_score" in tier and "min_grade" in tier:
                errors.append(f"{where}.tiers[{i}]: give min_score or min_grade, not both")

    def check_grade(grade: Mapping | None, where: str) -> None:
        if not grade:
            return
        if grade.get("of") is not None and grade["of"] not in seen:
            errors.append(f"{where}.of: no condition is named {grade['of']!r}")
        if grade.get("cap") is not None and grade["record"] != "source":
            errors.append(f"{where}.cap: a cap applies only when the source grade is recorded (record: source)")

    check_credits(doc.get("credits"), "rule.credits")
    check_grade(doc.get("grade"), "rule.grade")
    courses: set[str] = set()
    for i, target in enumerate(doc.get("targets") or []):
        check_credits(target.get("credits"), f"rule.targets[{i}].credits")
        check_grade(target.get("grade"), f"rule.targets[{i}].grade")
        if target["course"] in courses:
            errors.append(f"rule.targets[{i}].course: {target['course']!r} is listed twice")
        courses.add(target["course"])
    if "exemption" in doc:
        check_grade(doc["exemption"].get("grade"), "rule.exemption.grade")
    percent = (doc.get("caps") or {}).get("max_percent_of_graduation_credits")
    if percent is not None and Decimal(percent) > 100:
        errors.append("rule.caps.max_percent_of_graduation_credits: a share above 100 % caps nothing")
    return errors


def validate_rule(doc: Any) -> list[str]:
    """Readable problems with a rule body; an empty list means it is valid."""
    if not isinstance(doc, Mapping):
        return ["rule: must be a JSON object"]
    errors = sorted(
        {_readable(e) for e in _validator().iter_errors(doc)},
    )
    if errors:
        return errors
    return _semantic_errors(doc)


# ---------------------------------------------------------------- parsing


def _codes(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _matcher(doc: Mapping) -> OutcomeMatcher:
    min_level = doc.get("min_level")
    return OutcomeMatcher(
        types=_codes(doc.get("type")),
        catalogue_codes=_codes(doc.get("catalogue_code")),
        issuer_codes=_codes(doc.get("issuer_code")),
        levels=_codes(doc.get("level")),
        min_level=_VOCATIONAL_ALIASES.get(min_level, min_level),
        reference_levels=_codes(doc.get("reference_level")),
        min_reference_level=doc.get("min_reference_level"),
        min_score=Decimal(doc["min_score"]) if "min_score" in doc else None,
        min_grade=doc.get("min_grade"),
        within_years=doc.get("within_years"),
        categories=_codes(doc.get("category")),
    )


def _condition(doc: Mapping, path: str, counter: list[int]) -> Condition:
    if "outcome" in doc:
        counter[0] += 1
        return Leaf(path=path, name=doc.get("as") or f"s{counter[0]}", matcher=_matcher(doc["outcome"]))
    if "at_least" in doc:
        children = tuple(_condition(c, f"{path}.of[{i}]", counter) for i, c in enumerate(doc["of"]))
        return Group(path=path, operator="at_least", required=doc["at_least"], children=children)
    operator = "all_of" if "all_of" in doc else "any_of"
    children = tuple(_condition(c, f"{path}.{operator}[{i}]", counter) for i, c in enumerate(doc[operator]))
    return Group(path=path, operator=operator, required=len(children) if operator == "all_of" else 1, children=children)


def _credits(doc: Mapping | None) -> CreditSpec:
    if not doc or doc.get("from") == "course":
        return CreditSpec(kind="from_course")
    if "fixed" in doc:
        return CreditSpec(kind="fixed", fixed=Decimal(doc["fixed"]))
    tiers = tuple(
        CreditTier(
            credits=Decimal(t["credits"]),
            min_score=Decimal(t["min_score"]) if "min_score" in t else None,
            min_grade=t.get("min_grade"),
        )
        for t in doc["tiers"]
    )
    return CreditSpec(kind="tiers", tiers=tiers, score_of=doc.get("score_of"))


def _grade(doc: Mapping | None, default: str) -> GradeSpec:
    if not doc:
        return GradeSpec(record=default)  # type: ignore[arg-type]
    return GradeSpec(record=doc["record"], cap=doc.get("cap"), of=doc.get("of"))


def _date(value: str | None) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value)


def parse_rule(doc: Mapping, *, validate: bool = True) -> Rule:
    """A typed `Rule` from its JSON body. Raises `RuleInvalid` with readable messages.

    An institution rule that adopts its base (`adopt: true`) and leaves out the condition or the targets comes back
    with `resolved=False`; `merge_with_base` (or `RuleIndex`) completes it from the guidance standard.
    """
    if validate:
        errors = validate_rule(doc)
        if errors:
            raise RuleInvalid(errors)
    condition = _condition(doc["condition"], "condition", [0]) if "condition" in doc else None
    rule_credits = doc.get("credits")
    rule_grade = doc.get("grade")
    targets = tuple(
        TargetSpec(
            course=t["course"],
            credits=_credits(t.get("credits") or rule_credits),
            grade=_grade(t.get("grade") or rule_grade, "免考"),
        )
        for t in doc.get("targets") or ()
    )
    exemption = None
    if "exemption" in doc:
        ex = doc["exemption"]
        exemption = ExemptionSpec(
            certificate=ex["certificate"],
            level=ex.get("level"),
            component=ex["component"],
            title=ex.get("title"),
            grade=_grade(ex.get("grade") or rule_grade, "免考"),
        )
    caps_doc = doc.get("caps") or {}
    applies = doc.get("applies_to") or {}
    based_on = doc.get("based_on")
    return Rule(
        id=doc["id"],
        version=doc["version"],
        kind=doc["kind"],
        title=doc["title"],
        effective_from=dt.date.fromisoformat(doc["effective_from"]),
        effective_to=_date(doc.get("effective_to")),
        mode=doc.get("mode"),
        institution_code=doc.get("institution_code"),
        based_on=RuleRef(based_on["id"], based_on["version"]) if based_on else None,
        scope=Scope(
            programmes=tuple(applies.get("programmes") or ()),
            institutions=tuple(applies.get("institutions") or ()),
            levels=tuple(applies.get("levels") or ()),
        ),
        condition=condition,
        targets=targets,
        exemption=exemption,
        caps=Caps(
            max_percent_of_graduation_credits=_dec(caps_doc.get("max_percent_of_graduation_credits")),
            max_credits_per_source=_dec(caps_doc.get("max_credits_per_source")),
            max_credits_per_year=_dec(caps_doc.get("max_credits_per_year")),
        ),
        never_exempt_categories=tuple(doc.get("never_exempt_categories") or ()),
        illustrative=bool(doc.get("illustrative")),
        resolved=condition is not None and (bool(targets) or exemption is not None),
        body=copy.deepcopy(dict(doc)),
    )


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


# ---------------------------------------------------------------- institution rules and their base


_GRADE_ORDER = {"及格": 1, "合格": 1, "中": 2, "良": 3, "优": 4}
_LEVEL_ORDER = {"五级": 0, "四级": 1, "三级": 2, "二级": 3, "一级": 4}


def _tighten(matcher: Mapping, extra: Mapping) -> dict:
    """A leaf's matcher with an institution's extra requirements: new fields are added, shared ones tightened."""
    out = copy.deepcopy(dict(matcher))
    for name, value in extra.items():
        if name not in out:
            out[name] = copy.deepcopy(value)
        elif name == "within_years":
            out[name] = min(out[name], value)
        elif name == "min_score":
            out[name] = str(max(Decimal(out[name]), Decimal(value)))
        elif name == "min_grade":
            out[name] = max(out[name], value, key=lambda w: _GRADE_ORDER[w])
        elif name == "min_level":
            out[name] = max(_VOCATIONAL_ALIASES.get(out[name], out[name]), _VOCATIONAL_ALIASES.get(value, value),
                            key=lambda w: _LEVEL_ORDER[w])
        elif name == "min_reference_level":
            out[name] = value  # the engine cannot order reference levels without a map; check_narrowing warns
        else:  # code lists: keep what both allow (an empty list makes the merged rule invalid)
            mine = [out[name]] if isinstance(out[name], str) else list(out[name])
            theirs = {value} if isinstance(value, str) else set(value)
            out[name] = [code for code in mine if code in theirs]
    return out


def _narrow_condition(node: Mapping, narrow: Mapping) -> dict:
    node = copy.deepcopy(dict(node))
    if "outcome" in node:
        if node.get("as") in narrow:
            node["outcome"] = _tighten(node["outcome"], narrow[node["as"]])
        return node
    for operator in ("all_of", "any_of", "of"):
        if operator in node:
            node[operator] = [_narrow_condition(child, narrow) for child in node[operator]]
    return node


def merge_with_base(*, rule: Mapping, base: Mapping) -> dict:
    """The effective body of an institution rule: what it leaves out comes from the guidance standard.

    - narrow: per named condition of the base (`as`), extra requirements on that same outcome (added, or
      tightened: within_years smaller, min_score / min_grade / min_level higher, code lists intersected);
    - condition: the base's condition AND the institution's own (more outcomes required, distinct ones);
    - targets / exemption, credits, grade, applies_to: the institution's if given, else the base's;
    - caps: per cap the smaller of the two; never_exempt_categories: the union.
    """
    merged = copy.deepcopy(dict(rule))
    merged.pop("adopt", None)
    merged.pop("narrow", None)
    base_condition = base.get("condition")
    if base_condition is not None and rule.get("narrow"):
        base_condition = _narrow_condition(base_condition, rule["narrow"])
    if base_condition is not None and "condition" in rule:
        merged["condition"] = {"all_of": [base_condition, copy.deepcopy(rule["condition"])]}
    elif base_condition is not None:
        merged["condition"] = base_condition
    if "targets" not in rule and "exemption" not in rule:
        for name in ("targets", "exemption"):
            if name in base:
                merged[name] = copy.deepcopy(base[name])
    for name in ("credits", "grade", "applies_to", "mode"):
        if name not in rule and name in base:
            merged[name] = copy.deepcopy(base[name])
    caps = dict(base.get("caps") or {})
    for name, value in (rule.get("caps") or {}).items():
        caps[name] = value if name not in caps else str(min(Decimal(value), Decimal(caps[name])))
    if caps:
        merged["caps"] = caps
    categories = list(dict.fromkeys([*(base.get("never_exempt_categories") or ()), *(rule.get("never_exempt_categories") or ())]))
    if categories:
        merged["never_exempt_categories"] = categories
    return merged


def check_narrowing(*, rule: Mapping, base: Mapping) -> list[str]:
    """Ways in which an institution rule would loosen its guidance standard (empty = it only narrows/adopts)."""
    errors: list[str] = []
    ref = rule.get("based_on") or {}
    if base.get("kind") != "guidance":
        errors.append("rule.based_on: must reference a guidance standard")
    if ref.get("id") != base.get("id") or ref.get("version") != base.get("version"):
        errors.append(f"rule.based_on: references {ref.get('id')} v{ref.get('version')}, "
                      f"not {base.get('id')} v{base.get('version')}")
    for name, value in (rule.get("caps") or {}).items():
        base_value = (base.get("caps") or {}).get(name)
        if base_value is not None and Decimal(value) > Decimal(base_value):
            errors.append(f"rule.caps.{name}: {value} is looser than the guidance standard's {base_value}")
    base_programmes = set((base.get("applies_to") or {}).get("programmes") or ())
    own_programmes = set((rule.get("applies_to") or {}).get("programmes") or ())
    if base_programmes and own_programmes - base_programmes:
        extra = ", ".join(sorted(own_programmes - base_programmes))
        errors.append(f"rule.applies_to.programmes: {extra} not covered by the guidance standard")
    if "exemption" in base and "exemption" in rule:
        for name in ("certificate", "level", "component"):
            if base["exemption"].get(name) != rule["exemption"].get(name):
                errors.append(f"rule.exemption.{name}: differs from the guidance standard")
    if base.get("effective_from") and rule.get("effective_from", "") < base["effective_from"]:
        errors.append("rule.effective_from: earlier than the guidance standard's")
    if base.get("effective_to") and (rule.get("effective_to") is None or rule["effective_to"] > base["effective_to"]):
        errors.append("rule.effective_to: later than the guidance standard's")
    names_base = {name for _, name in _leaf_names(base)}
    names_own = {name for _, name in _leaf_names(rule)}
    for name in rule.get("narrow") or {}:
        if name not in names_base:
            errors.append(f"rule.narrow.{name}: the guidance standard has no condition named {name!r}")
    if "condition" in rule and names_base & names_own:
        errors.append(f"rule.condition: names {sorted(names_base & names_own)} are already used by the guidance standard")
    return errors
