"""PostgreSQL `COPY … FROM STDIN` in text format, preformatted: one `str` per batch instead of psycopg's
per-row `write_row` (which dumps every field through its adapters; profiled as the largest client cost of a
bulk import).

The text format (PostgreSQL docs, COPY "Text Format"): one line per row, fields separated by a tab, `\\N` for
NULL, and inside a value backslash, tab, newline and carriage return written as `\\\\`, `\\t`, `\\n`, `\\r`
(with those escaped, no other character is special, and no line can read as the end marker `\\.`). Callers
convert every value to its PostgreSQL input text first (`int` → decimal digits, dates and timestamps →
ISO 8601, bytea → `\\x` hex); `copy_text` escapes.

Escaping is decided per batch, not per field: the batch is joined without escaping, then its tabs, newlines
and backslashes are counted; when the counts are exactly those the format itself introduced (tabs between
fields, one newline per row, one backslash per `\\N`) and there is no carriage return, no value held a special
character and the text is used as it is. Otherwise the batch is built again escaping every value (rare: only
batches with such characters pay for it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["CHUNK", "NULL", "copy_rows", "copy_statement", "copy_text", "escape"]

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def escape(value: str | None) -> str:
    """One field in COPY text form: NULL as `\\N`, else the value with its special characters escaped."""
    return NULL if value is None else value.translate(_ESCAPES)


def copy_text(rows: Sequence[Sequence[str | None]]) -> str:
    """The rows (each a sequence of `str` values or None for NULL) as COPY text: lines ending in a newline."""
    nulls = 0
    tabs = 0
    lines = []
    for row in rows:
        nulls += row.count(None)
        tabs += len(row) - 1
        lines.append("\t".join([NULL if v is None else v for v in row]))
    lines.append("")
    text = "\n".join(lines)
    if (text.count("\\") == nulls and text.count("\t") == tabs and text.count("\n") == len(rows)
            and "\r" not in text):
        return text
    return "".join(["\t".join([escape(v) for v in row]) + "\n" for row in rows])


CHUNK = 1000  # rows per write: the server parses one chunk while the next is formatted


def copy_statement(table: str, columns: Sequence[str]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN"


def copy_rows(cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[str | None]],
              *, convert: Callable[[Sequence[Any]], list[list[str | None]]] | None = None) -> None:
    """COPY `rows` into `table (columns)` on a psycopg cursor, formatted (`convert`, then `copy_text`) and sent
    CHUNK rows at a time, so that formatting overlaps with the server's work instead of preceding it."""
    with cursor.copy(copy_statement(table, columns)) as copy:
        for i in range(0, len(rows), CHUNK):
            part = rows[i : i + CHUNK]
            copy.write(copy_text(convert(part) if convert is not None else part))
