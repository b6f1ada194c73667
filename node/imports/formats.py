"""Reading bulk-deposit files as streams of records.

Three formats (docs/imports.md):

- ``shanghai-csv``: the Shanghai credit bank's university template, 15 Chinese-headed columns, CSV in UTF-8
  (with or without BOM) or GB18030 (detected: a file that is not valid UTF-8 is read as GB18030);
- ``shanghai-xlsx``: the same template as an Excel workbook (first sheet), read with openpyxl in read-only
  streaming mode;
- ``jsonl``: JSON Lines in the node's own schema, one achievement per line.

Every reader yields ``(row_no, record)`` for each non-blank data record, where ``row_no`` is the row as a
spreadsheet or editor shows it (the header is row 1; in JSON Lines, the line number), and ``record`` is a tuple of
cell texts in template column order (tabular formats) or the decoded object (JSON Lines). The sequence is
deterministic, so a resumed job skips exactly the records it has committed. Memory stays flat: nothing is read
ahead beyond the current row.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from node.errors import BadRequest

__all__ = [
    "FORMATS",
    "SHANGHAI_COLUMNS",
    "HeaderError",
    "check_header",
    "detect_encoding",
    "format_for",
    "iter_records",
    "read_header_check",
]

FORMATS = ("shanghai-csv", "shanghai-xlsx", "jsonl")
_ALIASES = {"csv": "shanghai-csv", "xlsx": "shanghai-xlsx", "jsonl": "jsonl", "ndjson": "jsonl"}

# The Shanghai template, in its own order (BRIEF §3).
SHANGHAI_COLUMNS: tuple[str, ...] = (
    "学号", "姓名", "身份证号", "专业名称", "课程名称", "教育层次代码", "教育类别代码", "学分", "学时", "成绩",
    "获得时间", "届别", "毕业结业", "毕业季", "备注",
)
_COLUMN_INDEX = {name: i for i, name in enumerate(SHANGHAI_COLUMNS)}
# "获得时间(YYYYMM)", "获得时间（YYYYMM）" and surrounding blanks name the same column.
_HEADER_NOISE = re.compile(r"[\s\u3000]+|[(（][^)）]*[)）]$")


class HeaderError(BadRequest):
    code = "unknown_header"


def format_for(filename: str, requested: str | None) -> str:
    """The format named by the request, or the one the file name's extension implies."""
    if requested:
        fmt = _ALIASES.get(requested.strip().lower(), requested.strip().lower())
        if fmt not in FORMATS:
            raise BadRequest(f"unknown format {requested!r}; use one of: {', '.join(FORMATS)}",
                             code="unknown_format")
        return fmt
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix in _ALIASES:
        return _ALIASES[suffix]
    raise BadRequest("cannot tell the format from the file name; pass format= (shanghai-csv, shanghai-xlsx or "
                     "jsonl)", code="unknown_format")


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` (BOM), ``utf-8``, or ``gb18030`` when the bytes are not valid UTF-8 (one streaming pass)."""
    with path.open("rb") as fh:
        head = fh.read(3)
        if head == codecs.BOM_UTF8:
            return "utf-8-sig"
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            decoder.decode(head)
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8"


def _clean_header(cell: Any) -> str:
    return _HEADER_NOISE.sub("", "" if cell is None else str(cell)).lstrip("\ufeff")


def check_header(header: list[Any]) -> list[int]:
    """Map the file's header onto the template: for each template column, its position in the file.
    Raises HeaderError naming unknown and missing columns."""
    names = [_clean_header(c) for c in header]
    while names and not names[-1]:  # trailing empty cells (spreadsheets often have them)
        names.pop()
    unknown = [n or "(empty)" for n in names if n not in _COLUMN_INDEX]
    missing = [c for c in SHANGHAI_COLUMNS if c not in names]
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if unknown or missing or repeated:
        parts = []
        if unknown:
            parts.append(f"unknown column(s): {', '.join(unknown)}")
        if missing:
            parts.append(f"missing column(s): {', '.join(missing)}")
        if repeated:
            parts.append(f"repeated column(s): {', '.join(repeated)}")
        raise HeaderError(
            "the header is not the Shanghai bulk template (" + "; ".join(parts) + "); expected the 15 columns "
            + " ".join(SHANGHAI_COLUMNS),
            detail={"unknown": unknown, "missing": missing, "repeated": repeated},
        )
    return [names.index(c) for c in SHANGHAI_COLUMNS]


def _is_identity(positions: list[int]) -> bool:
    return positions == list(range(len(SHANGHAI_COLUMNS)))


def _iter_csv(path: Path, encoding: str) -> Iterator[tuple[int, tuple[str, ...]]]:
    with path.open("r", encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise HeaderError("the file is empty: no header row")
        positions = check_header(header)
        width = len(SHANGHAI_COLUMNS)
        identity = _is_identity(positions)
        for cells in reader:
            if not cells or not any(cells):
                continue
            row_no = reader.line_num  # physical line of the record's end; equals the row for one-line records
            if identity:
                n = len(cells)
                if n < width:
                    cells += [""] * (width - n)
                elif n > width and not any(cells[width:]):
                    del cells[width:]
                yield row_no, tuple(cells)  # a longer tuple is rejected by validation
            else:
                n = len(cells)
                yield row_no, tuple(cells[p] if p < n else "" for p in positions)


def _xlsx_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return str(Decimal(repr(value)))
    if isinstance(value, dt.datetime | dt.date):
        return f"{value.year:04d}{value.month:02d}"  # a date typed into 获得时间
    return str(value)


def _iter_xlsx(path: Path) -> Iterator[tuple[int, tuple[str, ...]]]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        ws = wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise HeaderError("the workbook's first sheet is empty: no header row")
        positions = check_header(list(header))
        row_no = 1
        for values in rows:
            row_no += 1
            if not values or all(v is None or v == "" for v in values):
                continue
            n = len(values)
            yield row_no, tuple(_xlsx_text(values[p]) if p < n else "" for p in positions)
    finally:
        wb.close()


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line_no == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[3:]
            if not line.strip():
                continue
            try:
                yield line_no, orjson.loads(line)
            except orjson.JSONDecodeError:
                yield line_no, _BAD_JSON


class _BadJson:
    """Marks a line that is not JSON (reported as a rejected row, not a failed job)."""


_BAD_JSON = _BadJson()


def iter_records(path: Path, fmt: str, encoding: str | None = None) -> Iterator[tuple[int, Any]]:
    if fmt == "shanghai-csv":
        return _iter_csv(path, encoding or detect_encoding(path))
    if fmt == "shanghai-xlsx":
        return _iter_xlsx(path)
    if fmt == "jsonl":
        return _iter_jsonl(path)
    raise BadRequest(f"unknown format {fmt!r}", code="unknown_format")


def read_header_check(path: Path, fmt: str, encoding: str | None) -> None:
    """Fail fast (before a job is queued) on an unreadable file or an unknown header."""
    if fmt == "jsonl":
        return
    try:
        next(iter(iter_records(path, fmt, encoding)), None)
    except HeaderError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means the same to the uploader
        raise BadRequest(f"the file cannot be read as {fmt}: {type(exc).__name__}", code="unreadable_file") \
            from None
