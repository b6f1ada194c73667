"""Several institutions importing at once (PostgreSQL): each job run by its own worker with its own engine, as
separate server processes would; people who appear in several files get one account.

Bounded: small files, small batches (many interleaved transactions), a join timeout."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from node.context import NodeContext
from node.db import make_engine, session_scope
from node.deps import Principal
from node.imports import repository as repo
from node.imports.service import create_job, run_job, store_upload
from node.ledger.log import verify_log
from node.org.service import create_organisation
from tests.conftest import valid_id
from tests.imports.conftest import sh_csv, sh_row

FILES = 4
PEOPLE = 40  # per file
COURSES = 6
SHARED = 25  # the first SHARED people of every file are the same people (in another order per file)


def _people(i: int) -> list[str]:
    shared = [f"{n:03d}" for n in range(SHARED)]
    own = [f"{100 * (i + 1) + n:03d}" for n in range(PEOPLE - SHARED)]
    order = shared[i * 7 % SHARED:] + shared[: i * 7 % SHARED]  # the same people met in a different order
    return order[::-1] + own if i % 2 else order + own


def _file(i: int) -> bytes:
    rows = [sh_row(serial, name=f"学员{serial}", course=f"课程{c}", student_no=f"S{i}{serial}")
            for serial in _people(i) for c in range(COURSES)]
    return sh_csv(rows)


@pytest.fixture
def pg_settings(settings, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent imports are PostgreSQL's: on SQLite every batch takes the one write lock "
                    "(BEGIN IMMEDIATE), so jobs cannot interleave")
    return settings.model_copy(update={"imports": settings.imports.model_copy(
        update={"batch_size": 20, "run_in_background": False})})


def test_four_institutions_at_once_one_account_per_person(pg_settings, database_url: str, tmp_path: Path) -> None:
    setup = NodeContext.build(pg_settings, engine=make_engine(database_url))
    actor = Principal("system", 0, "test", ("node_admin",))
    jobs = []
    with session_scope(setup.engine) as s:
        for i in range(FILES):
            org = create_organisation(s, code=f"U{i}", name=f"大学{i}", kind="institution")
            path = tmp_path / f"u{i}.csv"
            path.write_bytes(_file(i))
            with path.open("rb") as fh:
                sha, stored = store_upload(setup, fh, path.name)
            jobs.append(create_job(s, setup, institution=org, path=stored, sha256=sha, filename=path.name,
                                   requested_format=None, actor=actor).id)

    results: dict[str, object] = {}
    start = threading.Barrier(FILES)

    def work(job_id: str) -> None:
        ctx = NodeContext.build(pg_settings, engine=make_engine(database_url))  # one "server process" each
        try:
            start.wait()
            results[job_id] = run_job(ctx, job_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[job_id] = exc
        finally:
            ctx.engine.dispose()

    threads = [threading.Thread(target=work, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an import hung (deadlock?)"

    distinct = SHARED + FILES * (PEOPLE - SHARED)
    for job_id in jobs:
        job = results[job_id]
        assert not isinstance(job, BaseException), job
        assert (job.status, job.error, job.rejected) == ("done", None, 0)
        assert job.deposited == PEOPLE * COURSES
    assert sum(results[j].learners_created for j in jobs) == distinct

    with session_scope(setup.engine) as s:
        c = s.connection()
        assert c.exec_driver_sql("SELECT count(*) FROM learner").scalar_one() == distinct
        assert c.exec_driver_sql("SELECT count(DISTINCT id_blind) FROM learner").scalar_one() == distinct
        assert c.exec_driver_sql("SELECT count(*) FROM achievement").scalar_one() == FILES * PEOPLE * COURSES
        # a shared person holds the courses of every institution, in one account
        per_learner = dict(c.exec_driver_sql(
            "SELECT learner_id, count(*) FROM achievement GROUP BY learner_id").all())
        assert sorted(set(per_learner.values())) == [COURSES, FILES * COURSES]
        kinds = dict(c.exec_driver_sql("SELECT kind, count(*) FROM ledger_event GROUP BY kind").all())
        assert kinds["learner.opened"] == distinct
        assert kinds["achievement.deposited"] == FILES * PEOPLE * COURSES
        assert verify_log(s) == []
        # every event's learner exists and every achievement event points at a stored achievement
        assert c.exec_driver_sql(
            "SELECT count(*) FROM ledger_event e LEFT JOIN achievement a ON a.id = e.achievement_id "
            "WHERE e.kind = 'achievement.deposited' AND a.id IS NULL").scalar_one() == 0
        blind = setup.blind_index("resident_id", valid_id(serial="000"))
        assert len(repo.learners_by_blind(s, [blind])) == 1
        assert s.execute(sa.text("SELECT count(*) FROM achievement a JOIN learner l ON l.id = a.learner_id "
                                 "WHERE l.id_blind = :b"), {"b": blind}).scalar_one() == FILES * COURSES
    setup.engine.dispose()
