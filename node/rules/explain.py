"""Explanations for learners (Chinese sentences, PIPL art. 24) and JSON-ready dictionaries (credits as strings)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from node.rules.model import CapCheck, Evaluation, Explanation, FieldCheck, NotApplicable, Proposal

__all__ = [
    "ACHIEVEMENT_TYPE_ZH",
    "evaluation_to_dict",
    "explain_not_applicable_zh",
    "explain_zh",
    "to_jsonable",
]

ACHIEVEMENT_TYPE_ZH = {
    "degree_course": "学历教育课程",
    "self_study_course": "自学考试课程",
    "vocational_qualification": "职业资格证书",
    "skill_level": "职业技能等级证书",
    "training": "培训证书",
    "community": "社区/老年教育成果",
    "informal": "非正式学习成果",
    "university_course_certificate": "大学课程证书",
    "cultural_leisure": "文化休闲教育学习成果",
}
_FIELD_ZH = {
    "type": "成果类型",
    "catalogue_code": "目录代码",
    "issuer_code": "颁发机构",
    "level": "等级",
    "min_level": "最低等级",
    "reference_level": "参照等级",
    "min_reference_level": "最低参照等级",
    "min_score": "最低分数",
    "min_grade": "最低成绩",
    "within_years": "取得时间",
    "category": "类别",
    "not_expired": "有效期",
    "earned_before": "取得日期",
}
_CAP_ZH = {
    "percent_of_graduation_credits": "本专业可转换学分上限",
    "per_source": "单个成果可转换学分上限",
    "per_year": "年度可转换学分上限",
}
_REASON_ZH = {
    "not_in_force": "规则不在有效期内",
    "out_of_scope": "规则不适用于该专业",
    "superseded": "规则已被替代",
    "conditions_not_met": "条件未满足",
    "unknown_course": "专业中没有该课程",
    "already_converted": "该课程/考核已转换过",
    "target_already_converted": "该课程/考核已按其他规则转换",
    "never_exempt": "该课程不可免修",
    "cap_exceeded": "超出可转换学分上限",
    "base_rule_missing": "所依据的指导标准不存在",
    "loosens_base": "院校规则放宽了指导标准",
    "invalid_after_merge": "院校规则与指导标准合并后无效",
}


def _value(check: FieldCheck, actual: bool) -> str:
    text = check.actual if actual else check.required
    if check.field == "type" and text:
        return " / ".join(ACHIEVEMENT_TYPE_ZH.get(t.strip(), t.strip()) for t in text.split("/"))
    return text if text is not None else "无"


def _check_zh(check: FieldCheck) -> str:
    name = _FIELD_ZH.get(check.field, check.field)
    verdict = "符合" if check.met else "不符合"
    return f"{name}要求 {_value(check, False)}，实际 {_value(check, True)}（{verdict}）"


def _rule_zh(explanation: Explanation) -> str:
    kind = "指导标准" if explanation.rule_kind == "guidance" else "院校规则"
    text = f"依据{kind}「{explanation.rule_title}」（规则 {explanation.rule_id}，第 {explanation.rule_version} 版"
    if explanation.based_on is not None:
        text += f"；依据指导标准 {explanation.based_on.id} 第 {explanation.based_on.version} 版"
    return text + "）"


def _cap_zh(cap: CapCheck) -> str:
    return (f"{_CAP_ZH[cap.cap]} {_num(cap.limit)} 学分，此前已用 {_num(cap.used_before)}，"
            f"本次 {_num(cap.credits)}，剩余 {_num(cap.remaining_after)}")


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def explain_zh(proposal: Proposal) -> str:
    """One Chinese paragraph: which rule (id, version), which outcomes met which conditions, what is converted,
    which grade is recorded, and how much of each cap remains."""
    e = proposal.explanation
    parts = [_rule_zh(e) + "："]
    used = [leaf for leaf in e.leaves if leaf.used]
    for leaf in used:
        checks = "；".join(_check_zh(c) for c in leaf.checks if c.field not in ("earned_before",))
        parts.append(f"您的成果「{leaf.outcome_title}」（编号 {leaf.outcome_id}）满足条件：{checks}。")
    target = proposal.target
    if target.kind == "course":
        parts.append(f"可转换为课程「{target.name}」（{target.code}）{_num(proposal.credits)} 学分"
                     f"（{e.credits_basis}），成绩记为“{proposal.recorded_grade}”。")
    else:
        parts.append(f"可免考「{target.name}」，成绩记为“{proposal.recorded_grade}”。")
    for cap in e.caps:
        parts.append(_cap_zh(cap) + "。")
    if e.convertible_until is not None:
        parts.append(f"请于 {e.convertible_until.isoformat()} 前申请办理。")
    return "".join(parts)


def explain_not_applicable_zh(item: NotApplicable) -> str:
    """Why a rule did not convert anything, in Chinese."""
    reason = _REASON_ZH.get(item.reason, item.reason)
    text = f"规则 {item.rule_id}（第 {item.rule_version} 版）未予转换：{reason}"
    if item.explanation is not None:
        misses = [
            f"「{leaf.outcome_title or '无相应成果'}」{_check_zh(c)}"
            for leaf in item.explanation.leaves if not leaf.met
            for c in leaf.checks if not c.met
        ]
        if misses:
            text += "。" + "；".join(misses)
        caps = [_cap_zh(c) for c in item.explanation.caps if not c.fits]
        if caps:
            text += "。" + "；".join(caps)
    return text + "。"


def to_jsonable(value: Any) -> Any:
    """Dataclasses → dicts; Decimal → string; dates → ISO strings; tuples → lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name != "body"}
    if isinstance(value, Decimal):
        return _num(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        items = [to_jsonable(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    return value


def evaluation_to_dict(evaluation: Evaluation) -> dict:
    """A JSON-ready evaluation; each proposal also carries its Chinese explanation as `explanation_zh`."""
    data = to_jsonable(evaluation)
    for item, proposal in zip(data["proposals"], evaluation.proposals, strict=True):
        item["explanation_zh"] = explain_zh(proposal)
    for item, na in zip(data["not_applicable"], evaluation.not_applicable, strict=True):
        item["explanation_zh"] = explain_not_applicable_zh(na)
    return data
