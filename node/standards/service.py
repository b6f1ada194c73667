"""The persistent side of the standards: a versioned catalogue, rules with a maker-checker lifecycle, the seed
loader, and the builders that turn stored rows into the pure engine's inputs (`node.rules`).

Catalogue entries are typed JSON (the standards bundle's item shapes); a write creates a new version and closes
the previous one's `effective_to` the day before, so older versions stay readable for old decisions. Rule bodies
are validated by `node.rules.validate_rule`; once approved a version is immutable, a change is a new version.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlmodel import Session, select

from node.audit.service import record
from node.deps import Principal
from node.errors import BadRequest, Conflict, Forbidden, NotFound
from node.models import utcnow
from node.models.standards import CatalogueEntry, StandardRule
from node.rules import (
    Catalogue,
    Certificate,
    Course,
    Institution,
    LevelMap,
    Programme,
    Rule,
    RuleIndex,
    RuleInvalid,
    StandardsInvalid,
    check_narrowing,
    parse_rule,
    parse_standards_bundle,
    seed_level_map,
    validate_rule,
)

__all__ = [
    "KINDS",
    "SYSTEM_LOADER",
    "actor_ref",
    "approve_rule",
    "build_catalogue",
    "build_level_map",
    "build_programme",
    "create_rule",
    "end_entry",
    "entries_in_force",
    "entry_in_force",
    "entry_versions",
    "load_bundle",
    "put_entry",
    "reject_rule",
    "retire_rule",
    "rule_index",
    "rule_row",
    "rule_state",
    "rules_for_engine",
    "update_draft",
]

SYSTEM_LOADER = Principal("system", 0, "system:standards-loader", ("system",))


def actor_ref(actor: Principal) -> str:
    """Who made or checked something, as stored on the row (maker-checker compares these)."""
    return "system:standards-loader" if actor.kind == "system" else f"{actor.kind}:{actor.id}"


# -- catalogue item shapes ------------------------------------------------------------------------


_SAFE_INTEGER = 2**53 - 1  # I-JSON (RFC 7493): what canonical JSON (RFC 8785) and every verifier carry exactly


def _safe_numbers(value: Any, where: str = "") -> None:
    """Integers beyond ±(2**53 - 1) and non-finite numbers anywhere in an entry (its extra fields too) are
    refused: the entry is signed and exchanged as canonical JSON, which cannot carry them."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and abs(value) > _SAFE_INTEGER:
        raise ValueError(f"{where or 'a number'}: integers must lie within ±{_SAFE_INTEGER}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'a number'}: must be a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _safe_numbers(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _safe_numbers(item, f"{where}[{i}]")


class _Item(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _numbers_fit_canonical_json(cls, data: Any) -> Any:
        _safe_numbers(data)
        return data


def _decimal_text(value: Any) -> str:
    try:
        number = Decimal(str(value))
    except Exception as exc:
        raise ValueError("must be a decimal string such as \"2.5\"") from exc
    if not number.is_finite() or number < 0 or number >= 100000:
        raise ValueError("must be a non-negative decimal below 100000")
    if number != number.quantize(Decimal("0.001")):
        raise ValueError("at most three decimal places (credits are stored exactly in thousandths)")
    return str(value)


class InstitutionItem(_Item):
    code: str = Field(min_length=1, max_length=64)
    name_zh: str = Field(min_length=1, max_length=200)
    kind: str | None = None


class CourseItem(_Item):
    code: str = Field(min_length=1, max_length=64)
    name_zh: str = Field(min_length=1, max_length=200)
    credits: str
    hours: int | None = Field(default=None, ge=0, lt=100000)
    category: str | None = None
    level: str | None = None
    never_exempt: bool = False

    _credits = field_validator("credits", mode="before")(_decimal_text)


class ProgrammeItem(_Item):
    code: str = Field(min_length=1, max_length=64)
    name_zh: str = Field(min_length=1, max_length=200)
    institution_code: str = Field(min_length=1, max_length=64)
    level: str = Field(min_length=1, max_length=20)
    graduation_credits: str
    courses: list[CourseItem] = Field(default_factory=list)

    _graduation = field_validator("graduation_credits", mode="before")(_decimal_text)


VQ_LEVELS = ("五级", "四级", "三级", "二级", "一级")


class CertificateItem(_Item):
    code: str = Field(min_length=1, max_length=64)
    name_zh: str = Field(min_length=1, max_length=200)
    type: str = "vocational_qualification"
    levels: list[Literal["五级", "四级", "三级", "二级", "一级"]] = Field(default_factory=list)
    issuer_code: str | None = None
    issuer_name_zh: str | None = None
    validity_years: int | None = Field(default=None, ge=1, le=100)


class ReferenceLevelItem(_Item):
    code: str = Field(min_length=1, max_length=64)
    rank: int = Field(ge=-10000, le=10000)
    name_zh: str = Field(min_length=1, max_length=200)


class LevelMapLevel(_Item):
    native: str = Field(min_length=1, max_length=64)
    name_zh: str | None = None
    reference: str = Field(min_length=1, max_length=64)


class LevelMapItem(_Item):
    region: str = Field(min_length=1, max_length=64)
    levels: list[LevelMapLevel] = Field(min_length=1)


class CodeListEntryItem(_Item):
    code: str = Field(min_length=1, max_length=20)
    label: str = Field(min_length=1, max_length=100)


class CodeListItem(_Item):
    name: str = Field(min_length=1, max_length=64)
    entries: list[CodeListEntryItem] = Field(min_length=1)


KINDS: dict[str, tuple[type[_Item], str]] = {
    # kind: (shape, the field holding the entry's code)
    "institution": (InstitutionItem, "code"),
    "programme": (ProgrammeItem, "code"),
    "certificate": (CertificateItem, "code"),
    "reference_level": (ReferenceLevelItem, "code"),
    "level_map": (LevelMapItem, "region"),
    "code_list": (CodeListItem, "name"),
}


def validate_item(kind: str, data: Any) -> dict:
    if kind not in KINDS:
        raise NotFound(f"no catalogue kind {kind!r}")
    shape, _ = KINDS[kind]
    try:
        item = shape.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(f"invalid {kind} entry", code="catalogue_invalid",
                         detail={"errors": [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]}
                         ) from exc
    if isinstance(item, ProgrammeItem):
        codes = [c.code for c in item.courses]
        if len(codes) != len(set(codes)):
            raise BadRequest("a course code appears twice in the programme", code="catalogue_invalid")
    return item.model_dump(mode="json", exclude_none=False)


def _code_of(kind: str, data: Mapping) -> str:
    return str(data[KINDS[kind][1]])


# -- catalogue rows ---------------------------------------------------------------------------------


def _latest(session: Session, kind: str, code: str) -> CatalogueEntry | None:
    return session.exec(select(CatalogueEntry).where(CatalogueEntry.kind == kind, CatalogueEntry.code == code)
                        .order_by(CatalogueEntry.version.desc())).first()  # type: ignore[attr-defined]


def put_entry(session: Session, *, kind: str, data: Any, effective_from: dt.date, actor: Principal,
              source: str = "api", code: str | None = None) -> tuple[CatalogueEntry, bool]:
    """Store a new version of a catalogue entry (audited); returns (entry, changed). Storing the same data with
    the same start date as the newest version changes nothing (the loader relies on it)."""
    clean = validate_item(kind, data)
    item_code = _code_of(kind, clean)
    if code is not None and code != item_code:
        raise BadRequest(f"the path names {code!r}, the entry {item_code!r}", code="catalogue_invalid")
    latest = _latest(session, kind, item_code)
    if latest is not None and latest.data == clean and latest.effective_from == effective_from:
        return latest, False
    if latest is not None:
        if effective_from <= latest.effective_from:
            raise Conflict(f"a new version of {kind} {item_code} must start after {latest.effective_from}",
                           code="catalogue_version_order",
                           detail={"latest_version": latest.version, "effective_from": str(latest.effective_from)})
        day_before = effective_from - dt.timedelta(days=1)
        if latest.effective_to is None or latest.effective_to > day_before:
            latest.effective_to = day_before
            session.add(latest)
    entry = CatalogueEntry(kind=kind, code=item_code, version=(latest.version + 1) if latest else 1,
                           effective_from=effective_from, data=clean, source=source, created_by=actor_ref(actor))
    session.add(entry)
    session.flush()
    record(session, actor=actor, action="standards.catalogue.put", target_type=f"catalogue.{kind}",
           target_id=f"{item_code}@{entry.version}",
           detail={"kind": kind, "code": item_code, "version": entry.version, "source": source,
                   "effective_from": effective_from.isoformat()})
    return entry, True


def end_entry(session: Session, *, kind: str, code: str, effective_to: dt.date, actor: Principal) -> CatalogueEntry:
    """Withdraw an entry from a day on: its newest version ends then (no row is ever deleted)."""
    if kind not in KINDS:
        raise NotFound(f"no catalogue kind {kind!r}")
    latest = _latest(session, kind, code)
    if latest is None:
        raise NotFound(f"no {kind} {code!r}")
    if effective_to < latest.effective_from:
        raise Conflict(f"{kind} {code} version {latest.version} starts on {latest.effective_from}",
                       code="catalogue_version_order")
    latest.effective_to = effective_to
    session.add(latest)
    record(session, actor=actor, action="standards.catalogue.end", target_type=f"catalogue.{kind}",
           target_id=f"{code}@{latest.version}", detail={"effective_to": effective_to.isoformat()})
    return latest


def _in_force(on: dt.date | None) -> list[Any]:
    if on is None:
        return []
    return [CatalogueEntry.effective_from <= on,
            sa.or_(CatalogueEntry.effective_to.is_(None), CatalogueEntry.effective_to >= on)]  # type: ignore[union-attr]


def entry_in_force(session: Session, kind: str, code: str, on: dt.date | None = None) -> CatalogueEntry:
    """The version in force on `on` (the newest version if `on` is None)."""
    row = session.exec(select(CatalogueEntry).where(CatalogueEntry.kind == kind, CatalogueEntry.code == code,
                                                    *_in_force(on))
                       .order_by(CatalogueEntry.version.desc())).first()  # type: ignore[attr-defined]
    if row is None:
        raise NotFound(f"no {kind} {code!r}" + (f" in force on {on}" if on else ""))
    return row


def entries_in_force(session: Session, kind: str, on: dt.date | None = None) -> list[CatalogueEntry]:
    rows = session.exec(select(CatalogueEntry).where(CatalogueEntry.kind == kind, *_in_force(on))
                        .order_by(CatalogueEntry.code, CatalogueEntry.version.desc())).all()  # type: ignore[attr-defined]
    newest: dict[str, CatalogueEntry] = {}
    for row in rows:
        newest.setdefault(row.code, row)
    return list(newest.values())


def entry_versions(session: Session, kind: str, code: str) -> list[CatalogueEntry]:
    rows = list(session.exec(select(CatalogueEntry).where(CatalogueEntry.kind == kind, CatalogueEntry.code == code)
                             .order_by(CatalogueEntry.version)).all())
    if not rows:
        raise NotFound(f"no {kind} {code!r}")
    return rows


# -- engine inputs from the catalogue -------------------------------------------------------------


def _programme_of(data: Mapping) -> Programme:
    courses = {
        c["code"]: Course(code=c["code"], name=c["name_zh"], credits=Decimal(c["credits"]), hours=c.get("hours"),
                          category=c.get("category"), never_exempt=bool(c.get("never_exempt")))
        for c in data.get("courses") or []
    }
    return Programme(code=data["code"], name=data["name_zh"], institution_code=data["institution_code"],
                     level=data["level"], graduation_credits=Decimal(data["graduation_credits"]), courses=courses)


def build_programme(session: Session, code: str, on: dt.date | None = None) -> Programme:
    return _programme_of(entry_in_force(session, "programme", code, on).data)


def build_catalogue(session: Session, on: dt.date | None = None) -> Catalogue:
    institutions = {
        e.code: Institution(code=e.code, name=e.data["name_zh"], kind=e.data.get("kind"))
        for e in entries_in_force(session, "institution", on)
    }
    certificates = {
        e.code: Certificate(code=e.code, name=e.data["name_zh"], type=e.data.get("type") or "vocational_qualification",
                            levels=tuple(e.data.get("levels") or ()), issuer_code=e.data.get("issuer_code"),
                            issuer_name=e.data.get("issuer_name_zh"), validity_years=e.data.get("validity_years"),
                            illustrative=bool(e.data.get("illustrative")))
        for e in entries_in_force(session, "certificate", on)
    }
    programmes = {e.code: _programme_of(e.data) for e in entries_in_force(session, "programme", on)}
    return Catalogue(institutions=institutions, certificates=certificates, programmes=programmes)


def build_level_map(session: Session, region: str, on: dt.date | None = None) -> LevelMap:
    """The region's native → reference level map from the catalogue; the seed map until one is loaded."""
    try:
        entry = entry_in_force(session, "level_map", region, on)
    except NotFound:
        return seed_level_map()
    levels = sorted(entries_in_force(session, "reference_level", on), key=lambda e: e.data["rank"])
    order = tuple(e.code for e in levels) or seed_level_map().reference_order
    mapping: dict[str, str] = {}
    for level in entry.data["levels"]:
        mapping[level["native"]] = level["reference"]
        if level.get("name_zh"):
            mapping.setdefault(level["name_zh"], level["reference"])
    return LevelMap(region=region, native_to_reference=mapping, reference_order=order)


# -- rules ------------------------------------------------------------------------------------------

RuleState = Literal["draft", "approved", "effective", "expired", "retired", "rejected"]


def rule_state(row: StandardRule, today: dt.date) -> str:
    """The stored status plus the dates: an approved rule is `effective` between its dates, `expired` after."""
    if row.status != "approved":
        return row.status
    if row.effective_from <= today and (row.effective_to is None or today <= row.effective_to):
        return "effective"
    return "expired" if row.effective_to is not None and today > row.effective_to else "approved"


def rule_row(session: Session, rule_id: str, version: int) -> StandardRule:
    row = session.exec(select(StandardRule).where(StandardRule.rule_id == rule_id,
                                                  StandardRule.version == version)).first()
    if row is None:
        raise NotFound(f"no rule {rule_id} version {version}")
    return row


def _finer_than_thousandths(node: Any, path: str = "rule") -> list[str]:
    """Credit figures the ledger could not store exactly (credits are kept in thousandths)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("fixed", "credits") and isinstance(value, str):
                try:
                    number = Decimal(value)
                except ArithmeticError:
                    continue
                if number.is_finite() and number != number.quantize(Decimal("0.001")):
                    found.append(f"{path}.{key}: at most three decimal places")
            else:
                found += _finer_than_thousandths(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _finer_than_thousandths(value, f"{path}[{i}]")
    return found


def _parsed(body: Any) -> Rule:
    problems = validate_rule(body) or _finer_than_thousandths(body)
    if problems:
        raise BadRequest("the rule does not validate", code="rule_invalid", detail={"errors": problems})
    try:
        return parse_rule(body)
    except RuleInvalid as exc:  # pragma: no cover - validate_rule already ran
        raise BadRequest("the rule does not validate", code="rule_invalid", detail={"errors": exc.errors}) from exc


def _illegal(row: StandardRule, action: str) -> Conflict:
    return Conflict(f"rule {row.rule_id} version {row.version} is {row.status}: cannot {action}",
                    code="rule_illegal_transition", detail={"state": row.status, "action": action})


def create_rule(session: Session, *, body: Any, actor: Principal) -> StandardRule:
    """A new rule version as a draft. Versions of one id are numbered 1, 2, 3 … without gaps."""
    rule = _parsed(body)
    newest = session.exec(select(sa.func.max(StandardRule.version)).where(StandardRule.rule_id == rule.id)).one()
    if newest is not None and rule.version <= newest:
        raise Conflict(f"rule {rule.id} version {rule.version} exists; a change is version {newest + 1}",
                       code="rule_version_exists", detail={"next_version": newest + 1})
    if rule.version != (newest or 0) + 1:
        raise Conflict(f"the next version of {rule.id} is {(newest or 0) + 1}", code="rule_version_gap",
                       detail={"next_version": (newest or 0) + 1})
    row = StandardRule(rule_id=rule.id, version=rule.version, kind=rule.kind, title=rule.title[:300],
                       status="draft", body=dict(body), effective_from=rule.effective_from,
                       effective_to=rule.effective_to, created_by=actor_ref(actor))
    session.add(row)
    session.flush()
    record(session, actor=actor, action="standards.rule.create", target_type="standard_rule",
           target_id=f"{rule.id}@{rule.version}", detail={"rule_id": rule.id, "version": rule.version})
    return row


def update_draft(session: Session, *, row: StandardRule, body: Any, actor: Principal) -> StandardRule:
    """Replace a draft's body; the editor becomes its maker (the approver must be someone else)."""
    if row.status != "draft":
        raise Conflict(f"rule {row.rule_id} version {row.version} is {row.status}: approved versions never change",
                       code="rule_immutable", detail={"state": row.status})
    rule = _parsed(body)
    if (rule.id, rule.version) != (row.rule_id, row.version):
        raise BadRequest("the body's id and version must match the draft's", code="rule_invalid")
    row.body, row.kind, row.title = dict(body), rule.kind, rule.title[:300]
    row.effective_from, row.effective_to, row.created_by = rule.effective_from, rule.effective_to, actor_ref(actor)
    session.add(row)
    record(session, actor=actor, action="standards.rule.update", target_type="standard_rule",
           target_id=f"{row.rule_id}@{row.version}")
    return row


def _check_base(session: Session, row: StandardRule) -> None:
    rule = _parsed(row.body)
    if rule.kind != "institution" or rule.based_on is None:
        return
    base = session.exec(select(StandardRule).where(StandardRule.rule_id == rule.based_on.id,
                                                   StandardRule.version == rule.based_on.version,
                                                   StandardRule.status.in_(("approved", "retired")))).first()  # type: ignore[attr-defined]
    if base is None:
        raise Conflict(f"the guidance standard {rule.based_on.id} version {rule.based_on.version} is not approved",
                       code="rule_base_missing")
    loosening = check_narrowing(rule=row.body, base=base.body)
    if loosening:
        raise Conflict("the institution rule loosens its guidance standard", code="rule_loosens_base",
                       detail={"errors": loosening})


def approve_rule(session: Session, *, row: StandardRule, actor: Principal) -> StandardRule:
    """Maker-checker: a draft is approved by a standards admin other than its maker."""
    if row.status != "draft":
        raise _illegal(row, "approve")
    if row.created_by == actor_ref(actor):
        raise Forbidden("a rule is approved by a second standards admin, not by its maker",
                        code="rule_self_approval")
    _check_base(session, row)
    row.status, row.approved_by, row.approved_at = "approved", actor_ref(actor), utcnow()
    session.add(row)
    record(session, actor=actor, action="standards.rule.approve", target_type="standard_rule",
           target_id=f"{row.rule_id}@{row.version}", detail={"maker": row.created_by})
    return row


def reject_rule(session: Session, *, row: StandardRule, actor: Principal, reason: str | None) -> StandardRule:
    if row.status != "draft":
        raise _illegal(row, "reject")
    if not reason:
        raise BadRequest("a rejection needs a reason", code="reason_required")
    if row.created_by == actor_ref(actor):
        raise Forbidden("a rule is decided by a second standards admin, not by its maker",
                        code="rule_self_approval")
    row.status, row.decision_reason = "rejected", reason
    session.add(row)
    record(session, actor=actor, action="standards.rule.reject", target_type="standard_rule",
           target_id=f"{row.rule_id}@{row.version}", detail={"reason": reason[:200]})
    return row


def retire_rule(session: Session, *, row: StandardRule, actor: Principal, reason: str | None) -> StandardRule:
    """An approved version leaves service; it stays readable for the explanations of old decisions."""
    if row.status != "approved":
        raise _illegal(row, "retire")
    row.status, row.retired_by, row.retired_at, row.decision_reason = "retired", actor_ref(actor), utcnow(), reason
    session.add(row)
    record(session, actor=actor, action="standards.rule.retire", target_type="standard_rule",
           target_id=f"{row.rule_id}@{row.version}", detail={"reason": (reason or "")[:200]})
    return row


_INDEX_CACHE: dict[tuple, RuleIndex] = {}
_INDEX_CACHE_SIZE = 8


def rule_index(session: Session, level_map: LevelMap) -> RuleIndex:
    """The `RuleIndex` over the approved rules, built once per rule-set state and level map. Approved versions
    never change and every lifecycle step adds an approved row or moves one to retired, so the counts (with the
    sum of row ids and the latest times) change whenever the set does."""
    state = session.execute(sa.select(
        sa.func.count(), sa.func.max(StandardRule.approved_at), sa.func.sum(StandardRule.id),
    ).where(StandardRule.status == "approved")).one()
    retired = session.execute(sa.select(sa.func.count(), sa.func.max(StandardRule.retired_at))
                              .where(StandardRule.status == "retired")).one()
    key = (str(session.get_bind().url), tuple(state), tuple(retired), level_map.region,
           tuple(sorted(level_map.native_to_reference.items())), level_map.reference_order)
    index = _INDEX_CACHE.get(key)
    if index is None:
        index = RuleIndex.build(rules=rules_for_engine(session), reference_levels=level_map)
        if len(_INDEX_CACHE) >= _INDEX_CACHE_SIZE:
            _INDEX_CACHE.pop(next(iter(_INDEX_CACHE)))
        _INDEX_CACHE[key] = index
    return index


def rules_for_engine(session: Session) -> list[Rule]:
    """Every approved (not retired) version; the engine checks the dates and keeps the newest per id."""
    rows = session.exec(select(StandardRule).where(StandardRule.status == "approved")
                        .order_by(StandardRule.rule_id, StandardRule.version)).all()
    return [parse_rule(row.body) for row in rows]


# -- the seed loader --------------------------------------------------------------------------------


def load_bundle(session: Session, doc: Any, *, actor: Principal = SYSTEM_LOADER) -> dict[str, int]:
    """Load a standards bundle (`config/standards/*.json`) into the catalogue and the rules, idempotently.

    The bundle is validated whole first (`parse_standards_bundle`, with the rules already stored as the known
    bases). Catalogue entries become versions starting on the bundle's `published` date; rules enter approved,
    made and checked by the loader (a system action in the audit log). A rule version already stored with a
    different body is refused: approved versions never change."""
    known = {(r.id, r.version): r for r in _all_rules(session)}
    try:
        bundle = parse_standards_bundle(doc, known_rules=known or None)
    except StandardsInvalid as exc:
        raise BadRequest("the standards bundle does not validate", code="standards_invalid",
                         detail={"errors": exc.errors[:50]}) from exc
    published = dt.date.fromisoformat(doc["published"])
    source = f"{bundle.bundle_id}@{bundle.version}"
    counts = {"catalogue_created": 0, "catalogue_unchanged": 0, "rules_created": 0, "rules_unchanged": 0}
    sections: Sequence[tuple[str, str]] = (("institution", "institutions"), ("certificate", "certificates"),
                                           ("programme", "programmes"), ("reference_level", "reference_levels"),
                                           ("level_map", "level_maps"), ("code_list", "code_lists"))
    for kind, key in sections:
        for item in doc.get(key) or []:
            _, changed = put_entry(session, kind=kind, data=item, effective_from=published, actor=actor,
                                   source=source)
            counts["catalogue_created" if changed else "catalogue_unchanged"] += 1
    for body in doc.get("rules") or []:
        existing = session.exec(select(StandardRule).where(StandardRule.rule_id == body["id"],
                                                           StandardRule.version == body["version"])).first()
        if existing is not None:
            if existing.body != body:
                raise Conflict(f"rule {body['id']} version {body['version']} is stored with another body",
                               code="rule_immutable", detail={"state": existing.status})
            counts["rules_unchanged"] += 1
            continue
        rule = parse_rule(body)
        now = utcnow()
        session.add(StandardRule(rule_id=rule.id, version=rule.version, kind=rule.kind, title=rule.title[:300],
                                 status="approved", body=dict(body), effective_from=rule.effective_from,
                                 effective_to=rule.effective_to, source=source, created_by=actor_ref(actor),
                                 approved_by=actor_ref(actor), approved_at=now))
        record(session, actor=actor, action="standards.rule.load", target_type="standard_rule",
               target_id=f"{rule.id}@{rule.version}", detail={"source": source, "status": "approved"})
        counts["rules_created"] += 1
    session.flush()
    record(session, actor=actor, action="standards.load", target_type="standards_bundle", target_id=source,
           detail=counts)
    return counts


def _all_rules(session: Session) -> list[Rule]:
    rows = session.exec(select(StandardRule).where(StandardRule.status.in_(("approved", "retired")))).all()  # type: ignore[attr-defined]
    return [parse_rule(r.body) for r in rows]
