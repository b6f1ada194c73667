"""An agreement version as a list of readable terms, and the difference between two versions (pure functions).

A term is one thing the parties agree on — the scope, one party's hours per credit, one mapping, the dates, the
status — with a stable key, so that two versions are compared term by term: a mapping is keyed by what it maps
*from* (node, type, code or reference level, level), so inserting a mapping does not make every later one look
changed. The changed words of a term are marked with `<ins>` / `<del>` (server-rendered, escaped), character by
character for Chinese text and word by word otherwise.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

__all__ = ["Term", "TermChange", "agreement_terms", "compare_terms", "inline_diff"]

Translate = Callable[..., str]
# the fields the chain itself fixes: not terms the parties negotiate
_CHAIN_FIELDS = ("type", "agreement", "version", "previous", "proposer", "proof")
_ORDER = ("title", "parties", "scope.achievement_types", "scope.programmes", "credit_equivalence", "mapping",
          "recognition", "valid_from", "valid_to", "status")
_TOKEN = re.compile(r"[A-Za-z0-9_.:/+-]+|\s+|.", re.S)


@dataclass(frozen=True)
class Term:
    key: str  # stable id, e.g. "credit_equivalence.zhejiang" or "mapping:shanghai|degree_course|MATH101|"
    label: str  # already translated
    value: str


@dataclass(frozen=True)
class TermChange:
    key: str
    label: str
    change: str  # same | changed | added | removed
    old: str | None
    new: str | None
    old_html: Markup
    new_html: Markup


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _region(code: Any, t: Translate) -> str:
    """A party's short name (`region.<code>`: 上海 / Shanghai), else its code as it is."""
    if not isinstance(code, str):
        return _plain(code)
    text = t(f"region.{code}")
    return code if text == f"region.{code}" else text


def _mapping_key(m: dict) -> str:
    src = m.get("from") if isinstance(m.get("from"), dict) else {}
    parts = [src.get("node"), src.get("achievement_type"), src.get("code") or src.get("reference_level"),
             src.get("level"), m.get("to_node")]
    return "|".join("" if p is None else str(p) for p in parts)


def _mapping_label(m: dict, t: Translate) -> str:
    src = m.get("from") if isinstance(m.get("from"), dict) else {}
    kind = str(src.get("achievement_type") or "?")
    type_key = f"type.{kind}"
    kind_text = t(type_key) if t(type_key) != type_key else kind
    if "reference_level" in src:
        what = t("fed.term.reference_level", level=_plain(src.get("reference_level")))
    else:
        what = _plain(src.get("code"))
        if src.get("level"):
            what += f" {src['level']}"
    return t("fed.term.mapping", node=_region(src.get("node"), t), kind=kind_text, what=what)


def _mapping_value(m: dict, t: Translate) -> str:
    dst = m.get("to") if isinstance(m.get("to"), dict) else {}
    src = m.get("from") if isinstance(m.get("from"), dict) else {}
    if "reference_level" in src and "code" not in dst:
        target = t("fed.term.reference_level", level=_plain(dst.get("reference_level")))
    else:
        target = " ".join(str(x) for x in (dst.get("code"), dst.get("title"), dst.get("level")) if x)
    credits = dst.get("credits")
    amount = t("fed.term.credits_by_hours") if credits is None else t("fed.term.credits_fixed", n=_plain(credits))
    extra = {k: v for k, v in m.items() if k not in ("from", "to")}
    tail = f" {_plain(extra)}" if extra else ""
    return f"→ {target or '—'} · {amount}{tail}"


def agreement_terms(document: dict, t: Translate) -> list[Term]:
    """The negotiable terms of one version, in a fixed order (fields the page does not know come last, as JSON)."""
    doc = document if isinstance(document, dict) else {}
    terms: list[Term] = []
    if "title" in doc:
        terms.append(Term("title", t("fed.term.title"), _plain(doc.get("title"))))
    parties = doc.get("parties")
    terms.append(Term("parties", t("fed.term.parties"),
                      t("fed.list_sep").join(_region(p, t) for p in parties) if isinstance(parties, list) and
                      all(isinstance(p, str) for p in parties) else _plain(parties)))
    scope = doc.get("scope") if isinstance(doc.get("scope"), dict) else {}
    types = scope.get("achievement_types") if isinstance(scope.get("achievement_types"), list) else []
    terms.append(Term("scope.achievement_types", t("fed.term.achievement_types"),
                      ", ".join(t(f"type.{k}") if t(f"type.{k}") != f"type.{k}" else str(k) for k in types) or "—"))
    if "programmes" in scope:
        terms.append(Term("scope.programmes", t("fed.term.programmes"), _plain(scope.get("programmes"))))
    for key in sorted(k for k in scope if k not in ("achievement_types", "programmes")):
        terms.append(Term(f"scope.{key}", f"scope.{key}", _plain(scope[key])))
    equivalence = doc.get("credit_equivalence") if isinstance(doc.get("credit_equivalence"), dict) else {}
    for node in sorted(equivalence):
        entry = equivalence[node] if isinstance(equivalence[node], dict) else {}
        terms.append(Term(f"credit_equivalence.{node}", t("fed.term.hours_per_credit", node=_region(node, t)),
                          _plain(entry.get("hours_per_credit"))))
    seen: dict[str, int] = {}
    for m in doc.get("mappings") or []:
        if not isinstance(m, dict):
            continue
        key = _mapping_key(m)
        seen[key] = seen.get(key, 0) + 1
        suffix = f"#{seen[key]}" if seen[key] > 1 else ""
        terms.append(Term(f"mapping:{key}{suffix}", _mapping_label(m, t) + suffix, _mapping_value(m, t)))
    recognition = doc.get("recognition")
    terms.append(Term("recognition", t("fed.term.recognition"),
                      t(f"fed.recognition.{recognition}") if recognition in ("automatic", "reviewed")
                      else _plain(recognition)))
    terms.append(Term("valid_from", t("fed.term.valid_from"), _plain(doc.get("valid_from"))))
    terms.append(Term("valid_to", t("fed.term.valid_to"),
                      _plain(doc.get("valid_to")) if doc.get("valid_to") else t("fed.term.open_ended")))
    status = doc.get("status")
    terms.append(Term("status", t("fed.term.status"),
                      t(f"fed.status.{status}") if status in ("active", "suspended", "terminated") else _plain(status)))
    known = {"title", "parties", "scope", "credit_equivalence", "mappings", "recognition", "valid_from", "valid_to",
             "status", *_CHAIN_FIELDS}
    for key in sorted(k for k in doc if k not in known):
        terms.append(Term(key, key, _plain(doc[key])))
    return terms


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def inline_diff(old: str, new: str) -> tuple[Markup, Markup]:
    """(old with removed parts in <del>, new with added parts in <ins>), both escaped."""
    a, b = _tokens(old), _tokens(new)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        removed, added = "".join(a[i1:i2]), "".join(b[j1:j2])
        if op == "equal":
            left.append(str(escape(removed)))
            right.append(str(escape(added)))
            continue
        if removed:
            left.append(f"<del>{escape(removed)}</del>")
        if added:
            right.append(f"<ins>{escape(added)}</ins>")
    return Markup("".join(left)), Markup("".join(right))


def _rank(key: str) -> int:
    for i, prefix in enumerate(_ORDER):
        if key == prefix or key.startswith(prefix + ".") or key.startswith(prefix + ":"):
            return i
    return len(_ORDER)


def compare_terms(old: list[Term] | None, new: list[Term]) -> list[TermChange]:
    """Every term of `new` and of `old`, side by side, marked same / changed / added / removed. With no `old`
    (version 1) every term is `added`."""
    before = {term.key: term for term in old or []}
    after = {term.key: term for term in new}
    keys = [term.key for term in new] + [term.key for term in old or [] if term.key not in after]
    keys.sort(key=lambda k: (_rank(k), [term.key for term in new].index(k) if k in after else 10**6))
    out: list[TermChange] = []
    for key in keys:
        o, n = before.get(key), after.get(key)
        if o is not None and n is not None:
            if o.value == n.value:
                out.append(TermChange(key, n.label, "same", o.value, n.value, escape(o.value), escape(n.value)))
            else:
                old_html, new_html = inline_diff(o.value, n.value)
                out.append(TermChange(key, n.label, "changed", o.value, n.value, old_html, new_html))
        elif n is not None:
            out.append(TermChange(key, n.label, "added", None, n.value, Markup(""),
                                  Markup(f"<ins>{escape(n.value)}</ins>")))
        else:
            assert o is not None
            out.append(TermChange(key, o.label, "removed", o.value, None, Markup(f"<del>{escape(o.value)}</del>"),
                                  Markup("")))
    return out
