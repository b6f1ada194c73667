"""Reading bulk-deposit files as streams of records.

Three formats (docs/imports.md):

- ``shanghai-csv``: the Shanghai credit bank's university template, 15 Chinese-headed columns, CSV in UTF-8
  (with or without BOM) or GB18030 (detected: a file that is not valid UTF-8 is read as GB18030);
- ``shanghai-xlsx``: the same template as an Excel workbook (first sheet), inspected for decompression bombs
  and then read with openpyxl in read-only streaming mode (`node.imports.xlsx`);
- ``jsonl``: JSON Lines in the node's own schema, one achievement per line.

Every reader yields ``(row_no, record)`` for each non-blank data record, where ``row_no`` is the row as a
spreadsheet or editor shows it (the header is row 1; in JSON Lines, the line number), and ``record`` is a tuple of
cell texts in template column order (tabular formats), the decoded object (JSON Lines), or an `Unreadable`
marker for a record that cannot be read (a field over the CSV field limit, an over-long line, a line that is not
JSON): validation reports that record as rejected and the job goes on. The sequence is deterministic, so a resumed
job skips exactly the records it has committed. Memory stays flat: nothing is read ahead beyond the current
record, and no line longer than the limits below is ever held whole.

A file is given as a `Source`: a path, or a callable that opens a fresh binary stream (stored uploads are
encrypted at rest and read through `node.security.filecrypt`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from config.settings import ImportSettings
from node.errors import BadRequest

__all__ = [
    "FORMATS",
    "SHANGHAI_COLUMNS",
    "HeaderError",
    "Source",
    "Unreadable",
    "check_header",
    "detect_encoding",
    "format_for",
    "iter_records",
    "open_source",
    "read_header_check",
    "scan_text",
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
_LISTED = 20  # names listed in a header error (the rest are counted)

Source = Path | Callable[[], BinaryIO]


class HeaderError(BadRequest):
    code = "unknown_header"


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record the reader could not read; validation rejects it with `reason` (column ``*``)."""

    reason: str


def open_source(source: Source) -> BinaryIO:
    return source.open("rb") if isinstance(source, Path) else source()


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


def scan_text(source: Source) -> tuple[str, int]:
    """One streaming pass over a text file: its encoding — ``utf-8-sig`` (BOM), ``utf-8``, or ``gb18030`` when
    the bytes are not valid UTF-8 — and its number of lines (newlines, plus one for a last line without one)."""
    encoding = "utf-8"
    lines = 0
    last = b"\n"
    with open_source(source) as fh:
        head = fh.read(3)
        if head == codecs.BOM_UTF8:
            encoding = "utf-8-sig"
        decoder = codecs.getincrementaldecoder("utf-8")() if encoding == "utf-8" else None
        chunk = head
        while chunk:
            lines += chunk.count(b"\n")
            last = chunk
            if decoder is not None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    encoding, decoder = "gb18030", None
            chunk = fh.read(1 << 20)
        if decoder is not None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                encoding = "gb18030"
    if last and not last.endswith(b"\n"):
        lines += 1
    return encoding, lines


def detect_encoding(source: Source) -> str:
    """``utf-8-sig`` (BOM), ``utf-8``, or ``gb18030`` when the bytes are not valid UTF-8 (one streaming pass)."""
    return scan_text(source)[0]


def _clean_header(cell: Any) -> str:
    return _HEADER_NOISE.sub("", "" if cell is None else str(cell)).lstrip("\ufeff")


def _listed(names: list[str]) -> str:
    more = len(names) - _LISTED
    return ", ".join(names[:_LISTED]) + (f" and {more} more" if more > 0 else "")


def check_header(header: list[Any], *, max_columns: int = ImportSettings().max_header_columns) -> list[int]:
    """Map the file's header onto the template: for each template column, its position in the file.
    Raises HeaderError naming unknown, missing and repeated columns (linear in the header's length; a header
    wider than `max_columns` is refused before its names are even cleaned)."""
    width = len(header)
    while width and (header[width - 1] is None or not str(header[width - 1]).strip()):
        width -= 1  # trailing empty cells (spreadsheets often have them)
    if width > max_columns:
        raise HeaderError(
            f"the header has {width} columns; the Shanghai template has {len(SHANGHAI_COLUMNS)} "
            f"(at most {max_columns} accepted)",
            detail={"columns": width, "max_columns": max_columns},
        )
    names = [_clean_header(c) for c in header[:width]]
    counts = Counter(names)
    unknown = [n or "(empty)" for n in names if n not in _COLUMN_INDEX]
    missing = [c for c in SHANGHAI_COLUMNS if c not in counts]
    repeated = sorted(n for n, k in counts.items() if n and k > 1)
    if unknown or missing or repeated:
        parts = []
        if unknown:
            parts.append(f"unknown column(s): {_listed(unknown)}")
        if missing:
            parts.append(f"missing column(s): {', '.join(missing)}")
        if repeated:
            parts.append(f"repeated column(s): {_listed(repeated)}")
        raise HeaderError(
            "the header is not the Shanghai bulk template (" + "; ".join(parts) + "); expected the 15 columns "
            + " ".join(SHANGHAI_COLUMNS),
            detail={"unknown": unknown[:_LISTED], "missing": missing, "repeated": repeated[:_LISTED]},
        )
    first = {}
    for i, n in enumerate(names):
        first.setdefault(n, i)
    return [first[c] for c in SHANGHAI_COLUMNS]


def _is_identity(positions: list[int]) -> bool:
    return positions == list(range(len(SHANGHAI_COLUMNS)))


# -- CSV -------------------------------------------------------------------------------------------


class _LineTooLong(Exception):
    def __init__(self, piece: str) -> None:
        self.piece = piece


class _LineFeed:
    """The lines of a text stream for `csv.reader`, each at most `cap` characters, counted; it keeps the lines
    of the record being read, so a record the reader gives up on can be skipped exactly (`_skip_record`)."""

    def __init__(self, fh: io.TextIOBase, cap: int) -> None:
        self.fh = fh
        self.cap = cap
        self.lines = 0
        self.record: list[str] = []

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        piece = self.fh.readline(self.cap)
        if not piece:
            raise StopIteration
        if len(piece) >= self.cap and not piece.endswith(("\n", "\r")):
            raise _LineTooLong(piece)
        self.lines += 1
        self.record.append(piece)
        return piece


# States of the excel dialect's parser that matter for finding where a record ends (Modules/_csv.c, non-strict,
# quotechar '"', doublequote, delimiter ','): at a field's start, inside an unquoted field, inside a quoted
# field, just after a quote inside a quoted field.
_START, _FIELD, _QUOTED, _QUOTE_IN_QUOTED = range(4)


def _advance(state: int, text: str) -> int:
    """The parser's state after `text`, a piece of one line (no line end inside it)."""
    i, n = 0, len(text)
    while i < n:
        if state == _START:
            if text[i] == '"':
                state, i = _QUOTED, i + 1
            else:
                state = _FIELD
        elif state == _FIELD:
            j = text.find(",", i)
            if j < 0:
                return _FIELD
            state, i = _START, j + 1
        elif state == _QUOTED:
            j = text.find('"', i)
            if j < 0:
                return _QUOTED
            state, i = _QUOTE_IN_QUOTED, j + 1
        else:  # _QUOTE_IN_QUOTED
            c = text[i]
            state = _QUOTED if c == '"' else _START if c == "," else _FIELD
            i += 1
    return state


def _end_of_line(state: int) -> int:
    """A line end outside quotes ends the record (back to _START); inside a quoted field it is data."""
    return _QUOTED if state == _QUOTED else _START


def _skip_record(feed: _LineFeed, partial: str | None) -> None:
    """Consume the rest of the record the reader gave up on, exactly as the csv parser would delimit it: replay
    the record's lines read so far, then read on (in bounded pieces, never holding a long line whole) until a
    line ends outside a quoted field."""
    state = _START
    for line in feed.record:
        state = _end_of_line(_advance(state, line.rstrip("\r\n")))
    if partial is not None:
        state = _advance(state, partial)
        while True:  # the rest of the over-long line
            piece = feed.fh.readline(feed.cap)
            if not piece:
                break
            if piece.endswith(("\n", "\r")):
                state = _advance(state, piece.rstrip("\r\n"))
                break
            state = _advance(state, piece)
        feed.lines += 1
        state = _end_of_line(state)
    while state == _QUOTED:
        piece = feed.fh.readline(feed.cap)
        if not piece:
            break
        state = _advance(state, piece.rstrip("\r\n"))
        if piece.endswith(("\n", "\r")):
            feed.lines += 1
            state = _end_of_line(state)
    feed.record.clear()


def _iter_csv(source: Source, encoding: str, limits: ImportSettings) -> Iterator[tuple[int, Any]]:
    field_limit = csv.field_size_limit()
    # a record of 15 fields within the field limit always fits; a longer line is rejected unread
    line_cap = 16 * (field_limit + 2)
    with open_source(source) as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as fh:
        feed = _LineFeed(fh, limits.max_header_chars + 1)
        reader = csv.reader(feed)
        try:
            header = next(reader, None)
        except (_LineTooLong, csv.Error):
            raise HeaderError(f"the header row is longer than {limits.max_header_chars} characters",
                              detail={"max_header_chars": limits.max_header_chars}) from None
        if header is None:
            raise HeaderError("the file is empty: no header row")
        positions = check_header(header, max_columns=limits.max_header_columns)
        feed.cap = line_cap
        feed.record.clear()
        width = len(SHANGHAI_COLUMNS)
        identity = _is_identity(positions)
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                _skip_record(feed, None)
                yield feed.lines, Unreadable(f"the row cannot be read as CSV: {exc}")
                continue
            except _LineTooLong as exc:
                _skip_record(feed, exc.piece)
                yield feed.lines, Unreadable(f"the row is longer than {line_cap} characters")
                continue
            feed.record.clear()
            if not cells or not any(cells):
                continue
            row_no = feed.lines  # physical line of the record's end; equals the row for one-line records
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


# -- JSON Lines ------------------------------------------------------------------------------------


def _iter_jsonl(source: Source, limits: ImportSettings) -> Iterator[tuple[int, Any]]:
    cap = limits.max_jsonl_line_bytes
    with open_source(source) as raw:
        fh = raw if isinstance(raw, io.BufferedIOBase) else io.BufferedReader(raw)  # type: ignore[arg-type]
        line_no = 0
        while True:
            line = fh.readline(cap + 1)
            if not line:
                return
            line_no += 1
            if len(line) > cap and not line.endswith(b"\n"):
                while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass
                yield line_no, Unreadable(f"the line is longer than {cap} bytes")
                continue
            if line_no == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[3:]
            if not line.strip():
                continue
            try:
                yield line_no, orjson.loads(line)
            except orjson.JSONDecodeError:
                yield line_no, _BAD_JSON


_BAD_JSON = Unreadable("the line is not a JSON object")


def iter_records(source: Source, fmt: str, encoding: str | None = None,
                 limits: ImportSettings | None = None) -> Iterator[tuple[int, Any]]:
    limits = limits or ImportSettings()
    if fmt == "shanghai-csv":
        return _iter_csv(source, encoding or detect_encoding(source), limits)
    if fmt == "shanghai-xlsx":
        from node.imports.xlsx import iter_xlsx

        return iter_xlsx(source, limits)
    if fmt == "jsonl":
        return _iter_jsonl(source, limits)
    raise BadRequest(f"unknown format {fmt!r}", code="unknown_format")


def read_header_check(source: Source, fmt: str, encoding: str | None,
                      limits: ImportSettings | None = None) -> int | None:
    """Fail fast (before a job is queued) on an unreadable file, a decompression bomb or an unknown header. For
    an XLSX, also its declared data rows (from the same opening of the workbook); None otherwise.

    Runs in the request's worker thread (the upload route is a plain `def`), never on the event loop."""
    if fmt == "jsonl":
        return None
    limits = limits or ImportSettings()
    records = None
    try:
        if fmt == "shanghai-xlsx":
            from node.imports.xlsx import check_upload

            return check_upload(source, limits)
        records = iter_records(source, fmt, encoding, limits)
        next(iter(records), None)
        return None
    except (HeaderError, BadRequest):
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means the same to the uploader
        raise BadRequest(f"the file cannot be read as {fmt}: {type(exc).__name__}", code="unreadable_file") \
            from None
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
