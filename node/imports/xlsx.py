"""XLSX uploads: inspected as a zip archive before openpyxl parses anything, then streamed row by row.

An XLSX file is a zip of XML parts. openpyxl in read-only mode streams the worksheets, but loads the shared
strings into one list and parses every other part (workbook, styles, relationships, chart sheets...) as a whole
tree, so a few hundred kilobytes can expand to gigabytes in memory (issue 11 item 3). `inspect_xlsx` refuses,
with `400 unreadable_file` and the reason in `detail`, before any part is parsed:

- a file that is not a zip archive, or one with more than `xlsx_max_members` members;
- member names that are absolute, contain ``..``, backslashes or NUL, or repeat;
- nested archives (a member that is itself a zip, gzip, 7z or rar);
- a declared uncompressed total above `xlsx_max_uncompressed_bytes`, or a member over 1 MiB expanding more than
  `xlsx_max_ratio` times (zipfile never yields more than a member's declared size: a lying size fails its CRC);
- any part other than a worksheet larger than `xlsx_max_part_bytes` (those are parsed whole), chart sheets;
- shared strings larger than `xlsx_max_shared_strings_bytes`, or with more than `xlsx_max_shared_strings` items
  (counted by streaming the part through expat, nothing kept);
- a DTD in any part the node parses itself (openpyxl parses through defusedxml, which refuses them too).

Memory stays flat during the inspection: parts are read in 64 KiB chunks.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from xml.parsers import expat

from config.settings import ImportSettings
from node.errors import BadRequest
from node.imports.formats import HeaderError, Source, check_header, open_source

__all__ = ["check_upload", "inspect_xlsx", "iter_xlsx"]

_CHUNK = 64 * 1024
_RATIO_FLOOR = 1 << 20  # members smaller than this may compress as well as they like
_NESTED = (b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!")
_CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_SHARED_STRINGS = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
# parts openpyxl reads from fixed paths as whole trees, whatever the content types say
_FIXED = frozenset({"[Content_Types].xml", "xl/styles.xml", "docProps/core.xml", "docProps/app.xml",
                    "docProps/custom.xml", "xl/theme/theme1.xml", "xl/workbook.xml"})


class _Refused(Exception):
    def __init__(self, reason: str, **detail: Any) -> None:
        self.reason = reason
        self.detail = detail


def _refuse(reason: str, **detail: Any) -> BadRequest:
    return BadRequest(f"the file cannot be read as shanghai-xlsx: {reason}", code="unreadable_file",
                      detail={"reason": reason, **detail})


def _safe_name(name: str) -> bool:
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return False
    return ".." not in name.split("/")


def _expat(*, on_start: Any = None) -> Any:
    parser = expat.ParserCreate(namespace_separator=" ")

    def no_dtd(*_args: Any) -> None:
        raise _Refused("the part declares a DTD")

    parser.StartDoctypeDeclHandler = no_dtd
    parser.EntityDeclHandler = no_dtd
    if on_start is not None:
        parser.StartElementHandler = on_start
    return parser


def _content_types(zf: zipfile.ZipFile) -> dict[str, str]:
    """part name (no leading slash) → declared content type, from [Content_Types].xml's overrides."""
    overrides: dict[str, str] = {}

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == f"{_CT_NS} Override" and "PartName" in attrs:
            overrides[attrs["PartName"].lstrip("/")] = attrs.get("ContentType", "")

    parser = _expat(on_start=start)
    try:
        with zf.open("[Content_Types].xml") as fh:
            while chunk := fh.read(_CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except KeyError:
        raise _Refused("no [Content_Types].xml: not a workbook") from None
    except expat.ExpatError as exc:
        raise _Refused(f"[Content_Types].xml is not well-formed XML ({exc.code})") from None
    return overrides


def _count_shared_strings(zf: zipfile.ZipFile, name: str, limit: int) -> int:
    count = 0

    def start(tag: str, _attrs: dict[str, str]) -> None:
        nonlocal count
        if tag == "si" or tag.endswith(" si"):
            count += 1
            if count > limit:
                raise _Refused(f"more than {limit} shared strings", max_shared_strings=limit)

    parser = _expat(on_start=start)
    try:
        with zf.open(name) as fh:
            while chunk := fh.read(_CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise _Refused(f"the shared strings are not well-formed XML ({exc.code})") from None
    return count


def inspect_xlsx(source: Source, limits: ImportSettings) -> None:
    """Refuse a workbook that would cost more than the limits to read (see the module's docstring)."""
    try:
        with open_source(source) as raw:
            try:
                zf = zipfile.ZipFile(raw)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError):
                raise _Refused("not a zip archive (an .xlsx file is one)") from None
            with zf:
                _inspect(zf, limits)
    except _Refused as exc:
        raise _refuse(exc.reason, **exc.detail) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        raise _refuse(f"a damaged or unsupported zip archive ({type(exc).__name__})") from None


def _inspect(zf: zipfile.ZipFile, limits: ImportSettings) -> None:
    members = zf.infolist()
    if len(members) > limits.xlsx_max_members:
        raise _Refused(f"more than {limits.xlsx_max_members} members in the archive",
                       max_members=limits.xlsx_max_members)
    names: set[str] = set()
    total = 0
    for info in members:
        name = info.filename
        if not _safe_name(name):
            raise _Refused("a member name is absolute or leaves the archive", member=name[:200])
        if name in names:
            raise _Refused("a member name repeats", member=name[:200])
        names.add(name)
        total += info.file_size
        if total > limits.xlsx_max_uncompressed_bytes:
            raise _Refused(f"it expands to more than {limits.xlsx_max_uncompressed_bytes} bytes",
                           max_uncompressed_bytes=limits.xlsx_max_uncompressed_bytes)
        if info.file_size > _RATIO_FLOOR and info.file_size > limits.xlsx_max_ratio * max(info.compress_size, 1):
            raise _Refused(f"a member expands more than {limits.xlsx_max_ratio} times", member=name[:200],
                           max_ratio=limits.xlsx_max_ratio)
    for info in members:
        if info.file_size and not info.is_dir():
            with zf.open(info) as fh:
                head = fh.read(4)
            if head.startswith(_NESTED):
                raise _Refused("the archive holds another archive", member=info.filename[:200])
    types = _content_types(zf)
    for info in members:
        name = info.filename
        declared = types.get(name, "")
        if "chartsheet" in declared or (name.endswith(".rels") and _mentions_chartsheet(zf, info, limits)):
            raise _Refused("chart sheets are not accepted in a bulk deposit")
        if declared == _SHARED_STRINGS:
            if info.file_size > limits.xlsx_max_shared_strings_bytes:
                raise _Refused(f"the shared strings are larger than {limits.xlsx_max_shared_strings_bytes} bytes",
                               max_shared_strings_bytes=limits.xlsx_max_shared_strings_bytes)
            _count_shared_strings(zf, name, limits.xlsx_max_shared_strings)
        elif (declared != _WORKSHEET or name in _FIXED) and info.file_size > limits.xlsx_max_part_bytes:
            raise _Refused(f"a part other than a worksheet is larger than {limits.xlsx_max_part_bytes} bytes",
                           member=name[:200], max_part_bytes=limits.xlsx_max_part_bytes)


def _mentions_chartsheet(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ImportSettings) -> bool:
    if info.file_size > limits.xlsx_max_part_bytes:
        return False  # refused as an over-large part
    return b"chartsheet" in zf.read(info)


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


def iter_xlsx(source: Source, limits: ImportSettings) -> Iterator[tuple[int, tuple[str, ...]]]:
    inspect_xlsx(source, limits)
    from openpyxl import load_workbook

    with open_source(source) as raw:
        wb = load_workbook(raw, read_only=True, data_only=True)
        try:
            ws = wb.worksheets[0]
            rows = ws.iter_rows(values_only=True)
            header = next(rows, None)
            if header is None:
                raise HeaderError("the workbook's first sheet is empty: no header row")
            positions = check_header(list(header), max_columns=limits.max_header_columns)
            row_no = 1
            for values in rows:
                row_no += 1
                if not values or all(v is None or v == "" for v in values):
                    continue
                n = len(values)
                yield row_no, tuple(_xlsx_text(values[p]) if p < n else "" for p in positions)
        finally:
            wb.close()


def check_upload(source: Source, limits: ImportSettings) -> int | None:
    """At upload, with one opening of the workbook: refuse what `inspect_xlsx` refuses and a header that is not
    the template, and return the first sheet's declared data rows (its dimension; None when it does not say).
    (Checking the header and reading the dimension used to load the workbook twice — its shared strings
    included, the largest part of a big workbook.)"""
    inspect_xlsx(source, limits)
    from openpyxl import load_workbook

    with open_source(source) as raw:
        wb = load_workbook(raw, read_only=True, data_only=True)
        try:
            ws = wb.worksheets[0]
            header = next(ws.iter_rows(values_only=True, max_row=1), None)
            if header is None:
                raise HeaderError("the workbook's first sheet is empty: no header row")
            check_header(list(header), max_columns=limits.max_header_columns)
            try:
                rows = ws.max_row
            except Exception:  # noqa: BLE001 - only an estimate (a sheet without a readable dimension)
                rows = None
        finally:
            wb.close()
    return max(0, rows - 1) if rows else None
