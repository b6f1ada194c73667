"""Two reviewers deciding the same application at the same moment: exactly one wins, the other gets
`stale_version` (on PostgreSQL through the row lock and the version check in the UPDATE)."""

from __future__ import annotations

import threading

from sqlmodel import Session

from node.db import session_scope
from node.deposits.service import review
from node.deps import Principal
from node.errors import Conflict
from node.models import DepositApplication
from node.org.service import create_staff
from tests.deposits.helpers import register_learner, submitted


def test_simultaneous_decisions_cannot_both_win(client, engine) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    with session_scope(engine) as s:
        ids = [create_staff(s, username=f"rev{i}", display_name=f"rev{i}", password="correct-horse-1",
                            roles=["branch_reviewer"], organisation_code=None).id for i in range(2)]
    reviewers = [Principal("staff", i, f"rev{n}", ("branch_reviewer",)) for n, i in enumerate(ids)]
    a_updated, b_loaded = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def first() -> None:
        with Session(engine) as s:
            row = s.get(DepositApplication, app["id"])
            b_loaded.wait(5)
            review(s, app=row, reviewer=reviewers[0], decision="approve", reason=None, version=app["version"])
            a_updated.set()
            threading.Event().wait(0.3)  # hold the row lock while the other reviewer tries
            s.commit()
            outcomes["a"] = "ok"

    def second() -> None:
        try:
            with Session(engine) as s:
                if engine.dialect.name == "postgresql":
                    row = s.get(DepositApplication, app["id"])  # reads the old version: the pre-check passes
                    b_loaded.set()
                    a_updated.wait(5)
                else:  # SQLite: a transaction takes the write lock at BEGIN, so read only after A's update
                    b_loaded.set()
                    a_updated.wait(5)
                    row = s.get(DepositApplication, app["id"])
                review(s, app=row, reviewer=reviewers[1], decision="reject", reason="no", version=app["version"])
                s.commit()
                outcomes["b"] = "ok"
        except Conflict as exc:
            outcomes["b"] = exc.code

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == {"a": "ok", "b": "stale_version"}
    with Session(engine) as s:
        row = s.get(DepositApplication, app["id"])
        assert (row.state, row.first_reviewer_id, row.version) == ("pending_second", ids[0], app["version"] + 1)
