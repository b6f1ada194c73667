"""A node process that claims outbox rows and then hangs in its first send, for tests/federation/test_workers.py
(the test kills it with SIGKILL: a crash with rows claimed and leased).

    python -m tests.federation.claiming_worker DATABASE_URL DATA_DIR REGION

It builds the node's context as the test's in-process node does (`tests.conftest.make_settings`), runs
`flush_outbox` with a client whose `post` prints `{"worker": ID, "sending": [peer, seq]}` and never returns.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


class _Hanging:
    def post(self, peer: str, path: str, payload: dict) -> None:
        from federation.workers import current_worker

        print(json.dumps({"worker": current_worker().id, "sending": [peer, payload["seq"]]}), flush=True)
        while True:
            time.sleep(60)


def main() -> int:
    database_url, data_dir, region = sys.argv[1:4]
    from federation.outbox import flush_outbox
    from node.context import NodeContext
    from tests.conftest import make_settings

    ctx = NodeContext.build(make_settings(database_url, Path(data_dir), region=region))
    flush_outbox(ctx, client_factory=_Hanging)  # type: ignore[arg-type,return-value]
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
