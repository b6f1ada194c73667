"""The archive's groups, as data: which achievement types each holds (types not listed fall into 其他)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ARCHIVE_GROUPS", "OTHER", "ArchiveGroupDef", "group_of"]


@dataclass(frozen=True)
class ArchiveGroupDef:
    key: str
    name_zh: str
    name_en: str
    types: tuple[str, ...]


ARCHIVE_GROUPS: tuple[ArchiveGroupDef, ...] = (
    ArchiveGroupDef("degree", "学历教育", "Degree education", ("degree_course", "self_study_course")),
    ArchiveGroupDef("certificate", "证书", "Certificates", ("vocational_qualification", "skill_level")),
    ArchiveGroupDef("training", "培训", "Training", ("training",)),
    ArchiveGroupDef("other", "其他", "Other", ("community", "informal", "university_course_certificate", "cultural_leisure")),
)
OTHER = "other"
_BY_TYPE = {t: g.key for g in ARCHIVE_GROUPS for t in g.types}


def group_of(achievement_type: str) -> str:
    return _BY_TYPE.get(achievement_type, OTHER)
