"""A report as the education commission receives it: a header block (region, period, generated at) and one
table after another (CSV) or one sheet per table (XLSX, openpyxl write-only). Texts from the portal's catalogues,
in Chinese or English."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from typing import Any

from node.portal.i18n import translator
from node.stats.service import SUPPRESSED, Report, Table

__all__ = ["LABEL_KEYS", "label_text", "report_csv", "report_xlsx", "sheet_title"]

# label columns whose codes have a text in the catalogues: column -> key prefix
LABEL_KEYS = {"type": "type.", "source": "stats.source.", "mode": "stats.mode.", "stage": "stats.stage.",
              "target_kind": "stats.kind.", "queue": "stats.queue."}


def label_text(t: Any, column: str, value: Any) -> Any:
    """A code's text in the catalogue (a category's name, a source, a 双证融通 mode…), else the code itself."""
    prefix = LABEL_KEYS.get(column)
    if prefix and isinstance(value, str) and t.has(prefix + value):
        return t.gettext(prefix + value)
    return value


def _header(report: Report, t: Any, region: str, now: dt.datetime) -> list[list[str]]:
    rows = [[t.gettext("stats.export.title_public" if report.public else "stats.export.title")],
            [t.gettext("stats.export.region"), region],
            [t.gettext("stats.export.period"), f"{report.start.isoformat()} – {report.end.isoformat()}"],
            [t.gettext("stats.export.generated_at"), now.isoformat(timespec="seconds")],
            [t.gettext("stats.export.counted"), f"{report.counted_to} / {report.ledger_size}"]]
    if report.public:
        rows.append([t.gettext("stats.export.min_group"), str(report.min_group)])
    return rows


def _cell(value: Any, t: Any, *, label: bool = False) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and value != "-":
        return "'" + value  # never a formula in a spreadsheet (CSV / XLSX injection)
    if value == SUPPRESSED:
        return t.gettext("stats.suppressed")
    if value is None:
        return ""
    if label and value == "total":
        return t.gettext("stats.total")
    return value


def _table_rows(table: Table, t: Any, *, text: bool) -> list[list[Any]]:
    out = [[t.gettext(f"stats.col.{c}") for c in table.columns]]
    for row in [*table.rows, *([table.total] if table.total else [])]:
        cells = [_cell(label_text(t, table.columns[i], v) if i < table.labels else v, t, label=i < table.labels)
                 for i, v in enumerate(row)]
        if text:
            cells = [str(c) if isinstance(c, Decimal) else c for c in cells]
        out.append(cells)
    return out


def report_csv(report: Report, *, lang: str, region: str, now: dt.datetime) -> str:
    t = translator(lang)
    buf = io.StringIO()
    w = csv.writer(buf)
    for row in _header(report, t, region, now):
        w.writerow(row)
    for table in report.tables:
        w.writerow([])
        w.writerow([t.gettext(f"stats.table.{table.key}")])
        w.writerows(_table_rows(table, t, text=True))
    return "\ufeff" + buf.getvalue()  # a BOM: spreadsheet programs then read the Chinese as UTF-8


def sheet_title(text: str) -> str:
    bad = '[]:*?/\\'
    return "".join("_" if ch in bad else ch for ch in text)[:31] or "sheet"


def report_xlsx(report: Report, *, lang: str, region: str, now: dt.datetime) -> bytes:
    from openpyxl import Workbook

    t = translator(lang)
    wb = Workbook(write_only=True)
    header = _header(report, t, region, now)
    used: set[str] = set()
    for table in report.tables:
        title = sheet_title(t.gettext(f"stats.table.{table.key}"))
        while title in used:
            title = sheet_title(title[:28] + f"_{len(used)}")
        used.add(title)
        ws = wb.create_sheet(title)
        for row in header:
            ws.append(row)
        ws.append([])
        ws.append([t.gettext(f"stats.table.{table.key}")])
        for row in _table_rows(table, t, text=False):
            ws.append([float(c) if isinstance(c, Decimal) else c for c in row])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
