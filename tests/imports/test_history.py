"""The import history's keyset paging (`after`) and a job's estimated time left (`seconds_left`)."""

from __future__ import annotations

import datetime as dt

from node.imports.results import time_left
from node.models import ImportJob
from tests.imports.conftest import OTHER_INSTITUTION, sh_csv, sh_row


def test_history_pages_with_after_and_never_across_institutions(client, upload, uploader, staff_headers) -> None:
    made = [upload(uploader, sh_csv([sh_row(f"93{n}")]), f"f{n}.csv").json()["id"] for n in range(3)]
    seen, after = [], None
    while True:
        params = {"limit": 2} | ({"after": after} if after else {})
        page = client.get("/api/v1/imports", params=params, headers=uploader).json()
        if not page:
            break
        seen += [j["id"] for j in page]
        after = page[-1]["id"]
    assert sorted(seen) == sorted(made) and len(seen) == 3
    done = client.get(f"/api/v1/imports/{made[0]}", headers=uploader).json()
    assert done["seconds_left"] == 0
    other = staff_headers("institution_uploader", org=OTHER_INSTITUTION)
    r = client.get("/api/v1/imports", params={"after": made[0]}, headers=other)  # not theirs: unknown
    assert r.status_code == 400 and r.json()["code"] == "invalid_query"
    assert client.get("/api/v1/imports", params={"after": "x" * 37}, headers=uploader).status_code == 422


def test_time_left_follows_the_rate_so_far() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 10, tzinfo=dt.UTC)
    job = ImportJob(id="j", organisation_id=1, filename="f", file_sha256="0" * 64, format="jsonl", stored_path="p",
                    status="running", rows_read=1000, total_rows=5000,
                    started_at=dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC))
    assert time_left(job, now=now) == 40  # 1000 rows in 10 s: 4000 rows left take 40 s
    job.rows_read = 0
    assert time_left(job, now=now) is None
    job.status = "queued"
    assert time_left(job, now=now) is None
    job.status = "done"
    assert time_left(job, now=now) == 0
