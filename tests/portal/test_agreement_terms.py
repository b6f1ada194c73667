"""The agreement's terms and their difference (node.portal.agreement_terms), and the agreement form
(node.portal.agreement_form): pure functions, no database."""

from __future__ import annotations

from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from node.portal.agreement_form import changes_from, form_from_document, parse_form
from node.portal.agreement_terms import agreement_terms, compare_terms, inline_diff
from node.portal.i18n import translator

T = translator("zh")
V1 = {"type": "MutualRecognitionAgreement", "agreement": "urn:a", "version": 1, "previous": None,
      "proposer": "shanghai", "parties": ["shanghai", "zhejiang"], "scope": {"achievement_types": ["degree_course"]},
      "credit_equivalence": {"shanghai": {"hours_per_credit": "18"}, "zhejiang": {"hours_per_credit": "16"}},
      "mappings": [{"from": {"node": "shanghai", "achievement_type": "degree_course", "code": "MATH101"},
                    "to": {"code": "ZJ-M101", "title": "高等数学", "credits": None}}],
      "recognition": "automatic", "valid_from": "2026-01-01", "valid_to": None, "status": "active"}


def test_inline_diff_marks_words_and_chinese_characters_and_escapes() -> None:
    old, new = inline_diff("高等数学（互认） 4 credits", "高等数学（一） 5 credits")
    assert old == Markup("高等数学（<del>互认</del>） <del>4</del> credits")
    assert new == Markup("高等数学（<ins>一</ins>） <ins>5</ins> credits")
    old, new = inline_diff("<b>a</b>", "<i>a</i>")
    assert "<b>" not in old and "&lt;" in old and "<i>" not in new


def test_mappings_are_compared_by_what_they_map_from() -> None:
    v2 = {**V1, "version": 2, "mappings": [
        {"from": {"node": "shanghai", "achievement_type": "degree_course", "code": "PHYS100"},
         "to": {"code": "ZJ-P100", "title": "大学物理", "credits": "3"}},
        {"from": {"node": "shanghai", "achievement_type": "degree_course", "code": "MATH101"},
         "to": {"code": "ZJ-M101", "title": "高等数学", "credits": None}}], "status": "suspended", "extra": 1}
    rows = compare_terms(agreement_terms(V1, T), agreement_terms(v2, T))
    changed = {r.key: r.change for r in rows if r.change != "same"}
    assert changed == {"mapping:shanghai|degree_course|PHYS100||": "added", "status": "changed", "extra": "added"}
    status = next(r for r in rows if r.key == "status")
    assert status.old_html == Markup("<del>有效</del>") and status.new_html == Markup("<ins>暂停</ins>")
    removed = compare_terms(agreement_terms(v2, T), agreement_terms(V1, T))
    assert [r.change for r in removed if r.key.startswith("mapping:shanghai|degree_course|PHYS100")] == ["removed"]
    assert all(r.change == "added" for r in compare_terms(None, agreement_terms(V1, T)))


def test_terms_of_an_odd_document_do_not_fail() -> None:
    odd = {"parties": "x", "scope": [], "credit_equivalence": {"a": 3}, "mappings": [1, {"from": 2}],
           "recognition": None, "valid_to": "2027-01-01", "status": "weird", "title": {"zh": "名"}}
    terms = {t.key: t.value for t in agreement_terms(odd, T)}
    assert terms["status"] == "weird" and terms["valid_to"] == "2027-01-01" and terms["title"] == '{"zh": "名"}'


def _posted(**over) -> MultiDict:
    data = {"agreement": "urn:a", "title": "", "partner": "zhejiang", "hpc_own": "18", "hpc_partner": "16",
            "recognition": "automatic", "valid_from": "2026-01-01", "valid_to": "",
            "m0_from": "shanghai", "m0_type": "degree_course", "m0_code": "MATH101", "m0_level": "", "m0_ref": "",
            "m0_to_code": "ZJ-M101", "m0_to_title": "高等数学", "m0_to_level": "", "m0_credits": ""}
    data.update(over)
    form = MultiDict(data)
    form.add("types", "degree_course")
    return form


def test_the_form_builds_the_draft_and_a_counter_sends_only_what_changed() -> None:
    form, terms = parse_form(_posted(), me="shanghai", partners=["zhejiang"])
    assert form.errors == {}
    assert {k: terms[k] for k in ("parties", "scope", "credit_equivalence", "mappings", "valid_to")} == {
        k: V1[k] for k in ("parties", "scope", "credit_equivalence", "mappings", "valid_to")}
    prefilled = form_from_document(V1, me="zhejiang")
    assert prefilled.values["hpc_own"] == "16" and prefilled.values["partner"] == "shanghai"
    assert len(prefilled.mappings) == 3  # the mapping and two empty rows
    posted = _posted(hpc_own="17", hpc_partner="18")
    form, terms = parse_form(posted, me="zhejiang", partners=[], fixed=V1)
    assert form.errors == {}
    assert changes_from(V1, terms) == {"credit_equivalence": {"shanghai": {"hours_per_credit": "18"},
                                                              "zhejiang": {"hours_per_credit": "17"}}}
    form, _ = parse_form(_posted(m0_credits="-1", m0_from="anhui", valid_to="2025-01-01"), me="shanghai",
                         partners=["zhejiang"])
    assert form.errors == {"m0_from": "fed.err.mapping_from", "valid_to": "fed.err.date_order"}
    form, _ = parse_form(_posted(m0_credits="-1"), me="shanghai", partners=["zhejiang"])
    assert form.errors == {"m0_credits": "fed.err.credits"}
    form, terms = parse_form(_posted(m0_code="", m0_to_code="", m0_ref="3"), me="shanghai", partners=["zhejiang"])
    assert terms["mappings"][0] == {"from": {"node": "shanghai", "achievement_type": "degree_course",
                                             "reference_level": "3"}, "to": {"reference_level": "3", "credits": None}}
