"""Scores and grade words: how a recorded result is compared with a rule's minimum.

Ordering of grade words (highest first): 优 > 良 > 中 > 及格 = 合格 > 不及格 = 不合格.
合格 (pass on a pass/fail scale) counts as at least 及格, and 及格 satisfies a minimum of 合格: both are rank 1.
Long forms are accepted: 优秀 = 优, 良好 = 良, 中等 = 中, 通过 = 合格.

Numeric scores are on the 100-point scale: 90–100 is 优, 80–89 良, 70–79 中, 60–69 及格, below 60 不及格.
When a rule asks for a minimum *number* and the outcome only has a word, the word counts as the lowest number of
its band (优 = 90, 良 = 80, 中 = 70, 及格/合格 = 60), so a word never passes a numeric bar it might not reach.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = [
    "GRADE_WORDS",
    "cap_grade_text",
    "grade_rank",
    "grade_word",
    "is_grade_word",
    "numeric_score",
]

_RANK = {
    "优": 4, "优秀": 4,
    "良": 3, "良好": 3,
    "中": 2, "中等": 2,
    "及格": 1, "合格": 1, "通过": 1,
    "不及格": 0, "不合格": 0,
}
_CANONICAL = {"优秀": "优", "良好": "良", "中等": "中", "通过": "合格"}
_BAND_FLOOR = {4: Decimal(90), 3: Decimal(80), 2: Decimal(70), 1: Decimal(60), 0: Decimal(0)}
_RANK_WORD = {4: "优", 3: "良", 2: "中", 1: "及格", 0: "不及格"}

GRADE_WORDS: tuple[str, ...] = ("优", "良", "中", "及格", "合格", "不及格", "不合格")


def is_grade_word(text: str | None) -> bool:
    return text is not None and text.strip() in _RANK


def _parse_number(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _rank_of_number(value: Decimal) -> int:
    for rank in (4, 3, 2, 1):
        if value >= _BAND_FLOOR[rank]:
            return rank
    return 0


def grade_rank(*, score_text: str | None, score_value: Decimal | None = None) -> int | None:
    """Rank 0–4 of a result (4 = 优); None when the result says nothing comparable."""
    if score_text is not None and score_text.strip() in _RANK:
        return _RANK[score_text.strip()]
    number = score_value if score_value is not None else _parse_number(score_text)
    return None if number is None else _rank_of_number(number)


def numeric_score(*, score_text: str | None, score_value: Decimal | None = None) -> Decimal | None:
    """The number a numeric minimum is compared with (a grade word counts as the floor of its band)."""
    if score_value is not None:
        return score_value
    number = _parse_number(score_text)
    if number is not None:
        return number
    if score_text is not None and score_text.strip() in _RANK:
        return _BAND_FLOOR[_RANK[score_text.strip()]]
    return None


def grade_word(word: str) -> str:
    """Canonical spelling of a grade word (优秀 → 优)."""
    stripped = word.strip()
    return _CANONICAL.get(stripped, stripped)


def cap_grade_text(*, score_text: str | None, score_value: Decimal | None, cap: str) -> str:
    """The grade recorded for a converted course when the source grade is capped at `cap`.

    A word cap (e.g. 良) compares ranks: a source above the cap is recorded as the cap word, otherwise the source's
    own word (a number is turned into its band's word). A numeric cap (e.g. 80) compares numbers: a source above
    the cap is recorded as the cap number, otherwise the source's number.
    """
    if cap.strip() in _RANK:
        cap_rank = _RANK[cap.strip()]
        rank = grade_rank(score_text=score_text, score_value=score_value)
        if rank is None:
            return grade_word(cap)
        if rank > cap_rank:
            return grade_word(cap)
        if score_text is not None and score_text.strip() in _RANK:
            return grade_word(score_text)
        return _RANK_WORD[rank]
    cap_number = Decimal(cap)
    number = numeric_score(score_text=score_text, score_value=score_value)
    if number is None or number > cap_number:
        return str(cap_number)
    return str(number)
