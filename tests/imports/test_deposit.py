"""Validation and the report, idempotence, best-score corrections, resumption after a crash."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa

import node.imports.service as import_service
from node.db import session_scope
from node.ledger.log import verify_log
from node.models import ImportJob
from tests.conftest import valid_id
from tests.imports.conftest import count, events, sh_csv, sh_row


def _report(client, headers, job_id) -> list[list[str]]:
    r = client.get(f"/api/v1/imports/{job_id}/report", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_bad_rows_are_reported_and_good_rows_kept(client, upload, uploader, engine) -> None:
    bad_id = valid_id(serial="201")[:-1] + ("0" if valid_id(serial="201")[-1] != "0" else "1")
    rows = [
        sh_row("200"),                                   # row 2: good
        sh_row("201", id_number=bad_id),                 # row 3: check character wrong
        sh_row("202", credits="2.5555"),                 # row 4: four decimals
        sh_row("203", score="105"),                      # row 5: above 100
        sh_row("204", term="202313"),                    # row 6: month 13
        sh_row("205", level="29", edu_type="自考"),      # row 7: unknown code (a label is fine)
        sh_row("206", name="", credits="-1"),            # row 8: two problems
        sh_row("207", course="大学物理", score="良好"),   # row 9: good (long grade word)
        sh_row("208", term="209901"),                    # row 10: in the future
    ]
    body = upload(uploader, sh_csv(rows)).json()
    assert body["status"] == "done", body
    assert (body["rows_read"], body["deposited"], body["rejected"]) == (9, 2, 7)
    assert count(engine, "achievement") == 2
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT score_text FROM achievement WHERE title = '大学物理'").scalar() == "良"
    report = _report(client, uploader, body["id"])
    assert report[0] == ["row", "column", "value", "reason"]
    got = [(r[0], r[1]) for r in report[1:]]
    assert got == [("3", "身份证号"), ("4", "学分"), ("5", "成绩"), ("6", "获得时间"), ("7", "教育层次代码"),
                   ("8", "姓名"), ("8", "学分"), ("10", "获得时间")]
    assert "check character" in report[1][3] and report[1][2] == bad_id[:6] + "********" + bad_id[-4:]
    flat = "\n".join(",".join(r) for r in report)
    for serial in ("200", "201", "202", "203", "204", "205", "206", "207", "208"):
        assert valid_id(serial=serial) not in flat
    assert bad_id not in flat
    with engine.connect() as conn:
        stored = " ".join(r[0] for r in conn.exec_driver_sql("SELECT value FROM import_row_error"))
    assert bad_id not in stored


def test_no_id_number_or_name_in_clear_in_the_database_or_the_log(upload, uploader, engine, caplog) -> None:
    """A bulk import opens learners by the fast path (COPY / executemany): their ID numbers and names are
    stored only encrypted, in no table in clear (text or bytes), and never logged — good rows or bad."""
    import logging

    caplog.set_level(logging.DEBUG)
    numbers = [valid_id(serial=s) for s in ("411", "412", "413")]
    bad = numbers[2][:-1] + ("0" if numbers[2][-1] != "0" else "1")
    body = upload(uploader, sh_csv([sh_row("411", name="欧阳明"), sh_row("412", name="司马青"),
                                    sh_row("413", id_number=bad, name="上官云", credits="x")])).json()
    assert (body["deposited"], body["rejected"]) == (2, 1)
    secrets = [*numbers[:2], bad, "欧阳明", "司马青", "上官云"]
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                text = repr(tuple(row))
                blobs = b"".join(bytes(v) for v in row if isinstance(v, bytes | memoryview))
                for secret in secrets:
                    assert secret not in text, (table, secret)
                    assert secret.encode() not in blobs, (table, secret)
    for secret in secrets:
        assert secret not in caplog.text


def test_reimporting_the_same_file_adds_nothing(upload, uploader, engine) -> None:
    content = sh_csv([sh_row("301"), sh_row("301", course="大学英语"), sh_row("302")])
    first = upload(uploader, content).json()
    assert first["deposited"] == 3
    n_events = count(engine, "ledger_event")
    again = upload(uploader, content).json()
    assert again["status"] == "done"
    assert (again["deposited"], again["updated"], again["duplicates"]) == (0, 0, 3)
    assert count(engine, "achievement") == 3 and count(engine, "learner") == 2
    assert count(engine, "ledger_event") == n_events
    # each upload is stored (encrypted) for its own job and deleted once the job is done; the SHA-256 is kept
    with engine.connect() as conn:
        jobs = conn.exec_driver_sql("SELECT stored_path, file_sha256 FROM import_job").all()
    assert len({sha for _, sha in jobs}) == 1 and len(jobs) == 2 and first["id"] != again["id"]
    assert not any(Path(path).exists() for path, _ in jobs)


def test_overlap_with_a_better_score_updates_one_row(upload, uploader, engine) -> None:
    upload(uploader, sh_csv([sh_row("401", score="70"), sh_row("401", course="大学英语", score="88"),
                             sh_row("402", score="及格")]))
    overlap = sh_csv([
        sh_row("401", score="81.5", credits="4.5"),   # better: updated
        sh_row("401", course="大学英语", score="60"),  # worse: duplicate
        sh_row("402", score="60"),                    # equal (及格 counts as 60): duplicate
        sh_row("403"),                                # new
    ])
    body = upload(uploader, overlap).json()
    assert (body["deposited"], body["updated"], body["duplicates"], body["rejected"]) == (1, 1, 2, 0)
    assert count(engine, "achievement") == 4
    corrected = events(engine, "achievement.corrected")
    assert len(corrected) == 1
    data = corrected[0]["data"]
    assert data["old"] == {"score": "70", "credits": "4", "hours": "64"}
    assert data["new"] == {"score": "81.5", "credits": "4.5", "hours": "64"}
    assert data["import_job"] == body["id"] and data["source"] == "bulk"
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT score_text, score_value, credits FROM achievement WHERE id = ?" if engine.dialect.name == "sqlite"
            else "SELECT score_text, score_value, credits FROM achievement WHERE id = %s", (data["achievement"],)
        ).one()
    assert tuple(row) == ("81.5", 81500, 4500)  # stored in thousandths


def test_a_key_held_without_its_learner_is_found_on_the_retry(upload, uploader, engine) -> None:
    """A batch does not look up the keys of the learners it opens itself: nobody can hold an achievement of a
    person who had no account. Should one be held all the same (here: the learner's blind index changed, as an
    ID number correction would change it, while the key made from the old one stays), the unique key fails the
    batch and its retry looks every key up: the row is a duplicate, the job does not fail."""
    content = sh_csv([sh_row("601"), sh_row("601", course="大学英语")])
    assert upload(uploader, content).json()["deposited"] == 2
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE learner SET id_blind = 'changed-since'")
    again = upload(uploader, content).json()
    assert again["status"] == "done", again
    assert (again["deposited"], again["updated"], again["duplicates"], again["rejected"]) == (0, 0, 2, 0)
    assert count(engine, "achievement") == 2
    with session_scope(engine) as s:
        assert verify_log(s) == []


def test_retakes_in_one_file_keep_the_best(upload, uploader, engine) -> None:
    body = upload(uploader, sh_csv([sh_row("501", score="55"), sh_row("501", score="72"),
                                    sh_row("501", score="65")])).json()
    assert (body["deposited"], body["duplicates"]) == (1, 2)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT score_text FROM achievement").scalar() == "72"


def test_resume_after_a_crash_has_no_gaps_or_duplicates(client, upload, uploader, engine, ctx, monkeypatch) -> None:
    ctx.settings.imports.batch_size = 3
    rows = [sh_row(f"6{i:02d}", course=f"课程{i}") for i in range(10)] + [sh_row("699", credits="x")]
    real = import_service.write_batch
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            real(*args, **kwargs)  # writes, then the process "crashes" before the commit
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(import_service, "write_batch", flaky)
    failed = upload(uploader, sh_csv(rows)).json()
    assert failed["status"] == "failed" and "RuntimeError" in failed["error"]
    assert (failed["rows_committed"], failed["deposited"]) == (3, 3)  # batch 1 only: batch 2 rolled back
    assert count(engine, "achievement") == 3
    assert count(engine, "ledger_event", "WHERE kind = 'achievement.deposited'") == 3

    r = client.post(f"/api/v1/imports/{failed['id']}/resume", headers=uploader)
    assert r.status_code == 202, r.text
    ctx.extras["imports.worker"].wait()
    done = client.get(f"/api/v1/imports/{failed['id']}", headers=uploader).json()
    assert done["status"] == "done", done
    assert (done["rows_read"], done["deposited"], done["duplicates"], done["rejected"]) == (11, 10, 0, 1)
    assert count(engine, "achievement") == 10 and count(engine, "learner") == 10
    deposited = events(engine, "achievement.deposited")
    assert len(deposited) == 10 and len({e["data"]["achievement"] for e in deposited}) == 10
    assert len(events(engine, "learner.opened")) == 10
    assert count(engine, "import_row_error") == 1
    seqs = [e["seq"] for e in events(engine)]
    assert seqs == list(range(len(seqs)))  # the ledger has no gap


def test_an_abandoned_running_job_is_taken_up_again(upload, uploader, engine, ctx, monkeypatch) -> None:
    from node.imports.service import STALE_AFTER, run_job
    from node.models import utcnow

    with monkeypatch.context() as m:  # a process that dies mid-run never reaches the upload's deletion
        m.setattr(import_service, "discard_upload", lambda path: None)
        body = upload(uploader, sh_csv([sh_row("701"), sh_row("702")]), wait=False).json()
        ctx.extras["imports.worker"].wait()
    with engine.begin() as conn:  # pretend the job's process died mid-run, long ago, after nothing committed
        conn.execute(sa.update(ImportJob.__table__).values(status="running", rows_committed=0, rows_read=0,
                                                           deposited=0, heartbeat_at=utcnow() - 2 * STALE_AFTER))
    live = upload(uploader, sh_csv([sh_row("703")]), wait=False).json()
    ctx.extras["imports.worker"].wait()
    with engine.begin() as conn:  # a live one (fresh heartbeat) is left alone
        conn.execute(sa.update(ImportJob.__table__).where(ImportJob.__table__.c.id == live["id"])
                     .values(status="running", heartbeat_at=utcnow()))
    assert run_job(ctx, live["id"]).status == "running"
    resumed = run_job(ctx, body["id"])
    assert resumed.status == "done" and resumed.duplicates == 2 and resumed.deposited == 0


@pytest.mark.parametrize("batch_size", [1, 2, 5000])
def test_batch_size_does_not_change_the_outcome(upload, uploader, engine, ctx, batch_size: int) -> None:
    ctx.settings.imports.batch_size = batch_size
    rows = [sh_row("801"), sh_row("801", score="90"), sh_row("802", course="物理"), sh_row("803", score="abc")]
    body = upload(uploader, sh_csv(rows)).json()
    assert (body["deposited"], body["duplicates"], body["rejected"], body["updated"]) == (
        (2, 0, 1, 1) if batch_size == 1 else (2, 1, 1, 0))
    with engine.connect() as conn:
        assert sorted(r[0] for r in conn.exec_driver_sql("SELECT score_text FROM achievement")) == ["85", "90"]
