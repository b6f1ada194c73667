"""The background worker that runs import jobs: one thread per node process, jobs one after another.

Started and stopped by the imports router's lifespan. On start it takes up jobs left queued, and running jobs
whose heartbeat stopped (their process died); several processes may do so at once, because `run_job` runs a job
only after claiming it with a conditional UPDATE. On stop it lets the batch in flight commit, puts the job back
in the queue (status `queued`, resumable) and ends. `wait()` blocks until every submitted job has ended, which
is how tests wait deterministically.
"""

from __future__ import annotations

import logging
import queue
import threading

from node.context import NodeContext
from node.imports.service import enqueue_recoverable, run_job

__all__ = ["ImportWorker", "worker_of"]

log = logging.getLogger("creditnode.imports")
_STOP = object()
EXTRA_KEY = "imports.worker"


class ImportWorker:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._queue: queue.Queue[object] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, *, recover: bool = True) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="imports.worker", daemon=True)
        self._thread.start()
        if recover:
            for job_id in enqueue_recoverable(self.ctx):
                self.submit(job_id)

    def submit(self, job_id: str) -> None:
        if self._thread is None or not self.ctx.settings.imports.run_in_background:
            run_job(self.ctx, job_id)  # no worker thread (a command, or background runs disabled)
            return
        self._queue.put(job_id)

    def wait(self) -> None:
        """Block until every submitted job has ended."""
        self._queue.join()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._stopping.is_set():
                    continue  # left queued in the database; the next start takes it up
                run_job(self.ctx, str(item), should_stop=self._stopping.is_set)
            except Exception:
                log.exception("import worker: job %s could not be run", item)
            finally:
                self._queue.task_done()


def worker_of(ctx: NodeContext) -> ImportWorker:
    """The process's worker (one without a thread runs jobs in the caller, e.g. before the lifespan starts)."""
    worker = ctx.extras.get(EXTRA_KEY)
    if worker is None:
        worker = ctx.extras[EXTRA_KEY] = ImportWorker(ctx)
    return worker
