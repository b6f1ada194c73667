"""The centre's rendering of a rule as sentences, and the line diff (pure functions, no node)."""

from __future__ import annotations

import json
from pathlib import Path

from node.portal.centre.rule_text import Names, line_diff, pretty_json, rule_lines
from node.portal.i18n import translator
from node.rules import validate_rule

PILOT = Path(__file__).resolve().parents[2] / "config" / "standards" / "shanghai-pilot-2016.json"

TIERED = {
    "id": "X-TIERS", "version": 3, "kind": "guidance", "title": "分档", "mode": "other",
    "effective_from": "2025-01-01", "effective_to": "2027-12-31",
    "applies_to": {"levels": ["专科"]},
    "condition": {"at_least": 2, "of": [
        {"outcome": {"type": "degree_course", "min_score": "75"}, "as": "a"},
        {"any_of": [{"outcome": {"type": ["training", "community"], "within_years": 3}},
                    {"outcome": {"catalogue_code": "C1", "min_grade": "良"}}]},
        {"outcome": {"type": "skill_level", "reference_level": ["R3", "R2"]}},
    ]},
    "targets": [{"course": "C-9", "grade": {"record": "source", "cap": "良", "of": "a"}}],
    "credits": {"tiers": [{"min_score": "90", "credits": "4"}, {"min_grade": "良", "credits": "3"},
                          {"credits": "2"}], "score_of": "a"},
    "caps": {"max_credits_per_year": "12"},
}


def _texts(body, lang="zh", names=None) -> list[str]:
    return [line.text for line in rule_lines(body, translator(lang), names)]


def test_every_pilot_rule_renders_in_both_languages_without_a_missing_text() -> None:
    rules = json.loads(PILOT.read_text(encoding="utf-8"))["rules"]
    for rule in rules:
        for lang in ("zh", "en"):
            lines = _texts(rule, lang)
            assert lines, rule["id"]
            assert not any("centre." in text for text in lines), (rule["id"], lang, lines)


def test_conditions_credits_and_grades_read_as_sentences() -> None:
    assert validate_rule(TIERED) == []
    lines = rule_lines(TIERED, translator("zh"), Names(courses={"C-9": "高等数学"}))
    texts = [line.text for line in lines]
    assert "自 2025-01-01 至 2027-12-31 有效（含首尾两日）。" in texts
    assert "适用层次：专科。" in texts
    assert "满足以下 3 项中的至少 2 项：" in texts
    assert "任一学历教育课程成绩，成绩不低于 75 分（记为“a”）" in texts
    assert any("在 3 年内取得" in t and "培训证书、社区/老年教育成果" in t for t in texts)
    assert "每年最多转换 12 学分。" in texts
    target = next(t for t in texts if t.startswith("转换为课程"))
    assert "高等数学 (C-9)" in target and "90 分及以上 4 学分" in target and "其余 2 学分" in target
    assert "最高记为“良”" in target
    depths = {line.text: line.depth for line in lines}
    assert depths["满足以下 2 项中的任意一项："] == 2  # nested under "at least"
    en = _texts(TIERED, "en")
    assert "at least 2 of the following 3:" in en and "At most 12 credits per year." in en


def test_an_institution_rule_names_its_standard_and_what_it_narrows() -> None:
    rules = {r["id"]: r for r in json.loads(PILOT.read_text(encoding="utf-8"))["rules"]}
    texts = _texts(rules["SUES-CR-2016-CNCMILL-3"], names=Names(institutions={"SUES": "上海工程技术大学"}))
    assert texts[0] == "院校规则：上海工程技术大学 (SUES)（证书认可型）。"
    assert "依据指导标准 SH-GS-CR-2016-CNCMILL-3 第 1 版。" in texts
    assert any("对成果“cert”另加要求" in t and "在 5 年内取得" in t for t in texts)
    exemption = _texts(rules["SH-GS-CRED-2016-ELECTRICIAN-3"])
    assert any(t.startswith("免除 VQ.ELECTRICIAN（三级）的理论考核") for t in exemption)


def test_the_diff_marks_only_what_changed() -> None:
    old = ["a", "cap 50%", "b", "gone"]
    new = ["a", "cap 40%", "b", "new one", "another"]
    rows = line_diff(old, new)
    assert [r.op for r in rows] == ["same", "del", "ins", "same", "del", "ins", "ins"]
    assert rows[1].parts == (("cap ", False), ("5", True), ("0%", False))
    assert rows[2].parts == (("cap ", False), ("4", True), ("0%", False))
    assert rows[6].parts == (("another", True),)
    assert line_diff(["x"], ["x"])[0].op == "same"
    assert [r.op for r in line_diff([], ["n"])] == ["ins"]
    # key order does not make a difference in the JSON view
    assert pretty_json({"b": 1, "a": "数"}) == pretty_json({"a": "数", "b": 1})
