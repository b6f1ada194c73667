"""What an import leaves behind (issue 11 items 10, 14 and the import's non-ASCII digits; issue 12 item 6):
uploads encrypted at rest and deleted once done, reports purged after their retention, free text masked, report
cells neutralised for spreadsheets, digits ASCII only, progress with a total and learners created."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import node.imports.service as import_service
from node.imports.results import purge
from node.models import Achievement, ImportJob, utcnow
from node.security.filecrypt import FileCipher, file_cipher
from node.security.freetext import mask_id_like
from node.security.spreadsheet import safe_cell
from tests.conftest import valid_id
from tests.imports.conftest import count, sh_csv, sh_row


def _report(client, headers, job_id) -> list[list[str]]:
    r = client.get(f"/api/v1/imports/{job_id}/report", headers=headers)
    assert r.status_code == 200, r.text
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


# -- 11.10: stored uploads ------------------------------------------------------------------------


def test_uploads_are_encrypted_at_rest_and_deleted_when_done(upload, uploader, engine, monkeypatch) -> None:
    id_number = valid_id(serial="501")
    kept: list[Path] = []
    with monkeypatch.context() as m:  # look at the stored file before the job deletes it
        m.setattr(import_service, "discard_upload", kept.append)
        body = upload(uploader, sh_csv([sh_row("501", name="欧阳明")])).json()
    assert body["status"] == "done"
    (path,) = kept
    raw = path.read_bytes()
    for clear in (id_number.encode(), "欧阳明".encode(), "高等数学".encode(), "学号".encode()):
        assert clear not in raw
    assert FileCipher.key_id_of(path) == "t1"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT stored_path FROM import_job")).scalar_one() == str(path)
    # without the spy: the upload is gone once the job is done
    second = upload(uploader, sh_csv([sh_row("502")])).json()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT stored_path FROM import_job WHERE id = :i"),
                              {"i": second["id"]}).scalar_one()
    assert second["status"] == "done" and not Path(stored).exists()
    assert list(Path(stored).parent.glob(".enc-*")) == []


def test_a_failed_job_keeps_its_upload_until_purged(client, upload, uploader, engine, ctx, monkeypatch) -> None:
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash")

    with monkeypatch.context() as m:
        m.setattr(import_service, "write_batch", crash)
        body = upload(uploader, sh_csv([sh_row("511"), sh_row("512", score="abc")])).json()
    assert body["status"] == "failed"
    with engine.connect() as conn:
        stored = Path(conn.execute(sa.text("SELECT stored_path FROM import_job")).scalar_one())
    assert stored.exists()
    assert purge(ctx) == {"report_rows": 0, "uploads": 0}  # not yet
    later = utcnow() + dt.timedelta(days=ctx.settings.imports.failed_upload_retention_days + 1)
    assert purge(ctx, now=later)["uploads"] == 1
    assert not stored.exists()
    r = client.post(f"/api/v1/imports/{body['id']}/resume", headers=uploader)
    ctx.extras["imports.worker"].wait()
    job = client.get(f"/api/v1/imports/{body['id']}", headers=uploader).json()
    assert job["status"] == "failed" and "no longer stored" in job["error"], (r.text, job)


def test_reports_live_for_their_retention_then_are_purged(client, upload, uploader, engine, ctx) -> None:
    from federation.jobs import JOBS, run_job

    body = upload(uploader, sh_csv([sh_row("521"), sh_row("522", score="abc")])).json()
    assert body["rejected"] == 1 and len(_report(client, uploader, body["id"])) == 2
    assert run_job("imports.purge", ctx) == {"report_rows": 0, "uploads": 0}
    assert "imports.purge" in JOBS
    with engine.begin() as conn:  # the job ended longer ago than the retention
        conn.execute(sa.update(ImportJob.__table__).values(
            finished_at=utcnow() - dt.timedelta(days=ctx.settings.imports.report_retention_days + 1)))
    r = client.get(f"/api/v1/imports/{body['id']}/report", headers=uploader)
    assert r.status_code == 410 and r.json()["code"] == "report_expired"
    assert run_job("imports.purge", ctx) == {"report_rows": 1, "uploads": 0}
    assert count(engine, "import_row_error") == 0


def test_free_text_is_scanned_for_id_numbers(client, upload, uploader, engine) -> None:
    real = valid_id(serial="531")
    full_width = real.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    spaced = " ".join([real[:6], real[6:14], real[14:]])
    arabic = "٣١٠١٠١١٩٩٠٠٣٠٧١٢٣٤"
    rows = [
        sh_row("531", 备注=f"补录，身份证 {real}。"),
        sh_row("532", 备注=f"证件{full_width}"),
        sh_row("533", 备注=f"证件 {spaced}", course="大学英语"),
        sh_row("534", 备注=f"{arabic} 电话 13812345678 学号 2023001"),
        sh_row("535", 备注=f"{real}" + "长" * 600),  # too long: rejected, and the report echoes it masked
    ]
    body = upload(uploader, sh_csv(rows)).json()
    assert (body["deposited"], body["rejected"]) == (4, 1)
    with engine.connect() as conn:
        remarks = [r[0] for r in conn.execute(sa.select(Achievement.__table__.c.remark)
                                              .order_by(Achievement.__table__.c.id))]
    assert remarks[0] == "补录，身份证 " + "*" * 18 + "。"
    assert remarks[1] == "证件" + "*" * 18 and remarks[2] == "证件 " + "*" * len(spaced)
    assert remarks[3] == "*" * 18 + " 电话 13812345678 学号 2023001"  # phone and student numbers stay
    flat = json.dumps(_report(client, uploader, body["id"]), ensure_ascii=False)
    assert real not in flat and "长长长" in flat
    # JSON Lines too
    line = {"type": "degree_course", "title": "高等数学", "credits": "4", "score": "85", "earned": "2023-06",
            "id_number": valid_id(serial="536"), "name": "王五", "remark": f"id {real}"}
    upload(uploader, json.dumps(line, ensure_ascii=False).encode() + b"\n", "grades.jsonl")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT remark FROM achievement WHERE remark LIKE 'id %'")).scalar_one() \
            == "id " + "*" * 18


def test_mask_id_like_unit() -> None:
    assert mask_id_like("310101900307123") == "*" * 15  # a 15-digit number
    assert mask_id_like("31010119900307123x") == "*" * 18
    assert mask_id_like("ABC310101900307") == "*" * 15  # the older permanent-residence card
    assert mask_id_like("१२३४५६७८९०१२३४५६७८") == "*" * 18  # Devanagari digits
    assert mask_id_like("2023年6月 95分 13812345678") == "2023年6月 95分 13812345678"


# -- 11.14: formula injection ---------------------------------------------------------------------


def test_report_cells_are_neutralised_for_spreadsheets(client, upload, uploader) -> None:
    rows = [
        sh_row("541", score="=1+2"),
        sh_row("542", score='=HYPERLINK("http://evil.example/","点击")'),
        sh_row("543", credits="-1"),
        sh_row("544", course="@SUM(A1)", score="+cmd", term="\t=1"),
        sh_row("545", credits="-2+3"),
    ]
    body = upload(uploader, sh_csv(rows)).json()
    assert body["rejected"] == 5
    values = [r[2] for r in _report(client, uploader, body["id"])[1:]]
    assert values == ["'=1+2", "'=HYPERLINK(\"http://evil.example/\",\"点击\")", "-1", "'+cmd", "'=1", "'-2+3"]
    assert all(not str(v).startswith(("=", "+", "@", "\t", "\r")) for v in values)


def test_cli_report_is_neutralised_too(ctx, upload, uploader, tmp_path) -> None:
    from node.imports.results import write_report

    body = upload(uploader, sh_csv([sh_row("546", score="=1+2")])).json()
    out = tmp_path / "r.csv"
    assert write_report(ctx, body["id"], out) == 1
    assert "'=1+2" in out.read_text(encoding="utf-8-sig")


def test_safe_cell_unit() -> None:
    assert [safe_cell(v) for v in ("=A1", "+1+1", "-1", "+2.5", "@x", "\r=1", "＝1", "plain", 7, None)] == [
        "'=A1", "'+1+1", "-1", "+2.5", "'@x", "'\r=1", "'＝1", "plain", 7, None]


# -- non-ASCII digits -----------------------------------------------------------------------------


def test_only_ascii_digits_count_full_width_is_normalised(client, upload, uploader, engine) -> None:
    rows = [
        sh_row("551", credits="２．５", score="８５", term="２０２３０６", hours="６４", 届别="２０２４"),
        sh_row("552", credits="٤"),             # Arabic-Indic 4
        sh_row("553", score="९०"),              # Devanagari 90
        sh_row("554", term="٢٠٢٣٠٦"),           # Arabic-Indic term
        sh_row("555", hours="৬৪"),              # Bengali 64
        sh_row("556", 届别="٢٠٢٤"),
    ]
    body = upload(uploader, sh_csv(rows)).json()
    assert (body["deposited"], body["rejected"]) == (1, 5), body
    with engine.connect() as conn:
        got = conn.execute(sa.select(Achievement.__table__)).one()
    assert (got.credits, got.score_text, got.score_value, got.term, got.hours, got.graduation_year) == (
        Decimal("2.5"), "85", Decimal(85), "202306", Decimal(64), "2024")
    columns = [r[1] for r in _report(client, uploader, body["id"])[1:]]
    assert columns == ["学分", "成绩", "获得时间", "学时", "届别"]


def test_jsonl_digits_are_ascii_only(upload, uploader) -> None:
    def line(serial: str, **kw: str) -> bytes:
        obj = {"type": "degree_course", "title": "高等数学", "credits": "4", "score": "85", "earned": "2023-06",
               "id_number": valid_id(serial=serial), "name": "张三", **kw}
        return json.dumps(obj, ensure_ascii=False).encode()

    content = b"\n".join([line("561", credits="４"), line("562", credits="٤"), line("563", earned="٢٠٢٣-06"),
                          line("564", score="९०")]) + b"\n"
    body = upload(uploader, content, "grades.jsonl").json()
    assert (body["deposited"], body["rejected"]) == (1, 3), body


# -- issue 12 item 6: progress --------------------------------------------------------------------


def test_progress_has_a_total_a_percentage_and_learners_created(client, upload, uploader, ctx, monkeypatch) -> None:
    ctx.settings.imports.batch_size = 2
    rows = [sh_row("571"), sh_row("572"), sh_row("571", course="物理"), sh_row("573", score="abc"),
            sh_row("574")]
    seen: list[dict] = []
    real = import_service._commit_batch

    def spy(*args, **kwargs):
        job = real(*args, **kwargs)
        seen.append(client.get(f"/api/v1/imports/{job.id}", headers=uploader).json())
        return job

    monkeypatch.setattr(import_service, "_commit_batch", spy)
    body = upload(uploader, sh_csv(rows)).json()
    assert [(s["rows_read"], s["total_rows"], s["percent"], s["learners_created"]) for s in seen] == [
        (2, 5, 40.0, 2), (4, 5, 80.0, 2), (5, 5, 100.0, 3)]
    assert (body["status"], body["total_rows"], body["percent"], body["learners_created"]) == ("done", 5, 100.0, 3)
    listed = client.get("/api/v1/imports", headers=uploader).json()
    assert listed[0]["learners_created"] == 3


def test_progress_total_is_refined_when_done(upload, uploader) -> None:
    content = sh_csv([sh_row("581"), sh_row("582", 备注="两行\n备注")]) + b"\r\n\r\n"  # blank lines, a 2-line row
    body = upload(uploader, content).json()
    assert (body["status"], body["rows_read"], body["total_rows"], body["percent"]) == ("done", 2, 2, 100.0)


@pytest.mark.parametrize("fmt", ["xlsx", "jsonl"])
def test_progress_total_of_other_formats(upload, uploader, fmt: str, monkeypatch) -> None:
    if fmt == "xlsx":
        from tests.imports.test_limits import _workbook

        content, name = _workbook(), "grades.xlsx"
    else:
        line = {"type": "degree_course", "title": "高等数学", "credits": "4", "score": "85", "earned": "2023-06",
                "id_number": valid_id(serial="591"), "name": "张三"}
        content, name = (json.dumps(line, ensure_ascii=False) + "\n").encode() * 3, "grades.jsonl"
    totals: list[int | None] = []
    real = import_service.create_job

    def spy(*args, **kwargs):
        job = real(*args, **kwargs)
        totals.append(job.total_rows)
        return job

    monkeypatch.setattr(import_service, "create_job", spy)
    monkeypatch.setattr("node.imports.router.create_job", spy)
    body = upload(uploader, content, name).json()
    assert totals == [1 if fmt == "xlsx" else 3] and body["percent"] == 100.0


# -- NUL characters (PostgreSQL text cannot hold them) --------------------------------------------


def test_a_nul_in_a_cell_rejects_that_row_not_the_job(client, upload, uploader, engine) -> None:
    """On PostgreSQL a NUL reaching COPY (or a report row) failed the whole job; SQLite stored it."""
    rows = [sh_row("601"), sh_row("602", 备注="a\x00b"), sh_row("603", course="高等\x00数学", name="张\x00三"),
            sh_row("604")]
    body = upload(uploader, sh_csv(rows)).json()
    assert (body["status"], body["deposited"], body["rejected"]) == ("done", 2, 2), body
    assert import_service._safe_filename("C:\\上传\\成绩\x00单.csv") == "成绩_单.csv"
    report = _report(client, uploader, body["id"])[1:]
    assert [(r[0], r[1]) for r in report] == [("3", "备注"), ("4", "姓名"), ("4", "课程名称")]
    assert all("\x00" not in cell for r in report for cell in r)
    line = {"type": "degree_course", "title": "高\x00等数学", "credits": "4", "score": "85", "earned": "2023-06",
            "id_number": valid_id(serial="605"), "name": "张三"}
    good = dict(line, title="高等数学", id_number=valid_id(serial="606"))
    content = (json.dumps(line) + "\n" + json.dumps(good) + "\n").encode()
    body = upload(uploader, content, "grades.jsonl").json()
    assert (body["status"], body["deposited"], body["rejected"]) == ("done", 1, 1), body
    assert count(engine, "achievement") == 3
