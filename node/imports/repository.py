"""All SQL of bulk import: Core statements, one per batch and table (never the ORM unit of work, BRIEF §6)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from node.imports.validate import VALUE_COLUMNS, RowError
from node.models import Achievement, CodeListEntry, ImportJob, ImportRowError, Learner, Organisation, utcnow
from node.models.types import ExactDecimal, sqlite_datetime
from node.pgcopy import copy_rows

__all__ = [
    "COMMON_COLUMNS",
    "ROW_COLUMNS",
    "achievements_by_key",
    "add_progress",
    "claim_job",
    "code_lists",
    "commit_without_flush_wait",
    "failed_uploads",
    "finish_job",
    "insert_achievements",
    "insert_learners",
    "insert_row_errors",
    "learners_by_blind",
    "next_achievement_ids",
    "organisation_by_code",
    "purge_reports",
    "recoverable_jobs",
    "row_errors_after",
    "update_achievements",
]

_ach = Achievement.__table__
_learner = Learner.__table__
_job = ImportJob.__table__
_err = ImportRowError.__table__
_codes = CodeListEntry.__table__
_EXACT = ExactDecimal()
_IN_CHUNK = 2000  # parameters per IN list (well under SQLite's limit)


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _member_of(session: Session, column: Any, values: Collection[str]) -> Iterable[Any]:
    """`column IN values` as a few statements: on PostgreSQL one `= ANY(...)` with a single parameter (psycopg
    parses a query of thousands of placeholders slowly) — the values joined by commas and split by the server
    (`string_to_array`; dumping a list of thousands of strings as an array parameter costs ~5 µs each), or a
    text[] array when a value is empty or holds a comma; on SQLite `IN` lists of _IN_CHUNK."""
    members = list(values)
    if _is_pg(session):
        joined = ",".join(members)
        if members and all(members) and joined.count(",") == len(members) - 1:
            yield column == sa.any_(sa.func.string_to_array(sa.bindparam("members", joined, type_=sa.Text), ","))
        else:
            yield column == sa.any_(sa.bindparam("members", members, type_=postgresql.ARRAY(sa.String)))
        return
    for chunk in _chunks(members):
        # an expanding parameter: the statement compiles once and is cached; a literal list would compile a
        # bind parameter per value, each batch again
        yield column.in_(sa.bindparam("members", list(chunk), expanding=True))


def organisation_by_code(session: Session, code: str) -> Organisation | None:
    return session.execute(sa.select(Organisation).where(Organisation.code == code)).scalars().first()


def code_lists(session: Session, version: str) -> dict[str, dict[str, str]]:
    """list name → {code → code, label → code}: a cell may hold the code or its label."""
    lists: dict[str, dict[str, str]] = {}
    rows = session.execute(sa.select(_codes.c.list_name, _codes.c.code, _codes.c.label)
                           .where(_codes.c.version == version))
    for name, code, label in rows:
        entries = lists.setdefault(name, {})
        entries[code] = code
        entries.setdefault(label, code)
    return lists


# -- the job row ---------------------------------------------------------------------------------


def commit_without_flush_wait(session: Session) -> None:
    """PostgreSQL: this transaction's commit returns without waiting for its WAL to reach the disk
    (`synchronous_commit = off`, for this transaction only). For a transaction whose effect is used only by a
    later transaction that commits normally: the log is written in order, so that commit makes both durable, and
    a crash before it loses only what nothing used yet (here: reserved account numbers)."""
    if _is_pg(session):
        session.execute(sa.text("SET LOCAL synchronous_commit = off"))


def claim_job(session: Session, job_id: str, *, now: dt.datetime, stale_before: dt.datetime) -> bool:
    claimable = sa.or_(
        _job.c.status.in_(("queued", "failed")),
        sa.and_(_job.c.status == "running", sa.or_(_job.c.heartbeat_at.is_(None), _job.c.heartbeat_at < stale_before)),
    )
    result = session.execute(
        sa.update(_job).where(_job.c.id == job_id, claimable)
        .values(status="running", error=None, heartbeat_at=now, started_at=sa.func.coalesce(_job.c.started_at, now))
    )
    return result.rowcount == 1


def add_progress(session: Session, job_id: str, result: Any, *, now: dt.datetime) -> None:
    c = _job.c
    session.execute(
        sa.update(_job).where(c.id == job_id).values(
            rows_read=c.rows_read + result.rows, rows_committed=c.rows_committed + result.rows,
            deposited=c.deposited + result.deposited, updated=c.updated + result.updated,
            duplicates=c.duplicates + result.duplicates, rejected=c.rejected + result.rejected,
            learners_created=c.learners_created + result.learners_created, heartbeat_at=now,
        )
    )


def finish_job(session: Session, job_id: str, *, status: str, error: str | None, now: dt.datetime | None) -> None:
    """End a job (done, failed) or put it back in the queue (`now` None: interrupted, to be resumed)."""
    session.execute(sa.update(_job).where(_job.c.id == job_id)
                    .values(status=status, error=error, finished_at=now, heartbeat_at=now))


def recoverable_jobs(session: Session, *, stale_before: dt.datetime) -> list[str]:
    c = _job.c
    rows = session.execute(
        sa.select(c.id).where(sa.or_(
            c.status == "queued",
            sa.and_(c.status == "running", sa.or_(c.heartbeat_at.is_(None), c.heartbeat_at < stale_before)),
        )).order_by(c.created_at)
    )
    return [r[0] for r in rows]


def purge_reports(session: Session, *, ended_before: dt.datetime) -> int:
    """Delete the report rows of jobs that ended before `ended_before`; the number of rows deleted."""
    ended = sa.select(_job.c.id).where(_job.c.finished_at.is_not(None), _job.c.finished_at < ended_before)
    return session.execute(sa.delete(_err).where(_err.c.job_id.in_(ended))).rowcount or 0


def failed_uploads(session: Session, *, idle_before: dt.datetime) -> list[str]:
    """Stored paths of failed jobs whose last activity is older than `idle_before`."""
    c = _job.c
    rows = session.execute(sa.select(c.stored_path).where(
        c.status == "failed", sa.func.coalesce(c.finished_at, c.heartbeat_at, c.created_at) < idle_before))
    return [r[0] for r in rows]


def insert_row_errors(session: Session, job_id: str, errors: Sequence[RowError]) -> None:
    session.execute(sa.insert(_err), [
        {"job_id": job_id, "row_no": e.row_no, "column": e.column[:40], "value": e.value[:200],
         "reason": e.reason[:300]}
        for e in errors
    ])


def row_errors_after(session: Session, job_id: str, *, after: tuple[int, int], limit: int) -> list[Any]:
    c = _err.c
    row_no, last_id = after
    return list(session.execute(
        sa.select(c.id, c.row_no, c.column, c.value, c.reason)
        .where(c.job_id == job_id, sa.tuple_(c.row_no, c.id) > sa.tuple_(row_no, last_id))
        .order_by(c.row_no, c.id).limit(limit)
    ))


# -- learners ------------------------------------------------------------------------------------


def learners_by_blind(session: Session, blinds: Collection[str]) -> dict[str, tuple[int, str]]:
    """blind index → (learner id, the learner's pseudonym: committed, never published, in ledger leaves)."""
    c = _learner.c
    found: dict[str, tuple[int, str]] = {}
    for where in _member_of(session, c.id_blind, blinds):
        for row in session.execute(sa.select(c.id, c.id_blind, c.pseudonym).where(where)):
            found[row.id_blind] = (row.id, row.pseudonym)
    return found


_LEARNER_COLUMNS = ("id", "account_no", "id_type", "id_blind", "id_cipher", "id_masked", "name_cipher", "key_id",
                    "pseudonym", "leaf_salt", "created_at")
_LEARNER_BYTES = frozenset({"id_cipher", "name_cipher", "leaf_salt"})


def insert_learners(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert new learners (the batch's, all at once); blind index → id of those inserted.

    Ids are reserved first (as for achievements), then the rows go in one driver-level call: sqlite3
    `executemany` (the batch holds the write lock since its BEGIN IMMEDIATE: nobody else can have opened the
    account since the lookup), PostgreSQL `COPY` into a temporary table and one `INSERT … SELECT … ORDER BY
    id_blind ON CONFLICT (id_blind) DO NOTHING RETURNING id_blind`: a person another job opened since the
    lookup (several institutions importing at once) is left out of the result — the caller looks them up — and
    the rows are taken in blind-index order, so two jobs opening overlapping people never wait on each other
    in a cycle. (SQLAlchemy's multi-row `INSERT … RETURNING` of a few hundred rows was parsed by psycopg in
    Python: ~150 µs a learner.) `created_at` is the column's default, `utcnow()`, once for the batch;
    `password_hash` stays NULL."""
    if not rows:
        return {}
    ids = _next_ids(session, "learner", len(rows))
    now = utcnow()
    connection = session.connection()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if connection.dialect.name == "sqlite":
            created = sqlite_datetime(now)
            params = [(i, *(r[c] for c in _LEARNER_COLUMNS[1:-1]), created) for i, r in zip(ids, rows, strict=True)]
            cursor.executemany(f"INSERT INTO learner ({', '.join(_LEARNER_COLUMNS)}) "
                               f"VALUES ({', '.join(['?'] * len(_LEARNER_COLUMNS))})", params)
            return {r["id_blind"]: i for i, r in zip(ids, rows, strict=True)}
        created = now.isoformat()
        lines = [
            [str(i), *(_bytea_text(r[c]) if c in _LEARNER_BYTES else r[c] for c in _LEARNER_COLUMNS[1:-1]),
             created]
            for i, r in zip(ids, rows, strict=True)
        ]
        columns = ", ".join(_LEARNER_COLUMNS)
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_LEARNER_STAGE} ON COMMIT DELETE ROWS "
                       f"AS SELECT {columns} FROM learner WITH NO DATA")  # once per connection; emptied at commit
        copy_rows(cursor, _LEARNER_STAGE, _LEARNER_COLUMNS, lines)
        cursor.execute(f"INSERT INTO learner ({columns}) SELECT {columns} FROM {_LEARNER_STAGE} ORDER BY id_blind "
                       "ON CONFLICT (id_blind) DO NOTHING RETURNING id_blind, id")
        return dict(cursor.fetchall())
    finally:
        cursor.close()


_LEARNER_STAGE = "import_learner_stage"


def _bytea_text(value: bytes) -> str:
    """bytea input text (`\\x` and hex); its backslash makes `copy_text` escape the learner chunk (a few hundred
    rows a batch: cheap)."""
    return "\\x" + bytes(value).hex()


# -- achievements --------------------------------------------------------------------------------


class _Held(NamedTuple):
    """An achievement already stored under a dedupe key: what the best-score rule compares and reports."""

    id: int
    dedupe_key: str
    score_text: str | None
    score_value: Decimal | None
    credits: Decimal | None
    hours: Decimal | None


def achievements_by_key(session: Session, keys: Collection[str]) -> dict[str, Any]:
    """dedupe key → the achievement stored under it (`_Held`), for the keys that have one.

    On SQLite a driver-level `IN` of _IN_CHUNK placeholders (the statement text is the same for every full
    chunk, so sqlite3 keeps it prepared; SQLAlchemy's expanding parameter rendered a bind per value, each batch
    again: a fresh import, where no key is held, paid ~5 µs a row for nothing)."""
    c = _ach.c
    found: dict[str, Any] = {}
    if not _is_pg(session):
        members = list(keys)
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        decimal = _EXACT.process_result_value
        try:
            for chunk in _chunks(members):
                cursor.execute("SELECT id, dedupe_key, score_text, score_value, credits, hours FROM achievement "
                               f"WHERE dedupe_key IN ({', '.join(['?'] * len(chunk))})", chunk)
                for i, key, text, value, credits, hours in cursor:
                    found[key] = _Held(i, key, text, decimal(value, None), decimal(credits, None),
                                       decimal(hours, None))
        finally:
            cursor.close()
        return found
    for where in _member_of(session, c.dedupe_key, keys):
        for row in session.execute(
            sa.select(c.id, c.dedupe_key, c.score_text, c.score_value, c.credits, c.hours).where(where)
        ):
            found[row.dedupe_key] = row
    return found


def next_achievement_ids(session: Session, count: int) -> list[int]:
    """Reserve `count` achievement ids, so rows and their ledger events are built before one insert."""
    return _next_ids(session, "achievement", count)


def _next_ids(session: Session, table: str, count: int) -> list[int]:
    """Reserve `count` ids of `table` (achievement, learner).

    PostgreSQL: from the table's sequence, as one array (the sequence looked up once; in the select list it
    would be once per row). SQLite: after the current maximum (the batch's transaction began IMMEDIATE, so it
    holds the database's write lock and nobody else can take these ids)."""
    if count <= 0:
        return []
    if _is_pg(session):
        return session.execute(
            sa.text(f"SELECT array(SELECT nextval(s.id) FROM (SELECT pg_get_serial_sequence('{table}', 'id')"
                    "::regclass AS id) s, generate_series(1, :n) ORDER BY 1)"),
            {"n": count},
        ).scalar_one()
    top = session.execute(sa.text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one()
    return list(range(top + 1, top + 1 + count))


ROW_COLUMNS: tuple[str, ...] = ("id", "learner_id", "dedupe_key", *VALUE_COLUMNS)
"""An achievement row as bulk import builds it: ids, dedupe key, then the deposit's `Values` (stored form)."""
COMMON_COLUMNS: tuple[str, ...] = ("issuer_org_id", "issuer_code", "issuer_name", "source", "status", "import_job_id",
                                   "status_index", "created_at")
"""The columns whose values a batch's rows share (`insert_achievements`' `common`)."""
_ROW_INTS = (0, 1, *(3 + VALUE_COLUMNS.index(c) for c in ("credits", "hours", "score_value")))  # ids, thousandths


def _common_values(common: Mapping[str, Any], *, sqlite: bool) -> tuple[Any, ...]:
    """The shared columns' values, in COMMON_COLUMNS order, as the column types store them on SQLite (a
    DateTime as SQLAlchemy's text), or as PostgreSQL input text for COPY (None stays None: `\\N`)."""
    out: list[Any] = []
    for column in COMMON_COLUMNS:
        value = common[column]
        if isinstance(value, dt.datetime):
            value = sqlite_datetime(value) if sqlite else value.isoformat()
        elif isinstance(value, int) and not sqlite:
            value = str(value)
        out.append(value)
    return tuple(out)


def _copy_fields(rows: Sequence[tuple[Any, ...]], tail: tuple[Any, ...]) -> list[list[Any]]:
    """Rows as PostgreSQL input text per column (for `node.pgcopy.copy_text`): ids and thousandths as decimal
    digits (dates are ISO text already, text is text), then the shared columns."""
    out = []
    for row in rows:
        fields = list(row)
        for i in _ROW_INTS:
            if (value := fields[i]) is not None:
                fields[i] = str(value)
        fields += tail
        out.append(fields)
    return out


def insert_achievements(session: Session, rows: Sequence[tuple[Any, ...]], common: Mapping[str, Any]) -> None:
    """Insert a batch's new achievements with one driver-level `executemany` (SQLite) or `COPY` (PostgreSQL) in
    the batch's transaction. `rows`: tuples in ROW_COLUMNS order — ids, dedupe key and the deposit's `Values`,
    already in their stored form (thousandths, ISO dates: `node.imports.validate.stored_values`, computed once
    per distinct cell text); `common`: the values of COMMON_COLUMNS, the same for every row (typed; converted
    once here).

    This is the one table a million-row import writes a million rows to, so SQLAlchemy's per-row parameter
    processing is skipped (profiled: it cost more than the insert itself) and a row is a tuple concatenation.
    On PostgreSQL the batch goes as preformatted COPY text (`node.pgcopy`, sent in chunks), not psycopg's
    per-row `write_row`."""
    if not rows:
        return
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    columns = ROW_COLUMNS + COMMON_COLUMNS
    tail = _common_values(common, sqlite=sqlite)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if not sqlite:
            copy_rows(cursor, "achievement", columns, rows, convert=lambda part: _copy_fields(part, tail))
            return
        cursor.executemany(f"INSERT INTO achievement ({', '.join(columns)}) VALUES ({', '.join(['?'] * len(columns))})",
                           [row + tail for row in rows])
    finally:
        cursor.close()


def update_achievements(session: Session, rows: list[tuple[int, str | None, int | None, int | None, int | None]],
                        job_id: str) -> None:
    """Better scores for held achievements: (id, score_text, score_value, credits, hours), the numbers in their
    stored form (thousandths, as `Values`); `import_job_id` becomes `job_id`."""
    b = sa.bindparam
    session.execute(
        sa.update(_ach).where(_ach.c.id == b("_id")).values(
            score_text=b("_score_text"), score_value=b("_score_value", type_=sa.BigInteger),
            credits=b("_credits", type_=sa.BigInteger), hours=b("_hours", type_=sa.BigInteger),
            import_job_id=b("_job"),
        ),
        [{"_id": i, "_score_text": text, "_score_value": value, "_credits": credits, "_hours": hours, "_job": job_id}
         for i, text, value, credits, hours in rows],
    )
