"""The agreement form of the federation pages: a draft's terms as form fields and back (pure functions).

The form holds what two regions negotiate — id and title, the partner, the achievement types in scope, each
party's hours per credit, the recognition mode, the dates, and the mappings (one row each). It checks what a
person can get wrong field by field (so the message sits next to the field); the document's own rules are
checked by the API's service when the draft is proposed or countered (federation.agreements.document)."""

from __future__ import annotations

import copy
import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from node.deposits.schemas import ACHIEVEMENT_TYPES

__all__ = ["MAPPING_FIELDS", "MAX_MAPPINGS", "AgreementForm", "changes_from", "form_from_document", "parse_form"]

MAX_MAPPINGS = 40
MAPPING_FIELDS = ("from", "type", "code", "level", "ref", "to_code", "to_title", "to_level", "credits")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{2,199}$")
_SHORT = 100  # a code, level or title in a mapping
_NEGOTIABLE = ("title", "parties", "scope", "credit_equivalence", "mappings", "recognition", "valid_from",
               "valid_to")


class AgreementForm:
    """The submitted (or prefilled) values, and the errors keyed by field name."""

    def __init__(self, values: dict[str, Any], mappings: list[dict[str, str]], errors: dict[str, str]) -> None:
        self.values = values
        self.mappings = mappings
        self.errors = errors


def _decimal(text: str) -> Decimal | None:
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() and d >= 0 and len(text) <= 12 else None


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _mapping_rows(form: Any) -> list[dict[str, str]]:
    rows = []
    for i in range(MAX_MAPPINGS):
        row = {f: str(form.get(f"m{i}_{f}") or "").strip() for f in MAPPING_FIELDS}
        if f"m{i}_type" not in form:
            break
        rows.append(row)
    return rows


def parse_form(form: Any, *, me: str, partners: list[str], fixed: dict | None = None) -> tuple[AgreementForm, dict]:
    """(the form, the draft's terms). `fixed` is the head of a counter-proposal: its id and parties stay as
    they are. Field errors are in `form.errors` (the draft is then not to be used)."""
    errors: dict[str, str] = {}
    get = lambda name: str(form.get(name) or "").strip()  # noqa: E731
    values: dict[str, Any] = {name: get(name) for name in (
        "agreement", "title", "partner", "hpc_own", "hpc_partner", "recognition", "valid_from", "valid_to")}
    values["types"] = [str(v) for v in form.getlist("types")] if hasattr(form, "getlist") else []
    mappings = _mapping_rows(form)
    if fixed is not None:
        values["agreement"] = fixed["agreement"]
        values["partner"] = next((p for p in fixed["parties"] if p != me), "")
    elif not _ID.match(values["agreement"]):
        errors["agreement"] = "fed.err.agreement_id"
    if fixed is None and values["partner"] not in partners:
        errors["partner"] = "fed.err.partner"
    if len(values["title"]) > 200:
        errors["title"] = "fed.err.title_long"
    types = [t for t in values["types"] if t in ACHIEVEMENT_TYPES]
    if not types or len(types) != len(values["types"]):
        errors["types"] = "fed.err.types"
    for name in ("hpc_own", "hpc_partner"):
        d = _decimal(values[name])
        if d is None or d == 0:
            errors[name] = "fed.err.hours_per_credit"
    if values["recognition"] not in ("automatic", "reviewed"):
        errors["recognition"] = "fed.err.recognition"
    start = _date(values["valid_from"])
    if start is None:
        errors["valid_from"] = "fed.err.date"
    end = None
    if values["valid_to"]:
        end = _date(values["valid_to"])
        if end is None:
            errors["valid_to"] = "fed.err.date"
        elif start is not None and end < start:
            errors["valid_to"] = "fed.err.date_order"
    parties = list(fixed["parties"]) if fixed is not None else [me, values["partner"]]
    built: list[dict] = []
    for i, row in enumerate(mappings):
        if not any(row[f] for f in ("code", "ref", "to_code", "to_title", "credits", "level")):
            continue  # an empty row
        mapping, field = _mapping(row, parties)
        if field:
            errors.setdefault(f"m{i}_{field[0]}", field[1])
        else:
            built.append(mapping)
    terms: dict[str, Any] = {}
    if not errors:
        own, partner = Decimal(values["hpc_own"]), Decimal(values["hpc_partner"])
        other = values["partner"]
        scope = copy.deepcopy(fixed.get("scope")) if fixed is not None and isinstance(fixed.get("scope"), dict) else {}
        scope["achievement_types"] = types
        equivalence = copy.deepcopy(fixed.get("credit_equivalence") or {}) if fixed is not None else {}
        equivalence[me] = {**(equivalence.get(me) or {}), "hours_per_credit": f"{own.normalize():f}"}
        equivalence[other] = {**(equivalence.get(other) or {}), "hours_per_credit": f"{partner.normalize():f}"}
        terms = {"agreement": values["agreement"], "parties": parties, "scope": scope,
                 "credit_equivalence": equivalence, "mappings": built, "recognition": values["recognition"],
                 "valid_from": values["valid_from"], "valid_to": values["valid_to"] or None}
        if values["title"] or (fixed is not None and "title" in fixed):
            terms["title"] = values["title"]
    return AgreementForm(values, mappings, errors), terms


def _mapping(row: dict[str, str], parties: list[str]) -> tuple[dict, tuple[str, str] | None]:
    if row["from"] not in parties:
        return {}, ("from", "fed.err.mapping_from")
    if row["type"] not in ACHIEVEMENT_TYPES:
        return {}, ("type", "fed.err.types")
    for f in MAPPING_FIELDS:
        if len(row[f]) > _SHORT:
            return {}, (f, "fed.err.too_long")
    for f in ("level", "to_level"):
        if len(row[f]) > 20:
            return {}, (f, "fed.err.level")
    source: dict[str, Any] = {"node": row["from"], "achievement_type": row["type"]}
    if row["ref"] and not row["code"]:  # by the shared reference level
        source["reference_level"] = row["ref"]
        target: dict[str, Any] = {"reference_level": row["ref"]}
    elif not row["code"]:
        return {}, ("code", "fed.err.mapping_code")
    elif not row["to_code"]:
        return {}, ("to_code", "fed.err.mapping_to_code")
    else:
        source["code"] = row["code"]
        target = {"code": row["to_code"], "title": row["to_title"] or row["to_code"]}
        if row["to_level"]:
            target["level"] = row["to_level"]
    if row["level"]:
        source["level"] = row["level"]
    if row["credits"]:
        d = _decimal(row["credits"])
        if d is None:
            return {}, ("credits", "fed.err.credits")
        target["credits"] = f"{d.normalize():f}"
    else:
        target["credits"] = None
    return {"from": source, "to": target}, None


def form_from_document(document: dict, *, me: str) -> AgreementForm:
    """The form prefilled with a version's terms (for a counter-proposal), plus two empty mapping rows."""
    parties = document.get("parties") or []
    partner = next((p for p in parties if p != me), "")
    equivalence = document.get("credit_equivalence") or {}
    scope = document.get("scope") or {}
    values = {
        "agreement": document.get("agreement", ""), "title": document.get("title", ""), "partner": partner,
        "hpc_own": (equivalence.get(me) or {}).get("hours_per_credit", ""),
        "hpc_partner": (equivalence.get(partner) or {}).get("hours_per_credit", ""),
        "recognition": document.get("recognition", ""), "valid_from": document.get("valid_from", ""),
        "valid_to": document.get("valid_to") or "", "types": list(scope.get("achievement_types") or []),
    }
    rows = []
    for m in document.get("mappings") or []:
        src, dst = m.get("from") or {}, m.get("to") or {}
        credits = dst.get("credits")
        rows.append({"from": src.get("node", ""), "type": src.get("achievement_type", ""),
                     "code": src.get("code", ""), "level": src.get("level", ""),
                     "ref": src.get("reference_level", ""), "to_code": dst.get("code", ""),
                     "to_title": dst.get("title", ""), "to_level": dst.get("level", ""),
                     "credits": "" if credits is None else str(credits)})
    return AgreementForm(values, with_blank_rows(rows, me), {})


def with_blank_rows(rows: list[dict[str, str]], me: str, blanks: int = 2) -> list[dict[str, str]]:
    """The rows and up to `blanks` empty ones (never more than MAX_MAPPINGS in all)."""
    empty = {f: "" for f in MAPPING_FIELDS}
    out = list(rows)
    while len(out) < MAX_MAPPINGS and len(out) < len(rows) + blanks:
        out.append({**empty, "from": "", "type": "degree_course"})
    return out


def changes_from(head: dict, terms: dict) -> dict:
    """The top-level terms that differ from the head's (what a counter-proposal sends as `changes`)."""
    return {k: terms[k] for k in _NEGOTIABLE if k in terms and terms[k] != head.get(k)}
