"""What an upload may cost to read (issue 11 items 3, 4, 11): XLSX decompression bombs and zip tricks refused
before openpyxl parses anything, with memory flat; headers checked in linear time with a column cap, off the
event loop; one unreadable CSV record rejected while the rest of the file is deposited, and resumable."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import node.imports.service as import_service
from config.settings import ImportSettings
from node.imports.formats import SHANGHAI_COLUMNS, HeaderError, check_header, iter_records
from tests.imports.conftest import count, sh_csv, sh_row

_SHARED = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_SST = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'


def _workbook() -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(list(SHANGHAI_COLUMNS))
    ws.append(sh_row("101"))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _rezip(content: bytes, *, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None,
           big: tuple[str, bytes, int] | None = None) -> bytes:
    """The workbook with parts replaced or added; `big` = (name, block, times): a part streamed in, never held."""
    replace, add = replace or {}, add or {}
    if "xl/sharedStrings.xml" in add or (big and big[0] == "xl/sharedStrings.xml"):
        # declared as Excel declares it (openpyxl itself writes inline strings)
        types = zipfile.ZipFile(io.BytesIO(content)).read("[Content_Types].xml")
        replace["[Content_Types].xml"] = types.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" '
                                                       b'ContentType="' + _SHARED.encode() + b'" /></Types>')
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if big is not None and info.filename == big[0]:
                continue
            dst.writestr(info.filename, replace.get(info.filename, src.read(info)))
        for name, data in add.items():
            dst.writestr(_deflated(name), data)
        if big is not None:
            name, block, times = big
            with dst.open(_deflated(name), "w", force_zip64=True) as fh:
                fh.write(_SST)
                chunk = block * max(1, (1 << 20) // len(block))
                for _ in range(max(1, times * len(block) // len(chunk))):
                    fh.write(chunk)
                fh.write(b"</sst>")
    return out.getvalue()


def _deflated(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)  # a ZipInfo keeps a name as given (absolute, "..") and defaults to stored
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _refused(r, reason: str) -> dict:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "unreadable_file", body
    assert reason in body["detail"]["reason"], body
    return body


# -- 11.3: XLSX bombs and zip tricks ------------------------------------------------------------


def test_a_shared_strings_bomb_is_refused_before_parsing(upload, uploader, engine) -> None:
    # ~300 KB expanding to ~100 MB of shared strings
    bomb = _rezip(_workbook(), big=("xl/sharedStrings.xml", b"<si><t>" + b"A" * 1000 + b"</t></si>", 100_000))
    assert len(bomb) < 1_000_000
    body = _refused(upload(uploader, bomb, "grades.xlsx"), "expands more than 200 times")
    assert body["detail"]["member"] == "xl/sharedStrings.xml"
    assert count(engine, "import_job") == 0
    assert count(engine, "audit_log", "WHERE action = 'import.create' AND outcome = 'failed'") == 1


def test_bomb_memory_stays_flat(tmp_path: Path) -> None:
    """Peak RSS of a process inspecting a 200 MB expansion stays far below it: refused by ratio without
    inflating anything, and — with the ratio limit lifted — by counting shared strings as they stream."""
    wide = tmp_path / "wide.xlsx"
    wide.write_bytes(_rezip(_workbook(), big=("xl/sharedStrings.xml", b"<si><t>" + b"B" * 1000 + b"</t></si>",
                                              200_000)))
    many = tmp_path / "many.xlsx"
    many.write_bytes(_rezip(_workbook(), big=("xl/sharedStrings.xml", b"<si><t>a</t></si>", 12_000_000)))
    script = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from config.settings import ImportSettings
        from node.errors import BadRequest
        from node.imports.formats import read_header_check
        out = []
        for name, limits in (("{wide}", ImportSettings()),
                             ("{many}", ImportSettings(xlsx_max_ratio=10**9, xlsx_max_shared_strings=1_000_000))):
            try:
                read_header_check(Path(name), "shanghai-xlsx", None, limits)
                out.append(None)
            except BadRequest as exc:
                out.append(exc.detail["reason"])
        # VmHWM: this program's peak RSS (ru_maxrss would carry the forking pytest's over the exec)
        status = Path("/proc/self/status").read_text()
        out.append(int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) // 1024)
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    wide_reason, many_reason, peak_mib = json.loads(done.stdout)
    assert "expands more than" in wide_reason
    assert many_reason == "more than 1000000 shared strings"
    assert peak_mib < 100, f"peak RSS {peak_mib} MiB for a 200 MB expansion"


@pytest.mark.parametrize(("name", "reason"), [
    ("/etc/evil.xml", "absolute or leaves the archive"),
    ("xl/../../evil.xml", "absolute or leaves the archive"),
    ("xl\\evil.xml", "absolute or leaves the archive"),
])
def test_member_names_that_leave_the_archive_are_refused(upload, uploader, name: str, reason: str) -> None:
    _refused(upload(uploader, _rezip(_workbook(), add={name: b"<x/>"}), "grades.xlsx"), reason)


def test_nested_archives_are_refused(upload, uploader) -> None:
    inner = _workbook()
    _refused(upload(uploader, _rezip(_workbook(), add={"xl/embeddings/data.bin": inner}), "grades.xlsx"),
             "holds another archive")


def test_not_a_zip_and_damaged_zips_are_refused(upload, uploader) -> None:
    _refused(upload(uploader, b"\xd0\xcf\x11\xe0 an old .xls, not a zip", "grades.xlsx"), "not a zip archive")
    _refused(upload(uploader, sh_csv([sh_row("101")]), "grades.xlsx"), "not a zip archive")
    _refused(upload(uploader, _workbook()[:-200], "grades.xlsx"), "not a zip archive")


def test_other_limits(upload, uploader, ctx) -> None:
    book = _workbook()
    limits = ctx.settings.imports
    limits.xlsx_max_members = 5
    _refused(upload(uploader, book, "grades.xlsx"), "more than 5 members")
    limits.xlsx_max_members = 1000
    limits.xlsx_max_part_bytes = 1000
    _refused(upload(uploader, _rezip(book, add={"xl/styles2.xml": b"<a>" + b" " * 5000 + b"</a>"}),
                    "grades.xlsx"), "a part other than a worksheet is larger than 1000 bytes")
    limits.xlsx_max_part_bytes = 16 << 20
    limits.xlsx_max_uncompressed_bytes = 5000
    _refused(upload(uploader, book, "grades.xlsx"), "expands to more than 5000 bytes")
    limits.xlsx_max_uncompressed_bytes = 1 << 30
    limits.xlsx_max_shared_strings = 3
    strings = _SST + b"<si><t>a</t></si>" * 4 + b"</sst>"
    _refused(upload(uploader, _rezip(book, add={"xl/sharedStrings.xml": strings}), "grades.xlsx"),
             "more than 3 shared strings")
    limits.xlsx_max_shared_strings = 1000
    doctype = b'<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY a "aaaa">]>' + _SST + b"<si><t>&a;</t></si></sst>"
    _refused(upload(uploader, _rezip(book, add={"xl/sharedStrings.xml": doctype}), "grades.xlsx"),
             "declares a DTD")
    r = upload(uploader, book, "grades.xlsx")  # within the limits
    assert r.json()["status"] == "done" and r.json()["deposited"] == 1, r.json()


# -- 11.4: headers --------------------------------------------------------------------------------


def test_a_wide_header_is_refused_at_once(upload, uploader, engine) -> None:
    """100,000 columns (688 KB): the old check counted each name in the whole list (quadratic: 129 s)."""
    header = [f"列{i}" for i in range(100_000)]
    r = upload(uploader, sh_csv([], header=header))
    assert r.status_code == 400 and r.json()["code"] == "unknown_header", r.text
    assert "longer than 16384 characters" in r.json()["message"]
    assert count(engine, "import_job") == 0


def test_the_header_check_is_linear_and_capped() -> None:
    with pytest.raises(HeaderError) as exc:
        check_header([f"c{i}" for i in range(20_000)])  # quadratic: ~2·10⁸ comparisons before
    assert exc.value.detail == {"columns": 20_000, "max_columns": 64}
    with pytest.raises(HeaderError) as exc:
        check_header(list(SHANGHAI_COLUMNS) + ["学号"] * 40 + [f"x{i}" for i in range(8)])
    assert exc.value.detail["repeated"] == ["学号"] and len(exc.value.detail["unknown"]) == 8
    assert check_header(list(SHANGHAI_COLUMNS) + [""] * 10_000) == list(range(15))  # trailing blanks


def test_a_header_over_the_column_cap_is_refused(upload, uploader, ctx) -> None:
    header = list(SHANGHAI_COLUMNS) + [f"附加{i}" for i in range(60)]
    r = upload(uploader, sh_csv([sh_row("101")], header=header))
    assert r.status_code == 400 and r.json()["code"] == "unknown_header"
    assert r.json()["detail"] == {"columns": 75, "max_columns": 64}


def test_no_parsing_on_the_event_loop(upload, uploader, monkeypatch) -> None:
    """The upload route is a plain `def`: FastAPI runs it — storing, scanning, the header check — in its
    thread pool, never on the event loop that serves every other request."""
    seen: list[bool] = []
    real = import_service.read_header_check

    def spy(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            seen.append(True)
        except RuntimeError:
            seen.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(import_service, "read_header_check", spy)
    assert upload(uploader, sh_csv([sh_row("101")])).json()["status"] == "done"
    assert seen == [False]


# -- 11.11: one oversized field -------------------------------------------------------------------


def test_an_oversized_field_rejects_its_row_only(client, upload, uploader, engine) -> None:
    huge = "备" * 200_000  # over csv's field limit (131,072)
    rows = [sh_row("301"), sh_row("302", 备注=huge), sh_row("303"),
            sh_row("304", 备注="引号\n" + "x" * 140_000 + "\n换行"),  # a quoted multi-line field over the limit
            sh_row("305"), sh_row("306", 备注="y" * 3_000_000), sh_row("307")]  # a line over the line cap
    body = upload(uploader, sh_csv(rows)).json()
    assert body["status"] == "done", body
    assert (body["rows_read"], body["deposited"], body["rejected"]) == (7, 4, 3)
    report = client.get(f"/api/v1/imports/{body['id']}/report", headers=uploader).content.decode("utf-8-sig")
    lines = report.splitlines()[1:]
    assert [line.split(",")[:2] for line in lines] == [["3", "*"], ["7", "*"], ["9", "*"]]
    assert "field larger than field limit" in lines[0] and "longer than" in lines[2]
    assert count(engine, "achievement") == 4


def test_reading_resumes_exactly_after_an_unreadable_record(tmp_path: Path) -> None:
    rows = [sh_row("311"), sh_row("312", 备注='"' + "z" * 200_000), sh_row("313"), sh_row("314")]
    path = tmp_path / "f.csv"
    path.write_bytes(sh_csv(rows))
    records = list(iter_records(path, "shanghai-csv", "utf-8"))
    assert [n for n, _ in records] == [2, 3, 4, 5]
    assert [r[2] for _, r in records if isinstance(r, tuple)] == [sh_row(s)[2] for s in ("311", "313", "314")]


def test_a_failed_job_with_an_oversized_field_resumes(upload, uploader, ctx, monkeypatch) -> None:
    ctx.settings.imports.batch_size = 2
    rows = [sh_row("321"), sh_row("322", 备注="w" * 200_000), sh_row("323"), sh_row("324"), sh_row("325")]
    calls = {"n": 0}
    real = import_service.write_batch

    def crash_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(import_service, "write_batch", crash_second)
        body = upload(uploader, sh_csv(rows)).json()
    assert body["status"] == "failed" and body["rows_committed"] == 2
    from node.imports.service import run_job

    done = run_job(ctx, body["id"])
    assert (done.status, done.rows_read, done.deposited, done.rejected) == ("done", 5, 4, 1)


def test_an_overlong_json_line_rejects_that_line_only(upload, uploader, ctx) -> None:
    from tests.conftest import valid_id

    ctx.settings.imports.max_jsonl_line_bytes = 4096

    def line(serial: str, remark: str | None = None) -> bytes:
        return json.dumps({"type": "degree_course", "title": "高等数学", "credits": "4", "score": "85",
                           "earned": "2023-06", "id_number": valid_id(serial=serial), "name": "张三",
                           "remark": remark}, ensure_ascii=False).encode()

    content = b"\n".join([line("331"), line("332", "r" * 100_000), line("333")]) + b"\n"
    body = upload(uploader, content, "grades.jsonl").json()
    assert (body["status"], body["rows_read"], body["deposited"], body["rejected"]) == ("done", 3, 2, 1)


def test_limits_are_settings() -> None:
    limits = ImportSettings()
    assert (limits.max_header_columns, limits.xlsx_max_ratio) == (64, 200)
