"""Cells the node writes into CSV or XLSX files that people open in a spreadsheet program.

A cell starting with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some programs skip before
looking for one) is read as a formula: ``=HYPERLINK("http://…", "点击")`` in a rejected-row report would become a
live link, ``=1+2`` a computation (CSV/formula injection, OWASP). Every such text cell is written with a leading
apostrophe, which spreadsheet programs show as text; plain numbers (``-1``, ``+2.5``) are left as they are.
Every CSV the node writes goes through `csv_writer`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["csv_writer", "safe_cell"]

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def safe_cell(value: Any) -> Any:
    """A cell value that no spreadsheet program evaluates: text starting with a formula trigger gets a leading
    apostrophe; numbers, None and other text are returned unchanged."""
    if isinstance(value, str) and value.startswith(_TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class _SafeWriter:
    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(fh: Any, **kwargs: Any) -> _SafeWriter:
    """`csv.writer(fh, **kwargs)` whose every text cell goes through `safe_cell`."""
    return _SafeWriter(csv.writer(fh, **kwargs))
