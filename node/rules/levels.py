"""Levels: the vocational-qualification ladder (五级 … 一级) and the seed level map to shared reference levels.

Reference levels follow the founding regions' files (config/regions/*.toml): R4 = 中职 / 四级（中级）,
R3 = 专科·高职 / 三级（高级）, R2 = 本科 / 二级（技师）. R5 (五级, 初级) and R1 (一级, 高级技师) extend the ladder
and are illustrative: the seed paper names only the three middle correspondences.
"""

from __future__ import annotations

from node.rules.model import LevelMap

__all__ = ["REFERENCE_ORDER", "VOCATIONAL_LADDER", "seed_level_map", "vocational_rank"]

VOCATIONAL_LADDER: tuple[str, ...] = ("五级", "四级", "三级", "二级", "一级")  # lowest → highest
_ALIASES = {"初级": "五级", "中级": "四级", "高级": "三级", "技师": "二级", "高级技师": "一级"}
REFERENCE_ORDER: tuple[str, ...] = ("R5", "R4", "R3", "R2", "R1")  # lowest → highest


def vocational_rank(level: str | None) -> int | None:
    if level is None:
        return None
    level = _ALIASES.get(level.strip(), level.strip())
    return VOCATIONAL_LADDER.index(level) if level in VOCATIONAL_LADDER else None


def seed_level_map(region: str = "shanghai") -> LevelMap:
    """中职 ↔ 四级/中级 (R4), 专科/高职 ↔ 三级/高级 (R3), 本科 ↔ 二级/技师 (R2); plus R5/R1 (illustrative)."""
    mapping = {
        "五级": "R5", "初级": "R5",
        "中职": "R4", "四级": "R4", "中级": "R4",
        "专科": "R3", "高职": "R3", "专科/高职": "R3", "三级": "R3", "高级": "R3",
        "本科": "R2", "二级": "R2", "技师": "R2",
        "一级": "R1", "高级技师": "R1",
    }
    return LevelMap(region=region, native_to_reference=mapping, reference_order=REFERENCE_ORDER)
