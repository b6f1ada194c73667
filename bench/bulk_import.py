"""Bulk-import benchmark: the real import path against raw `executemany` of the same rows.

    python bench/bulk_import.py                       # 200,000 rows, SQLite and PostgreSQL
    python bench/bulk_import.py --rows 1000000 --database sqlite
    python bench/bulk_import.py --rows 50000 --profile  # cProfile of the import path (top functions)
    python bench/bulk_import.py --rows 1000000 --again  # and import the same file again: 0 added

It writes a Shanghai-template CSV (UTF-8) with ~rows/20 learners (valid GB 11643 numbers) and 20 courses each,
imports it through `node.imports.service.run_job` (the function the background job and `creditnode import` use),
then inserts the same rows with the driver's raw `executemany` (sqlite3 / psycopg, same batch size, one commit
per batch) into a plain table with the indexes of `achievement`. It prints both rates, their ratio and the
import's peak memory (tracemalloc peak when --tracemalloc, else the growth of the process's max RSS).
PostgreSQL runs in a throwaway database on --pg-url's server, dropped afterwards. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.settings import DatabaseSettings, ImportSettings, NodeSettings, SecuritySettings, Settings
from node.imports.formats import SHANGHAI_COLUMNS
from node.security.idnumbers import gb11643_check_char

COURSES_PER_LEARNER = 20
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"


def _key(seed: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def id_number(i: int) -> str:
    born = dt.date(1970, 1, 1) + dt.timedelta(days=i % 10_000)
    first = f"310101{born:%Y%m%d}{(i // 10_000) % 1000:03d}"
    return first + gb11643_check_char(first)


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SHANGHAI_COLUMNS)
        for n in range(rows):
            learner, k = divmod(n, COURSES_PER_LEARNER)
            number = id_number(learner)
            name = SURNAMES[learner % 20] + GIVEN[(learner // 20) % 20] + GIVEN[(learner // 400) % 20]
            year = 2015 + k // 4
            w.writerow([
                f"S{learner:08d}", name, number, "计算机科学与技术", f"课程{k:02d}", "20", "30",
                ("2", "3", "4", "2.5", "1.5")[k % 5], ("32", "48", "64", "40", "24")[k % 5],
                str(55 + (n * 7) % 45) if k % 6 else ("优", "良", "中", "及格", "合格")[learner % 5],
                f"{year}{(k % 4) * 3 + 1:02d}", str(year + 1), "40", "50", "",
            ])


# -- databases ------------------------------------------------------------------------------------


class Database:
    def __init__(self, kind: str, workdir: Path, pg_url: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{workdir / 'bench.db'}"
            self.raw_path = workdir / "raw.db"
        else:
            import sqlalchemy as sa

            from node.db import normalise_url

            self.server = sa.make_url(normalise_url(pg_url))
            self.admin = sa.create_engine(self.server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
            self.name = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            with self.admin.connect() as c:
                c.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
                c.exec_driver_sql(f'CREATE DATABASE "{self.name}_raw"')
            self.url = self.server.set(database=self.name).render_as_string(hide_password=False)
            self.raw_url = self.server.set(database=f"{self.name}_raw", drivername="postgresql") \
                .render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.kind == "postgresql":
            with self.admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}_raw" WITH (FORCE)')
            self.admin.dispose()


RAW_COLUMNS = ("id", "learner_id", "type", "issuer_code", "issuer_name", "code", "title", "programme_name",
               "credits", "hours", "score_text", "score_value", "earned_on", "term", "student_no",
               "education_level_code", "education_type_code", "graduation_year", "graduation_status",
               "graduation_season", "source", "status", "dedupe_key", "import_job_id", "created_at")
RAW_DDL = """CREATE TABLE raw_achievement (
 id {pk}, learner_id BIGINT NOT NULL, type VARCHAR(30) NOT NULL, issuer_code VARCHAR(32) NOT NULL,
 issuer_name VARCHAR(200) NOT NULL, code VARCHAR(64) NOT NULL, title VARCHAR(200) NOT NULL,
 programme_name VARCHAR(200), credits BIGINT, hours BIGINT, score_text VARCHAR(20), score_value BIGINT,
 earned_on DATE, term VARCHAR(6), student_no VARCHAR(40), education_level_code VARCHAR(8),
 education_type_code VARCHAR(8), graduation_year VARCHAR(8), graduation_status VARCHAR(8),
 graduation_season VARCHAR(8), source VARCHAR(20) NOT NULL, status VARCHAR(20) NOT NULL,
 dedupe_key VARCHAR(64) UNIQUE, import_job_id VARCHAR(36), status_index BIGINT UNIQUE,
 created_at TIMESTAMP NOT NULL)"""
RAW_INDEXES = ("CREATE INDEX ix_raw_job ON raw_achievement (import_job_id)",
               "CREATE INDEX ix_raw_learner_type ON raw_achievement (learner_id, type)")


def raw_rows(path: Path, batch: int):
    """The CSV's rows as achievement tuples, in batches (the same minimal work any loader must do)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    out = []
    learners: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for n, r in enumerate(reader, start=1):
            learner = learners.setdefault(r[2], len(learners) + 1)
            if len(learners) > 100_000:
                learners.clear()
            key = hashlib.sha256(f"{r[2]}|U1|{r[4]}|{r[10]}".encode()).hexdigest()
            score = r[9]
            out.append((n, learner, "degree_course", "U1", "示范大学", "", r[4], r[3], int(float(r[7]) * 1000),
                        int(float(r[8]) * 1000), score, int(score) * 1000 if score.isdigit() else None,
                        dt.date(int(r[10][:4]), int(r[10][4:]), 1), r[10], r[0], r[5], r[6], r[11], r[12], r[13],
                        "bulk", "deposited", key, "job", now))
            if len(out) >= batch:
                yield out
                out = []
    if out:
        yield out


def raw_insert(db: Database, path: Path, batch: int) -> float:
    cols = ", ".join(RAW_COLUMNS)
    t0 = time.perf_counter()
    if db.kind == "sqlite":
        import sqlite3

        conn = sqlite3.connect(db.raw_path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(RAW_DDL.format(pk="INTEGER PRIMARY KEY"))
        for ddl in RAW_INDEXES:
            conn.execute(ddl)
        t0 = time.perf_counter()
        sql = f"INSERT INTO raw_achievement ({cols}) VALUES ({', '.join('?' * len(RAW_COLUMNS))})"
        for chunk in raw_rows(path, batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, chunk)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
        return elapsed
    import psycopg

    with psycopg.connect(db.raw_url) as conn:
        conn.execute(RAW_DDL.format(pk="BIGINT PRIMARY KEY"))
        for ddl in RAW_INDEXES:
            conn.execute(ddl)
        conn.commit()
        t0 = time.perf_counter()
        sql = f"INSERT INTO raw_achievement ({cols}) VALUES ({', '.join(['%s'] * len(RAW_COLUMNS))})"
        for chunk in raw_rows(path, batch):
            with conn.cursor() as cur:
                cur.executemany(sql, chunk)
            conn.commit()
        return time.perf_counter() - t0


# -- the import path ------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> int:
    """Reset the process's peak RSS (Linux: clear_refs 5), so the peak measured is the import's; returns the
    current RSS in KiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_kib() -> int:
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def import_path(db: Database, workdir: Path, csv_path: Path, batch: int, *, profile: bool,
                trace: bool, again: bool = False) -> tuple[float, dict, float]:
    from node.context import NodeContext
    from node.db import session_scope, upgrade_database
    from node.deps import Principal
    from node.imports.service import create_job, run_job, store_upload
    from node.org.service import create_organisation

    upgrade_database(db.url)
    settings = Settings(
        node=NodeSettings(region="shanghai", data_dir=workdir / f"data-{db.kind}", mode="test"),
        database=DatabaseSettings(url=db.url),
        security=SecuritySettings(database_key=_key("d"), blind_index_key=_key("b"), token_secret=_key("t")),
        imports=ImportSettings(batch_size=batch, run_in_background=False),
    )
    ctx = NodeContext.build(settings)
    actor = Principal("system", 0, "bench", ("node_admin",))
    with session_scope(ctx.engine) as s:
        org = create_organisation(s, code="U1", name="示范大学", kind="institution")
        with csv_path.open("rb") as fh:
            sha, stored = store_upload(ctx, fh, csv_path.name)
        job_id = create_job(s, ctx, institution=org, path=stored, sha256=sha, filename=csv_path.name,
                            requested_format=None, actor=actor).id
    rss0 = _reset_peak_rss()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        job = prof.runcall(run_job, ctx, job_id)
        elapsed = time.perf_counter() - t0
        pstats.Stats(prof).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(int(os.environ.get("BENCH_TOP", "25")))
    else:
        job = run_job(ctx, job_id)
        elapsed = time.perf_counter() - t0
    if trace:
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    else:
        peak_mb = (_peak_rss_kib() - rss0) / 1024
    counts = {k: getattr(job, k) for k in ("status", "rows_read", "deposited", "updated", "duplicates", "rejected",
                                           "total_rows", "learners_created")}
    if job.error:
        counts["error"] = job.error
    if again:  # the same file uploaded a second time, as a new job: nothing may be added
        with session_scope(ctx.engine) as s, csv_path.open("rb") as fh:
            sha, stored = store_upload(ctx, fh, "again-" + csv_path.name)
            second = create_job(s, ctx, institution=s.merge(org), path=stored, sha256=sha,
                                filename="again-" + csv_path.name, requested_format=None, actor=actor).id
        t1 = time.perf_counter()
        job2 = run_job(ctx, second)
        counts["again"] = {k: getattr(job2, k) for k in ("status", "rows_read", "deposited", "updated", "duplicates",
                                                         "rejected")}
        counts["again"]["seconds"] = round(time.perf_counter() - t1, 1)
    with ctx.engine.connect() as c:
        counts["learners"] = c.exec_driver_sql("SELECT count(*) FROM learner").scalar_one()
        counts["achievements"] = c.exec_driver_sql("SELECT count(*) FROM achievement").scalar_one()
        counts["ledger_events"] = c.exec_driver_sql("SELECT count(*) FROM ledger_event").scalar_one()
    ctx.engine.dispose()
    return elapsed, counts, peak_mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--batch-size", type=int, default=ImportSettings().batch_size)
    ap.add_argument("--profile", action="store_true", help="cProfile the import path (slower)")
    ap.add_argument("--tracemalloc", action="store_true", help="peak memory by tracemalloc (slower)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--again", action="store_true",
                    help="import the same file a second time (a new job) and print what it added (must be 0)")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        csv_path = workdir / "shanghai.csv"
        t0 = time.perf_counter()
        write_csv(csv_path, args.rows)
        print(f"generated {args.rows:,} rows ({args.rows // COURSES_PER_LEARNER:,} learners), "
              f"{csv_path.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f}s")
        kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
        for kind in kinds:
            db = Database(kind, workdir, args.pg_url)
            try:
                elapsed, counts, peak = import_path(db, workdir, csv_path, args.batch_size, profile=args.profile,
                                                    trace=args.tracemalloc, again=args.again)
                raw = raw_insert(db, csv_path, args.batch_size)
            finally:
                db.drop()
            imp_rate, raw_rate = args.rows / elapsed, args.rows / raw
            print(f"\n== {kind}: {args.rows:,} rows, batch {args.batch_size}")
            print(f"   import path : {elapsed:8.1f} s  {imp_rate:10,.0f} rows/s   {counts}")
            print(f"   raw insert  : {raw:8.1f} s  {raw_rate:10,.0f} rows/s   (executemany, same indexes)")
            print(f"   ratio       : {imp_rate / raw_rate:8.1%} of raw")
            written = counts["learners"] + counts["achievements"] + counts["ledger_events"]
            print(f"   rows written: {written:,} (learners + achievements + ledger events; raw writes 1 a row): "
                  f"{written / elapsed:,.0f}/s = {written / elapsed / raw_rate:.1%} of raw's rows/s")
            print(f"   peak memory : {peak:8.1f} MiB ({'tracemalloc peak' if args.tracemalloc else 'peak RSS above the RSS at start'}"
                  " during the import)")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
