"""The four 双证融通 modes and the seed's worked examples, evaluated from config/standards/shanghai-pilot-2016.json."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from node.rules import PriorUsage, evaluate, evaluation_to_dict, explain_not_applicable_zh, explain_zh
from tests.rules.builders import certificate, course, pilot

ON = dt.date(2020, 3, 1)


def _only(evaluation):
    assert len(evaluation.proposals) == 1, evaluation.not_applicable
    return evaluation.proposals[0]


def test_certificate_recognition_cnc_milling_level_3_to_manufacturing_process_course():
    bundle = pilot()
    programme = bundle.programmes["SUES-CE-MECHATRONICS"]
    cert = certificate("vq-1", "VQ.CNC_MILLING", "三级", title="数控铣工（三级）")
    result = evaluate(achievements=[cert], rules=bundle.rules, programme=programme, on=ON)
    proposal = _only(result)
    assert proposal.target.name == "机械制造工艺"
    assert proposal.target.key == "course:SUES-CE-MECHATRONICS:SUES-MFG-PROC"
    assert proposal.credits == Decimal(4)
    assert proposal.recorded_grade == "免考"
    assert proposal.source_outcome_ids == ("vq-1",)
    # the institution's own rule applies, citing the guidance standard it is based on
    assert (proposal.rule_id, proposal.rule_version) == ("SUES-CR-2016-CNCMILL-3", 1)
    assert proposal.explanation.based_on is not None
    assert (proposal.explanation.based_on.id, proposal.explanation.based_on.version) == ("SH-GS-CR-2016-CNCMILL-3", 1)
    text = explain_zh(proposal)
    assert "SUES-CR-2016-CNCMILL-3" in text and "第 1 版" in text and "SH-GS-CR-2016-CNCMILL-3" in text
    assert "机械制造工艺" in text and "免考" in text and "4 学分" in text
    superseded = [n for n in result.not_applicable if n.rule_id == "SH-GS-CR-2016-CNCMILL-3"]
    assert [n.reason for n in superseded] == ["superseded"]
    caps = {c.cap: c for c in proposal.explanation.caps}
    assert caps["percent_of_graduation_credits"].limit == Decimal(40)  # 50 % of 80
    assert caps["percent_of_graduation_credits"].remaining_after == Decimal(36)
    assert caps["per_source"].remaining_after == Decimal(4)


def test_higher_level_certificate_also_satisfies_min_level():
    bundle = pilot()
    cert = certificate("vq-2", "VQ.CNC_MILLING", "二级")
    result = evaluate(achievements=[cert], rules=bundle.rules, programme=bundle.programmes["SUES-CE-MECHATRONICS"], on=ON)
    assert _only(result).credits == Decimal(4)


def test_institution_narrowing_within_five_years_refuses_an_old_certificate():
    bundle = pilot()
    old = certificate("vq-old", "VQ.CNC_MILLING", "三级", earned=dt.date(2013, 5, 1))
    result = evaluate(achievements=[old], rules=bundle.rules, programme=bundle.programmes["SUES-CE-MECHATRONICS"], on=ON)
    assert result.proposals == ()
    reasons = {(n.rule_id, n.reason) for n in result.not_applicable}
    assert ("SUES-CR-2016-CNCMILL-3", "conditions_not_met") in reasons
    item = next(n for n in result.not_applicable if n.reason == "conditions_not_met")
    failed = [c for leaf in item.explanation.leaves for c in leaf.checks if not c.met]
    assert [c.field for c in failed] == ["within_years"]
    assert failed[0].actual == "2013-05-01"
    assert "取得时间" in explain_not_applicable_zh(item)


def test_lower_level_certificate_does_not_convert():
    bundle = pilot()
    cert = certificate("vq-4", "VQ.CNC_MILLING", "四级")
    result = evaluate(achievements=[cert], rules=bundle.rules, programme=bundle.programmes["SUES-CE-MECHATRONICS"], on=ON)
    assert result.proposals == ()


def _dhvc_courses(electronics_score: str = "82"):
    return [
        course("c-1", "DHVC-ELECTRONICS", "DHVC", score=electronics_score, title="电子技术"),
        course("c-2", "DHVC-CIRCUITS", "DHVC", score="及格", title="电工基础"),
        course("c-3", "DHVC-MOTOR-CTRL", "DHVC", score="良", title="电机与电气控制"),
        course("c-4", "DHVC-PLC", "DHVC", score="合格", title="可编程控制器应用"),
    ]


def test_credit_recognition_four_courses_exempt_electrician_level_3_theory_exam():
    bundle = pilot()
    result = evaluate(achievements=_dhvc_courses(), rules=bundle.rules, programme=bundle.programmes["DHVC-MECHATRONICS"],
                      on=ON)
    proposal = _only(result)
    assert proposal.target.kind == "exemption"
    assert proposal.target.key == "exemption:VQ.ELECTRICIAN:三级:theory"
    assert proposal.target.name == "电工（三级）理论考核"
    assert proposal.credits == Decimal(0)
    assert proposal.recorded_grade == "免考"
    assert proposal.source_outcome_ids == ("c-1", "c-2", "c-3", "c-4")
    assert (proposal.rule_id, proposal.rule_version) == ("SH-GS-CRED-2016-ELECTRICIAN-3", 1)
    assert proposal.explanation.mode == "credit_recognition"
    assert all(leaf.used and leaf.met for leaf in proposal.explanation.leaves)
    text = explain_zh(proposal)
    assert "SH-GS-CRED-2016-ELECTRICIAN-3" in text and "第 1 版" in text and "电工（三级）理论考核" in text


def test_credit_recognition_needs_all_four_courses_passed():
    bundle = pilot()
    failing = _dhvc_courses(electronics_score="55")
    result = evaluate(achievements=failing, rules=bundle.rules, programme=bundle.programmes["DHVC-MECHATRONICS"], on=ON)
    assert result.proposals == ()
    item = next(n for n in result.not_applicable if n.reason == "conditions_not_met")
    leaf = next(leaf for leaf in item.explanation.leaves if leaf.name == "electronics")
    assert not leaf.met and leaf.outcome_id == "c-1"
    grade_check = next(c for c in leaf.checks if c.field == "min_grade")
    assert (grade_check.required, grade_check.actual, grade_check.met) == ("及格", "55", False)
    group = item.explanation.groups[0]
    assert (group.operator, group.required, group.met_count, group.met) == ("all_of", 4, 3, False)
    three = _dhvc_courses()[:3]
    assert evaluate(achievements=three, rules=bundle.rules, programme=bundle.programmes["DHVC-MECHATRONICS"],
                    on=ON).proposals == ()


def test_course_restructuring_four_fused_courses_give_beautician_level_3():
    bundle = pilot()
    outcomes = [
        course("s-1", "SSPU-MAKEUP", "SSPU", score="合格", title="经典化妆造型"),
        course("s-2", "SSPU-BODYCARE", "SSPU", score="优", title="塑形身体护理"),
        course("s-3", "SSPU-SKINCARE", "SSPU", score="68", title="美容皮肤护理"),
        course("s-4", "SSPU-SALON", "SSPU", score="良", title="美容实用技术"),
    ]
    result = evaluate(achievements=outcomes, rules=bundle.rules, programme=bundle.programmes["SSPU-IMAGE-DESIGN"], on=ON)
    proposal = _only(result)
    assert proposal.target.key == "exemption:VQ.BEAUTICIAN:三级:all"
    assert proposal.recorded_grade == "合格"
    assert proposal.credits == Decimal(0)
    assert (proposal.rule_id, proposal.rule_version) == ("SH-GS-REORG-2016-BEAUTICIAN-3", 1)
    assert proposal.explanation.mode == "course_restructuring"
    # a course from another institution does not count
    foreign = [*outcomes[:3], course("s-5", "SSPU-SALON", "OTHER", score="良")]
    assert evaluate(achievements=foreign, rules=bundle.rules, programme=bundle.programmes["SSPU-IMAGE-DESIGN"],
                    on=ON).proposals == ()


def test_through_train_cnc_milling_level_3_into_open_university_mechatronics():
    bundle = pilot()
    programme = bundle.programmes["SOU-MECHATRONICS"]
    cert = certificate("vq-z", "VQ.CNC_MILLING", "三级")
    result = evaluate(achievements=[cert], rules=bundle.rules, programme=programme, on=ON)
    assert len(result.proposals) == 5
    assert {p.rule_id for p in result.proposals} == {"SH-GS-ZTC-2016-05"}
    assert all(p.credits == Decimal(6) and p.recorded_grade == "合格" for p in result.proposals)
    assert result.credits_total == Decimal(30)  # 40 % of 75 graduation credits
    last = result.proposals[-1].explanation.caps[0]
    assert (last.cap, last.limit, last.remaining_after) == ("percent_of_graduation_credits", Decimal(30), Decimal(0))
    assert "SH-GS-ZTC-2016-05" in explain_zh(result.proposals[0])
    # the practical component is never produced
    assert not any(p.target.code.endswith("PRAC01") for p in result.proposals)


def test_through_train_cap_binds_a_second_certificate():
    bundle = pilot()
    programme = bundle.programmes["SOU-MECHATRONICS"]
    outcomes = [certificate("vq-m", "VQ.CNC_MILLING", "三级"), certificate("vq-t", "VQ.CNC_TURNING", "三级")]
    result = evaluate(achievements=outcomes, rules=bundle.rules, programme=programme, on=ON)
    assert result.credits_total == Decimal(30)
    refused = [n for n in result.not_applicable if n.reason == "cap_exceeded"]
    assert len(refused) == 5
    assert all(c.remaining_after < 0 for n in refused for c in n.explanation.caps if not c.fits)


def test_through_train_respects_prior_usage():
    bundle = pilot()
    programme = bundle.programmes["SOU-MECHATRONICS"]
    first_course = "SOU-MECHATRONICS-ZTC05-1"
    usage = PriorUsage(outcomes_by_target={f"course:SOU-MECHATRONICS:{first_course}": frozenset({"vq-z"})},
                       credits_total=Decimal(6))
    result = evaluate(achievements=[certificate("vq-z", "VQ.CNC_MILLING", "三级")], rules=bundle.rules,
                      programme=programme, on=ON, usage=usage)
    assert len(result.proposals) == 4
    assert result.credits_total == Decimal(24)
    assert any(n.reason == "already_converted" and n.target_key.endswith(first_course) for n in result.not_applicable)


def test_all_fifteen_through_train_projects_convert_their_certificate():
    bundle = pilot()
    projects = [r for r in bundle.rules if r.mode == "through_train"]
    assert len(projects) == 15
    for rule in projects:
        leaf = rule.condition
        cert = certificate("x", leaf.matcher.catalogue_codes[0], leaf.matcher.levels[0])
        programme = bundle.programmes[rule.scope.programmes[0]]
        result = evaluate(achievements=[cert], rules=bundle.rules, programme=programme, on=ON)
        assert {p.rule_id for p in result.proposals} == {rule.id}, rule.id
        assert result.credits_total == Decimal(30)


def test_level_3_certificate_does_not_enter_a_level_2_project():
    bundle = pilot()
    result = evaluate(achievements=[certificate("x", "VQ.SOFTWARE_TESTER", "三级")], rules=bundle.rules,
                      programme=bundle.programmes["SOU-SOFTWARE"], on=ON)
    assert result.proposals == ()


def test_expired_certificate_never_converts_and_expiring_lists_the_deadline():
    bundle = pilot()
    programme = bundle.programmes["SUES-CE-MECHATRONICS"]
    expired = certificate("vq-e", "VQ.CNC_MILLING", "三级", expires=dt.date(2020, 2, 29))
    assert evaluate(achievements=[expired], rules=bundle.rules, programme=programme, on=ON).proposals == ()
    valid = certificate("vq-v", "VQ.CNC_MILLING", "三级", expires=dt.date(2021, 12, 31))
    result = evaluate(achievements=[valid], rules=bundle.rules, programme=programme, on=ON)
    assert [(e.convertible_until, e.cause) for e in result.expiring] == [(dt.date(2021, 12, 31), "certificate_expires")]
    # valid until 2021-12-31 but earned 2019-06-01 within 5 years: the certificate expiry comes first
    later = evaluate(achievements=[valid], rules=bundle.rules, programme=programme, on=dt.date(2022, 1, 1))
    assert later.proposals == ()


def test_evaluation_serialises_credits_as_strings():
    bundle = pilot()
    result = evaluate(achievements=[certificate("vq-1", "VQ.CNC_MILLING", "三级")], rules=bundle.rules,
                      programme=bundle.programmes["SUES-CE-MECHATRONICS"], on=ON)
    data = evaluation_to_dict(result)
    proposal = data["proposals"][0]
    assert proposal["credits"] == "4"
    assert proposal["explanation"]["caps"][0]["limit"] == "40"
    assert proposal["explanation_zh"].startswith("依据院校规则")
    assert data["credits_total"] == "4"
    assert data["on"] == "2020-03-01"
