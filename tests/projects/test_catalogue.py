"""Catalogue completeness (issue 16, item 3): certificate levels as printed, mapped to the framework and accepted by
individual deposits; the categories 大学课程证书 and 文化休闲教育; university-to-university course transfer rules."""

from __future__ import annotations

import json

import pytest

from node.rules import parse_standards_bundle, seed_level_map
from node.rules.levels import vocational_rank
from tests.deposits.helpers import ok
from tests.projects.conftest import CATALOGUE_2020

SUES = "SUES-CE-MECHATRONICS"
UNIVA = "UNIVA-CE-CHINESE"
PRINTED = {"初级": ("五级", "R5"), "中级": ("四级", "R4"), "高级": ("三级", "R3"), "技师": ("二级", "R2"),
           "高级技师": ("一级", "R1")}


@pytest.fixture
def catalogue_2020(ctx, seeded) -> None:
    from node.standards.cli import load_files

    load_files(ctx.engine, [CATALOGUE_2020])


def test_printed_levels_map_to_the_framework_like_their_numbered_names() -> None:
    levels = seed_level_map()
    for printed, (numbered, reference) in PRINTED.items():
        assert vocational_rank(printed) == vocational_rank(numbered)
        assert levels.native_to_reference[printed] == levels.native_to_reference[numbered] == reference
    framework = json.loads((CATALOGUE_2020.parent / "framework.json").read_text(encoding="utf-8"))
    for region in framework["level_maps"]:
        mapped = {lvl["native"]: lvl["reference"] for lvl in region["levels"]}
        assert all(mapped[p] == ref for p, (_, ref) in PRINTED.items()), region["region"]


@pytest.mark.parametrize("printed", sorted(PRINTED))
def test_individual_deposit_accepts_a_level_as_printed(client, learner, deposit_via_api, printed) -> None:
    me = learner()
    achievement = deposit_via_api(me, type="vocational_qualification", issuer_code="SH-OSTA",
                                  issuer_name="上海市职业技能鉴定中心", code="VQ.CNC_MILLING", title="数控铣工",
                                  level=printed, earned_on="2024-05-01")
    archive = ok(client.get("/api/v1/me/archive", headers=me.headers))
    assert printed in json.dumps(archive, ensure_ascii=False) and achievement


def test_an_unknown_level_is_still_refused(client, learner) -> None:
    me = learner()
    r = client.post("/api/v1/me/deposit-applications", headers=me.headers, json={"achievement": {
        "type": "vocational_qualification", "issuer_code": "SH-OSTA", "code": "VQ.CNC_MILLING", "title": "数控铣工",
        "level": "特级", "earned_on": "2024-05-01"}})
    assert r.status_code == 422


def test_a_certificate_printed_高级_converts_under_a_三级_rule(client, seeded, learner, deposit_via_api, crew) -> None:
    """SUES-CR-2016-CNCMILL-3 asks for 数控铣工 三级 or above: a certificate printed 高级 (= 三级) converts, 中级 does not."""
    me, low = learner(), learner()
    for who, level in ((me, "高级"), (low, "中级")):
        deposit_via_api(who, type="vocational_qualification", issuer_code="SH-OSTA", issuer_name="上海市职业技能鉴定中心",
                        code="VQ.CNC_MILLING", title="数控铣工", level=level, earned_on="2024-05-01")
    converted = ok(client.get("/api/v1/me/conversions/what-if", params={"programme": SUES}, headers=me.headers))
    assert "SUES-MFG-PROC" in json.dumps(converted["proposals"])
    refused = ok(client.get("/api/v1/me/conversions/what-if", params={"programme": SUES}, headers=low.headers))
    assert "SUES-MFG-PROC" not in json.dumps(refused["proposals"])


def test_new_categories_are_deposited_with_their_own_rules(client, learner) -> None:
    me = learner()
    base = {"issuer_code": "SH-COMM-C", "title": "书法（社区学院）", "earned_on": "2024-05-01"}
    r = client.post("/api/v1/me/deposit-applications", headers=me.headers,
                    json={"achievement": base | {"type": "cultural_leisure"}})
    assert r.status_code == 422 and "hours or credits" in r.text
    ok(client.post("/api/v1/me/deposit-applications", headers=me.headers,
                   json={"achievement": base | {"type": "cultural_leisure", "hours": "36"}}), 201)
    r = client.post("/api/v1/me/deposit-applications", headers=me.headers, json={"achievement": {
        "type": "university_course_certificate", "issuer_code": "SH-UNIV-B", "title": "心理学基础", "score": "合格",
        "earned_on": "2024-05-01"}})
    assert r.status_code == 422 and "credits" in r.text


def test_the_sample_bundle_validates_and_names_its_illustrations() -> None:
    bundle = parse_standards_bundle(json.loads(CATALOGUE_2020.read_text(encoding="utf-8")))
    modes = {r.id: r.mode for r in bundle.rules}
    assert [m for m in modes.values()].count("course_transfer") == 3
    assert any("UNIVA-CE-CHINESE" in item for item in bundle.illustrative)


def test_university_to_university_transfer_certificate_and_leisure_rules(client, catalogue_2020, learner,
                                                                        deposit_via_api, crew) -> None:
    me = learner()
    univ_b = {"issuer_code": "SH-UNIV-B", "issuer_name": "示例理工大学", "earned_on": "2023-06-30"}
    deposit_via_api(me, type="degree_course", code="UNIVB-MODERN-CHINESE", title="现代汉语", score="88",
                    credits="3", **univ_b)
    deposit_via_api(me, type="degree_course", code="UNIVB-CHN-LIT-HISTORY", title="中国文学史", score="及格",
                    credits="3", **univ_b)
    deposit_via_api(me, type="degree_course", code="UNIVB-FOREIGN-LIT", title="外国文学", score="72", credits="2",
                    **univ_b)
    deposit_via_api(me, type="university_course_certificate", code="UCC.PSYCHOLOGY", title="心理学基础（课程证书）",
                    score="合格", credits="2", **univ_b)
    deposit_via_api(me, type="cultural_leisure", issuer_code="SH-COMM-C", issuer_name="示例区社区学院",
                    code="CL.CALLIGRAPHY", title="书法", hours="36", earned_on="2024-01-10")
    req = ok(client.post("/api/v1/conversions", json={"programme": UNIVA, "learner_id": me.id},
                         headers=crew["outlet"]), 201)
    got = {i["target_key"]: (i["rule_id"], i["credits"], i["recorded_grade"]) for i in req["items"]}
    assert got == {
        f"course:{UNIVA}:UNIVA-CHN-MODERN": ("SH-GS-CT-2020-MODERN-CHINESE", "4", "88"),
        f"course:{UNIVA}:UNIVA-CHN-LITTHEORY": ("SH-GS-CT-2020-LIT-THEORY", "3", "合格"),
        f"course:{UNIVA}:UNIVA-GEN-PSYCH": ("SH-GS-UCC-2020-PSYCH", "2", "合格"),
        f"course:{UNIVA}:UNIVA-GEN-ARTS": ("SH-GS-CL-2020-ARTS", "1", "合格"),
    }
    archive = ok(client.get("/api/v1/me/archive", headers=me.headers))
    assert "书法" in json.dumps(archive, ensure_ascii=False)
