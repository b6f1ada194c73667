"""The rule language: valid rules pass, bad rules are rejected with messages that say where and why."""

from __future__ import annotations

import copy

import pytest

from node.rules import RuleInvalid, check_narrowing, merge_with_base, parse_rule, validate_rule

GOOD = {
    "id": "SH-GS-TEST-1", "version": 1, "kind": "guidance", "title": "数控铣工（三级）→ 机械制造工艺",
    "effective_from": "2016-01-01", "effective_to": None,
    "condition": {"outcome": {"type": "vocational_qualification", "catalogue_code": "VQ.CNC_MILLING",
                              "min_level": "三级"}, "as": "cert"},
    "targets": [{"course": "MFG", "credits": {"tiers": [{"min_score": "90", "credits": "4"}, {"credits": "3"}],
                                              "score_of": "cert"}}],
    "grade": {"record": "source", "cap": "良", "of": "cert"},
    "caps": {"max_percent_of_graduation_credits": "50", "max_credits_per_source": "8"},
}


def _with(**changes):
    doc = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def test_good_rule_is_valid_and_parses():
    assert validate_rule(GOOD) == []
    rule = parse_rule(GOOD)
    assert rule.targets[0].credits.kind == "tiers"
    assert rule.condition.matcher.min_level == "三级"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ([], "rule: must be a JSON object"),
        (_with(title=None), "rule: 'title' is required"),
        (_with(kind="university"), "rule.kind: 'university' is not one of guidance, institution"),
        (_with(effective_from="2016/01/01"), "rule.effective_from: '2016/01/01' is not a date written YYYY-MM-DD"),
        (_with(effective_from="2016-02-30"), "rule.effective_from: '2016-02-30' is not a real date"),
        (_with(effective_to="2015-01-01"), "rule.effective_to: ends before effective_from"),
        (_with(caps={"max_credits_per_source": 8}), "rule.caps.max_credits_per_source: 8 is not of type 'string'"),
        (_with(caps={"max_credits_per_source": "8 学分"}),
         "rule.caps.max_credits_per_source: '8 学分' is not a decimal written as a string"),
        (_with(caps={"max_percent_of_graduation_credits": "150"}),
         "rule.caps.max_percent_of_graduation_credits: a share above 100 % caps nothing"),
        (_with(condition={"outcome": {"type": "vocational_qualification"}, "all_of": []}),
         "rule.condition: a condition has exactly one of outcome, all_of, any_of, or at_least with of"),
        (_with(condition={"outcome": {"type": "diploma", "catalogue_code": "X"}}),
         "rule.condition.outcome.type: 'diploma' is not an achievement type or a list of them"),
        (_with(condition={"outcome": {"type": "degree_course", "catalogue_code": "X", "min_grade": "很好"}}),
         "rule.condition.outcome.min_grade: '很好' is not one of 优, 良, 中, 及格, 合格"),
        (_with(condition={"outcome": {"min_score": "60"}}),
         "rule.condition.outcome: name at least a type or a catalogue_code"),
        (_with(condition={"at_least": 3, "of": [{"outcome": {"catalogue_code": "A"}}, {"outcome": {"catalogue_code": "B"}}]}),
         "rule.condition: at_least 3 of only 2 conditions can never hold"),
        (_with(targets=[{"course": "MFG", "credits": {"fixed": "2", "from": "course"}}]),
         "rule.targets[0].credits: credits are given by exactly one of from, fixed or tiers"),
        (_with(targets=[{"course": "MFG", "credits": {"tiers": [{"credits": "3"}, {"min_score": "90", "credits": "4"}]}}]),
         "rule.targets[0].credits.tiers[0]: only the last tier may have no minimum"),
        (_with(targets=[{"course": "MFG", "credits": {"tiers": [{"credits": "3"}], "score_of": "nobody"}}]),
         "rule.targets[0].credits.score_of: no condition is named 'nobody'"),
        (_with(targets=[{"course": "MFG"}, {"course": "MFG"}]), "rule.targets[1].course: 'MFG' is listed twice"),
        (_with(targets=None), "rule: give targets (courses) or exemption (a certificate's exam)"),
        (_with(exemption={"certificate": "VQ.E", "component": "theory"}), "rule: give either targets or exemption, not both"),
        (_with(grade={"record": "免考", "cap": "良"}), "rule.grade.cap: a cap applies only when the source grade is recorded"),
        (_with(based_on={"id": "X", "version": 1}), "rule.based_on: only an institution rule has based_on"),
        (_with(kind="institution"), "rule.institution_code: an institution rule names its institution"),
        (_with(kind="institution", institution_code="U"), "rule.based_on: an institution rule references the guidance"),
        (_with(colour="red"), "rule: unknown field ('colour' was unexpected)"),
        (_with(id="规则 1"), "rule.id: '规则 1' has characters that are not allowed"),
    ],
)
def test_bad_rules_are_rejected_with_readable_errors(doc, expected):
    errors = validate_rule(doc)
    assert any(e.startswith(expected) for e in errors), errors
    with pytest.raises(RuleInvalid) as caught:
        parse_rule(doc)
    assert expected in str(caught.value)


INSTITUTION = {
    "id": "U-1", "version": 1, "kind": "institution", "institution_code": "U", "title": "院校规则",
    "effective_from": "2017-01-01", "based_on": {"id": "SH-GS-TEST-1", "version": 1}, "adopt": True,
    "narrow": {"cert": {"within_years": 5, "min_level": "二级"}},
    "caps": {"max_credits_per_source": "6"},
}


def test_institution_rule_adopts_and_narrows_its_guidance_standard():
    assert validate_rule(INSTITUTION) == []
    assert check_narrowing(rule=INSTITUTION, base=GOOD) == []
    merged = parse_rule(merge_with_base(rule=INSTITUTION, base=GOOD))
    assert merged.condition.matcher.within_years == 5
    assert merged.condition.matcher.min_level == "二级"
    assert str(merged.caps.max_credits_per_source) == "6"
    assert str(merged.caps.max_percent_of_graduation_credits) == "50"
    assert merged.targets[0].course == "MFG"
    assert merged.based_on.id == "SH-GS-TEST-1"


def test_institution_rule_cannot_loosen_its_guidance_standard():
    loose = {**INSTITUTION, "caps": {"max_credits_per_source": "10"}, "narrow": {"nobody": {"within_years": 1}},
             "effective_from": "2015-01-01"}
    errors = check_narrowing(rule=loose, base=GOOD)
    assert "rule.caps.max_credits_per_source: 10 is looser than the guidance standard's 8" in errors
    assert "rule.narrow.nobody: the guidance standard has no condition named 'nobody'" in errors
    assert "rule.effective_from: earlier than the guidance standard's" in errors
    wrong_base = {**GOOD, "version": 2}
    assert any("references SH-GS-TEST-1 v1" in e for e in check_narrowing(rule=INSTITUTION, base=wrong_base))


def test_narrowing_keeps_the_stricter_value():
    strict_base = copy.deepcopy(GOOD)
    strict_base["condition"]["outcome"]["within_years"] = 3
    merged = merge_with_base(rule=INSTITUTION, base=strict_base)
    assert merged["condition"]["outcome"]["within_years"] == 3
