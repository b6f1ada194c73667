"""English explanations of the engine's decisions (PIPL art. 24), the counterpart of `explain.explain_zh`.

They are written from the JSON-ready dictionaries (`to_jsonable` of a proposal, of an item that does not apply,
or a stored conversion item's `target` + `explanation`), so the same text can be given for a what-if answer and
for a request stored months ago. Names of courses, certificates and rules stay as the catalogue writes them
(Chinese): they are data, not texts of the software.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ACHIEVEMENT_TYPE_EN", "explain_en", "explain_not_applicable_en"]

ACHIEVEMENT_TYPE_EN = {
    "degree_course": "degree course",
    "self_study_course": "self-study exam course",
    "vocational_qualification": "vocational qualification certificate",
    "skill_level": "vocational skill-level certificate",
    "training": "training certificate",
    "community": "community / elder education outcome",
    "informal": "informal learning outcome",
}
_FIELD_EN = {
    "type": "type",
    "catalogue_code": "catalogue code",
    "issuer_code": "issuer",
    "level": "level",
    "min_level": "minimum level",
    "reference_level": "reference level",
    "min_reference_level": "minimum reference level",
    "min_score": "minimum score",
    "min_grade": "minimum grade",
    "within_years": "date earned",
    "category": "category",
    "not_expired": "validity",
    "earned_before": "date earned",
}
_CAP_EN = {
    "percent_of_graduation_credits": "the programme's cap on converted credits",
    "per_source": "the cap per outcome",
    "per_year": "the yearly cap",
}
_REASON_EN = {
    "not_in_force": "the rule is not in force",
    "out_of_scope": "the rule does not apply to this programme",
    "superseded": "the rule has been superseded",
    "conditions_not_met": "the conditions are not met",
    "unknown_course": "the programme has no such course",
    "already_converted": "this course or exam has already been converted",
    "target_already_converted": "this course or exam has already been converted under another rule",
    "never_exempt": "this course can never be exempted",
    "cap_exceeded": "the cap on converted credits would be exceeded",
    "base_rule_missing": "the guidance standard it is based on does not exist",
    "loosens_base": "the institution rule loosens its guidance standard",
    "invalid_after_merge": "the institution rule is not valid once merged with its guidance standard",
}
_GRADE_EN = {"免考": "免考 (exempt)", "合格": "合格 (pass)"}
_PAREN = re.compile(r"（([^（）]*)）\s*$")


def _value(check: Mapping[str, Any], key: str) -> str:
    text = check.get(key)
    if text is None:
        return "none"
    if check.get("field") == "type":
        return " / ".join(ACHIEVEMENT_TYPE_EN.get(t.strip(), t.strip()) for t in str(text).split("/"))
    return str(text)


def _check_en(check: Mapping[str, Any]) -> str:
    name = _FIELD_EN.get(str(check.get("field")), str(check.get("field")))
    verdict = "met" if check.get("met") else "not met"
    return f"{name}: required {_value(check, 'required')}, actual {_value(check, 'actual')} ({verdict})"


def _rule_en(e: Mapping[str, Any]) -> str:
    kind = "guidance standard" if e.get("rule_kind") == "guidance" else "institution rule"
    text = f"Under the {kind} “{e.get('rule_title')}” (rule {e.get('rule_id')}, version {e.get('rule_version')}"
    base = e.get("based_on")
    if isinstance(base, Mapping):
        text += f"; based on guidance standard {base.get('id')} version {base.get('version')}"
    return text + ")"


def _cap_en(cap: Mapping[str, Any]) -> str:
    return (f"{_CAP_EN.get(str(cap.get('cap')), str(cap.get('cap')))} is {cap.get('limit')} credits: "
            f"{cap.get('used_before')} used before, {cap.get('credits')} now, {cap.get('remaining_after')} left")


def _basis_en(text: Any) -> str:
    """The engine writes a credit basis as Chinese with an English tag in brackets: keep the tag."""
    found = _PAREN.search(str(text or ""))
    return found.group(1) if found else ""


def grade_en(grade: Any) -> str:
    return _GRADE_EN.get(str(grade), str(grade))


def explain_en(*, target: Mapping[str, Any], credits: Any, recorded_grade: Any,
               explanation: Mapping[str, Any]) -> str:
    """One English paragraph: the rule (id, version), which outcomes met which conditions, what is converted,
    the grade recorded, what is left of each cap, and until when it can be asked for."""
    parts = [_rule_en(explanation) + ":"]
    for leaf in explanation.get("leaves") or ():
        if not leaf.get("used"):
            continue
        checks = "; ".join(_check_en(c) for c in leaf.get("checks") or () if c.get("field") != "earned_before")
        parts.append(f"your outcome “{leaf.get('outcome_title')}” (no. {leaf.get('outcome_id')}) meets the "
                     f"conditions — {checks}.")
    if target.get("kind") == "course":
        basis = _basis_en(explanation.get("credits_basis"))
        parts.append(f"It converts to the course “{target.get('name')}” ({target.get('code')}), {credits} credits"
                     f"{f' ({basis})' if basis else ''}, recorded as “{grade_en(recorded_grade)}”.")
    else:
        parts.append(f"It exempts you from “{target.get('name')}”, recorded as “{grade_en(recorded_grade)}”.")
    for cap in explanation.get("caps") or ():
        parts.append(_cap_en(cap)[0].upper() + _cap_en(cap)[1:] + ".")
    if explanation.get("convertible_until"):
        parts.append(f"Apply by {explanation['convertible_until']}.")
    return " ".join(parts)


def explain_not_applicable_en(item: Mapping[str, Any]) -> str:
    """Why a rule converts nothing, in English (from a `not_applicable` entry of an evaluation)."""
    reason = _REASON_EN.get(str(item.get("reason")), str(item.get("reason")))
    text = f"Rule {item.get('rule_id')} (version {item.get('rule_version')}) converts nothing: {reason}"
    explanation = item.get("explanation")
    if isinstance(explanation, Mapping):
        misses = [f"“{leaf.get('outcome_title') or 'no matching outcome'}” — {_check_en(c)}"
                  for leaf in explanation.get("leaves") or () if not leaf.get("met")
                  for c in leaf.get("checks") or () if not c.get("met")]
        if misses:
            text += ". " + "; ".join(misses)
        caps = [_cap_en(c) for c in explanation.get("caps") or () if not c.get("fits")]
        if caps:
            text += ". " + "; ".join(caps)
    return text + "."
