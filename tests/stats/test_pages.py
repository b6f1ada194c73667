"""The statistics pages without a browser: the public page (both languages, no small group), the centre's page
behind its roles (refusal audited), range errors next to their field, the page exports, the refresh form (CSRF)."""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook

HTML = {"accept": "text/html"}


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


def _sign_in(client, staff_headers, username: str, *roles: str) -> None:
    staff_headers(*roles, username=username)
    token = _csrf(client.get("/sign-in").text)
    r = client.post("/sign-in", data={"username": username, "password": "correct-horse-1", "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


def _cells(html: str, table: str) -> dict[str, str]:
    body = html.split(f'id="stats-{table}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', body, re.S)
    return {label.strip(): re.sub(r"<[^>]+>", "", cells.split("</td>")[-2]).strip() for label, cells in rows}


def test_the_public_page_shows_no_small_group(client, dataset) -> None:
    r = client.get("/statistics?from=2025-01-01&to=2025-03-31")
    assert r.status_code == 200 and "公开统计" in r.text and "少于 10 条" in r.text
    by_type = _cells(r.text, "by_type")
    assert by_type == {"学历教育课程成绩": "（不公布）", "培训证书": "（不公布）", "职业资格证书": "（不公布）",
                       "合计": "39"}
    assert '<svg class="chart"' in r.text  # deposits per month: 12, 16, 11
    en = client.get("/statistics?from=2025-01-01&to=2025-01-31&lang=en")
    assert en.status_code == 200 and "Public statistics" in en.text
    assert _cells(en.text, "by_type") == {"Degree course grade": "12", "Total": "12"}
    for number in re.findall(r'<td class="num">(\d+)</td>', r.text + en.text):
        assert int(number) == 0 or int(number) >= 10
    xlsx = client.get("/statistics/report.xlsx?from=2025-01-01&to=2025-03-31")
    assert xlsx.status_code == 200 and len(load_workbook(io.BytesIO(xlsx.content)).sheetnames) == 9


def test_a_bad_range_is_shown_next_to_its_field(client) -> None:
    r = client.get("/statistics?from=2025-02-30&to=2025-03-01")
    assert r.status_code == 400
    assert 'id="from-error"' in r.text and 'href="#from"' in r.text and 'value="2025-02-30"' in r.text
    r = client.get("/statistics?from=2025-03-01&to=2025-01-01&lang=en")
    assert r.status_code == 400 and 'id="to-error"' in r.text and "must not be after" in r.text
    r = client.get("/statistics?from=" + "9" * 40)
    assert r.status_code == 400
    assert 400 <= client.get("/statistics?from=" + "9" * 41 + "%00").status_code < 500


def test_the_centre_page_needs_its_roles(client, staff_headers) -> None:
    from node.models import AuditEntry
    import sqlalchemy as sa

    r = client.get("/centre/statistics", headers=HTML)
    assert r.status_code == 401 and 'name="password"' in r.text
    _sign_in(client, staff_headers, "reviewer1", "branch_reviewer")
    assert client.get("/centre/statistics").status_code == 403
    assert client.get("/centre/statistics/report.csv").status_code == 403
    with client.app.state.ctx.engine.connect() as conn:
        denied = list(conn.execute(sa.select(AuditEntry.action).where(AuditEntry.outcome == "denied",
                                                                      AuditEntry.actor_name == "reviewer1")).scalars())
    assert denied == ["page.get /centre/statistics", "page.get /centre/statistics/report.csv"]


def test_the_centre_page_shows_exact_figures_and_exports(client, staff_headers, dataset) -> None:
    _sign_in(client, staff_headers, "auditor1", "auditor")
    r = client.get("/centre/statistics?from=2025-01-01&to=2025-03-31")
    assert r.status_code == 200 and "统计与报表" in r.text
    by_type = _cells(r.text, "by_type")  # the last column: revoked
    assert set(by_type) == {"学历教育课程成绩", "培训证书", "职业资格证书", "合计"}
    assert "report.xlsx?from=2025-01-01&amp;to=2025-03-31" in r.text
    assert "/centre/statistics/refresh" not in r.text  # an auditor reads; only a node admin refreshes
    xlsx = client.get("/centre/statistics/report.xlsx?from=2025-01-01&to=2025-03-31")
    assert xlsx.status_code == 200
    ws = load_workbook(io.BytesIO(xlsx.content))["按类别统计成果"]
    assert ws["B3"].value == "2025-01-01 – 2025-03-31"
    assert client.get("/centre/statistics/report.pdf").status_code == 404


def test_the_refresh_form_counts_new_events(client, staff_headers, dataset) -> None:
    _sign_in(client, staff_headers, "admin1", "node_admin")
    page = client.get("/centre/statistics")
    assert "/centre/statistics/refresh" in page.text
    assert client.post("/centre/statistics/refresh", data={"csrf": "0" * 40}).status_code == 400
    r = client.post("/centre/statistics/refresh", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("refreshed=0")
    assert "0 条新事件" in client.get(r.headers["location"]).text
