"""Bulk deposit (集中存入): storing an upload, creating a job, and running it batch by batch.

The one import path — used by the background worker, the `creditnode import` command and the benchmark — is
`run_job`. It streams the file's records, validates each one, and writes them in batches of
`settings.imports.batch_size` records. Each batch is one transaction holding everything it causes: new learners,
new and corrected achievements, their ledger events, the batch's rejected-row report lines and the job's progress
(`rows_committed`). A crash therefore loses at most the batch in flight, and a restarted job skips exactly
`rows_committed` records. See docs/imports.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from node.audit.service import record
from node.context import NodeContext
from node.db import session_scope
from node.deps import Principal
from node.errors import BadRequest, Forbidden, NodeError, NotFound
from node.imports import repository as repo
from node.imports.formats import Source, format_for, iter_records, read_header_check, scan_text
from node.imports.validate import (
    CODE_LIST_VERSION,
    Deposit,
    RowError,
    Validator,
    Values,
    decimal_text,
    read_decimal,
)
from node.learners.service import new_learner_row, reserve_account_numbers
from node.ledger.service import EventRow, append_event_rows
from node.models import ImportJob, Organisation, utcnow
from node.rules.grades import numeric_score
from node.security.filecrypt import file_cipher

__all__ = [
    "SYSTEM",
    "BatchResult",
    "create_job",
    "dedupe_key",
    "discard_upload",
    "institution_for",
    "run_job",
    "store_upload",
    "upload_source",
]

log = logging.getLogger("creditnode.imports")

SYSTEM = Principal(kind="system", id=0, name="imports.worker", roles=())
STALE_AFTER = dt.timedelta(minutes=10)  # a running job without a heartbeat for this long was abandoned
_CACHE_LIMIT = 20_000  # learner and blind-index caches are cleared beyond this: memory stays flat


def dedupe_key(blind: str, institution_code: str, course: str, term: str) -> str:
    """learner (blind index) + institution + course (code, else title) + term: one achievement per key."""
    return hashlib.sha256(f"{blind}\x1f{institution_code}\x1f{course}\x1f{term}".encode()).hexdigest()


# -- before the job ------------------------------------------------------------------------------


def institution_for(session: Session, *, principal: Principal, institution_code: str | None) -> Organisation:
    """The institution a deposit is for: an uploader's own organisation; staff of the centre (node_admin,
    centre_reviewer) name one."""
    privileged = principal.has_any(frozenset({"node_admin", "centre_reviewer"}))
    if institution_code:
        org = repo.organisation_by_code(session, institution_code)
        if org is None or org.kind != "institution":
            raise BadRequest(f"unknown institution {institution_code!r}: no organisation of kind institution has "
                             "this code", code="unknown_institution")
        if not privileged and org.id != principal.organisation_id:
            raise Forbidden("an uploader deposits for their own institution only")
        return org
    if principal.organisation_id is None:
        raise BadRequest("name the institution (institution_code)", code="unknown_institution")
    org = session.get(Organisation, principal.organisation_id)
    if org is None or org.kind != "institution":
        raise BadRequest("your organisation is not an institution; name one (institution_code)",
                         code="unknown_institution")
    return org


def store_upload(ctx: NodeContext, source: IO[bytes], filename: str) -> tuple[str, Path]:
    """Store an upload, encrypted with the node's database key (`node.security.filecrypt`), under
    `<data_dir>/imports/<random>.upload`: (SHA-256 of the plaintext, path). Each upload is its own file, deleted
    when its job is done (docs/imports.md, "Stored files")."""
    directory = ctx.settings.node.data_dir / "imports"
    digest = hashlib.sha256()
    target = directory / f"{uuid.uuid4().hex}.upload"
    with file_cipher(ctx).create(target) as out:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), target


def upload_source(ctx: NodeContext, path: Path) -> Source:
    """A stored upload as a `Source` (decrypted as it is read)."""
    cipher = file_cipher(ctx)
    return lambda: cipher.open(path)


def discard_upload(path: Path) -> None:
    path.unlink(missing_ok=True)


def create_job(
    session: Session, ctx: NodeContext, *, institution: Organisation, path: Path, sha256: str, filename: str,
    requested_format: str | None, actor: Principal,
) -> ImportJob:
    """Check the file's format and header (so a wrong template is refused now, not later) and queue a job."""
    fmt = format_for(filename, requested_format)
    source = upload_source(ctx, path)
    encoding, total = None, None
    if fmt != "shanghai-xlsx":
        encoding, lines = scan_text(source)  # one pass: the encoding and the lines, for progress
        total = max(0, lines - 1) if fmt == "shanghai-csv" else lines
        encoding = encoding if fmt == "shanghai-csv" else None
    declared = read_header_check(source, fmt, encoding, ctx.settings.imports)  # an XLSX is opened once here
    if fmt == "shanghai-xlsx":
        total = declared
    job = ImportJob(
        id=str(uuid.uuid4()), organisation_id=institution.id, filename=_safe_filename(filename),
        file_sha256=sha256, format=fmt, encoding=encoding, stored_path=str(path), created_by=actor.name[:64],
        total_rows=total,
    )
    session.add(job)
    session.flush()
    record(session, actor=actor, action="import.create", target_type="import_job", target_id=job.id,
           detail={"institution": institution.code, "format": fmt, "sha256": sha256, "filename": job.filename})
    return job


def _safe_filename(filename: str) -> str:
    """The upload's name as shown and stored: its last path part, control characters (NUL: PostgreSQL text
    cannot hold it) replaced."""
    return re.sub(r"[\x00-\x1f\x7f]", "_", Path(filename.replace("\\", "/")).name)[:255] or "upload"


# -- running a job -------------------------------------------------------------------------------


@dataclass
class BatchResult:
    rows: int = 0
    deposited: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    learners_created: int = 0


@dataclass
class _JobState:
    """What a running job keeps between batches (bounded caches only)."""

    job_id: str
    institution: Organisation
    account_prefix: str
    blinds: dict[tuple[str, str], str] = field(default_factory=dict)
    learners: dict[str, tuple[int, str]] = field(default_factory=dict)  # blind → (learner id, subject hash)


def _claim(ctx: NodeContext, job_id: str) -> ImportJob | None:
    """Mark the job running if nobody else runs it: queued, failed, or running with a stale heartbeat."""
    now = utcnow()
    with session_scope(ctx.engine) as session:
        claimed = repo.claim_job(session, job_id, now=now, stale_before=now - STALE_AFTER)
        return session.get(ImportJob, job_id) if claimed else None


def run_job(
    ctx: NodeContext, job_id: str, *, progress: Callable[[ImportJob], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ImportJob:
    """Run (or resume) a job to its end; returns the job's final state. Safe to call from several workers:
    only the one that claims the job runs it. When `should_stop()` turns true the job stops after the batch
    in flight and goes back to `queued` (resumable)."""
    job = _claim(ctx, job_id)
    if job is None:
        with Session(ctx.engine) as session:
            found = session.get(ImportJob, job_id)
            if found is None:
                raise NotFound("no such import job")
            return found
    try:
        _run_claimed(ctx, job, progress, should_stop or (lambda: False))
    except Exception as exc:
        message = exc.message if isinstance(exc, NodeError) else f"{type(exc).__name__} (see the node's log)"
        if isinstance(exc, NodeError):
            log.warning("import job %s failed: %s", job_id, message)
        else:
            log.error("import job %s failed: %s", job_id, type(exc).__name__,
                      exc_info=not isinstance(exc, sa.exc.StatementError))  # statements may carry row values
        with session_scope(ctx.engine) as session:
            repo.finish_job(session, job_id, status="failed", error=message[:1000], now=utcnow())
            record(session, actor=SYSTEM, action="import.fail", outcome="failed", target_type="import_job",
                   target_id=job_id, detail={"error": message[:300]})
    with Session(ctx.engine) as session:
        return session.get(ImportJob, job_id)  # type: ignore[return-value]


def _run_claimed(ctx: NodeContext, job: ImportJob, progress: Callable[[ImportJob], None] | None,
                 should_stop: Callable[[], bool]) -> None:
    with Session(ctx.engine) as session:
        institution = session.get(Organisation, job.organisation_id)
        code_lists = repo.code_lists(session, CODE_LIST_VERSION)
    assert institution is not None
    validator = Validator(institution_code=institution.code, code_lists=code_lists)
    check = validator.jsonl if job.format == "jsonl" else validator.shanghai
    state = _JobState(job_id=job.id, institution=institution, account_prefix=ctx.settings.region.account_prefix)
    batch_size = max(1, ctx.settings.imports.batch_size)
    path = Path(job.stored_path)
    if not path.is_file():
        raise BadRequest("the uploaded file is no longer stored", code="upload_missing")

    records = iter_records(upload_source(ctx, path), job.format, job.encoding, ctx.settings.imports)
    for _ in range(job.rows_committed):  # resume: skip what committed batches already hold
        if next(records, None) is None:
            break
    batch_no = job.rows_committed // batch_size
    batches = _batches(records, check, batch_size)
    pause = _collections_per_batch()
    if ctx.engine.dialect.name != "sqlite":
        # sqlite3 releases the GIL around every row of an `executemany`; a busy reader thread then makes each
        # row wait for the GIL's switch interval (measured: slower, not faster). PostgreSQL's COPY waits once.
        batches = _read_ahead(batches)
    with pause, contextlib.closing(batches):
        for count, good, bad in batches:
            batch_no += 1
            job = _commit_batch(ctx, state, job, batch_no, count, good, bad)
            pause.collect()
            if progress is not None:
                progress(job)
            if count == batch_size and should_stop():
                with session_scope(ctx.engine) as session:
                    repo.finish_job(session, job.id, status="queued", error=None, now=None)
                return
    with session_scope(ctx.engine) as session:
        repo.finish_job(session, job.id, status="done", error=None, now=utcnow())
        final = session.get(ImportJob, job.id)
        record(session, actor=SYSTEM, action="import.finish", target_type="import_job", target_id=job.id,
               detail={k: getattr(final, k) for k in ("rows_read", "deposited", "updated", "duplicates",
                                                        "rejected", "learners_created")})
    discard_upload(path)  # done: the upload (ID numbers, names) is kept no longer than needed


def _batches(records: Iterator[tuple[int, Any]], check: Callable[[int, Any], Deposit | list[RowError]],
             batch_size: int) -> Iterator[tuple[int, list[Deposit], list[RowError]]]:
    """The records validated, in batches of `batch_size`: (records in the batch, good ones, row errors)."""
    while True:
        good: list[Deposit] = []
        bad: list[RowError] = []
        count = 0
        for row_no, rec in records:
            outcome = check(row_no, rec)
            if isinstance(outcome, Deposit):
                good.append(outcome)
            else:
                bad.extend(outcome)
            count += 1
            if count >= batch_size:
                break
        if count == 0:
            return
        yield count, good, bad
        if count < batch_size:
            return


_T = TypeVar("_T")


_FULL_EVERY = 64


class _collections_per_batch:  # noqa: N801 - used as a context manager, like contextlib's
    """While a job runs, Python's cyclic garbage collector runs once per batch instead of on its allocation
    thresholds. A batch holds tens of thousands of live objects (records, deposits, rows, events) that all die
    together when it commits; with automatic collection the young generations were traversed over and over
    while they lived (profiled: ~25 % of a SQLite import's CPU). Reference counting frees a batch's objects as
    usual; cycles — the process's, not only the import's — wait for the end of a batch (`collect`). Process-wide,
    so counted: automatic collection comes back when the last running job ends, as it was before the first."""

    _lock = threading.Lock()
    _running = 0
    _was_enabled = True

    def __enter__(self) -> _collections_per_batch:
        cls = type(self)
        with cls._lock:
            if cls._running == 0:
                cls._was_enabled = gc.isenabled()
                gc.disable()
            cls._running += 1
        return self

    _batches = 0

    def collect(self) -> None:
        """After each batch: the young generations (what was allocated since the last batch, and what was alive
        then); every _FULL_EVERY batches the whole heap, so that cycles that were young and alive at one
        collection (e.g. a request's, in a server process) do not wait for the end of a long job."""
        if not type(self)._was_enabled:
            return
        self._batches += 1
        gc.collect(2 if self._batches % _FULL_EVERY == 0 else 1)

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with cls._lock:
            cls._running -= 1
            if cls._running == 0 and cls._was_enabled:
                gc.enable()


def _read_ahead(items: Iterator[_T]) -> Iterator[_T]:
    """`items`, produced one ahead by a thread: the next batch is read and validated while this one is written.

    Writing a batch mostly waits for the database (psycopg and sqlite3 release the GIL meanwhile), so reading
    and validating overlap with it instead of following it. At most one finished batch waits in the queue
    (memory stays flat); an exception in the reader is raised here; closing this generator stops the reader."""
    slot: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                slot.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=produce, name="imports-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            ok, item = slot.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        reader.join()


_END = object()


def _driver_errors() -> tuple[type[BaseException], ...]:
    """Integrity and operational errors as the drivers raise them: COPY and `executemany` run on the driver's
    cursor, below SQLAlchemy's exception wrapping."""
    import sqlite3

    errors: list[type[BaseException]] = [sqlite3.IntegrityError, sqlite3.OperationalError]
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installations
        pass
    else:
        errors += [psycopg.IntegrityError, psycopg.OperationalError]
    return tuple(errors)


_RETRYABLE = (IntegrityError, OperationalError, *_driver_errors())


def _commit_batch(ctx: NodeContext, state: _JobState, job: ImportJob, batch_no: int, count: int,
                  good: list[Deposit], bad: list[RowError]) -> ImportJob:
    """One batch, one transaction; retried when a concurrent writer took a key first (PostgreSQL)."""
    for attempt in range(3):
        try:
            with session_scope(ctx.engine) as session:
                result, new_learners = write_batch(session, ctx, state, batch_no, good, bad, look_up_new=attempt > 0)
                result.rows = count
                result.learners_created = len(new_learners)
                repo.add_progress(session, job.id, result, now=utcnow())
        except _RETRYABLE:
            if attempt == 2:
                raise
            log.info("import job %s: batch %d met a concurrent writer, retrying", job.id, batch_no)
            continue
        if len(state.learners) > _CACHE_LIMIT:
            state.learners.clear()
        state.learners.update(new_learners)  # only once committed
        job.rows_committed += count
        job.rows_read += count
        job.deposited += result.deposited
        job.updated += result.updated
        job.duplicates += result.duplicates
        job.rejected += result.rejected
        job.learners_created += result.learners_created
        return job
    raise AssertionError("unreachable")


def _score_of(values: Values) -> Decimal | None:
    return numeric_score(score_text=values.score_text, score_value=read_decimal(values.score_value))


def _better(new: Values, old_text: str | None, old_value: Decimal | None) -> bool:
    old = numeric_score(score_text=old_text, score_value=old_value)
    neu = _score_of(new)
    if neu is None:
        return False
    return old is None or neu > old


def write_batch(
    session: Session, ctx: NodeContext, state: _JobState, batch_no: int, good: list[Deposit],
    bad: list[RowError], *, look_up_new: bool = False,
) -> tuple[BatchResult, dict[str, tuple[int, str]]]:
    """Write one batch in the caller's transaction. Returns its counts and the learners it created.

    The keys of learners this batch opens are not looked up: nobody else can hold an achievement of a person
    who had no account until this transaction (the key begins with their blind index, which no learner had;
    on PostgreSQL a concurrent job that opens the same person first makes ours find them, not create them).
    Should a key be held all the same (a learner whose ID number was corrected since, keeping the keys made
    from the old one), the insert fails on the unique key and the batch is retried with `look_up_new`."""
    result = BatchResult(rejected=len({e.row_no for e in bad}))
    if bad:
        repo.insert_row_errors(session, state.job_id, bad)
    institution_code = state.institution.code

    # 1. keys: blind index once per distinct ID number, dedupe key per row; the best row per key wins
    blinds = state.blinds
    if len(blinds) > _CACHE_LIMIT:
        blinds.clear()
    best: dict[str, tuple[Deposit, str]] = {}
    for dep in good:
        ident = (dep.id_type, dep.id_number)
        if (blind := blinds.get(ident)) is None:
            blind = blinds[ident] = ctx.blind_index(dep.id_type, dep.id_number)
        key = dedupe_key(blind, institution_code, dep.course_key, dep.values.term)
        if (held := best.get(key)) is None:
            best[key] = (dep, blind)
        else:
            result.duplicates += 1
            if _better(dep.values, held[0].values.score_text, read_decimal(held[0].values.score_value)):
                best[key] = (dep, blind)

    # 2. learners: cached, else one IN query, else created for the whole batch at once
    known = state.learners
    wanted = {blind for _, blind in best.values() if blind not in known}
    found = repo.learners_by_blind(session, wanted) if wanted else {}
    created: dict[str, tuple[int, str]] = {}
    events: list[EventRow] = []  # learner.opened first, then the achievements' events
    missing = [b for b in wanted if b not in found]
    if missing:
        firsts: dict[str, Deposit] = {}
        for dep, blind in best.values():
            if blind in wanted and blind not in found and blind not in firsts:
                firsts[blind] = dep
        numbers = _account_numbers(ctx, session, state.account_prefix, len(firsts))
        rows = [
            new_learner_row(ctx, id_type=dep.id_type, normalised=dep.id_number, blind=blind, name=dep.name,
                            account_no=account_no)
            for (blind, dep), account_no in zip(firsts.items(), numbers, strict=True)
        ]
        ids = repo.insert_learners(session, rows)
        if len(ids) < len(rows):  # opened meanwhile by another job (PostgreSQL): theirs, found, not created
            found.update(repo.learners_by_blind(session, [r["id_blind"] for r in rows if r["id_blind"] not in ids]))
        for row in rows:
            learner_id = ids.get(row["id_blind"])
            if learner_id is None:
                continue
            subject = row["pseudonym"]
            created[row["id_blind"]] = (learner_id, subject)
            events.append(("learner.opened", {"account": row["account_no"], "id_type": row["id_type"]}, learner_id,
                           subject, None, None, False))
    learner_of = {**found, **created}

    # 3. achievements: existing keys with one IN query; better scores update, the rest are duplicates
    existing = repo.achievements_by_key(
        session, best.keys() if look_up_new or not created else [k for k, (_, b) in best.items() if b not in created])
    new_ids = iter(repo.next_achievement_ids(session, len(best) - len(existing)))  # every key not held is new
    updates: list[tuple[int, str | None, int | None, int | None, int | None]] = []
    inserts: list[tuple[Any, ...]] = []
    corrected: list[EventRow] = []
    deposited: list[EventRow] = []
    job_id = state.job_id
    for key, (dep, blind) in best.items():
        learner_id, subject = known.get(blind) or learner_of[blind]
        values = dep.values
        if (old := existing.get(key)) is None:
            achievement_id = next(new_ids)
            inserts.append((achievement_id, learner_id, key, *values))
            deposited.append(("achievement.deposited", {  # keys in sorted order: the opening sorts them
                "achievement": achievement_id, "code": values.code, "credits": decimal_text(values.credits),
                "import_job": job_id, "issuer": institution_code, "score": values.score_text, "source": "bulk",
                "term": values.term, "title": values.title, "type": values.type,
            }, learner_id, subject, achievement_id, None, False))
        elif _better(values, old.score_text, old.score_value):
            updates.append((old.id, values.score_text, values.score_value, values.credits, values.hours))
            corrected.append(("achievement.corrected", {
                "achievement": old.id, "issuer": institution_code, "title": values.title,
                "old": {"score": old.score_text, "credits": _s(old.credits), "hours": _s(old.hours)},
                "new": {"score": values.score_text, "credits": decimal_text(values.credits),
                        "hours": decimal_text(values.hours)},
                "reason": "better score in a later upload", "source": "bulk", "import_job": job_id,
            }, learner_id, subject, old.id, None, False))
            result.updated += 1
        else:
            result.duplicates += 1
    if inserts:
        result.deposited = len(inserts)
        repo.insert_achievements(session, inserts, {
            "issuer_org_id": state.institution.id, "issuer_code": institution_code,
            "issuer_name": state.institution.name, "source": "bulk", "status": "deposited", "import_job_id": job_id,
            "status_index": None, "created_at": utcnow(),
        })
    if updates:
        repo.update_achievements(session, updates, job_id)
    events += corrected
    events += deposited

    # 4. the ledger last: its head row stays locked only from here to the commit
    append_event_rows(session, events, plain_data=True)  # str, int, None and dicts of those: above
    return result, created


def _account_numbers(ctx: NodeContext, session: Session, prefix: str, count: int) -> list[str]:
    """`count` new account numbers. On PostgreSQL reserved in a transaction of their own, committed at once: the
    counter's row stays locked only for that instant, not until the batch commits, so jobs importing at once
    do not queue behind each other here (a batch that rolls back leaves its numbers unused: account numbers are
    unique, not gapless). Its commit does not wait for the disk (`repo.commit_without_flush_wait`): the batch's
    own commit, later in the same log, makes it durable before any number is used. On SQLite in the batch's
    transaction, which already holds the write lock."""
    if session.get_bind().dialect.name == "sqlite":
        return reserve_account_numbers(session, prefix=prefix, count=count)
    with session_scope(ctx.engine) as own:
        repo.commit_without_flush_wait(own)
        return reserve_account_numbers(own, prefix=prefix, count=count)


@functools.lru_cache(maxsize=4096)
def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def enqueue_recoverable(ctx: NodeContext) -> list[str]:
    """Jobs a restarted worker should run: queued ones, and running ones whose worker stopped beating."""
    with Session(ctx.engine) as session:
        return repo.recoverable_jobs(session, stale_before=utcnow() - STALE_AFTER)


def copy_file(source: Path, ctx: NodeContext) -> tuple[str, Path]:
    with source.open("rb") as fh:
        return store_upload(ctx, fh, source.name)

