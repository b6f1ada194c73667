"""Bulk-import benchmark: the real import path against a raw loader that writes the same rows.

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
import gc
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


def write_csv(path: Path, rows: int, first_learner: int = 0) -> None:
    """`rows` rows: learners `first_learner`, `first_learner + 1`, … with COURSES_PER_LEARNER courses each."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SHANGHAI_COLUMNS)
        for n in range(rows):
            learner, k = divmod(n, COURSES_PER_LEARNER)
            learner += first_learner
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
            self.raw_url = self.raw_driver_url = f"sqlite:///{workdir / 'raw.db'}"
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
            self.raw_url = self.server.set(database=f"{self.name}_raw").render_as_string(hide_password=False)
            self.raw_driver_url = self.server.set(database=f"{self.name}_raw", drivername="postgresql") \
                .render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.kind == "postgresql":
            with self.admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}_raw" WITH (FORCE)')
            self.admin.dispose()


class RawLoader:
    """The same rows the import writes, by the shortest straight-line code: the baseline the import is measured
    against (docs/performance.md, "Bulk import").

    Per input row it computes exactly what the stored row needs and nothing else — the dedupe key (SHA-256),
    for a learner met the first time the blind index (HMAC-SHA256), the ID number and name encrypted
    (AES-256-GCM, fresh nonce), a pseudonym and a leaf salt; the achievement's columns; the ledger event
    (sorted-key JSON opening, 16-byte salt, SHA-256 commitment, the leaf, its hash chained to the previous one, the
    Merkle frontier) — and writes learners, achievements and ledger events, then the ledger head, one
    transaction per batch, into a database built by the node's own migrations (same tables, same indexes,
    same foreign keys, same SQLite pragmas): sqlite3 `executemany`, or PostgreSQL `COPY` (what the import uses).
    It does not validate, look anything up, de-duplicate, report rejected rows or keep job progress: that is the
    import's own work, and must fit in the difference. Values are not COPY-escaped (the generated file holds no
    tab, newline or backslash)."""

    def __init__(self, kind: str, url: str, keys: dict[str, bytes]) -> None:
        self.kind = kind
        self.url = url
        self.aead = __import__("cryptography.hazmat.primitives.ciphers.aead", fromlist=["AESGCM"]).AESGCM(
            keys["database"])
        self.blind_key = keys["blind"]
        self.db_seconds = 0.0
        self.server_cpu = 0.0

    def run(self, path: Path, batch: int, org_id: int) -> float:
        import hmac
        import json

        import orjson

        from crypto.leaf import COMMITMENT_TAG
        from node.security.idnumbers import mask_id_number

        sha256, urandom, uuid4 = hashlib.sha256, os.urandom, uuid.uuid4
        sort = orjson.OPT_SORT_KEYS
        kid = b"k1"
        job = str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        created = now.strftime("%Y-%m-%d %H:%M:%S.%f") if self.kind == "sqlite" else now.isoformat()
        at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        writer = self._writer()
        gc.disable()  # collected once per batch, as the import does (node.imports.service)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        seen: dict[str, tuple[int, str, str]] = {}
        seq, prev, frontier = 0, bytes(32), []
        learner_id = achievement_id = 0
        learners: list[tuple] = []
        achievements: list[tuple] = []
        events: list[tuple] = []

        def event(kind: str, lid: int, aid: int | None, subject: str, data: dict) -> None:
            nonlocal seq, prev
            opening = orjson.dumps({"data": data, "subject": subject}, option=sort)
            salt = urandom(16)
            commitment = sha256(COMMITMENT_TAG + salt + opening).hexdigest()
            leaf = orjson.dumps({"v": 2, "seq": seq, "prev": prev.hex(), "at": at, "kind": kind,
                                 "commitment": commitment}, option=sort)
            digest = sha256(b"\x00" + leaf).digest()
            events.append((seq, kind, lid, aid, leaf.decode(), digest, salt, opening.decode(), created))
            h, size = digest, seq
            while size & 1:
                h = sha256(b"\x01" + frontier.pop() + h).digest()
                size >>= 1
            frontier.append(h)
            prev = digest
            seq += 1

        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            for r in reader:
                number = r[2]
                held = seen.get(number)
                if held is None:
                    if len(seen) > 100_000:
                        seen.clear()
                    learner_id += 1
                    blind = hmac.new(self.blind_key, f"resident_id:{number}".encode(), "sha256").hexdigest()
                    nonce, nonce2 = urandom(12), urandom(12)
                    subject = f"urn:uuid:{uuid4()}"
                    account = f"SH{learner_id:010d}"
                    learners.append((learner_id, account, "resident_id", blind,
                                     nonce + self.aead.encrypt(nonce, number.encode(), kid),
                                     mask_id_number(number), nonce2 + self.aead.encrypt(nonce2, r[1].encode(), kid),
                                     "k1", subject, urandom(16), created))
                    held = seen[number] = (learner_id, blind, subject)
                    event("learner.opened", learner_id, None, subject, {"account": account, "id_type": "resident_id"})
                lid, blind, subject = held
                achievement_id += 1
                key = sha256(f"{blind}\x1fU1\x1f{r[4]}\x1f{r[10]}".encode()).hexdigest()
                score = r[9]
                achievements.append((
                    achievement_id, lid, "degree_course", org_id, "U1", "示范大学", "", r[4], r[3],
                    int(float(r[7]) * 1000), int(float(r[8]) * 1000), score,
                    int(score) * 1000 if score.isdigit() else None, f"{r[10][:4]}-{r[10][4:]}-01", r[10], r[0], r[5],
                    r[6], r[11], r[12], r[13], "bulk", "deposited", key, job, created, None, None, r[14] or None, None))
                event("achievement.deposited", lid, achievement_id, subject, {
                          "achievement": achievement_id, "type": "degree_course", "issuer": "U1", "code": "",
                          "title": r[4], "credits": r[7], "score": score, "term": r[10], "source": "bulk",
                          "import_job": job})
                if len(achievements) >= batch:
                    writer(learners, achievements, events, seq, prev, json.dumps([h.hex() for h in frontier]))
                    learners, achievements, events = [], [], []
                    gc.collect(1)  # as the import (node.imports.service._collections_per_batch)
        if achievements:
            writer(learners, achievements, events, seq, prev, json.dumps([h.hex() for h in frontier]))
        elapsed = time.perf_counter() - t0
        self.cpu = time.process_time() - cpu0
        gc.enable()
        self.close()
        return elapsed

    # -- writing ------------------------------------------------------------------------------------

    def _writer(self):
        ach_cols = ", ".join(RAW_ACH_COLUMNS)
        lrn_cols = ", ".join(RAW_LEARNER_COLUMNS)
        evt_cols = ", ".join(RAW_EVENT_COLUMNS)
        if self.kind == "sqlite":
            import sqlite3

            conn = self.conn = sqlite3.connect(sa_path(self.url), isolation_level=None)
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=30000"):
                conn.execute(f"PRAGMA {pragma}")
            ins_l = f"INSERT INTO learner ({lrn_cols}) VALUES ({', '.join('?' * len(RAW_LEARNER_COLUMNS))})"
            ins_a = f"INSERT INTO achievement ({ach_cols}) VALUES ({', '.join('?' * len(RAW_ACH_COLUMNS))})"
            ins_e = f"INSERT INTO ledger_event ({evt_cols}) VALUES ({', '.join('?' * len(RAW_EVENT_COLUMNS))})"

            def write(learners, achievements, events, size, last, frontier) -> None:
                t = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(ins_l, learners)
                conn.executemany(ins_a, achievements)
                conn.executemany(ins_e, events)
                conn.execute("UPDATE ledger_head SET size = ?, last_hash = ?, frontier = ? WHERE id = 1",
                             (size, last, frontier))
                conn.execute("COMMIT")
                self.db_seconds += time.perf_counter() - t

            return write
        import psycopg

        conn = self.conn = psycopg.connect(self.url)

        def lines(rows, binary=()):
            for row in rows:
                yield "\t".join("\\N" if v is None else ("\\\\x" + v.hex()) if i in binary else str(v)
                                for i, v in enumerate(row)) + "\n"

        def write(learners, achievements, events, size, last, frontier) -> None:
            t = time.perf_counter()
            with conn.cursor() as cur:
                for table, cols, rows, binary in (("learner", lrn_cols, learners, (4, 6, 9)),
                                                  ("achievement", ach_cols, achievements, ()),
                                                  ("ledger_event", evt_cols, events, (5, 6))):
                    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                        for i in range(0, len(rows), 1000):  # the server parses a chunk while the next is made
                            copy.write("".join(lines(rows[i : i + 1000], binary)))
                cur.execute("UPDATE ledger_head SET size = %s, last_hash = %s, frontier = %s WHERE id = 1",
                            (size, last, frontier))
            conn.commit()
            self.db_seconds += time.perf_counter() - t

        return write

    def close(self) -> None:
        if self.kind != "sqlite":
            self.server_cpu = backend_cpu([self.conn.info.backend_pid])
        self.conn.close()


def sa_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


RAW_LEARNER_COLUMNS = ("id", "account_no", "id_type", "id_blind", "id_cipher", "id_masked", "name_cipher", "key_id",
                       "pseudonym", "leaf_salt", "created_at")
RAW_ACH_COLUMNS = ("id", "learner_id", "type", "issuer_org_id", "issuer_code", "issuer_name", "code", "title",
                   "programme_name", "credits", "hours", "score_text", "score_value", "earned_on", "term",
                   "student_no", "education_level_code", "education_type_code", "graduation_year",
                   "graduation_status", "graduation_season", "source", "status", "dedupe_key", "import_job_id",
                   "created_at", "level", "expires_on", "remark", "status_index")  # the import's columns
RAW_EVENT_COLUMNS = ("seq", "kind", "learner_id", "achievement_id", "leaf", "hash", "salt", "opening", "created_at")


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


KEYS = {"database": _key("d"), "blind": _key("b"), "token": _key("t")}


def backend_cpu(pids) -> float:
    """CPU seconds (user + system) the PostgreSQL server processes `pids` have used (local server: /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def database_backends(engine, name: str) -> list[int]:
    with engine.connect() as c:
        return [r[0] for r in c.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))]


def node_settings(url: str, data_dir: Path, batch: int) -> Settings:
    return Settings(
        node=NodeSettings(region="shanghai", data_dir=data_dir, mode="test"),
        database=DatabaseSettings(url=url),
        security=SecuritySettings(database_key=KEYS["database"], blind_index_key=KEYS["blind"],
                                  token_secret=KEYS["token"]),
        imports=ImportSettings(batch_size=batch, run_in_background=False),
    )


def institution(ctx, code: str) -> int:
    from node.db import session_scope
    from node.imports import repository as repo
    from node.org.service import create_organisation

    with session_scope(ctx.engine) as s:
        org = repo.organisation_by_code(s, code) or create_organisation(
            s, code=code, name="示范大学" if code == "U1" else f"示范大学{code}", kind="institution")
        return org.id


def queue_job(ctx, org_code: str, csv_path: Path, name: str | None = None) -> str:
    from node.db import session_scope
    from node.deps import Principal
    from node.imports import repository as repo
    from node.imports.service import create_job, store_upload

    actor = Principal("system", 0, "bench", ("node_admin",))
    institution(ctx, org_code)
    with session_scope(ctx.engine) as s, csv_path.open("rb") as fh:
        sha, stored = store_upload(ctx, fh, name or csv_path.name)
        return create_job(s, ctx, institution=repo.organisation_by_code(s, org_code), path=stored, sha256=sha,
                          filename=name or csv_path.name, requested_format=None, actor=actor).id


def table_counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
                for t in ("learner", "achievement", "ledger_event")}


def import_path(db: Database, workdir: Path, csv_path: Path, batch: int, *, profile: bool,
                trace: bool, again: bool = False) -> tuple[float, dict, float, list[tuple[int, float]]]:
    """Run the real import on `csv_path`: (seconds, the job's counts, peak memory growth in MiB, RSS growth in MiB
    after each batch as (rows committed, MiB))."""
    from node.context import NodeContext
    from node.db import upgrade_database
    from node.imports.service import run_job

    upgrade_database(db.url)
    ctx = NodeContext.build(node_settings(db.url, workdir / f"data-{db.kind}", batch))
    job_id = queue_job(ctx, "U1", csv_path)
    rss0 = _reset_peak_rss()
    growth: list[tuple[int, float]] = []

    def progress(job) -> None:
        growth.append((job.rows_committed, (_status_kib("VmRSS") - rss0) / 1024))

    if trace:
        tracemalloc.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        job = prof.runcall(run_job, ctx, job_id, progress=progress)
        elapsed = time.perf_counter() - t0
        pstats.Stats(prof).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(
            int(os.environ.get("BENCH_TOP", "25")))
    else:
        job = run_job(ctx, job_id, progress=progress)
        elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if trace:
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    else:
        peak_mb = (_peak_rss_kib() - rss0) / 1024
    counts = {k: getattr(job, k) for k in ("status", "rows_read", "deposited", "updated", "duplicates", "rejected",
                                           "learners_created")}
    counts["cpu"] = round(cpu, 2)
    if db.kind == "postgresql":  # before --again's second job
        counts["server_cpu"] = round(backend_cpu(database_backends(db.admin, db.name)), 2)
    if job.error:
        counts["error"] = job.error
    if again:  # the same file uploaded a second time, as a new job: nothing may be added
        second = queue_job(ctx, "U1", csv_path, "again-" + csv_path.name)
        t1 = time.perf_counter()
        job2 = run_job(ctx, second)
        counts["again"] = {k: getattr(job2, k) for k in ("status", "rows_read", "deposited", "updated", "duplicates",
                                                         "rejected")}
        counts["again"]["seconds"] = round(time.perf_counter() - t1, 1)
    counts.update(table_counts(ctx.engine))
    ctx.engine.dispose()
    return elapsed, counts, peak_mb, growth


def raw_path(db: Database, csv_path: Path, batch: int) -> tuple[float, float, dict[str, int]]:
    """The raw baseline on its own freshly migrated database: (seconds, seconds in database calls, rows)."""
    import sqlalchemy as sa

    from node.context import NodeContext
    from node.db import upgrade_database

    upgrade_database(db.raw_url)
    ctx = NodeContext.build(node_settings(db.raw_url, csv_path.parent / f"raw-{db.kind}", batch))
    org_id = institution(ctx, "U1")
    ctx.engine.dispose()
    from node.security.fields import key_bytes

    loader = RawLoader(db.kind, db.raw_driver_url,
                       {"database": key_bytes(KEYS["database"]), "blind": key_bytes(KEYS["blind"])})
    elapsed = loader.run(csv_path, batch, org_id)
    engine = sa.create_engine(db.raw_url, poolclass=sa.pool.NullPool)
    counts = table_counts(engine)
    counts["cpu"] = round(loader.cpu, 2)
    if db.kind == "postgresql":
        counts["server_cpu"] = round(loader.server_cpu, 2)
    engine.dispose()
    return elapsed, loader.db_seconds, counts


# -- several institutions at once (PostgreSQL) ----------------------------------------------------


def _parallel_worker(url: str, data_dir: str, batch: int, job_id: str, out) -> None:
    """One server process's import worker: its own context (engine, pool), the real `run_job`."""
    from node.context import NodeContext
    from node.imports.service import run_job

    ctx = NodeContext.build(node_settings(url, Path(data_dir), batch))
    start = time.time()  # wall clock: comparable across the processes
    job = run_job(ctx, job_id)
    out.put((job_id, start, time.time(), job.status, job.error, job.deposited, job.learners_created))
    ctx.engine.dispose()


def parallel(db: Database, workdir: Path, rows: int, files: int, batch: int, overlap: float) -> None:
    """`files` institutions' files imported at once, each by its own process (as `files` server workers would),
    on one database. Learners overlap between neighbouring files (`overlap` of each file's learners are also in
    the next file): one account per person, whoever imports first."""
    import multiprocessing as mp

    from node.context import NodeContext
    from node.db import upgrade_database

    upgrade_database(db.url)
    data_dir = workdir / f"data-{db.kind}"
    ctx = NodeContext.build(node_settings(db.url, data_dir, batch))
    per_file = rows // files
    learners = per_file // COURSES_PER_LEARNER
    step = int(learners * (1 - overlap))
    jobs = []
    for i in range(files):
        path = workdir / f"inst{i + 1}.csv"
        write_csv(path, per_file, first_learner=i * step)
        jobs.append(queue_job(ctx, f"U{i + 1}", path))
    distinct = step * (files - 1) + learners
    out = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_parallel_worker, args=(db.url, str(data_dir), batch, j, out))
             for j in jobs]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)  # first job's start to last one's end
    counts = table_counts(ctx.engine)
    from node.db import session_scope
    from node.ledger.log import verify_log

    with session_scope(ctx.engine) as s:
        problems = verify_log(s)
    ctx.engine.dispose()
    total = per_file * files
    print(f"\n== {db.kind}: {files} files at once, {per_file:,} rows each ({total:,} rows, {learners:,} learners a "
          f"file, {overlap:.0%} shared with the next file: {distinct:,} distinct people), batch {batch}")
    first = min(r[1] for r in results)
    for job_id, start, end, status, error, deposited, created in results:
        print(f"   job {job_id[:8]} : {status:6} {start - first:5.1f}–{end - first:5.1f} s  {per_file / (end - start):8,.0f} "
              f"rows/s  deposited {deposited:,}, learners created {created:,}{'  error: ' + error if error else ''}")
    print(f"   total       : {elapsed:8.1f} s  {total / elapsed:10,.0f} rows/s (all files; first start to last end, "
          f"process start-up excluded)   {counts}")
    print(f"   learners    : {counts['learner']:,} (expected {distinct:,}: "
          f"{'one account per person' if counts['learner'] == distinct else 'WRONG'})")
    print(f"   ledger      : {'chain verified' if not problems else problems[:3]}")


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
    ap.add_argument("--repeat", type=int, default=1,
                    help="run import and raw this many times, alternating, and report the best of each")
    ap.add_argument("--parallel", type=int, default=0, metavar="N",
                    help="instead: N institutions' files (--rows in all) imported at once by N processes "
                         "(PostgreSQL only)")
    ap.add_argument("--overlap", type=float, default=0.1,
                    help="with --parallel: the share of a file's learners also in the next file")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        if args.parallel:
            db = Database("postgresql", workdir, args.pg_url)
            try:
                parallel(db, workdir, args.rows, args.parallel, args.batch_size, args.overlap)
            finally:
                db.drop()
            return
        csv_path = workdir / "shanghai.csv"
        t0 = time.perf_counter()
        write_csv(csv_path, args.rows)
        print(f"generated {args.rows:,} rows ({args.rows // COURSES_PER_LEARNER:,} learners), "
              f"{csv_path.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f}s")
        kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
        for kind in kinds:
            best = None
            cpu_runs: list[tuple[tuple[float, float], tuple[float, float]]] = []  # (import, raw): (process, server)
            for attempt in range(args.repeat):  # alternating, the best of each: the machine is shared and noisy
                rundir = workdir / f"{kind}-{attempt}"
                rundir.mkdir()
                db = Database(kind, rundir, args.pg_url)
                try:
                    elapsed, counts, peak, growth = import_path(db, rundir, csv_path, args.batch_size,
                                                                profile=args.profile, trace=args.tracemalloc,
                                                                again=args.again)
                    raw, raw_db, raw_counts = raw_path(db, csv_path, args.batch_size)
                finally:
                    db.drop()
                cpu_runs.append(((counts["cpu"], counts.get("server_cpu", 0.0)),
                                 (raw_counts["cpu"], raw_counts.get("server_cpu", 0.0))))
                print(f"   [{kind} run {attempt + 1}: import {elapsed:.1f} s, CPU {sum(cpu_runs[-1][0]):.2f} s; "
                      f"raw {raw:.1f} s, CPU {sum(cpu_runs[-1][1]):.2f} s; load average "
                      f"{os.getloadavg()[0]:.1f}]", flush=True)
                run = (elapsed, counts, peak, growth, raw, raw_db, raw_counts)
                if best is None:
                    best = list(run)
                else:  # best import and best raw, each from its own run
                    if elapsed < best[0]:
                        best[:4] = run[:4]
                    if raw < best[4]:
                        best[4:7] = run[4:7]
            elapsed, counts, peak, growth, raw, raw_db, raw_counts = best
            # CPU: the least each side used in any run (process, plus server backends on PostgreSQL)
            (cpu_imp, srv_imp) = min((r[0] for r in cpu_runs), key=sum)
            (cpu_raw, srv_raw) = min((r[1] for r in cpu_runs), key=sum)
            imp_rate, raw_rate = args.rows / elapsed, args.rows / raw
            written = counts["learner"] + counts["achievement"] + counts["ledger_event"]
            print(f"\n== {kind}: {args.rows:,} rows, batch {args.batch_size}")
            print(f"   import path : {elapsed:8.1f} s  {imp_rate:10,.0f} rows/s   {counts}")
            print(f"   raw, same rows: {raw:6.1f} s  {raw_rate:10,.0f} rows/s   {raw_counts} "
                  f"({'executemany' if kind == 'sqlite' else 'COPY'}; {raw_db:.1f} s of it writing)")
            same = all(raw_counts[t] == counts[t] for t in ("learner", "achievement", "ledger_event"))
            print(f"   rows written: {written:,} ({written / args.rows:.2f} a row; "
                  f"{'the same as raw' if same else 'NOT the same as raw'})")
            print(f"   ratio       : {imp_rate / raw_rate:8.2f} of raw (goal >= 0.9)")
            least = f"least of {args.repeat} runs each" if args.repeat > 1 else ""
            if kind == "sqlite":
                print(f"   CPU         : import {cpu_imp:.1f} s, raw {cpu_raw:.1f} s ({least + '; ' if least else ''}"
                      f"this process does all the work): {cpu_raw / cpu_imp:.2f} (the ratio a busy machine does not "
                      "blur)")
            else:
                print(f"   CPU         : import {cpu_imp:.1f} s + server {srv_imp:.1f} s, raw {cpu_raw:.1f} s + server "
                      f"{srv_raw:.1f} s{f' ({least})' if least else ''}: {(cpu_raw + srv_raw) / (cpu_imp + srv_imp):.2f} "
                      "(the ratio a busy machine does not blur)")
            marks = [g for g in growth if g[0] >= 200_000][:1] + growth[-1:]
            at = ", ".join(f"{r:,} rows: {mb:+.1f} MiB" for r, mb in marks)
            print(f"   memory      : peak {peak:.1f} MiB "
                  f"({'tracemalloc peak' if args.tracemalloc else 'peak RSS above the RSS at start'}); "
                  f"RSS growth after {at}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
