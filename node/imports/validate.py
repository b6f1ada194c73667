"""Validating bulk-deposit records: one precompiled validator per job, minimal work per row.

A good record becomes a `Deposit` (the learner's identity plus the achievement's columns); a bad one yields
`RowError`s — (row, column, value, reason), one per bad cell, so the report lists every problem of a row at
once. ID numbers and names never appear in clear in an error: their values are masked.

Decisions (docs/imports.md):
- 成绩 is a number 0–100 with at most three decimals, or a grade word 优 良 中 及格 合格 不及格 不合格 (long forms
  优秀 良好 中等 通过 are stored in their short form). Failed results are deposited too: the archive keeps what
  the institution exported, and conversion rules apply their own minimum.
- 学分 and 学时 are exact decimals ≥ 0 with at most three decimals (学分 required, 学时 optional).
- 获得时间 is YYYYMM, a real month between 1950-01 and the current month; it is the achievement's *term*, and
  the first day of that month its `earned_on`.
- Codes (教育层次代码, 教育类别代码, 毕业结业, 毕业季) are checked against the code lists in table
  `code_list_entry` (version ``sh-2016``); a code's label (本科, 成人, …) is accepted for its code.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from node.deposits.schemas import EARLIEST_EARNED_ON
from node.errors import InvalidIdNumber
from node.imports.formats import SHANGHAI_COLUMNS, Unreadable
from node.rules.grades import grade_word, is_grade_word
from node.security.freetext import mask_id_like
from node.security.idnumbers import ID_TYPES, mask_id_number, normalise_id_number

__all__ = [
    "ACHIEVEMENT_TYPES",
    "CODE_LIST_VERSION",
    "Deposit",
    "RowError",
    "Validator",
    "mask_value",
]

CODE_LIST_VERSION = "sh-2016"
ACHIEVEMENT_TYPES = frozenset({
    "degree_course", "self_study_course", "vocational_qualification", "skill_level", "training", "community",
    "informal", "university_course_certificate", "cultural_leisure",
})

# ASCII digits only: `\d` would match full-width, Arabic-Indic, Devanagari... digits, which `Decimal()` and `int()`
# then accept. Full-width digits and point (what a Chinese input method types) are normalised to ASCII first.
_DECIMAL = re.compile(r"[0-9]{1,7}(\.[0-9]{1,3})?")
_SCORE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?")
_TERM = re.compile(r"([0-9]{4})([0-9]{2})")
_YEAR = re.compile(r"([0-9]{4})届?")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})(?:-([0-9]{2}))?")
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．－", "0123456789.-")
_HUNDRED = Decimal(100)
_NUL = "contains a NUL character"

# Lengths of the achievement columns (node/models Achievement).
_MAX = {"title": 200, "programme": 200, "student_no": 40, "remark": 500, "code": 64, "name": 100, "level": 20}


@dataclass(slots=True)
class RowError:
    row_no: int
    column: str
    value: str
    reason: str


@dataclass(slots=True)
class Deposit:
    row_no: int
    id_type: str
    id_number: str  # normalised; never leaves the import's memory except encrypted
    name: str
    course_key: str  # what identifies the course for de-duplication: its code, else its title
    values: dict[str, Any]  # achievement columns


def mask_value(column: str, value: str) -> str:
    """What a report may show of a bad cell: ID numbers and names masked, ID-like runs in any other cell masked,
    long values cut."""
    value = (value or "").strip().replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
    if column in ("身份证号", "id_number"):
        return mask_id_number(value.upper())
    if column in ("姓名", "name"):
        return value[:1] + "*" * min(len(value) - 1, 8) if value else ""
    value = value if len(value) <= 100 else value[:97] + "..."
    return mask_id_like(value)


_T = TypeVar("_T")
_MEMO_LIMIT = 4096  # distinct texts remembered per cell kind: memory stays flat whatever the file holds


def _remember(memo: dict[str, _T], text: str, value: _T) -> _T:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[text] = value
    return value


class Validator:
    def __init__(self, *, institution_code: str, code_lists: Mapping[str, Mapping[str, str]],
                 today: dt.date | None = None) -> None:
        """`code_lists`: list name → {accepted text → code} (codes and labels)."""
        self.institution_code = institution_code
        self.today = today or dt.date.today()
        self._max_term = f"{self.today.year:04d}{self.today.month:02d}"
        self._lists = code_lists
        self._ids: dict[tuple[str, str], str | InvalidIdNumber] = {}
        # credits, hours, scores and terms repeat from row to row: each distinct text is checked once (bounded)
        self._decimals: dict[str, Decimal | None] = {}
        self._scores: dict[str, tuple[str, Decimal | None] | None] = {}
        self._terms: dict[str, tuple[str, dt.date] | str] = {}

    # -- cells ----------------------------------------------------------------------------------

    def _id_number(self, id_type: str, raw: str) -> str | InvalidIdNumber:
        key = (id_type, raw)
        found = self._ids.get(key)
        if found is None:
            try:
                found = normalise_id_number(id_type, raw, today=self.today)
            except InvalidIdNumber as exc:
                found = exc
            if len(self._ids) >= 20_000:  # bounded: memory must not grow with the file
                self._ids.clear()
            self._ids[key] = found
        return found

    def _decimal(self, text: str) -> Decimal | None:
        try:
            return self._decimals[text]
        except KeyError:
            found = Decimal(text) if _DECIMAL.fullmatch(text) else None
            return _remember(self._decimals, text, found)

    def _score(self, text: str) -> tuple[str, Decimal | None] | None:
        try:
            return self._scores[text]
        except KeyError:
            return _remember(self._scores, text, self._score_of(text))

    def _score_of(self, text: str) -> tuple[str, Decimal | None] | None:
        if _SCORE.fullmatch(text):
            value = Decimal(text)
            return (text, value) if value <= _HUNDRED else None
        if is_grade_word(text):
            return grade_word(text), None
        return None

    def _term(self, text: str) -> tuple[str, dt.date] | str:
        try:
            return self._terms[text]
        except KeyError:
            return _remember(self._terms, text, self._term_of(text))

    def _term_of(self, text: str) -> tuple[str, dt.date] | str:
        m = _TERM.fullmatch(text)
        if not m:
            return "获得时间 must be YYYYMM (e.g. 202306)"
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            return "the month of 获得时间 must be 01–12"
        if year < EARLIEST_EARNED_ON.year or text > self._max_term:
            return "获得时间 must lie between 195001 and the current month"
        return text, dt.date(year, month, 1)

    def _code(self, list_name: str, text: str) -> str | None:
        return self._lists.get(list_name, {}).get(text)

    # -- the Shanghai template ------------------------------------------------------------------

    def shanghai(self, row_no: int, cells: tuple[str, ...] | Unreadable) -> Deposit | list[RowError]:
        if isinstance(cells, Unreadable):
            return [RowError(row_no, "*", "", cells.reason)]
        if len(cells) != 15:
            return [RowError(row_no, "*", f"{len(cells)} cells", "the row has more cells than the header")]
        if "\x00" in "".join(cells):  # PostgreSQL text cannot hold NUL: the cell is refused, not the job
            return [RowError(row_no, SHANGHAI_COLUMNS[i], mask_value(SHANGHAI_COLUMNS[i], c), _NUL)
                    for i, c in enumerate(cells) if "\x00" in c]
        (student_no, name, id_raw, programme, title, level, edu_type, credits, hours, score, term, grad_year,
         grad_status, grad_season, remark) = [c.strip() for c in cells]
        level, edu_type, credits, hours, score, term, grad_year, grad_status, grad_season = (
            c.translate(_FULL_WIDTH)
            for c in (level, edu_type, credits, hours, score, term, grad_year, grad_status, grad_season)
        )
        errors: list[RowError] = []

        def bad(column: str, value: str, reason: str) -> None:
            errors.append(RowError(row_no, column, mask_value(column, value), reason))

        id_type = "resident_id"
        if id_raw[:2] in ("81", "82", "83") and len(id_raw) == 18:
            id_type = "hmt_residence_permit"
        elif id_raw[:1] == "9" and len(id_raw) == 18:
            id_type = "foreign_permanent_residence"
        id_number = self._id_number(id_type, id_raw) if id_raw else None
        if id_number is None:
            bad("身份证号", id_raw, "required")
        elif isinstance(id_number, InvalidIdNumber):
            bad("身份证号", id_raw, id_number.message)
        if not name:
            bad("姓名", name, "required")
        elif len(name) > _MAX["name"]:
            bad("姓名", name, f"longer than {_MAX['name']} characters")
        if not title:
            bad("课程名称", title, "required")
        elif len(title) > _MAX["title"]:
            bad("课程名称", title, f"longer than {_MAX['title']} characters")
        if len(student_no) > _MAX["student_no"]:
            bad("学号", student_no, f"longer than {_MAX['student_no']} characters")
        if len(programme) > _MAX["programme"]:
            bad("专业名称", programme, f"longer than {_MAX['programme']} characters")
        if len(remark) > _MAX["remark"]:
            bad("备注", remark, f"longer than {_MAX['remark']} characters")
        level_code = self._code("education_level", level)
        if level_code is None:
            bad("教育层次代码", level, "required" if not level else
                f"not in code list education_level ({CODE_LIST_VERSION})")
        type_code = self._code("education_type", edu_type)
        if type_code is None:
            bad("教育类别代码", edu_type, "required" if not edu_type else
                f"not in code list education_type ({CODE_LIST_VERSION})")
        status_code = self._code("graduation_status", grad_status) if grad_status else None
        if grad_status and status_code is None:
            bad("毕业结业", grad_status, f"not in code list graduation_status ({CODE_LIST_VERSION})")
        season_code = self._code("graduation_season", grad_season) if grad_season else None
        if grad_season and season_code is None:
            bad("毕业季", grad_season, f"not in code list graduation_season ({CODE_LIST_VERSION})")
        credit_value = self._decimal(credits) if credits else None
        if credit_value is None:
            bad("学分", credits, "required" if not credits else
                "must be a number ≥ 0 with at most three decimals")
        hour_value = None
        if hours:
            hour_value = self._decimal(hours)
            if hour_value is None:
                bad("学时", hours, "must be a number ≥ 0 with at most three decimals")
        scored = self._score(score) if score else None
        if scored is None:
            bad("成绩", score, "required" if not score else
                "must be a number 0–100 (at most three decimals) or 优 良 中 及格 合格 不及格 不合格")
        termed = self._term(term) if term else "required"
        if isinstance(termed, str):
            bad("获得时间", term, termed)
        year = None
        if grad_year:
            m = _YEAR.fullmatch(grad_year)
            if not m:
                bad("届别", grad_year, "must be a year (e.g. 2024)")
            else:
                year = m[1]
        if errors:
            return errors
        return Deposit(
            row_no=row_no, id_type=id_type, id_number=id_number, name=name, course_key=title,  # type: ignore[arg-type]
            values={
                "type": "self_study_course" if type_code == "34" else "degree_course",
                "code": "",
                "title": title,
                "programme_name": programme or None,
                "credits": credit_value,
                "hours": hour_value,
                "score_text": scored[0],  # type: ignore[index]
                "score_value": scored[1],  # type: ignore[index]
                "level": None,
                "earned_on": termed[1],  # type: ignore[index]
                "term": term,
                "expires_on": None,
                "student_no": student_no or None,
                "education_level_code": level_code,
                "education_type_code": type_code,
                "graduation_year": year,
                "graduation_status": status_code,
                "graduation_season": season_code,
                "remark": mask_id_like(remark) if remark else None,
            },
        )

    # -- JSON Lines -----------------------------------------------------------------------------

    def jsonl(self, row_no: int, obj: Any) -> Deposit | list[RowError]:
        if isinstance(obj, Unreadable):
            return [RowError(row_no, "*", "", obj.reason)]
        if not isinstance(obj, dict):
            return [RowError(row_no, "*", "", "the line is not a JSON object")]
        errors: list[RowError] = []

        def bad(column: str, value: Any, reason: str) -> None:
            errors.append(RowError(row_no, column, mask_value(column, "" if value is None else str(value)), reason))

        def text(field: str, *, required: bool = False, limit: int = 200) -> str | None:
            value = obj.get(field)
            if value is None or value == "":
                if required:
                    bad(field, "", "required")
                return None
            if isinstance(value, bool) or not isinstance(value, str | int):
                bad(field, value, "must be a string")
                return None
            value = str(value).strip()
            if "\x00" in value:
                bad(field, value, _NUL)
                return None
            if len(value) > limit:
                bad(field, value, f"longer than {limit} characters")
                return None
            return value

        def number(field: str, *, required: bool) -> Decimal | None:
            value = obj.get(field)
            if value is None or value == "":
                if required:
                    bad(field, "", "required")
                return None
            if isinstance(value, bool) or not isinstance(value, str | int):
                bad(field, value, "write the number as a string (e.g. \"2.5\") so it stays exact")
                return None
            parsed = self._decimal(str(value).strip().translate(_FULL_WIDTH))
            if parsed is None:
                bad(field, value, "must be a number ≥ 0 with at most three decimals")
            return parsed

        def date(field: str, *, required: bool) -> dt.date | None:
            value = text(field, required=required, limit=10)
            if value is None:
                return None
            m = _DATE.fullmatch(value.translate(_FULL_WIDTH))
            try:
                if not m:
                    raise ValueError
                return dt.date(int(m[1]), int(m[2]), int(m[3] or 1))
            except ValueError:
                bad(field, value, "must be a date YYYY-MM-DD (or a month YYYY-MM)")
                return None

        kind = text("type", required=True, limit=30)
        if kind is not None and kind not in ACHIEVEMENT_TYPES:
            bad("type", kind, f"unknown type; known: {', '.join(sorted(ACHIEVEMENT_TYPES))}")
        issuer = text("issuer", limit=32)
        if issuer is not None and issuer != self.institution_code:
            bad("issuer", issuer, f"this import deposits for institution {self.institution_code} only")
        code = text("code", limit=_MAX["code"]) or ""
        title = text("title", required=True, limit=_MAX["title"])
        credits = number("credits", required=True)
        hours = number("hours", required=False)
        score_raw = text("score", limit=20)
        scored: tuple[str, Decimal | None] | None = (None, None)  # type: ignore[assignment]
        if score_raw is not None:
            scored = self._score(score_raw.translate(_FULL_WIDTH))
            if scored is None:
                bad("score", score_raw, "must be a number 0–100 (at most three decimals) or a grade word")
        level = text("level", limit=_MAX["level"])
        earned = date("earned", required=True)
        if earned is not None and not EARLIEST_EARNED_ON <= earned <= self.today:
            bad("earned", obj.get("earned"), "must lie between 1950-01-01 and today")
            earned = None
        expires = date("expires", required=False)
        id_type = text("id_type", limit=30) or "resident_id"
        if id_type not in ID_TYPES:
            bad("id_type", id_type, f"unknown ID type; known: {', '.join(ID_TYPES)}")
        id_raw = text("id_number", required=True, limit=40)
        id_number: str | InvalidIdNumber | None = None
        if id_raw is not None and id_type in ID_TYPES:
            id_number = self._id_number(id_type, id_raw)
            if isinstance(id_number, InvalidIdNumber):
                bad("id_number", id_raw, id_number.message)
        name = text("name", required=True, limit=_MAX["name"])
        student_no = text("student_no", limit=_MAX["student_no"])
        programme = text("programme", limit=_MAX["programme"])
        remark = text("remark", limit=_MAX["remark"])
        if errors:
            return errors
        term = f"{earned.year:04d}{earned.month:02d}"  # type: ignore[union-attr]
        return Deposit(
            row_no=row_no, id_type=id_type, id_number=id_number, name=name, course_key=code or title,  # type: ignore[arg-type]
            values={
                "type": kind, "code": code, "title": title, "programme_name": programme, "credits": credits,
                "hours": hours, "score_text": scored[0], "score_value": scored[1],  # type: ignore[index]
                "level": level, "earned_on": earned, "term": term, "expires_on": expires,
                "student_no": student_no, "education_level_code": None, "education_type_code": None,
                "graduation_year": None, "graduation_status": None, "graduation_season": None,
                "remark": mask_id_like(remark) if remark else None,
            },
        )

