"""A conversion rule as sentences a person reads, and the difference between two versions (the centre's pages).

`rule_lines(body, t, names)` turns a rule's JSON body (node/rules/rule.schema.json, already validated) into
`Line`s — one sentence each, with an indentation depth for nested conditions — in the language of the
translator `t`: every word comes from the catalogues (`centre.rule.*` keys), only codes and names are data.
`names` gives the catalogue's names of courses, certificates and programmes, so a sentence says
"数控铣工 (VQ.CNC_MILLING)" rather than a bare code.

`line_diff(old, new)` compares two sequences of texts (sentences, or the lines of the pretty-printed JSON) and
returns rows marked same / del / ins, a replaced line with the changed characters marked, for a
server-rendered diff (<del>/<ins>, no JavaScript). Pure functions: no database, no request.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DiffRow", "Line", "Names", "line_diff", "pretty_json", "rule_lines"]

Gettext = Callable[..., str]


@dataclass(frozen=True)
class Names:
    """Catalogue names by code (any may be empty: the code is shown alone)."""

    courses: Mapping[str, str] = field(default_factory=dict)
    certificates: Mapping[str, str] = field(default_factory=dict)
    programmes: Mapping[str, str] = field(default_factory=dict)
    institutions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Line:
    depth: int
    text: str


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _named(code: str, names: Mapping[str, str]) -> str:
    name = names.get(code)
    return f"{name} ({code})" if name and name != code else code


def _join(t: Gettext, items: Sequence[str]) -> str:
    return t("centre.rule.list_sep").join(items)


def _matcher_text(m: Mapping[str, Any], t: Gettext, names: Names) -> str:
    types = _listed(m.get("type"))
    codes = _listed(m.get("catalogue_code"))
    kinds = _join(t, [t(f"type.{ty}") for ty in types]) if types else t("centre.rule.any_outcome")
    if codes:
        both = {**names.courses, **names.certificates}
        subject = t("centre.rule.leaf_named", kinds=kinds, names=_join(t, [_named(c, both) for c in codes]))
    else:
        subject = t("centre.rule.leaf_any", kinds=kinds)
    parts = []
    if m.get("issuer_code") is not None:
        parts.append(t("centre.rule.issuer", codes=_join(t, [_named(c, names.institutions)
                                                            for c in _listed(m["issuer_code"])])))
    if m.get("level") is not None:
        parts.append(t("centre.rule.level", levels=_join(t, _listed(m["level"]))))
    if m.get("min_level"):
        parts.append(t("centre.rule.min_level", level=m["min_level"]))
    if m.get("reference_level") is not None:
        parts.append(t("centre.rule.reference_level", levels=_join(t, _listed(m["reference_level"]))))
    if m.get("min_reference_level"):
        parts.append(t("centre.rule.min_reference_level", level=m["min_reference_level"]))
    if m.get("min_score"):
        parts.append(t("centre.rule.min_score", score=m["min_score"]))
    if m.get("min_grade"):
        parts.append(t("centre.rule.min_grade", grade=m["min_grade"]))
    if m.get("within_years"):
        parts.append(t("centre.rule.within_years", years=m["within_years"]))
    if m.get("category") is not None:
        parts.append(t("centre.rule.category", categories=_join(t, _listed(m["category"]))))
    if not parts:
        return subject
    return t("centre.rule.leaf_with", subject=subject, conditions=_join(t, parts))


def _condition_lines(cond: Mapping[str, Any], t: Gettext, names: Names, depth: int) -> list[Line]:
    if "outcome" in cond:
        text = _matcher_text(cond["outcome"], t, names)
        if cond.get("as"):
            text = t("centre.rule.named_as", text=text, name=cond["as"])
        return [Line(depth, text)]
    if "all_of" in cond:
        head, children = t("centre.rule.all_of", n=len(cond["all_of"])), cond["all_of"]
    elif "any_of" in cond:
        head, children = t("centre.rule.any_of", n=len(cond["any_of"])), cond["any_of"]
    else:
        children = cond.get("of") or []
        head = t("centre.rule.at_least", k=cond.get("at_least"), n=len(children))
    lines = [Line(depth, head)]
    for child in children:
        lines += _condition_lines(child, t, names, depth + 1)
    return lines


def _credits_text(spec: Mapping[str, Any] | None, t: Gettext) -> str:
    if not spec or spec.get("from") == "course":
        return t("centre.rule.credits_from_course")
    if "fixed" in spec:
        return t("centre.rule.credits_fixed", credits=spec["fixed"])
    tiers = []
    for tier in spec.get("tiers") or []:
        if tier.get("min_score"):
            tiers.append(t("centre.rule.tier_score", score=tier["min_score"], credits=tier["credits"]))
        elif tier.get("min_grade"):
            tiers.append(t("centre.rule.tier_grade", grade=tier["min_grade"], credits=tier["credits"]))
        else:
            tiers.append(t("centre.rule.tier_other", credits=tier["credits"]))
    return t("centre.rule.credits_tiers", tiers=_join(t, tiers))


def _grade_text(spec: Mapping[str, Any] | None, t: Gettext) -> str:
    record = (spec or {}).get("record", "免考")
    if record == "source":
        if spec and spec.get("cap"):
            return t("centre.rule.grade_source_capped", cap=spec["cap"])
        return t("centre.rule.grade_source")
    return t("centre.rule.grade_record", grade=record)


def rule_lines(body: Mapping[str, Any], t: Gettext, names: Names | None = None) -> list[Line]:
    """The rule's meaning, one sentence per line, in the translator's language."""
    names = names or Names()
    lines: list[Line] = []
    kind = body.get("kind")
    mode = body.get("mode")
    mode_text = t(f"centre.mode.{mode}") if mode else t("centre.mode.unset")
    if kind == "institution":
        lines.append(Line(0, t("centre.rule.kind_institution", institution=_named(
            str(body.get("institution_code") or "?"), names.institutions), mode=mode_text)))
        base = body.get("based_on") or {}
        if base:
            lines.append(Line(0, t("centre.rule.based_on", id=base.get("id"), version=base.get("version"))))
        if body.get("adopt"):
            lines.append(Line(0, t("centre.rule.adopt")))
        for name, matcher in (body.get("narrow") or {}).items():
            lines.append(Line(0, t("centre.rule.narrow", name=name, text=_matcher_text(matcher, t, names))))
    else:
        lines.append(Line(0, t("centre.rule.kind_guidance", mode=mode_text)))
    if body.get("effective_to"):
        lines.append(Line(0, t("centre.rule.effective_between", start=body.get("effective_from"),
                               end=body["effective_to"])))
    else:
        lines.append(Line(0, t("centre.rule.effective_from", start=body.get("effective_from"))))
    scope = body.get("applies_to") or {}
    if scope.get("programmes"):
        lines.append(Line(0, t("centre.rule.scope_programmes", programmes=_join(
            t, [_named(p, names.programmes) for p in scope["programmes"]]))))
    if scope.get("institutions"):
        lines.append(Line(0, t("centre.rule.scope_institutions", institutions=_join(
            t, [_named(i, names.institutions) for i in scope["institutions"]]))))
    if scope.get("levels"):
        lines.append(Line(0, t("centre.rule.scope_levels", levels=_join(t, scope["levels"]))))
    if not any(scope.get(k) for k in ("programmes", "institutions", "levels")) and kind != "institution":
        lines.append(Line(0, t("centre.rule.scope_any")))
    if body.get("condition"):
        lines.append(Line(0, t("centre.rule.when")))
        lines += _condition_lines(body["condition"], t, names, 1)
    for target in body.get("targets") or []:
        lines.append(Line(0, t("centre.rule.target", course=_named(str(target.get("course")), names.courses),
                               credits=_credits_text(target.get("credits") or body.get("credits"), t),
                               grade=_grade_text(target.get("grade") or body.get("grade"), t))))
    exemption = body.get("exemption")
    if exemption:
        certificate = _named(str(exemption.get("certificate")), names.certificates)
        level = exemption.get("level") or t("centre.rule.any_level")
        lines.append(Line(0, t("centre.rule.exemption", certificate=certificate, level=level,
                               component=t(f"centre.component.{exemption.get('component')}"),
                               grade=_grade_text(exemption.get("grade"), t))))
    caps = body.get("caps") or {}
    if caps.get("max_percent_of_graduation_credits"):
        lines.append(Line(0, t("centre.rule.cap_percent", percent=caps["max_percent_of_graduation_credits"])))
    if caps.get("max_credits_per_source"):
        lines.append(Line(0, t("centre.rule.cap_source", credits=caps["max_credits_per_source"])))
    if caps.get("max_credits_per_year"):
        lines.append(Line(0, t("centre.rule.cap_year", credits=caps["max_credits_per_year"])))
    if body.get("never_exempt_categories"):
        lines.append(Line(0, t("centre.rule.never_exempt", categories=_join(t, body["never_exempt_categories"]))))
    if body.get("illustrative"):
        lines.append(Line(0, t("centre.rule.illustrative")))
    return lines


def pretty_json(body: Any) -> list[str]:
    """The body as stable, readable JSON lines (keys sorted, Chinese kept), the unit of the JSON diff."""
    return json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True).splitlines()


@dataclass(frozen=True)
class DiffRow:
    """One row of a diff: `op` same / del / ins; `parts` (text, changed) pieces (a replaced line marks only the
    characters that changed); `depth` for sentences (indentation)."""

    op: str
    parts: tuple[tuple[str, bool], ...]
    depth: int = 0


def _char_marks(old: str, new: str) -> tuple[tuple[tuple[str, bool], ...], tuple[tuple[str, bool], ...]]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    left: list[tuple[str, bool]] = []
    right: list[tuple[str, bool]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            left.append((old[i1:i2], False))
            right.append((new[j1:j2], False))
        else:
            if i2 > i1:
                left.append((old[i1:i2], True))
            if j2 > j1:
                right.append((new[j1:j2], True))
    return tuple(left), tuple(right)


def line_diff(old: Sequence[str], new: Sequence[str], *, old_depths: Sequence[int] | None = None,
              new_depths: Sequence[int] | None = None) -> list[DiffRow]:
    """Rows from `old` to `new`: unchanged lines, removed lines, added lines; a replaced block pairs its lines
    and marks the characters that changed."""
    od = list(old_depths) if old_depths is not None else [0] * len(old)
    nd = list(new_depths) if new_depths is not None else [0] * len(new)
    rows: list[DiffRow] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, list(old), list(new), autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [DiffRow("same", ((old[i], False),), od[i]) for i in range(i1, i2)]
            continue
        pairs = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(pairs):
            left, right = _char_marks(old[i1 + k], new[j1 + k])
            rows.append(DiffRow("del", left, od[i1 + k]))
            rows.append(DiffRow("ins", right, nd[j1 + k]))
        rows += [DiffRow("del", ((old[i], True),), od[i]) for i in range(i1 + pairs, i2)]
        rows += [DiffRow("ins", ((new[j], True),), nd[j]) for j in range(j1 + pairs, j2)]
    return rows
