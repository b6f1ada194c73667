"""The public view never shows a group below k, nor a figure that gives one back (by difference of two ranges or
from a table's total); the exports open with openpyxl and have the commission report's layout."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools

from openpyxl import load_workbook

from node.stats.service import SUPPRESSED, suppress

K = 10  # the default stats.public_min_group
MONTHS = ["2025-01", "2025-02", "2025-03"]


def _last_day(month: str) -> str:
    y, m = map(int, month.split("-"))
    nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
    return (nxt - dt.timedelta(days=1)).isoformat()


def _figures(rep: dict) -> list[tuple[str, str, object]]:
    out = []
    for t in rep["tables"]:
        for r in t["rows"]:
            out.append((t["key"], r[0], r[-1]))
        out.append((t["key"], "total", t["total"][-1]))
    return out


def test_no_public_figure_is_a_small_group_even_by_difference(client, dataset) -> None:
    published: dict[tuple[str, str, int, int], int] = {}
    for i, j in itertools.combinations_with_replacement(range(len(MONTHS)), 2):
        r = client.get(f"/api/v1/statistics?from={MONTHS[i]}-01&to={_last_day(MONTHS[j])}")
        assert r.status_code == 200, r.text
        rep = r.json()
        assert rep["public"] is True and rep["min_group"] == K
        for key, group, value in _figures(rep):
            if value != SUPPRESSED:
                assert value == 0 or value >= K, (key, group, value, MONTHS[i], MONTHS[j])
                published[(key, group, i, j)] = value
        for t in rep["tables"]:
            if t["key"] in ("accounts", "deposits_by_month") or t["total"][-1] == SUPPRESSED:
                continue
            hidden = [row for row in t["rows"] if row[-1] == SUPPRESSED]
            assert len(hidden) != 1, (t["key"], MONTHS[i], MONTHS[j])  # else total − shown gives it back
    # the difference of two published figures of one group over nested ranges is never a small group either
    for (key, group, i, j), value in published.items():
        for (key2, group2, i2, j2), value2 in published.items():
            if (key, group) == (key2, group2) and (i == i2 or j == j2) and (i, j) != (i2, j2):
                assert not 0 < abs(value - value2) < K, (key, group, (i, j), (i2, j2))
    # what the data set holds: January's 12 degree courses are shown; the March cell of 1 is not, so over the
    # quarter degree courses are withheld although they number 24 — and so is the group that would give it back
    jan = client.get("/api/v1/statistics?from=2025-01-01&to=2025-01-31").json()
    assert {r[0]: r[1] for r in next(t for t in jan["tables"] if t["key"] == "by_type")["rows"]} == {
        "degree_course": 12}
    q1 = client.get("/api/v1/statistics?from=2025-01-05&to=2025-03-20").json()  # widened to whole months
    assert (q1["from"], q1["to"]) == ("2025-01-01", "2025-03-31")
    by_type = {r[0]: r[1] for r in next(t for t in q1["tables"] if t["key"] == "by_type")["rows"]}
    assert by_type == {"degree_course": SUPPRESSED, "training": SUPPRESSED, "vocational_qualification": SUPPRESSED}
    assert next(t for t in q1["tables"] if t["key"] == "by_type")["total"] == ["total", 39]


def test_suppression_rules() -> None:
    jan, feb = dt.date(2025, 1, 1), dt.date(2025, 2, 1)
    groups, months, total = suppress({jan: {"a": 12, "b": 3, "c": 40}}, 10)
    assert groups == {"a": SUPPRESSED, "b": SUPPRESSED, "c": 40} and total == 55  # b primary, a secondary
    groups, months, total = suppress({jan: {"a": 4, "b": 3}}, 10)
    assert groups == {"a": SUPPRESSED, "b": SUPPRESSED} and months[jan] == SUPPRESSED and total == SUPPRESSED
    groups, months, total = suppress({jan: {"a": 12}, feb: {"a": 10, "b": 10}}, 10)
    assert groups == {"a": 22, "b": 10} and months == {jan: 12, feb: 20} and total == 32
    groups, _, _ = suppress({jan: {"a": 12, "b": 15}, feb: {"a": 1, "b": 30}}, 10)
    assert groups == {"a": SUPPRESSED, "b": SUPPRESSED}


def test_public_view_with_another_k(app, client, dataset) -> None:
    app.state.ctx.settings.stats.public_min_group = 3
    try:
        rep = client.get("/api/v1/statistics?from=2025-02-01&to=2025-02-28").json()
    finally:
        app.state.ctx.settings.stats.public_min_group = K
    assert rep["min_group"] == 3
    by_type = {r[0]: r[1] for r in next(t for t in rep["tables"] if t["key"] == "by_type")["rows"]}
    # vocational certificates (2) are below 3; training (3), the next smallest, is withheld with them
    assert by_type == {"degree_course": 11, "training": SUPPRESSED, "vocational_qualification": SUPPRESSED}


def test_xlsx_export_has_the_report_layout(app, client, staff_headers, dataset) -> None:
    region = app.state.ctx.settings.region
    r = client.get("/api/v1/admin/statistics/export.xlsx?from=2025-01-01&to=2025-03-31&lang=zh",
                   headers=staff_headers("auditor"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(r.content))
    titles = wb.sheetnames
    assert len(titles) == 10 and len(set(titles)) == 10
    ws = wb["按类别统计成果"]
    assert ws["A2"].value == "地区" and ws["B2"].value == region.name_zh
    assert ws["A3"].value == "统计期间" and ws["B3"].value == "2025-01-01 – 2025-03-31"
    assert ws["A4"].value == "生成时间" and dt.datetime.fromisoformat(ws["B4"].value)
    rows = list(ws.iter_rows(min_row=7, values_only=True))
    assert rows[0][0] == "按类别统计成果"
    assert list(rows[1]) == ["成果类别", "存入数", "学分", "撤销数"]
    data = {row[0]: row[1] for row in rows[2:] if row[0]}
    assert data["学历教育课程成绩"] == 24 and data["培训证书"] == 3 and data["职业资格证书"] == 12
    assert data["合计"] == 39
    en = load_workbook(io.BytesIO(client.get(
        "/api/v1/admin/statistics/export.xlsx?from=2025-01-01&to=2025-03-31&lang=en",
        headers=staff_headers("auditor")).content))
    assert en[en.sheetnames[0]]["A2"].value == "Region"


def test_csv_export_has_the_header_block_and_every_table(app, client, staff_headers, dataset) -> None:
    region = app.state.ctx.settings.region
    r = client.get("/api/v1/admin/statistics/export.csv?from=2025-01-01&to=2025-03-31&lang=en",
                   headers=staff_headers("node_admin"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[1] == ["Region", region.name_en] and rows[2] == ["Period", "2025-01-01 – 2025-03-31"]
    titles = [rows[i + 1][0] for i, row in enumerate(rows[:-1]) if row == []]
    assert len(titles) == 10 and "Achievements by category" in titles
    public = client.get("/api/v1/statistics/export.csv?from=2025-01-01&to=2025-03-31&lang=en")
    assert public.status_code == 200
    body = public.content.decode("utf-8")
    assert "(suppressed)" in body and "Smallest group shown" in body


def test_every_table_and_column_has_its_texts(app, client, staff_headers, dataset) -> None:
    """Table titles and column names are looked up by key built from the report (`stats.table.<key>`,
    `stats.col.<name>`): every one the reports give is in both catalogues."""
    from node.portal.i18n import catalogue

    zh, en = catalogue("zh"), catalogue("en")
    keys = set()
    for url, headers in (("/api/v1/admin/statistics?from=2025-01-01", staff_headers("auditor")),
                         ("/api/v1/statistics?from=2025-01-01", {})):
        for t in client.get(url, headers=headers).json()["tables"]:
            keys |= {f"stats.table.{t['key']}"} | {f"stats.col.{c}" for c in t["columns"]}
    assert len(keys) > 40
    assert sorted(k for k in keys if k not in zh or k not in en) == []
