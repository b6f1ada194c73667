"""Shanghai's size: read latency of a PostgreSQL node at a small size and at a big one.

    python bench/scale.py                                    # 10 k then 100 k achievements (a minute or two)
    python bench/scale.py --achievements 1000000             # 10 k then 1 M (100 k learners)
    python bench/scale.py --achievements 10000000            # 10 k then 10 M (1 M learners): the issue's size
    python bench/scale.py --achievements 200000 --keep       # keep the database (its name is printed)

It builds a node database in a throwaway PostgreSQL database on --pg-url's server (dropped afterwards unless
--keep): learners, their achievements and ledger events through the bulk import itself (Shanghai-template CSV
files of up to --file-rows rows, each run by `node.imports.service.run_job`, the function the import job and
`creditnode import` use; on PostgreSQL it writes with COPY, node.pgcopy). Rows the node has no fast path for
are generated in SQL (`INSERT … SELECT generate_series`): audit entries (--audit-per-achievement a record),
deposit applications (one per 10 learners), conversion requests (one per 20) and incoming transfers with
one item each (one per 100); a few percent of each are waiting in a review queue, spread evenly over the ids.

It builds two databases, the small size (--small-achievements, the same achievements per learner) and the
big one, serves each with uvicorn on 127.0.0.1 (one worker each) and measures p50/p99 of sequential
requests (one client, keep-alive, so latency is not queueing) for: a learner's archive, transcript and one
credential; staff search of a learner by ID number; the deposit (by state, by branch), conversion and transfer
review queues; the audit log's first page and its filters (action, target, actor); the statistics (the centre's
report for this year and for one day, the public one; after `stats backfill` has counted the build). Requests alternate between
the two sizes, so that the noise of a shared machine falls on both alike. It prints p50/p99 at both sizes,
the ratio big/small and the goal (p99 at the big size ≤ 1.5 × p99 at the small). The big node records every
SQL statement slower than --slow-ms (a SQLAlchemy cursor event, wall time in the server, so a busy machine
adds some); the bench then prints `EXPLAIN (ANALYZE, BUFFERS)` of each. Learners, achievements and ID numbers
are sampled at random over the whole database. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import hashlib
import os
import pickle
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.settings import DatabaseSettings, ImportSettings, NodeSettings, SecuritySettings, Settings

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
STAFF = "bench-reviewer"
ACTIONS = ("learner.search", "deposit.read", "import.create", "transfer.list")  # as generated, and written


def _key(seed: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def settings_for(workdir: Path, url: str) -> Settings:
    return Settings(
        node=NodeSettings(region="shanghai", data_dir=workdir / "data", mode="test", log_level="WARNING"),
        database=DatabaseSettings(url=url),
        security=SecuritySettings(database_key=_key("scale-d"), blind_index_key=_key("scale-b"),
                                  token_secret=_key("scale-t"), token_ttl_seconds=86_400),
        imports=ImportSettings(run_in_background=False),
    )


def id_number(i: int) -> str:
    """The i-th learner's resident ID number (valid GB 11643; unique for i < 10,000,000)."""
    from node.security.idnumbers import gb11643_check_char

    born = dt.date(1960, 1, 1) + dt.timedelta(days=i % 10_000)
    first = f"3101{(i // 10_000_000) % 100:02d}{born:%Y%m%d}{(i // 10_000) % 1000:03d}"
    return first + gb11643_check_char(first)


def write_csv(path: Path, first: int, last: int, per_learner: int) -> int:
    """Shanghai-template rows for learners first..last-1, `per_learner` courses each; the number of rows."""
    from node.imports.formats import SHANGHAI_COLUMNS

    rows = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SHANGHAI_COLUMNS)
        for learner in range(first, last):
            number = id_number(learner)
            name = SURNAMES[learner % 20] + GIVEN[(learner // 20) % 20] + GIVEN[(learner // 400) % 20]
            for k in range(per_learner):
                year = 2010 + (k // 4) % 14
                w.writerow([
                    f"S{learner:08d}", name, number, "计算机科学与技术", f"课程{k:03d}", "20", "30",
                    ("2", "3", "4", "2.5", "1.5")[k % 5], ("32", "48", "64", "40", "24")[k % 5],
                    str(55 + (learner * 7 + k) % 45) if k % 6 else ("优", "良", "中", "及格", "合格")[learner % 5],
                    f"{year}{(k % 4) * 3 + 1:02d}", str(year + 1), "40", "50", "",
                ])
                rows += 1
    return rows


# -- building ---------------------------------------------------------------------------------------


class Node:
    """The database being built and the node context over it."""

    def __init__(self, pg_url: str, workdir: Path) -> None:
        import sqlalchemy as sa

        from node.db import normalise_url

        self.workdir = workdir
        server = sa.make_url(normalise_url(pg_url))
        self.admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.name = f"scale_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with self.admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        self.url = server.set(database=self.name).render_as_string(hide_password=False)
        self.learners = 0  # learners built so far (indexes 0..learners-1)
        self.ctx: Any = None

    def open(self) -> None:
        from node.context import NodeContext
        from node.db import session_scope, upgrade_database
        from node.deposits.schemas import AchievementCreate
        from node.org.service import create_organisation, create_staff
        from node.roles import ALL_STAFF_ROLES

        upgrade_database(self.url)
        self.ctx = NodeContext.build(settings_for(self.workdir, self.url))
        with session_scope(self.ctx.engine) as s:
            create_organisation(s, code="SH", name="上海终身教育学分银行", kind="centre")
            for b in range(4):
                create_organisation(s, code=f"B{b}", name=f"分中心{b}", kind="branch", parent_code="SH")
            create_organisation(s, code="U1", name="示范大学", kind="institution", institution_type="university")
            create_staff(s, username=STAFF, display_name="bench", password="bench-password-1",
                         roles=sorted(ALL_STAFF_ROLES), organisation_code="SH")
        self.claim = AchievementCreate(type="vocational_qualification", issuer_code="HRSS", issuer_name="人社局",
                                       code="VQ.CNC", title="数控铣工", level="四级",
                                       earned_on=dt.date(2021, 6, 1)).model_dump(mode="json")

    def drop(self) -> None:
        if self.ctx is not None:
            self.ctx.engine.dispose()
        with self.admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.dispose()

    # -- learners, achievements, ledger: the bulk import ---------------------------------------------

    def import_learners(self, upto: int, per_learner: int, file_rows: int) -> tuple[int, float]:
        """Import learners self.learners..upto-1 with their achievements; (rows imported, seconds)."""
        from node.db import session_scope
        from node.deps import Principal
        from node.imports.service import create_job, run_job, store_upload
        from node.org.service import organisation_by_code

        actor = Principal("system", 0, "bench", ("node_admin",))
        per_file = max(1, file_rows // per_learner)
        rows = 0
        elapsed = 0.0
        while self.learners < upto:
            last = min(upto, self.learners + per_file)
            path = self.workdir / f"learners-{self.learners}-{last}.csv"
            n = write_csv(path, self.learners, last, per_learner)
            t0 = time.perf_counter()
            with session_scope(self.ctx.engine) as s:
                with path.open("rb") as fh:
                    sha, stored = store_upload(self.ctx, fh, path.name)
                job_id = create_job(s, self.ctx, institution=organisation_by_code(s, "U1"), path=stored,
                                    sha256=sha, filename=path.name, requested_format=None, actor=actor).id
            job = run_job(self.ctx, job_id)
            took = time.perf_counter() - t0
            path.unlink()
            if job.status != "done" or job.deposited != n:
                raise SystemExit(f"import of {path.name} ended {job.status}: deposited {job.deposited} of {n} "
                                 f"({job.error})")
            rows += n
            elapsed += took
            self.learners = last
            print(f"   imported learners to {last:>10,}: {n:,} rows in {took:.1f}s ({n / took:,.0f} rows/s)",
                  flush=True)
        return rows, elapsed

    # -- rows the node has no fast path for: generated in SQL ----------------------------------------

    def generate(self, *, first: int, last: int, audit_rows: int) -> float:
        """Review-queue rows for learners first..last-1 (by learner id order) and `audit_rows` audit entries."""
        t0 = time.perf_counter()
        with self.ctx.engine.begin() as c:
            ids = c.exec_driver_sql("SELECT min(id), max(id) FROM learner").one()
            branches = [r[0] for r in c.exec_driver_sql("SELECT id FROM organisation WHERE kind = 'branch' "
                                                         "ORDER BY id")]
            staff = c.exec_driver_sql(f"SELECT id FROM staff_account WHERE username = '{STAFF}'").scalar_one()
            lo, span = ids[0], ids[1] - ids[0] + 1
            params = {"lo": lo, "span": span, "b": branches, "claim": _json(self.claim), "staff": staff}
            # deposit applications: one per 10 learners; every 50th waits for a first review, every 100th
            # (offset) for a second; the rest were rejected for good (no achievement row to keep consistent)
            c.exec_driver_sql(
                """INSERT INTO deposit_application (learner_id, state, claim, branch_id, first_decision,
                       second_decision, submitted_at, version, created_at, updated_at)
                   SELECT %(lo)s::bigint + (g * 7919) %% %(span)s::bigint,
                          CASE WHEN g %% 50 = 0 THEN 'pending_first' WHEN g %% 100 = 25 THEN 'pending_second'
                               ELSE 'rejected_final' END,
                          %(claim)s::json,
                          CASE WHEN g %% 5 = 4 THEN NULL ELSE (%(b)s::bigint[])[1 + g %% 4] END,
                          CASE WHEN g %% 50 = 0 THEN NULL ELSE 'approve' END,
                          CASE WHEN g %% 50 = 0 OR g %% 100 = 25 THEN NULL ELSE 'reject' END,
                          now() - make_interval(secs => (%(n)s::bigint - g)::float8), 1, now() - make_interval(secs => (%(n)s::bigint - g)::float8),
                          now() - make_interval(secs => (%(n)s::bigint - g)::float8)
                   FROM generate_series(%(g0)s::bigint, %(g1)s::bigint) g""",
                {**params, "g0": first // 10, "g1": last // 10 - 1, "n": last // 10})
            c.exec_driver_sql(
                """INSERT INTO conversion_request (learner_id, programme_code, on_date, state, requested_by,
                       evaluation, version, created_at, updated_at)
                   SELECT %(lo)s::bigint + (g * 7919) %% %(span)s::bigint, 'P.CS.BACHELOR', current_date,
                          CASE WHEN g %% 50 = 0 THEN 'proposed' WHEN g %% 50 = 1 THEN 'confirmed'
                               ELSE 'decided' END,
                          'learner', '{}'::json, 1, now() - make_interval(secs => (%(n)s::bigint - g)::float8),
                          now() - make_interval(secs => (%(n)s::bigint - g)::float8)
                   FROM generate_series(%(g0)s::bigint, %(g1)s::bigint) g""",
                {**params, "g0": first // 20, "g1": last // 20 - 1, "n": last // 20})
            c.exec_driver_sql(
                """WITH t AS (
                     INSERT INTO transfer (learner_id, origin, consent_id, consent, state, checkpoint, verification,
                                           release_receipt, created_at, completed_at)
                     SELECT %(lo)s::bigint + (g * 7919) %% %(span)s::bigint, 'zhejiang', 'consent-' || g, '{}'::json,
                            CASE WHEN g %% 20 = 0 THEN 'awaiting_review' ELSE 'completed' END, '', '{}'::json,
                            '{}'::json, now() - make_interval(secs => (%(n)s::bigint - g)::float8),
                            CASE WHEN g %% 20 = 0 THEN NULL ELSE now() END
                     FROM generate_series(%(g0)s::bigint, %(g1)s::bigint) g
                     RETURNING id, state)
                   INSERT INTO transfer_item (transfer_id, credential_id, credential_hash, credential, state, checks)
                   SELECT id, 'urn:uuid:' || md5(id::text), md5(id::text), '{}'::json,
                          CASE WHEN state = 'awaiting_review' THEN 'awaiting_review' ELSE 'recognised' END,
                          '[]'::json
                   FROM t""",
                {**params, "g0": first // 100, "g1": last // 100 - 1, "n": last // 100})
            c.exec_driver_sql(
                """INSERT INTO audit_log (at, actor_kind, actor_id, actor_name, role, action, target_type, target_id,
                       outcome, detail)
                   SELECT now() - make_interval(secs => ((%(n)s::bigint - g) / 10.0)::float8), 'staff',
                          (1000 + g %% 500)::text, 'staff-' || (g %% 500),
                          'outlet_staff', (ARRAY['learner.search','learner.read','deposit.read','deposit.list',
                          'archive.read','conversion.read','import.create','transfer.list'])[1 + g %% 8],
                          'learner', (%(lo)s::bigint + (g * 7919) %% %(span)s::bigint)::text,
                          CASE WHEN g %% 97 = 0 THEN 'denied' ELSE 'ok' END,
                          json_build_object('request_id', md5(g::text))
                   FROM generate_series(1, %(n)s::bigint) g""",
                {**params, "n": audit_rows})
            c.exec_driver_sql("ANALYZE")
        return time.perf_counter() - t0

    def table_sizes(self) -> dict[str, int]:
        with self.ctx.engine.connect() as c:
            return {t: c.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
                    for t in ("learner", "achievement", "ledger_event", "audit_log", "deposit_application",
                              "conversion_request", "transfer", "transfer_item")}

    def disk(self) -> str:
        with self.ctx.engine.connect() as c:
            return c.exec_driver_sql(f"SELECT pg_size_pretty(pg_database_size('{self.name}'))").scalar_one()


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


# -- serving and measuring ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(workdir: Path, url: str, port: int, slow_ms: float, slow_file: Path) -> None:
    """The node on 127.0.0.1:port (one uvicorn worker), recording statements slower than `slow_ms`."""
    import uvicorn
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from node.app import create_app

    slow: dict[str, tuple[float, Any]] = {}

    @event.listens_for(Engine, "before_cursor_execute")
    def _start(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        conn.info["scale_t0"] = time.perf_counter()

    @event.listens_for(Engine, "after_cursor_execute")
    def _end(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        ms = (time.perf_counter() - conn.info.pop("scale_t0", time.perf_counter())) * 1000
        if ms > slow_ms and not executemany and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            if ms > slow.get(statement, (0.0, None))[0]:
                slow[statement] = (ms, parameters)
                tmp = slow_file.with_suffix(".tmp")
                tmp.write_bytes(pickle.dumps(slow))
                tmp.replace(slow_file)

    app = create_app(settings_for(workdir, url))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Server:
    def __init__(self, node: Node, slow_ms: float, label: str) -> None:
        self.port = _free_port()
        self.slow_file = node.workdir / f"slow-{label}.pickle"
        self.proc = subprocess.Popen(
            # as a module from the repository root, so `bench` and the project import alike
            [sys.executable, "-m", "bench.scale", "--_serve", str(node.workdir), node.url, str(self.port),
             str(slow_ms), str(self.slow_file)], cwd=Path(__file__).resolve().parents[1])
        import httpx

        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/health").status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit("the node did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def slow(self) -> dict[str, tuple[float, Any]]:
        return pickle.loads(self.slow_file.read_bytes()) if self.slow_file.exists() else {}


def _tokens(node: Node, learner_ids: list[int]) -> tuple[dict[int, str], str]:
    from sqlmodel import select

    from node.auth.router import issue_token_for
    from node.db import session_scope
    from node.models import Learner, StaffAccount

    with session_scope(node.ctx.engine) as s:
        staff = s.exec(select(StaffAccount).where(StaffAccount.username == STAFF)).one()
        learners = s.exec(select(Learner).where(Learner.id.in_(learner_ids))).all()  # type: ignore[union-attr]
        return ({lr.id: issue_token_for(node.ctx, lr).access_token for lr in learners},  # type: ignore[misc]
                issue_token_for(node.ctx, staff).access_token)


def _sample(node: Node, count: int, rng: random.Random) -> dict[int, list[int]]:
    """`count` learners at random over the whole database: learner id → their achievement ids."""
    with node.ctx.engine.connect() as c:
        lo, hi = c.exec_driver_sql("SELECT min(id), max(id) FROM learner").one()
        picks = [rng.randint(lo, hi) for _ in range(count * 2)]
        rows = c.exec_driver_sql("SELECT learner_id, id FROM achievement WHERE learner_id = ANY(%(ids)s) "
                                 "AND status = 'deposited'", {"ids": picks}).all()
    found: dict[int, list[int]] = {}
    for learner_id, ach in rows:
        found.setdefault(learner_id, []).append(ach)
    return dict(list(found.items())[:count])


def _reads(node: Node, *, requests: int, heavy: int, rng: random.Random) -> list[tuple[str, Any, int]]:
    """Each read: (name, i → (url, headers) of the i-th request, how many requests), over samples of `node`."""
    sample = _sample(node, 60, rng)
    learner_tokens, staff_token = _tokens(node, list(sample))
    learners = [(lid, learner_tokens[lid], achs) for lid, achs in sample.items() if lid in learner_tokens]
    staff = {"Authorization": f"Bearer {staff_token}"}
    numbers = [id_number(rng.randrange(node.learners)) for _ in range(requests)]
    targets = list(sample)
    today = dt.date.today().isoformat()
    year_ago = (dt.date.today() - dt.timedelta(days=365)).isoformat()

    def me(path: str) -> Any:
        def call(i: int) -> tuple[str, dict]:
            lid, token, achs = learners[i % len(learners)]
            return path.format(ach=achs[i % len(achs)]), {"Authorization": f"Bearer {token}"}
        return call

    return [
        ("archive", me("/api/v1/me/archive"), requests),
        ("transcript", me("/api/v1/me/transcript"), heavy),
        ("credential", me("/api/v1/me/credentials/{ach}"), heavy),
        ("staff search", lambda i: (f"/api/v1/learners/search?id_number={numbers[i % len(numbers)]}", staff),
         requests),
        ("deposit queue", lambda i: ("/api/v1/deposit-applications?state=pending_first&limit=50", staff), requests),
        ("deposit queue, a branch", lambda i: (f"/api/v1/deposit-applications?branch=B{i % 4}&limit=50", staff),
         requests),
        ("conversion queue", lambda i: ("/api/v1/conversions?state=proposed&limit=50", staff), requests),
        ("transfer queue", lambda i: ("/api/v1/transfers?state=awaiting_review&limit=50", staff), requests),
        ("transfer items to review", lambda i: ("/api/v1/transfer-items?limit=50", staff), requests),
        ("audit log, first page", lambda i: ("/api/v1/audit?limit=100", staff), requests),
        ("audit log, by action", lambda i: (f"/api/v1/audit?action={ACTIONS[i % len(ACTIONS)]}&limit=100", staff),
         requests),
        ("audit log, by target", lambda i: (f"/api/v1/audit?target=learner:{targets[i % len(targets)]}&limit=100",
                                            staff), requests),
        ("audit log, by actor", lambda i: (f"/api/v1/audit?actor=staff-{i % 500}&limit=100", staff), requests),
        # the statistics (summary counters): this year, one day, and the public view of the last months
        ("statistics, this year", lambda i: ("/api/v1/admin/statistics", staff), requests),
        ("statistics, one day", lambda i: (f"/api/v1/admin/statistics?from={today}&to={today}", staff), requests),
        ("statistics, public", lambda i: (f"/api/v1/statistics?from={year_ago}", None), requests),
    ]


def measure(nodes: dict[str, Node], servers: dict[str, Server], *, requests: int, heavy: int,
            seed: int) -> dict[str, dict[str, list[float]]]:
    """Latency (s) of each read at each size, one request at a time, alternating between the sizes (which one
    goes first alternates too) so that the machine's noise falls on both alike; every response must be 200."""
    reads = {label: _reads(node, requests=requests, heavy=heavy, rng=random.Random(seed))
             for label, node in nodes.items()}
    labels = list(nodes)
    out: dict[str, dict[str, list[float]]] = {label: {} for label in labels}
    for k, (name, _call, n) in enumerate(reads[labels[0]]):
        for label in labels:
            call = reads[label][k][1]
            for i in range(min(5, n)):  # warm up: connection, caches of this route
                url, headers = call(i)
                servers[label].client.get(url, headers=headers)
            out[label][name] = []
        for i in range(n):
            for label in labels if i % 2 == 0 else labels[::-1]:
                url, headers = reads[label][k][1](i)
                t0 = time.perf_counter()
                r = servers[label].client.get(url, headers=headers)
                out[label][name].append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise SystemExit(f"{name}: GET {url} answered {r.status_code}: {r.text[:300]}")
        print("   " + f"{name:<26}" + "   ".join(
            f"{label}: p50 {_pct(out[label][name], 50) * 1000:7.1f} ms p99 {_pct(out[label][name], 99) * 1000:7.1f} ms"
            for label in labels) + f"  ({n} requests each)", flush=True)
    return out


def _pct(values: list[float], p: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def explain(node: Node, slow: dict[str, tuple[float, Any]]) -> None:
    if not slow:
        print("\nno statement took longer than the threshold at the big size")
        return
    with node.ctx.engine.connect() as c:
        cursor = c.connection.driver_connection.cursor()  # type: ignore[union-attr]
        ranked = sorted(slow.items(), key=lambda kv: -kv[1][0])
        print(f"\n{len(ranked)} statements took longer than the threshold at the big size (wall time in the "
              f"server); EXPLAIN of the {min(len(ranked), 25)} slowest:")
        for statement, (ms, params) in ranked[:25]:
            print(f"\n-- {ms:.1f} ms at the big size:\n{statement.strip()}\n-- parameters: {_short(params)}")
            try:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                for (line,) in cursor.fetchall():
                    print("   " + line)
            except Exception as exc:  # noqa: BLE001 - a plan we cannot reproduce is reported, not fatal
                print(f"   (EXPLAIN failed: {exc})")
                c.connection.driver_connection.rollback()  # type: ignore[union-attr]
            else:
                c.connection.driver_connection.rollback()  # type: ignore[union-attr]


def _short(params: Any) -> str:
    text = repr(params)
    return text if len(text) < 300 else text[:300] + "…"


# -- main --------------------------------------------------------------------------------------------


def build_to(node: Node, *, learners: int, achievements: int, per_learner: int, audit_per: float,
             file_rows: int) -> None:
    first = node.learners
    print(f"\n== building to {learners:,} learners, {achievements:,} achievements", flush=True)
    rows, secs = node.import_learners(learners, per_learner, file_rows)
    if rows:
        written = node.table_sizes()
        print(f"   bulk import: {rows:,} achievements in {secs:.1f}s = {rows / secs:,.0f} achievements/s "
              f"(with their learners and ledger events)", flush=True)
    audit_rows = int((learners - first) * per_learner * audit_per)
    secs = node.generate(first=first, last=learners, audit_rows=audit_rows)
    written = node.table_sizes()
    print(f"   generated queues and {audit_rows:,} audit entries in SQL, ANALYZE: {secs:.1f}s", flush=True)
    # the statistics' counters: rows generated in SQL bypassed the node, so rebuild them as an operator would
    # after such a load (`creditnode stats backfill`: the ledger job from seq 0, the review figures from the audit)
    from node.stats.counting import backfill

    t0 = time.perf_counter()
    done = backfill(node.ctx.engine)
    took = time.perf_counter() - t0
    print(f"   statistics backfill: {done['counted']:,} ledger events counted in {took:.1f}s "
          f"({done['counted'] / max(took, 1e-9):,.0f} events/s)", flush=True)
    print(f"   rows: {written}; database {node.disk()}", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_serve":
        workdir, url, port, slow_ms, slow_file = sys.argv[2:7]
        serve(Path(workdir), url, int(port), float(slow_ms), Path(slow_file))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--achievements", type=int, default=100_000, help="the big size (default 100,000)")
    ap.add_argument("--learners", type=int, default=None, help="at the big size (default achievements / 10)")
    ap.add_argument("--small-achievements", type=int, default=10_000, help="the small size (default 10,000)")
    ap.add_argument("--audit-per-achievement", type=float, default=1.0, help="audit entries per achievement")
    ap.add_argument("--requests", type=int, default=300, help="requests per read and size")
    ap.add_argument("--heavy-requests", type=int, default=100, help="requests for the transcript and credential")
    ap.add_argument("--file-rows", type=int, default=1_000_000, help="rows per imported file")
    ap.add_argument("--slow-ms", type=float, default=10.0, help="EXPLAIN statements slower than this")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--keep", action="store_true", help="keep the databases and work directory")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    learners = args.learners or max(1, args.achievements // 10)
    per_learner = max(1, args.achievements // learners)
    small_learners = max(1, args.small_achievements // per_learner)
    if small_learners >= learners:
        raise SystemExit("the big size must be larger than the small one")
    sizes = {"small": small_learners, "big": learners}
    print(f"{per_learner} achievements a learner; small: {small_learners:,} learners, "
          f"{small_learners * per_learner:,} achievements; big: {learners:,} learners, "
          f"{learners * per_learner:,} achievements", flush=True)
    print(f"disk: {shutil.disk_usage(tempfile.gettempdir()).free / 2**30:.0f} GiB free in {tempfile.gettempdir()}")

    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    nodes: dict[str, Node] = {}
    servers: dict[str, Server] = {}
    t_start = time.perf_counter()
    try:
        for label, size in sizes.items():
            (workdir / label).mkdir()
            node = nodes[label] = Node(args.pg_url, workdir / label)
            print(f"\n{label}: database {node.name}", flush=True)
            node.open()
            build_to(node, learners=size, achievements=size * per_learner, per_learner=per_learner,
                     audit_per=args.audit_per_achievement, file_rows=args.file_rows)
        for label, node in nodes.items():
            servers[label] = Server(node, args.slow_ms, label)
        print(f"\n== measuring (built in {time.perf_counter() - t_start:.0f}s)", flush=True)
        results = measure(nodes, servers, requests=args.requests, heavy=args.heavy_requests, seed=args.seed)
        for server in servers.values():
            server.stop()
        report(results, small_learners * per_learner, learners * per_learner)
        explain(nodes["big"], servers["big"].slow())
        print(f"\ntotal {time.perf_counter() - t_start:.0f}s")
    finally:
        for server in servers.values():
            server.stop()
        for node in nodes.values():
            if args.keep:
                print(f"kept database {node.name}")
                if node.ctx is not None:
                    node.ctx.engine.dispose()
            else:
                node.drop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _size(n: int) -> str:
    return f"{n / 1_000_000:g} M" if n >= 1_000_000 else f"{n / 1000:g} k"


def report(results: dict[str, dict[str, list[float]]], small: int, big: int) -> None:
    s, b = _size(small), _size(big)
    print(f"\n{'read':<26} {'p50 ' + s:>11} {'p99 ' + s:>11} {'p50 ' + b:>11} {'p99 ' + b:>11} "
          f"{'p99 ratio':>9}  goal ≤ 1.5")
    for name, small_times in results["small"].items():
        big_times = results["big"][name]
        p = [_pct(small_times, 50), _pct(small_times, 99), _pct(big_times, 50), _pct(big_times, 99)]
        ratio = p[3] / p[1]
        print(f"{name:<26} " + " ".join(f"{v * 1000:8.1f} ms" for v in p) + f" {ratio:9.2f}  "
              + ("ok" if ratio <= 1.5 else "MISSED"))


if __name__ == "__main__":
    main()
