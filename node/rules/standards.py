"""Standards bundles: the JSON files in config/standards/ (framework levels, catalogue, conversion rules),
validated and turned into typed objects. Pure: the caller reads the file; `creditnode standards load` stores it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from node.rules.catalogue import Catalogue, Certificate, Institution
from node.rules.matching import leaves_of
from node.rules.model import Course, Leaf, LevelMap, Programme, Rule
from node.rules.parse import RuleInvalid, parse_rule, validate_rule

__all__ = [
    "BUNDLE_FORMAT",
    "ReferenceLevel",
    "StandardsBundle",
    "StandardsInvalid",
    "parse_standards_bundle",
]

BUNDLE_FORMAT = "creditnode-standards/1"


class StandardsInvalid(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass(frozen=True, kw_only=True)
class ReferenceLevel:
    code: str
    rank: int  # higher = higher level
    name: str
    illustrative: bool = False


@dataclass(frozen=True, kw_only=True)
class StandardsBundle:
    bundle_id: str
    version: int
    region: str
    title: str
    reference_levels: tuple[ReferenceLevel, ...] = ()
    level_maps: Mapping[str, LevelMap] = field(default_factory=dict)
    institutions: Mapping[str, Institution] = field(default_factory=dict)
    certificates: Mapping[str, Certificate] = field(default_factory=dict)
    programmes: Mapping[str, Programme] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    illustrative: tuple[str, ...] = ()  # where the data is a plausible pick, not a figure from the seeds

    @property
    def catalogue(self) -> Catalogue:
        return Catalogue(institutions=self.institutions, certificates=self.certificates, programmes=self.programmes)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    text = resources.files("node.rules").joinpath("standards.schema.json").read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text))


def _where(path: Any) -> str:
    out = "bundle"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _unique(items: list[Mapping], what: str, errors: list[str]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item["code"] in seen:
            errors.append(f"bundle.{what}[{i}].code: {item['code']!r} appears twice")
        seen.add(item["code"])


def parse_standards_bundle(doc: Any, *, known_rules: Mapping[tuple[str, int], Rule] | None = None) -> StandardsBundle:
    """Validate a bundle document and return typed objects; raises `StandardsInvalid` listing every problem.

    `known_rules` (id, version) → Rule lets an institution rule reference a guidance standard of another bundle.
    """
    if not isinstance(doc, Mapping):
        raise StandardsInvalid(["bundle: must be a JSON object"])
    errors = sorted({f"{_where(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(doc)})
    if errors:
        raise StandardsInvalid(errors)

    for what in ("institutions", "certificates", "programmes"):
        _unique(list(doc.get(what) or []), what, errors)
    institutions = {
        i["code"]: Institution(code=i["code"], name=i["name_zh"], kind=i.get("kind")) for i in doc.get("institutions") or []
    }
    certificates = {
        c["code"]: Certificate(
            code=c["code"], name=c["name_zh"], type=c["type"], levels=tuple(c.get("levels") or ()),
            issuer_code=c.get("issuer_code"), issuer_name=c.get("issuer_name_zh"),
            validity_years=c.get("validity_years"), illustrative=bool(c.get("illustrative")),
        )
        for c in doc.get("certificates") or []
    }
    illustrative: list[str] = []
    programmes: dict[str, Programme] = {}
    for p_index, p in enumerate(doc.get("programmes") or []):
        if institutions and p["institution_code"] not in institutions:
            errors.append(f"bundle.programmes[{p_index}].institution_code: {p['institution_code']!r} is not an institution of the bundle")
        if p.get("illustrative"):
            illustrative.append(f"programmes.{p['code']}")
        for name in p.get("illustrative_fields") or ():
            illustrative.append(f"programmes.{p['code']}.{name}")
        courses: dict[str, Course] = {}
        for c_index, c in enumerate(p["courses"]):
            if c["code"] in courses:
                errors.append(f"bundle.programmes[{p_index}].courses[{c_index}].code: {c['code']!r} appears twice")
            courses[c["code"]] = Course(
                code=c["code"], name=c["name_zh"], credits=Decimal(c["credits"]), hours=c.get("hours"),
                category=c.get("category"), never_exempt=bool(c.get("never_exempt")),
            )
            if c.get("illustrative"):
                illustrative.append(f"programmes.{p['code']}.courses.{c['code']}")
        programmes[p["code"]] = Programme(
            code=p["code"], name=p["name_zh"], institution_code=p["institution_code"], level=p["level"],
            graduation_credits=Decimal(p["graduation_credits"]), courses=courses,
        )
    for c in doc.get("certificates") or []:
        if c.get("illustrative"):
            illustrative.append(f"certificates.{c['code']}")

    reference_levels = tuple(
        sorted((ReferenceLevel(code=r["code"], rank=r["rank"], name=r["name_zh"], illustrative=bool(r.get("illustrative")))
                for r in doc.get("reference_levels") or []), key=lambda r: r.rank)
    )
    order = tuple(r.code for r in reference_levels) or ("R5", "R4", "R3", "R2", "R1")
    level_maps: dict[str, LevelMap] = {}
    for m_index, m in enumerate(doc.get("level_maps") or []):
        mapping: dict[str, str] = {}
        for l_index, level in enumerate(m["levels"]):
            if level["reference"] not in order:
                errors.append(f"bundle.level_maps[{m_index}].levels[{l_index}].reference: {level['reference']!r} is not a reference level")
            if level["native"] in mapping and mapping[level["native"]] != level["reference"]:
                errors.append(f"bundle.level_maps[{m_index}].levels[{l_index}].native: {level['native']!r} mapped twice")
            mapping[level["native"]] = level["reference"]
            if level.get("name_zh"):
                mapping.setdefault(level["name_zh"], level["reference"])
            if level.get("illustrative"):
                illustrative.append(f"level_maps.{m['region']}.{level['native']}")
        level_maps[m["region"]] = LevelMap(region=m["region"], native_to_reference=mapping, reference_order=order)
    for r in reference_levels:
        if r.illustrative:
            illustrative.append(f"reference_levels.{r.code}")

    rules: list[Rule] = []
    by_ref: dict[tuple[str, int], Rule] = dict(known_rules or {})
    for r_index, body in enumerate(doc.get("rules") or []):
        label = f"bundle.rules[{r_index}] ({body.get('id')})"
        problems = validate_rule(body)
        if problems:
            errors.extend(f"{label}: {p}" for p in problems)
            continue
        try:
            rule = parse_rule(body)
        except RuleInvalid as exc:  # pragma: no cover - validate_rule already ran
            errors.extend(f"{label}: {p}" for p in exc.errors)
            continue
        if (rule.id, rule.version) in by_ref and not known_rules:
            errors.append(f"{label}: rule {rule.id} version {rule.version} appears twice")
        by_ref[(rule.id, rule.version)] = rule
        rules.append(rule)
        if rule.illustrative:
            illustrative.append(f"rules.{rule.id}")
        errors.extend(_cross_reference_errors(label, rule, programmes, certificates, institutions))
    for rule in rules:
        if rule.based_on is not None and (rule.based_on.id, rule.based_on.version) not in by_ref:
            errors.append(f"bundle.rules ({rule.id}): based_on {rule.based_on.id} version {rule.based_on.version} is not known")
    if errors:
        raise StandardsInvalid(errors)
    return StandardsBundle(
        bundle_id=doc["bundle_id"], version=doc["version"], region=doc["region"], title=doc["title"],
        reference_levels=reference_levels, level_maps=level_maps, institutions=institutions,
        certificates=certificates, programmes=programmes, rules=tuple(rules), illustrative=tuple(illustrative),
    )


def _cross_reference_errors(label: str, rule: Rule, programmes: Mapping[str, Programme],
                            certificates: Mapping[str, Certificate], institutions: Mapping[str, Institution]) -> list[str]:
    errors: list[str] = []
    if programmes:
        for code in rule.scope.programmes:
            if code not in programmes:
                errors.append(f"{label}: applies_to programme {code!r} is not in the bundle")
                continue
            for target in rule.targets:
                if target.course not in programmes[code].courses:
                    errors.append(f"{label}: course {target.course!r} is not a course of programme {code!r}")
    if institutions and rule.institution_code and rule.institution_code not in institutions:
        errors.append(f"{label}: institution {rule.institution_code!r} is not in the bundle")
    if certificates and rule.condition is not None:
        for leaf in leaves_of(rule.condition):
            if isinstance(leaf, Leaf) and "vocational_qualification" in leaf.matcher.types:
                for code in leaf.matcher.catalogue_codes:
                    if code not in certificates:
                        errors.append(f"{label}: certificate {code!r} ({leaf.path}) is not in the bundle")
    if certificates and rule.exemption is not None and rule.exemption.certificate not in certificates:
        errors.append(f"{label}: exemption certificate {rule.exemption.certificate!r} is not in the bundle")
    return errors
