"""Fixtures for bulk-import tests: an institution, its uploader, files in the Shanghai template."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence

import pytest
import sqlalchemy as sa

from node.imports.formats import SHANGHAI_COLUMNS
from tests.conftest import valid_id

INSTITUTION = "U10001"
OTHER_INSTITUTION = "U20002"


def sh_row(serial: str = "123", *, name: str = "张三", course: str = "高等数学", credits: str = "4",
           hours: str = "64", score: str = "85", term: str = "202306", student_no: str = "S001",
           level: str = "20", edu_type: str = "30", id_number: str | None = None, **over: str) -> list[str]:
    row = {
        "学号": student_no, "姓名": name, "身份证号": id_number or valid_id(serial=serial), "专业名称": "计算机科学",
        "课程名称": course, "教育层次代码": level, "教育类别代码": edu_type, "学分": credits, "学时": hours,
        "成绩": score, "获得时间": term, "届别": "2024", "毕业结业": "40", "毕业季": "50", "备注": "",
    }
    row.update(over)
    return [row[c] for c in SHANGHAI_COLUMNS]


def sh_csv(rows: Sequence[Sequence[str]], *, encoding: str = "utf-8", header: Sequence[str] = SHANGHAI_COLUMNS) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


@pytest.fixture
def institution(app) -> str:
    from node.db import session_scope
    from node.org.service import create_organisation

    with session_scope(app.state.ctx.engine) as s:
        create_organisation(s, code=INSTITUTION, name="上海示范大学", kind="institution", institution_type="university")
        create_organisation(s, code=OTHER_INSTITUTION, name="另一所大学", kind="institution",
                            institution_type="university")
    return INSTITUTION


@pytest.fixture
def uploader(staff_headers, institution: str) -> dict[str, str]:
    return staff_headers("institution_uploader", org=institution)


@pytest.fixture
def api_key(app, institution: str) -> Callable[[str], dict[str, str]]:
    from node.db import session_scope
    from node.org.service import create_api_key

    def make(org: str = INSTITUTION) -> dict[str, str]:
        with session_scope(app.state.ctx.engine) as s:
            _row, key = create_api_key(s, organisation_code=org, label="sis", created_by=None)
        return {"X-API-Key": key}

    return make


@pytest.fixture
def upload(client, app) -> Callable[..., object]:
    """POST a file, wait for the worker to finish it, return the final status response."""

    def post(headers: dict[str, str], content: bytes, filename: str = "grades.csv", *, wait: bool = True,
             **form: str):
        r = client.post("/api/v1/imports", headers=headers, files={"file": (filename, content)}, data=form)
        if r.status_code != 202 or not wait:
            return r
        app.state.ctx.extras["imports.worker"].wait()
        status = client.get(f"/api/v1/imports/{r.json()['id']}", headers=headers)
        assert status.status_code == 200, status.text
        return status

    return post


def count(engine: sa.Engine, table: str, where: str = "") -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table} {where}").scalar_one()


def events(engine: sa.Engine, kind: str | None = None) -> list[dict]:
    """The events as the node reads them: the public leaf, with `data` from the private opening (v2)."""
    import json

    from node.ledger.service import event_data

    sql = "SELECT leaf, opening FROM ledger_event" + (f" WHERE kind = '{kind}'" if kind else "") + " ORDER BY seq"
    with engine.connect() as conn:
        return [{**json.loads(r.leaf), "data": event_data(r)} for r in conn.exec_driver_sql(sql)]
