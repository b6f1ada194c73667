"""One outbox worker process, for tests/conformance/test_two_workers.py.

It builds the node's context from its environment (the node's `CREDITNODE_*` settings, as `creditnode jobs run`
does) and runs `flush_outbox` (what the job `federation.flush_outbox` runs) over and over, with a small batch
and one claim round per call so that two such processes compete for the rows, until a stop file appears:

    python -m tests.conformance.outbox_worker --name w1 --go GO_FILE --stop STOP_FILE [--batch 2]

It prints JSON lines on stdout: `{"worker": NAME, "ready": true}` once the context is built, then for every
call that sent something `{"worker": NAME, "delivered": [[peer, seq], ...], "failed": [[peer, seq], ...],
"dead": [...], "resynced": [...]}`, and at the end `{"worker": NAME, "done": true, "calls": N, "errors": E}`.
An exception of one call is printed as `{"worker": NAME, "error": "..."}` and the loop goes on (a scheduler
would run the job again), so the test sees it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from pathlib import Path


def _emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--go", type=Path, required=True, help="start flushing once this file exists")
    parser.add_argument("--stop", type=Path, required=True, help="stop once this file exists")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    args = parser.parse_args(argv)

    from config.settings import Settings
    from federation.outbox import flush_outbox
    from federation.runtime import runtime
    from node.context import NodeContext

    ctx = NodeContext.build(Settings())
    _emit(worker=args.name, ready=True)
    deadline = time.monotonic() + args.timeout
    while not args.go.exists():
        if time.monotonic() > deadline:
            _emit(worker=args.name, error="never told to start")
            return 2
        time.sleep(0.01)
    calls = errors = 0
    try:
        while not args.stop.exists() and time.monotonic() < deadline:
            calls += 1
            try:
                report = flush_outbox(ctx, batch=args.batch, max_rounds=1)
            except Exception:  # noqa: BLE001 - reported, and the loop goes on like a scheduler's
                errors += 1
                _emit(worker=args.name, error=traceback.format_exc()[-2000:])
                report = None
            if report is not None and report.sent:
                _emit(worker=args.name, delivered=report.delivered,
                      failed=[[peer, seq] for peer, seq, _error in report.failed],
                      dead=[[peer, seq] for peer, seq, _error in report.dead], resynced=report.resynced)
            # a short random pause: neither process gets to claim the next run first every time
            time.sleep(random.uniform(0.0, 0.02))
    finally:
        runtime(ctx).close()
        ctx.engine.dispose()
    _emit(worker=args.name, done=True, calls=calls, errors=errors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
