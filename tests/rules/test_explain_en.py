"""English explanations (node.rules.explain_en) say what the Chinese ones say, from the same structured data."""

from __future__ import annotations

from node.rules.explain_en import explain_en, explain_not_applicable_en

EXPLANATION = {
    "rule_id": "SH-GS-ZTC-2016-01", "rule_version": 1, "rule_title": "直通车：汽车维修工（三级）", "rule_kind": "guidance",
    "based_on": None, "mode": "through_train",
    "leaves": [{"path": "cert", "name": "cert", "met": True, "used": True, "outcome_id": "7", "outcome_title": "汽车维修工",
                "checks": [{"field": "type", "required": "vocational_qualification",
                            "actual": "vocational_qualification", "met": True},
                           {"field": "level", "required": "三级", "actual": "三级", "met": True},
                           {"field": "earned_before", "required": "2026-12-03", "actual": "2025-01-01", "met": True}]}],
    "groups": [], "credits_basis": "课程学分 6（course credits）", "grade_basis": "记 合格",
    "caps": [{"cap": "percent_of_graduation_credits", "limit": "30", "used_before": "6", "credits": "6",
              "remaining_after": "18", "fits": True, "subject": None}],
    "convertible_until": "2029-01-01",
}


def test_a_course_conversion_in_english() -> None:
    text = explain_en(target={"kind": "course", "code": "C1", "name": "汽车发动机构造与维修"}, credits="6",
                      recorded_grade="合格", explanation=EXPLANATION)
    assert text.startswith("Under the guidance standard “直通车：汽车维修工（三级）” (rule SH-GS-ZTC-2016-01, version 1):")
    assert "your outcome “汽车维修工” (no. 7) meets the conditions" in text
    assert "type: required vocational qualification certificate" in text and "level: required 三级, actual 三级 (met)" in text
    assert "earned_before" not in text and "date earned" not in text
    assert "converts to the course “汽车发动机构造与维修” (C1), 6 credits (course credits)" in text
    assert "recorded as “合格 (pass)”" in text
    assert "The programme's cap on converted credits is 30 credits: 6 used before, 6 now, 18 left." in text
    assert text.endswith("Apply by 2029-01-01.")


def test_an_exemption_and_a_refusal_in_english() -> None:
    text = explain_en(target={"kind": "exemption", "code": "VQ", "name": "电工（三级）理论考核"}, credits="0",
                      recorded_grade="免考", explanation={**EXPLANATION, "caps": [], "convertible_until": None,
                                                        "based_on": {"id": "G-1", "version": 2},
                                                        "rule_kind": "institution"})
    assert "Under the institution rule" in text and "based on guidance standard G-1 version 2" in text
    assert "exempts you from “电工（三级）理论考核”, recorded as “免考 (exempt)”." in text
    missed = {**EXPLANATION, "leaves": [{**EXPLANATION["leaves"][0], "met": False, "used": False,
                                         "checks": [{"field": "level", "required": "三级", "actual": "四级",
                                                     "met": False}]}],
              "caps": [{**EXPLANATION["caps"][0], "fits": False}]}
    refusal = explain_not_applicable_en({"rule_id": "R", "rule_version": 3, "reason": "conditions_not_met",
                                         "explanation": missed})
    assert refusal.startswith("Rule R (version 3) converts nothing: the conditions are not met.")
    assert "“汽车维修工” — level: required 三级, actual 四级 (not met)" in refusal
    assert "30 credits" in refusal and refusal.endswith(".")
    assert explain_not_applicable_en({"rule_id": "R", "rule_version": 1, "reason": "novel_reason"}) == \
        "Rule R (version 1) converts nothing: novel_reason."
