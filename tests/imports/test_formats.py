"""Every accepted format deposits the same outcomes: CSV (UTF-8, UTF-8 with BOM, GB18030), XLSX, JSON Lines."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from node.imports.formats import SHANGHAI_COLUMNS, detect_encoding
from node.models import Achievement
from tests.conftest import valid_id
from tests.imports.conftest import INSTITUTION, count, events, sh_csv, sh_row

ROWS = [
    sh_row("101", course="高等数学", credits="4", score="85"),
    sh_row("101", course="大学英语", credits="2.5", score="优", term="202401"),
    sh_row("102", name="李四", course="高等数学", credits="4", score="59.5", hours="", edu_type="34"),
]


def _check_deposited(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Achievement.__table__).order_by(Achievement.__table__.c.id)).all()
    assert [(r.title, r.credits, r.score_text, r.score_value, r.term) for r in rows] == [
        ("高等数学", Decimal(4), "85", Decimal(85), "202306"),
        ("大学英语", Decimal("2.5"), "优", None, "202401"),
        ("高等数学", Decimal(4), "59.5", Decimal("59.5"), "202306"),
    ]
    assert rows[0].earned_on == dt.date(2023, 6, 1) and rows[0].hours == Decimal(64) and rows[2].hours is None
    assert [r.type for r in rows] == ["degree_course", "degree_course", "self_study_course"]
    assert {r.issuer_code for r in rows} == {INSTITUTION} and {r.source for r in rows} == {"bulk"}
    assert rows[0].education_level_code == "20" and rows[0].graduation_status == "40"
    assert rows[0].learner_id == rows[1].learner_id != rows[2].learner_id
    assert count(engine, "learner") == 2
    opened, deposited = events(engine, "learner.opened"), events(engine, "achievement.deposited")
    assert len(opened) == 2 and len(deposited) == 3
    assert deposited[1]["data"]["credits"] == "2.5" and deposited[1]["data"]["source"] == "bulk"
    leaves = json.dumps(events(engine), ensure_ascii=False)
    for personal in ("张三", "李四", "S001", valid_id(serial="101"), valid_id(serial="102")):
        assert personal not in leaves


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_in_each_encoding(upload, uploader, engine, encoding: str) -> None:
    r = upload(uploader, sh_csv(ROWS, encoding=encoding))
    body = r.json()
    assert body["status"] == "done", body
    assert (body["rows_read"], body["deposited"], body["rejected"], body["duplicates"]) == (3, 3, 0, 0)
    assert body["format"] == "shanghai-csv" and body["encoding"] == encoding
    _check_deposited(engine)


def test_gb18030_is_detected(tmp_path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(sh_csv(ROWS, encoding="gb18030"))
    assert detect_encoding(path) == "gb18030"
    path.write_bytes(sh_csv(ROWS, encoding="utf-8"))
    assert detect_encoding(path) == "utf-8"


def test_xlsx_streamed(upload, uploader, engine, monkeypatch) -> None:
    import openpyxl
    from openpyxl import Workbook

    loads: list[object] = []
    real_load = openpyxl.load_workbook
    monkeypatch.setattr(openpyxl, "load_workbook", lambda *a, **k: loads.append(1) or real_load(*a, **k))

    wb = Workbook()
    ws = wb.active
    ws.append(list(SHANGHAI_COLUMNS))
    for row in ROWS:
        cells: list[object] = list(row)
        # spreadsheets type numbers: codes, credits, term and scores arrive as int/float
        for i, name in enumerate(SHANGHAI_COLUMNS):
            if name in ("教育层次代码", "教育类别代码", "获得时间", "届别", "毕业结业", "毕业季") and cells[i]:
                cells[i] = int(cells[i])
            elif name in ("学分", "学时", "成绩") and cells[i] and cells[i] != "优":
                cells[i] = float(cells[i]) if "." in str(cells[i]) else int(cells[i])
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    body = upload(uploader, buf.getvalue(), "grades.xlsx").json()
    assert body["status"] == "done" and body["format"] == "shanghai-xlsx", body
    assert (body["deposited"], body["rejected"], body["total_rows"]) == (3, 0, 3)
    assert len(loads) == 2  # once at upload (header and dimension together), once to run the job
    _check_deposited(engine)


def test_jsonl_in_the_node_schema(client, upload, uploader, engine) -> None:
    def line(serial: str, **kw: object) -> bytes:
        obj = {"type": "degree_course", "issuer": INSTITUTION, "title": "高等数学", "credits": "4", "hours": "64",
               "score": "85", "earned": "2023-06", "id_type": "resident_id", "id_number": valid_id(serial=serial),
               "name": "张三", "student_no": "S001"}
        obj.update(kw)
        return json.dumps(obj, ensure_ascii=False).encode()

    content = b"\n".join([
        line("101"),
        line("101", title="大学英语", credits="2.5", score="优", earned="2024-01-15"),
        line("102", name="李四", code="", credits="4", score="59.5", hours=None, type="self_study_course"),
        line("103", type="vocational_qualification", title="电工", code="6-31-01-03", level="三级", credits="8",
             score=None, earned="2022-12-01", expires="2027-12-01"),
        line("104", credits=2.5),  # a JSON number: refused, credits must be exact
        line("105", issuer="U99999"),
        b"not json",
    ]) + b"\n"
    body = upload(uploader, content, "grades.jsonl").json()
    assert body["status"] == "done" and body["format"] == "jsonl", body
    assert (body["rows_read"], body["deposited"], body["rejected"]) == (7, 4, 3)
    with engine.connect() as conn:
        cert = conn.execute(sa.select(Achievement.__table__).where(Achievement.__table__.c.title == "电工")).one()
    assert (cert.code, cert.level, cert.credits, cert.score_text, cert.expires_on, cert.term) == (
        "6-31-01-03", "三级", Decimal(8), None, dt.date(2027, 12, 1), "202212")
    report = client.get(f"/api/v1/imports/{body['id']}/report", headers=uploader)
    rows = [r.split(",")[:2] for r in report.content.decode("utf-8-sig").splitlines()[1:]]
    assert rows == [["5", "credits"], ["6", "issuer"], ["7", "*"]]


def test_unknown_header_is_refused_before_a_job(upload, uploader, engine) -> None:
    header = list(SHANGHAI_COLUMNS[:-1]) + ["班级"]
    r = upload(uploader, sh_csv([sh_row("101")], header=header))
    assert r.status_code == 400 and r.json()["code"] == "unknown_header"
    assert "班级" in r.json()["message"] and "备注" in r.json()["message"]
    assert count(engine, "import_job") == 0
    assert count(engine, "audit_log", "WHERE action = 'import.create' AND outcome = 'failed'") == 1


def test_header_variants_and_column_order(upload, uploader, engine) -> None:
    header = list(SHANGHAI_COLUMNS)
    header[10] = "获得时间（YYYYMM）"
    order = list(range(15))[::-1]
    content = sh_csv([[sh_row("101")[i] for i in order]], header=[header[i] for i in order])
    body = upload(uploader, content).json()
    assert (body["status"], body["deposited"]) == ("done", 1), body


def test_the_documented_jsonl_example_is_valid() -> None:
    """docs/imports.md's example line must import as it is (its ID number's check digit was wrong)."""
    import re
    from pathlib import Path

    from node.imports.validate import Validator

    doc = (Path(__file__).resolve().parents[2] / "docs" / "imports.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(.*?)```", doc, re.S)[1])
    lists = {"education_level": {}, "education_type": {}}
    outcome = Validator(institution_code=example["issuer"], code_lists=lists).jsonl(1, example)
    assert not isinstance(outcome, list), outcome
