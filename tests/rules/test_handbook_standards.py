"""Handbook rendering, standards bundles (every file in config/standards/), grade ordering and the index."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal

import pytest

from node.rules import (
    Catalogue,
    Course,
    Outcome,
    Programme,
    RuleIndex,
    StandardsInvalid,
    evaluate,
    parse_rule,
    parse_standards_bundle,
)
from node.rules.grades import cap_grade_text, grade_rank, numeric_score
from node.rules.handbook import handbook_html, handbook_markdown
from tests.rules.builders import STANDARDS_DIR, certificate, load_bundle, pilot


@pytest.mark.parametrize("path", sorted(STANDARDS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_standards_file_loads(path):
    bundle = parse_standards_bundle(json.loads(path.read_text(encoding="utf-8")))
    assert bundle.bundle_id == path.stem or bundle.bundle_id.startswith("yrd-")
    assert bundle.programmes or bundle.level_maps


def test_framework_maps_seed_levels_to_reference_levels():
    framework = load_bundle("framework")
    assert set(framework.level_maps) == {"shanghai", "jiangsu", "zhejiang", "anhui"}
    shanghai = framework.level_maps["shanghai"]
    assert [shanghai.reference_of(x) for x in ("中职", "专科/高职", "本科")] == ["R4", "R3", "R2"]
    assert [shanghai.reference_of(x) for x in ("四级", "三级", "二级", "技师")] == ["R4", "R3", "R2", "R2"]
    assert framework.level_maps["jiangsu"].reference_of("JS-L5") == "R3"
    assert shanghai.rank("R2") > shanghai.rank("R3") > shanghai.rank("R4")
    assert "reference_levels.R1" in framework.illustrative


def test_pilot_bundle_contents_and_illustrative_marks():
    bundle = pilot()
    assert len([r for r in bundle.rules if r.mode == "through_train"]) == 15
    assert {r.mode for r in bundle.rules} == {"through_train", "certificate_recognition", "credit_recognition",
                                              "course_restructuring"}
    assert len({p for r in bundle.rules if r.mode == "through_train" for p in r.scope.programmes}) == 7
    assert bundle.certificates["VQ.CNC_MILLING"].name == "数控铣工"
    assert bundle.programmes["SUES-CE-MECHATRONICS"].courses["SUES-MFG-PROC"].name == "机械制造工艺"
    assert "programmes.DHVC-MECHATRONICS.courses.DHVC-PLC" in bundle.illustrative
    assert "programmes.DHVC-MECHATRONICS.courses.DHVC-ELECTRONICS" not in bundle.illustrative  # named by the seed


def test_bundle_errors_are_collected():
    doc = json.loads((STANDARDS_DIR / "shanghai-pilot-2016.json").read_text(encoding="utf-8"))
    broken = copy.deepcopy(doc)
    broken["rules"][0]["targets"][0]["course"] = "NO-SUCH-COURSE"
    broken["rules"][1]["caps"] = {"max_credits_per_source": "many"}
    broken["programmes"][0]["institution_code"] = "NOBODY"
    broken["rules"][-1]["exemption"]["certificate"] = "VQ.UNKNOWN"
    with pytest.raises(StandardsInvalid) as caught:
        parse_standards_bundle(broken)
    text = "\n".join(caught.value.errors)
    assert "course 'NO-SUCH-COURSE' is not a course of programme 'SOU-AUTO-SVC'" in text
    assert "bundle.rules[1] (SH-GS-ZTC-2016-02): rule.caps.max_credits_per_source: 'many' is not a decimal" in text
    assert "bundle.programmes[0].institution_code: 'NOBODY' is not an institution of the bundle" in text
    assert "exemption certificate 'VQ.UNKNOWN' is not in the bundle" in text
    with pytest.raises(StandardsInvalid, match="'format' is a required property"):
        parse_standards_bundle({k: v for k, v in doc.items() if k != "format"})


def test_handbook_markdown_lists_rules_with_chinese_and_english_fields():
    bundle = pilot()
    text = handbook_markdown(programme=bundle.programmes["SUES-CE-MECHATRONICS"], rules=bundle.rules,
                             catalogue=bundle.catalogue)
    assert text.startswith("# 学分转换手册 Conversion handbook: 机电一体化（继续教育学院）")
    assert "证书 Certificate: 数控铣工（三级及以上） → 课程 Course: 机械制造工艺 (4 学分 credits, 记 免考)" in text
    assert "- 规则 Rule: SUES-CR-2016-CNCMILL-3 · 第 1 版 version 1" in text
    assert "based on SH-GS-CR-2016-CNCMILL-3 第 1 版 version" in text
    assert "5 年内取得 earned within 5 years" in text
    assert "不可免修课程 Never exempt: 毕业设计 (SUES-THESIS)" in text
    assert "SH-GS-ZTC" not in text  # rules of other programmes are not listed
    exemption = handbook_markdown(programme=bundle.programmes["DHVC-MECHATRONICS"], rules=bundle.rules,
                                  catalogue=bundle.catalogue)
    assert "免考 Exemption: 电工（三级） 理论考核 theory exam (记 免考)" in exemption
    assert "全部满足 all of: 课程 Course: 电子技术" in exemption
    past = handbook_markdown(programme=bundle.programmes["SUES-CE-MECHATRONICS"], rules=bundle.rules,
                             catalogue=bundle.catalogue, on=dt.date(2010, 1, 1))
    assert "（无适用规则 No rules apply.）" in past


def test_handbook_html_escapes_everything():
    programme = Programme(code="P<1>", name="<script>alert(1)</script>", institution_code="U&V", level="专科",
                          graduation_credits=Decimal(60),
                          courses={"C\"1": Course(code="C\"1", name="A & B <课程>", credits=Decimal("2.5"))})
    rule = parse_rule({
        "id": "R-1", "version": 3, "kind": "guidance", "title": "<b>标题</b>", "effective_from": "2020-01-01",
        "condition": {"outcome": {"type": "training", "catalogue_code": "T&1"}},
        "targets": [{"course": "C\"1", "credits": {"fixed": "2.5"}}],
    })
    page = handbook_html(programme=programme, rules=[rule], catalogue=Catalogue())
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "A &amp; B &lt;课程&gt; (2.5 学分 credits, 记 免考)" in page
    assert "培训 Training: T&amp;1" in page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    markdown = handbook_markdown(programme=programme, rules=[rule], catalogue=Catalogue())
    assert "培训 Training: T&1 → 课程 Course: A & B <课程> (2.5 学分 credits, 记 免考)" in markdown


@pytest.mark.parametrize(
    ("text", "rank", "number"),
    [("优", 4, "90"), ("良好", 3, "80"), ("中", 2, "70"), ("及格", 1, "60"), ("合格", 1, "60"), ("不合格", 0, "0"),
     ("89.5", 3, "89.5"), ("60", 1, "60"), ("59", 0, "59"), ("缺考", None, None)],
)
def test_grade_ordering(text, rank, number):
    assert grade_rank(score_text=text) == rank
    assert numeric_score(score_text=text) == (None if number is None else Decimal(number))


def test_capped_grade():
    assert cap_grade_text(score_text="优", score_value=None, cap="良") == "良"
    assert cap_grade_text(score_text="中", score_value=None, cap="良") == "中"
    assert cap_grade_text(score_text="95", score_value=None, cap="良") == "良"
    assert cap_grade_text(score_text="72", score_value=None, cap="良") == "中"
    assert cap_grade_text(score_text="95", score_value=None, cap="80") == "80"
    assert cap_grade_text(score_text="72", score_value=None, cap="80") == "72"


def test_min_grade_合格_and_及格_are_equivalent_but_below_中():
    def rule(min_grade):
        return parse_rule({"id": "G-1", "version": 1, "kind": "guidance", "title": "t",
                           "effective_from": "2000-01-01",
                           "condition": {"outcome": {"type": "degree_course", "catalogue_code": "X",
                                                     "min_grade": min_grade}},
                           "targets": [{"course": "K"}]})

    programme = Programme(code="P", name="p", institution_code="U", level="专科", graduation_credits=Decimal(100),
                          courses={"K": Course(code="K", name="k", credits=Decimal(2))})

    def converts(score, min_grade):
        outcome = Outcome(id="o", type="degree_course", catalogue_code="X", title="x", score_text=score,
                          earned_on=dt.date(2020, 1, 1))
        return bool(evaluate(achievements=[outcome], rules=[rule(min_grade)], programme=programme,
                             on=dt.date(2020, 6, 1)).proposals)

    assert converts("合格", "及格") and converts("及格", "合格") and converts("60", "合格")
    assert not converts("合格", "中") and not converts("59", "及格") and converts("良", "中")


def test_index_only_touches_candidate_rules():
    bundle = pilot()
    index = RuleIndex.build(rules=bundle.rules)
    programme = bundle.programmes["SOU-MECHATRONICS"]
    learner = [certificate("a", "VQ.CNC_MILLING", "三级"), certificate("b", "VQ.BEAUTICIAN", "三级")]
    result = evaluate(achievements=learner, rules=(), programme=programme, on=dt.date(2020, 3, 1), index=index)
    assert result.candidate_rule_count == 1  # the one project of this programme keyed on 数控铣工, not all 19 rules
    assert result.credits_total == Decimal(30)
    unrelated = evaluate(achievements=[certificate("c", "VQ.BEAUTICIAN", "三级")], rules=(), programme=programme,
                         on=dt.date(2020, 3, 1), index=index)
    assert unrelated.candidate_rule_count == 0 and unrelated.not_applicable == ()


def test_institution_rule_without_its_base_is_reported():
    bundle = pilot()
    institution_rule = next(r for r in bundle.rules if r.kind == "institution")
    result = evaluate(achievements=[certificate("a", "VQ.CNC_MILLING", "三级")], rules=[institution_rule],
                      programme=bundle.programmes["SUES-CE-MECHATRONICS"], on=dt.date(2020, 3, 1))
    assert result.proposals == ()
    assert [n.reason for n in result.not_applicable] == ["base_rule_missing"]


def test_duplicate_outcome_ids_are_refused():
    bundle = pilot()
    with pytest.raises(ValueError, match="given twice"):
        evaluate(achievements=[certificate("a", "VQ.CNC_MILLING", "三级")] * 2, rules=bundle.rules,
                 programme=bundle.programmes["SOU-MECHATRONICS"], on=dt.date(2020, 3, 1))
