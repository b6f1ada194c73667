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
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from node.deposits.schemas import EARLIEST_EARNED_ON
from node.errors import InvalidIdNumber
from node.imports.formats import SHANGHAI_COLUMNS, Unreadable
from node.models.types import ExactDecimal
from node.rules.grades import grade_word, is_grade_word
from node.security.freetext import mask_id_like
from node.security.idnumbers import ID_TYPES, mask_id_number, normalise_id_number

__all__ = [
    "ACHIEVEMENT_TYPES",
    "CODE_LIST_VERSION",
    "VALUE_COLUMNS",
    "Deposit",
    "RowError",
    "Validator",
    "Values",
    "decimal_text",
    "mask_value",
    "read_decimal",
    "stored_decimal",
    "stored_values",
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
_MAX_TITLE, _MAX_PROGRAMME, _MAX_STUDENT_NO, _MAX_REMARK, _MAX_NAME = (
    _MAX["title"], _MAX["programme"], _MAX["student_no"], _MAX["remark"], _MAX["name"])
# The template's coded and numeric cells, in the order a bad row's report lists them (after the texts).
_REPORT_ORDER = ("教育层次代码", "教育类别代码", "毕业结业", "毕业季", "学分", "学时", "成绩", "获得时间", "届别")


@dataclass(slots=True)
class RowError:
    row_no: int
    column: str
    value: str
    reason: str


class Values(NamedTuple):
    """A deposit's achievement columns, in their stored form: exact decimals as the thousandths `ExactDecimal`
    stores (int), dates as ISO text (what SQLite stores and PostgreSQL reads), text as it is. A tuple, so that
    the import's row is the ids and the dedupe key followed by these, without a copy per column."""

    type: str
    code: str
    title: str
    programme_name: str | None
    credits: int | None
    hours: int | None
    score_text: str | None
    score_value: int | None
    level: str | None
    earned_on: str | None
    term: str
    expires_on: str | None
    student_no: str | None
    education_level_code: str | None
    education_type_code: str | None
    graduation_year: str | None
    graduation_status: str | None
    graduation_season: str | None
    remark: str | None


VALUE_COLUMNS: tuple[str, ...] = Values._fields


class Deposit(NamedTuple):
    row_no: int
    id_type: str
    id_number: str  # normalised; never leaves the import's memory except encrypted
    name: str
    course_key: str  # what identifies the course for de-duplication: its code, else its title
    values: Values


# Built once per good row: `tuple.__new__` with the fields in order (NamedTuple's keyword constructor is a
# Python function; these are the C constructor).
_new_values = functools.partial(tuple.__new__, Values)
_new_deposit = functools.partial(tuple.__new__, Deposit)
_EXACT = ExactDecimal()


def stored_decimal(value: Decimal | None) -> int | None:
    """An exact decimal as the `ExactDecimal` column stores it (thousandths; more than three decimals raise)."""
    return _EXACT.process_bind_param(value, None)


def read_decimal(stored: int | None) -> Decimal | None:
    """A stored exact decimal as the column reads it back."""
    return _EXACT.process_result_value(stored, None)


@functools.lru_cache(maxsize=4096)
def decimal_text(stored: int | None) -> str | None:
    """The text a ledger event gives a stored decimal: `2500` → "2.5", `4000` → "4" (`format(d.normalize(), "f")`
    of the Decimal the column reads back)."""
    if stored is None:
        return None
    return format(read_decimal(stored).normalize(), "f")  # type: ignore[union-attr]


def stored_values(
    *, type: str, code: str, title: str, programme_name: str | None, credits: Decimal | None,
    hours: Decimal | None, score_text: str | None, score_value: Decimal | None, level: str | None,
    earned_on: dt.date | None, term: str, expires_on: dt.date | None, student_no: str | None,
    education_level_code: str | None, education_type_code: str | None, graduation_year: str | None,
    graduation_status: str | None, graduation_season: str | None, remark: str | None,
) -> Values:
    """`Values` from typed values (Decimal, date): the one conversion to the stored form, which the Shanghai
    template's cells go through once per distinct text."""
    return _new_values((
        type, code, title, programme_name, stored_decimal(credits), stored_decimal(hours), score_text,
        stored_decimal(score_value), level, None if earned_on is None else earned_on.isoformat(), term,
        None if expires_on is None else expires_on.isoformat(), student_no, education_level_code,
        education_type_code, graduation_year, graduation_status, graduation_season, remark,
    ))


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
_ID_MEMO_LIMIT = 20_000
_MISSING: Any = object()


def _remember(memo: dict[str, _T], text: str, value: _T, limit: int = _MEMO_LIMIT) -> _T:
    if len(memo) >= limit:
        memo.clear()
    memo[text] = value
    return value


@dataclass(frozen=True, slots=True)
class _Bad:
    """The outcome of a cell that is not valid: what the report shows of it (masked) and why."""

    shown: str
    reason: str


def _bad(column: str, value: str, reason: str) -> _Bad:
    return _Bad(mask_value(column, value), reason)


# The Shanghai template's cells whose outcome depends on the cell's text alone: each distinct text is checked
# once (bounded memo per column) and its outcome — the stored value, or a `_Bad` — looked up after that.
_MEMO_COLUMNS = ("身份证号", "教育层次代码", "教育类别代码", "学分", "学时", "成绩", "获得时间", "届别", "毕业结业",
                 "毕业季")


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
        # the Shanghai template: raw cell text → outcome, per column (in _MEMO_COLUMNS order)
        self._memos: tuple[dict[str, Any], ...] = tuple({} for _ in _MEMO_COLUMNS)
        self._checks: tuple[Any, ...] = (
            self._sh_id, functools.partial(self._sh_code, "教育层次代码", "education_level", True),
            functools.partial(self._sh_code, "教育类别代码", "education_type", True), self._sh_credits,
            self._sh_hours, self._sh_score, self._sh_term, self._sh_year,
            functools.partial(self._sh_code, "毕业结业", "graduation_status", False),
            functools.partial(self._sh_code, "毕业季", "graduation_season", False),
        )

    # -- cells ----------------------------------------------------------------------------------

    def _id_number(self, id_type: str, raw: str) -> str | InvalidIdNumber:
        key = (id_type, raw)
        found = self._ids.get(key)
        if found is None:
            try:
                found = normalise_id_number(id_type, raw, today=self.today)
            except InvalidIdNumber as exc:
                found = exc
            if len(self._ids) >= _ID_MEMO_LIMIT:  # bounded: memory must not grow with the file
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

    # -- the Shanghai template's cells, each from its raw text (memoised by `shanghai`) ----------

    def _sh_id(self, raw: str) -> tuple[str, str] | _Bad:
        """身份证号 → (ID type, normalised number). The type follows from the number: 18 characters beginning
        81/82/83 are HK/Macau/Taiwan residence permits, beginning 9 foreigner permanent-residence cards."""
        text = raw.strip()
        if not text:
            return _bad("身份证号", text, "required")
        id_type = "resident_id"
        if text[:2] in ("81", "82", "83") and len(text) == 18:
            id_type = "hmt_residence_permit"
        elif text[:1] == "9" and len(text) == 18:
            id_type = "foreign_permanent_residence"
        try:
            return id_type, normalise_id_number(id_type, text, today=self.today)
        except InvalidIdNumber as exc:
            return _bad("身份证号", text, exc.message)

    def _sh_code(self, column: str, list_name: str, required: bool, raw: str) -> str | None | _Bad:
        text = raw.strip().translate(_FULL_WIDTH)
        if not text:
            return _bad(column, text, "required") if required else None
        code = self._code(list_name, text)
        if code is None:
            return _bad(column, text, f"not in code list {list_name} ({CODE_LIST_VERSION})")
        return code

    def _sh_credits(self, raw: str) -> int | _Bad:
        text = raw.strip().translate(_FULL_WIDTH)
        value = self._decimal(text) if text else None
        if value is None:
            return _bad("学分", text, "required" if not text else "must be a number ≥ 0 with at most three decimals")
        return stored_decimal(value)  # type: ignore[return-value]

    def _sh_hours(self, raw: str) -> int | None | _Bad:
        text = raw.strip().translate(_FULL_WIDTH)
        if not text:
            return None
        value = self._decimal(text)
        if value is None:
            return _bad("学时", text, "must be a number ≥ 0 with at most three decimals")
        return stored_decimal(value)

    def _sh_score(self, raw: str) -> tuple[str, int | None] | _Bad:
        text = raw.strip().translate(_FULL_WIDTH)
        scored = self._score(text) if text else None
        if scored is None:
            return _bad("成绩", text, "required" if not text else
                        "must be a number 0–100 (at most three decimals) or 优 良 中 及格 合格 不及格 不合格")
        return scored[0], stored_decimal(scored[1])

    def _sh_term(self, raw: str) -> tuple[str, str] | _Bad:
        """获得时间 → (term, earned_on as ISO text)."""
        text = raw.strip().translate(_FULL_WIDTH)
        termed = self._term(text) if text else "required"
        if isinstance(termed, str):
            return _bad("获得时间", text, termed)
        return termed[0], termed[1].isoformat()

    def _sh_year(self, raw: str) -> str | None | _Bad:
        text = raw.strip().translate(_FULL_WIDTH)
        if not text:
            return None
        m = _YEAR.fullmatch(text)
        return m[1] if m else _bad("届别", text, "must be a year (e.g. 2024)")

    def _fill(self, i: int, raw: str) -> Any:
        return _remember(self._memos[i], raw, self._checks[i](raw),
                         _ID_MEMO_LIMIT if i == 0 else _MEMO_LIMIT)

    # -- the Shanghai template ------------------------------------------------------------------

    def shanghai(self, row_no: int, cells: tuple[str, ...] | Unreadable) -> Deposit | list[RowError]:
        """One row of the template: a `Deposit`, or every problem of the row (in the template's reading order:
        identity, texts, codes, numbers, dates).

        This runs once per row of files of millions of rows, so it is written for that: the ten cells whose
        outcome depends on their text alone are looked up in a memo per column (filled by `_sh_*` once per
        distinct text); the five free-text cells are stripped and measured; the row is built as tuples."""
        if isinstance(cells, Unreadable):
            return [RowError(row_no, "*", "", cells.reason)]
        if len(cells) != 15:
            return [RowError(row_no, "*", f"{len(cells)} cells", "the row has more cells than the header")]
        if "\x00" in "".join(cells):  # PostgreSQL text cannot hold NUL: the cell is refused, not the job
            return [RowError(row_no, SHANGHAI_COLUMNS[i], mask_value(SHANGHAI_COLUMNS[i], c), _NUL)
                    for i, c in enumerate(cells) if "\x00" in c]
        (student_no, name, id_raw, programme, title, level, edu_type, credits, hours, score, term, grad_year,
         grad_status, grad_season, remark) = cells
        m_id, m_level, m_type, m_credits, m_hours, m_score, m_term, m_year, m_status, m_season = self._memos
        if (ident := m_id.get(id_raw, _MISSING)) is _MISSING:
            ident = self._fill(0, id_raw)
        if (level_code := m_level.get(level, _MISSING)) is _MISSING:
            level_code = self._fill(1, level)
        if (type_code := m_type.get(edu_type, _MISSING)) is _MISSING:
            type_code = self._fill(2, edu_type)
        if (credit_value := m_credits.get(credits, _MISSING)) is _MISSING:
            credit_value = self._fill(3, credits)
        if (hour_value := m_hours.get(hours, _MISSING)) is _MISSING:
            hour_value = self._fill(4, hours)
        if (scored := m_score.get(score, _MISSING)) is _MISSING:
            scored = self._fill(5, score)
        if (termed := m_term.get(term, _MISSING)) is _MISSING:
            termed = self._fill(6, term)
        if (year := m_year.get(grad_year, _MISSING)) is _MISSING:
            year = self._fill(7, grad_year)
        if (status_code := m_status.get(grad_status, _MISSING)) is _MISSING:
            status_code = self._fill(8, grad_status)
        if (season_code := m_season.get(grad_season, _MISSING)) is _MISSING:
            season_code = self._fill(9, grad_season)
        name, title = name.strip(), title.strip()
        student_no, programme, remark = student_no.strip(), programme.strip(), remark.strip()
        if (not name or not title or len(name) > _MAX_NAME or len(title) > _MAX_TITLE
                or len(student_no) > _MAX_STUDENT_NO or len(programme) > _MAX_PROGRAMME or len(remark) > _MAX_REMARK
                or _Bad in (type(ident), type(level_code), type(type_code), type(credit_value), type(hour_value),
                            type(scored), type(termed), type(year), type(status_code), type(season_code))):
            return self._shanghai_errors(row_no, student_no, name, programme, title, remark, (
                ident, level_code, type_code, status_code, season_code, credit_value, hour_value, scored, termed,
                year))
        id_type, id_number = ident
        return _new_deposit((row_no, id_type, id_number, name, title, _new_values((
            "self_study_course" if type_code == "34" else "degree_course", "", title, programme or None,
            credit_value, hour_value, scored[0], scored[1], None, termed[1], termed[0], None, student_no or None,
            level_code, type_code, year, status_code, season_code, mask_id_like(remark) if remark else None,
        ))))

    def _shanghai_errors(self, row_no: int, student_no: str, name: str, programme: str, title: str, remark: str,
                         outcomes: tuple[Any, ...]) -> list[RowError]:
        """Every problem of a bad row, one `RowError` per cell (`outcomes`: the memoised cells' outcomes, in
        report order after the ID number)."""
        errors: list[RowError] = []

        def bad(column: str, value: str, reason: str) -> None:
            errors.append(RowError(row_no, column, mask_value(column, value), reason))

        ident, *coded = outcomes
        if isinstance(ident, _Bad):
            errors.append(RowError(row_no, "身份证号", ident.shown, ident.reason))
        if not name:
            bad("姓名", name, "required")
        elif len(name) > _MAX_NAME:
            bad("姓名", name, f"longer than {_MAX_NAME} characters")
        if not title:
            bad("课程名称", title, "required")
        elif len(title) > _MAX_TITLE:
            bad("课程名称", title, f"longer than {_MAX_TITLE} characters")
        if len(student_no) > _MAX_STUDENT_NO:
            bad("学号", student_no, f"longer than {_MAX_STUDENT_NO} characters")
        if len(programme) > _MAX_PROGRAMME:
            bad("专业名称", programme, f"longer than {_MAX_PROGRAMME} characters")
        if len(remark) > _MAX_REMARK:
            bad("备注", remark, f"longer than {_MAX_REMARK} characters")
        for column, outcome in zip(_REPORT_ORDER, coded, strict=True):
            if isinstance(outcome, _Bad):
                errors.append(RowError(row_no, column, outcome.shown, outcome.reason))
        return errors

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
        return _new_deposit((row_no, id_type, id_number, name, code or title, stored_values(  # type: ignore[arg-type]
            type=kind, code=code, title=title, programme_name=programme, credits=credits,  # type: ignore[arg-type]
            hours=hours, score_text=scored[0], score_value=scored[1], level=level,  # type: ignore[index]
            earned_on=earned, term=term, expires_on=expires, student_no=student_no, education_level_code=None,
            education_type_code=None, graduation_year=None, graduation_status=None, graduation_season=None,
            remark=mask_id_like(remark) if remark else None,
        )))
