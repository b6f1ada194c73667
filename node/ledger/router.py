"""Opening ledger events: the learner sees the opening of their own events, staff of any (audited).

The public view of an event (`GET /api/v1/ledger/events/{seq}`, with the proofs in node.credentials.router)
shows nothing that identifies or links a person; these routes give the salt, pseudonym and data that prove what
an event is about, to those entitled to it (docs/ledger.md, threat model).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from node.audit.service import record, refusals_recorded
from node.deps import Principal, SessionDep, require_roles
from node.errors import NotFound
from node.ledger.service import opened_view
from node.models import Learner, LedgerEvent
from node.roles import Role

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["ledger"])

LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
Opener = Annotated[Principal, Depends(require_roles(Role.CENTRE_REVIEWER, Role.AUDITOR))]
Seq = Annotated[int, Path(ge=0, le=2**63 - 1)]


@router.get("/me/ledger/events/{seq}")
def my_event(seq: Seq, session: SessionDep, me: LearnerOnly) -> dict:
    """One of your ledger events with its opening (salt, your pseudonym, what it says): give it, with the
    public leaf, to whoever should be able to check that the event is about you."""
    event = session.get(LedgerEvent, seq)
    if event is None or event.learner_id != me.id:
        raise NotFound("no ledger event of yours with that sequence number")
    return opened_view(event, session.get(Learner, me.id))


@router.get("/ledger/events/{seq}/opening")
def event_opening(seq: Seq, session: SessionDep, staff: Opener) -> dict:
    """Any event with its opening: which learner it concerns and what it says (audited: `ledger.open`)."""
    with refusals_recorded(session, actor=staff, action="ledger.open", target_type="ledger_event", target_id=seq):
        event = session.get(LedgerEvent, seq)
        if event is None:
            raise NotFound("no ledger event with that sequence number")
    learner = session.get(Learner, event.learner_id) if event.learner_id is not None else None
    record(session, actor=staff, action="ledger.open", target_type="ledger_event", target_id=seq,
           detail={"learner_id": event.learner_id, "kind": event.kind})
    view = opened_view(event, learner)
    view["learner_id"] = event.learner_id
    return view
