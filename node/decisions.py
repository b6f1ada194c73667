"""One event per workflow step that decides something or moves work between queues, published by the workflow
that takes the step, in its own transaction; the statistics and the notices listen to it (docs/engage.md,
docs/statistics.md).

Before this module the same decision was seen twice, by two mechanisms: the deposit service called the
statistics' hook, and the notices recognised `deposit.approve/reject` audit entries and conversion or transfer
state changes in an ORM flush listener that scanned every flush of every session. Now the service that takes a
step says so once, explicitly (`publish`), and each listener picks the kinds it cares about:

| kind | published by | statistics | notices |
|---|---|---|---|
| `deposit.submit` | node.deposits.service.submit | enters the branch's queue | – |
| `deposit.approve`, `deposit.reject` | node.deposits.service.review | decided (+ time waited) | review_decided / appeal_answered |
| `deposit.appeal` | node.deposits.service.appeal | enters the queue again | – |
| `deposit.route` | node.deposits.routing.reroute / reroute_queue | leaves one queue, enters another | – |
| `conversion.review`, `conversion.appeal_review` | node.conversion.service.review | (ledger job) | conversion_decided / appeal_answered |
| `transfer.complete` | federation.transfers.transfer._complete | (ledger job) | transfer_completed |
| `rpl.confirm`, `rpl.reject` | node.rpl.service | – | rpl_decided |

Listeners run in the caller's session before it commits: a listener's failure fails the step, and a rolled-back
step leaves neither a count nor a notice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

__all__ = ["Decision", "Listener", "listeners", "publish"]


@dataclass(frozen=True, kw_only=True)
class Decision:
    """A workflow step: what happened (`kind`, the audit action's name), to whom, on what, when."""

    kind: str
    learner_id: int
    subject_id: int  # the application, conversion request, transfer or RPL application
    at: dt.datetime  # the step's time (its audit entry's)
    stage: str | None = None  # a deposit review's stage ("first" / "second"), or an appeal's
    appeal: bool = False  # a decision on an appeal
    outcome: str | None = None  # what the learner is told: "passed_first", "deposited", "rejected", "decided", …
    subject: Any = field(default=None, compare=False, repr=False)  # the row itself, after the step


Listener = Callable[[Session, Decision], None]


def listeners() -> tuple[Listener, ...]:
    """The listeners, in the order they run: the statistics, then the notices."""
    from node.engage.notices import on_decision as notices
    from node.stats.reviews import on_decision as statistics

    return (statistics, notices)


def publish(session: Session, decision: Decision) -> None:
    """Tell every listener about `decision`, in the caller's transaction."""
    for listener in listeners():
        listener(session, decision)
