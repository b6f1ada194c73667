"""The handbook of a programme: the conversion rules that apply to it, as Markdown or HTML, in Chinese with
English field names, e.g. "证书 Certificate: 数控铣工（三级） → 课程 Course: 机械制造工艺 (4 学分 credits, 记 免考)"."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from node.rules.catalogue import Catalogue
from node.rules.explain import ACHIEVEMENT_TYPE_ZH
from node.rules.index import RuleIndex
from node.rules.matching import leaves_of
from node.rules.model import Caps, GradeSpec, Leaf, Programme, Rule

__all__ = ["HandbookEntry", "handbook_entries", "handbook_html", "handbook_markdown"]

_MODE_ZH = {
    "credit_recognition": "学分认可型 credit recognition",
    "certificate_recognition": "证书认可型 certificate recognition",
    "course_restructuring": "课程重组型 course restructuring",
    "through_train": "直通车式 through train",
    "course_transfer": "学历教育课程互认 course transfer",
    "other": "其他 other",
}
_SOURCE_LABEL = {
    "vocational_qualification": "证书 Certificate",
    "skill_level": "证书 Certificate",
    "training": "培训 Training",
    "degree_course": "课程 Course",
    "self_study_course": "自考课程 Self-study course",
    "community": "社区教育 Community",
    "informal": "非正式学习 Informal",
    "university_course_certificate": "大学课程证书 University course certificate",
    "cultural_leisure": "文化休闲教育 Cultural and leisure education",
}
_COMPONENT_ZH = {"theory": "理论考核 theory exam", "skills": "技能考核 skills exam", "all": "证书 certificate"}


@dataclass(frozen=True)
class HandbookEntry:
    rule_id: str
    version: int
    title: str
    kind: str
    based_on: str | None
    mode: str | None
    effective: str
    sources: tuple[str, ...]
    group: str  # how the sources combine
    conversions: tuple[str, ...]
    caps: tuple[str, ...]
    never_exempt: tuple[str, ...]
    superseded_by: str | None
    illustrative: bool


def _num(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _course_names(catalogue: Catalogue, programme: Programme) -> dict[str, str]:
    names: dict[str, str] = {}
    for other in catalogue.programmes.values():
        names.update({code: course.name for code, course in other.courses.items()})
    names.update({code: course.name for code, course in programme.courses.items()})
    return names


def _leaf_text(leaf: Leaf, catalogue: Catalogue, course_names: dict[str, str]) -> str:
    m = leaf.matcher
    type_ = m.types[0] if len(m.types) == 1 else None
    label = _SOURCE_LABEL.get(type_ or "", "成果 Outcome")
    names = []
    for code in m.catalogue_codes:
        if code in catalogue.certificates:
            names.append(catalogue.certificates[code].name)
        else:
            names.append(course_names.get(code, code))
    if not names:
        names.append(" / ".join(ACHIEVEMENT_TYPE_ZH.get(t, t) for t in m.types) or "任意成果")
    text = " / ".join(names)
    level = None
    if m.levels:
        level = " / ".join(m.levels)
    elif m.min_level:
        level = f"{m.min_level}及以上"
    if level:
        text += f"（{level}）"
    extras = []
    if m.reference_levels:
        extras.append(f"参照等级 reference level {' / '.join(m.reference_levels)}")
    if m.min_reference_level:
        extras.append(f"参照等级不低于 reference level ≥ {m.min_reference_level}")
    if m.min_score is not None:
        extras.append(f"成绩 score ≥ {_num(m.min_score)}")
    if m.min_grade:
        extras.append(f"成绩不低于 grade ≥ {m.min_grade}")
    if m.within_years:
        extras.append(f"{m.within_years} 年内取得 earned within {m.within_years} years")
    if m.issuer_codes:
        issuers = [catalogue.institutions[c].name if c in catalogue.institutions else c for c in m.issuer_codes]
        extras.append(f"颁发机构 issuer {' / '.join(issuers)}")
    if extras:
        text += f" [{'; '.join(extras)}]"
    return f"{label}: {text}"


def _grade_text(grade: GradeSpec) -> str:
    if grade.record == "source":
        return "记 原成绩" + (f"（最高 {grade.cap}）" if grade.cap else "")
    return f"记 {grade.record}"


def _caps_text(caps: Caps) -> tuple[str, ...]:
    out = []
    if caps.max_percent_of_graduation_credits is not None:
        out.append(f"转换学分不超过毕业学分的 {_num(caps.max_percent_of_graduation_credits)}% "
                   f"(max share of graduation credits)")
    if caps.max_credits_per_source is not None:
        out.append(f"每个成果不超过 {_num(caps.max_credits_per_source)} 学分 (max credits per source)")
    if caps.max_credits_per_year is not None:
        out.append(f"每年不超过 {_num(caps.max_credits_per_year)} 学分 (max credits per year)")
    return tuple(out)


def _applies(rule: Rule, programme: Programme) -> bool:
    s = rule.scope
    if s.programmes and programme.code not in s.programmes:
        return False
    if s.institutions and programme.institution_code not in s.institutions:
        return False
    if s.levels and programme.level not in s.levels:
        return False
    return rule.kind != "institution" or rule.institution_code == programme.institution_code


def handbook_entries(*, programme: Programme, rules: Sequence[Rule], catalogue: Catalogue,
                     on: dt.date | None = None) -> list[HandbookEntry]:
    """The rules that apply to the programme (in force on `on`, if given), in (id, version) order."""
    index = RuleIndex.build(rules=rules)
    chosen = [r for r in index.rules if _applies(r, programme) and (on is None or r.in_force(on))]
    adopted = {r.based_on.id: r for r in chosen if r.kind == "institution" and r.based_on is not None}
    course_names = _course_names(catalogue, programme)
    entries: list[HandbookEntry] = []
    for rule in chosen:
        leaves = leaves_of(rule.condition) if rule.condition is not None else []
        sources = tuple(_leaf_text(leaf, catalogue, course_names) for leaf in leaves)
        group = _group_text(rule)
        conversions: list[str] = []
        for target in rule.targets:
            course = programme.courses.get(target.course)
            name = course.name if course else course_names.get(target.course, target.course)
            if target.credits.kind == "from_course":
                credits = f"{_num(course.credits)} 学分 credits" if course else "按课程学分 course credits"
            elif target.credits.kind == "fixed":
                credits = f"{_num(target.credits.fixed)} 学分 credits"  # type: ignore[arg-type]
            else:
                credits = "按成绩分档 tiered: " + ", ".join(
                    f"{'≥ ' + _num(t.min_score) if t.min_score is not None else ('≥ ' + t.min_grade if t.min_grade else '其他 otherwise')}"
                    f" → {_num(t.credits)}" for t in target.credits.tiers) + " 学分 credits"
            conversions.append(f"课程 Course: {name} ({credits}, {_grade_text(target.grade)})")
        if rule.exemption is not None:
            ex = rule.exemption
            cert = catalogue.certificates.get(ex.certificate)
            cert_name = cert.display(ex.level) if cert else f"{ex.certificate}（{ex.level or ''}）"
            conversions.append(f"免考 Exemption: {cert_name} {_COMPONENT_ZH[ex.component]} ({_grade_text(ex.grade)})")
        superseded = adopted.get(rule.id) if rule.kind == "guidance" else None
        entries.append(HandbookEntry(
            rule_id=rule.id, version=rule.version, title=rule.title,
            kind="指导标准 guidance standard" if rule.kind == "guidance" else "院校规则 institution rule",
            based_on=f"{rule.based_on.id} 第 {rule.based_on.version} 版 version" if rule.based_on else None,
            mode=_MODE_ZH.get(rule.mode or "", rule.mode),
            effective=f"{rule.effective_from.isoformat()} – {rule.effective_to.isoformat() if rule.effective_to else '长期 open'}",
            sources=sources, group=group, conversions=tuple(conversions), caps=_caps_text(rule.caps),
            never_exempt=rule.never_exempt_categories,
            superseded_by=f"{superseded.id} 第 {superseded.version} 版 version" if superseded else None,
            illustrative=rule.illustrative,
        ))
    return entries


def _group_text(rule: Rule) -> str:
    c = rule.condition
    if c is None or isinstance(c, Leaf):
        return ""
    if c.operator == "all_of":
        return "全部满足 all of"
    if c.operator == "any_of":
        return "满足其一 any of"
    return f"满足其中 {c.required} 项 at least {c.required} of {len(c.children)}"


def _never_exempt_courses(programme: Programme) -> list[str]:
    return [f"{c.name} ({c.code})" for c in sorted(programme.courses.values(), key=lambda c: c.code) if c.never_exempt]


def handbook_markdown(*, programme: Programme, rules: Sequence[Rule], catalogue: Catalogue,
                      on: dt.date | None = None) -> str:
    institution = catalogue.institutions.get(programme.institution_code)
    lines = [
        f"# 学分转换手册 Conversion handbook: {programme.name} ({programme.code})",
        "",
        f"- 院校 Institution: {institution.name if institution else programme.institution_code}",
        f"- 层次 Level: {programme.level}",
        f"- 毕业学分 Graduation credits: {_num(programme.graduation_credits)}",
    ]
    if on is not None:
        lines.append(f"- 有效日期 In force on: {on.isoformat()}")
    never = _never_exempt_courses(programme)
    if never:
        lines.append(f"- 不可免修课程 Never exempt: {'、'.join(never)}")
    entries = handbook_entries(programme=programme, rules=rules, catalogue=catalogue, on=on)
    if not entries:
        lines += ["", "（无适用规则 No rules apply.）"]
    for e in entries:
        lines += ["", f"## {e.title}", "",
                  f"- 规则 Rule: {e.rule_id} · 第 {e.version} 版 version {e.version}",
                  f"- 类型 Kind: {e.kind}" + (f"，依据 based on {e.based_on}" if e.based_on else "")]
        if e.mode:
            lines.append(f"- 模式 Mode: {e.mode}")
        lines.append(f"- 有效期 Effective: {e.effective}")
        if e.superseded_by:
            lines.append(f"- 本院校适用 Applied here as: {e.superseded_by}")
        sources = " + ".join(e.sources)
        if e.group and len(e.sources) > 1:
            sources = f"{e.group}: {sources}"
        for conversion in e.conversions:
            lines.append(f"- {sources} → {conversion}")
        for cap in e.caps:
            lines.append(f"- 上限 Cap: {cap}")
        if e.never_exempt:
            lines.append(f"- 不可免修类别 Never exempt categories: {', '.join(e.never_exempt)}")
        if e.illustrative:
            lines.append("- 注 Note: 部分数值为示例 some figures are illustrative")
    return "\n".join(lines) + "\n"


def handbook_html(*, programme: Programme, rules: Sequence[Rule], catalogue: Catalogue,
                  on: dt.date | None = None) -> str:
    esc = html.escape
    institution = catalogue.institutions.get(programme.institution_code)
    title = f"学分转换手册 Conversion handbook: {programme.name} ({programme.code})"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<dl>",
        f"<dt>院校 Institution</dt><dd>{esc(institution.name if institution else programme.institution_code)}</dd>",
        f"<dt>层次 Level</dt><dd>{esc(programme.level)}</dd>",
        f"<dt>毕业学分 Graduation credits</dt><dd>{esc(_num(programme.graduation_credits))}</dd>",
    ]
    if on is not None:
        parts.append(f"<dt>有效日期 In force on</dt><dd>{esc(on.isoformat())}</dd>")
    never = _never_exempt_courses(programme)
    if never:
        parts.append(f"<dt>不可免修课程 Never exempt</dt><dd>{esc('、'.join(never))}</dd>")
    parts.append("</dl>")
    entries = handbook_entries(programme=programme, rules=rules, catalogue=catalogue, on=on)
    if not entries:
        parts.append("<p>（无适用规则 No rules apply.）</p>")
    for e in entries:
        parts.append(f'<section id="{esc(e.rule_id)}-v{e.version}">')
        parts.append(f"<h2>{esc(e.title)}</h2><ul>")
        parts.append(f"<li>规则 Rule: {esc(e.rule_id)} · 第 {e.version} 版 version {e.version}</li>")
        kind = e.kind + (f"，依据 based on {e.based_on}" if e.based_on else "")
        parts.append(f"<li>类型 Kind: {esc(kind)}</li>")
        if e.mode:
            parts.append(f"<li>模式 Mode: {esc(e.mode)}</li>")
        parts.append(f"<li>有效期 Effective: {esc(e.effective)}</li>")
        if e.superseded_by:
            parts.append(f"<li>本院校适用 Applied here as: {esc(e.superseded_by)}</li>")
        sources = " + ".join(e.sources)
        if e.group and len(e.sources) > 1:
            sources = f"{e.group}: {sources}"
        for conversion in e.conversions:
            parts.append(f"<li>{esc(sources)} → {esc(conversion)}</li>")
        for cap in e.caps:
            parts.append(f"<li>上限 Cap: {esc(cap)}</li>")
        if e.never_exempt:
            parts.append(f"<li>不可免修类别 Never exempt categories: {esc(', '.join(e.never_exempt))}</li>")
        if e.illustrative:
            parts.append("<li>注 Note: 部分数值为示例 some figures are illustrative</li>")
        parts.append("</ul></section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
