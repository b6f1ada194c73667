"""The learner's archive: the learner reads their own; front-office staff read a learner's (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from node.archive import repository as repo
from node.archive.schemas import ArchivePublic
from node.archive.service import archive_document, learner_archive_json
from node.audit.service import record, refusals_recorded
from node.deps import CtxDep, LearnerCallDep, Principal, SessionDep, on_reader, require_roles
from node.fastlane import Lane, PreparedRead, current, fast_read
from node.models import Learner
from node.roles import Role
from node.models.types import Int64

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["archive"])

LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
StaffFront = Annotated[
    Principal, Depends(require_roles(Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER))
]


@router.get("/me/archive", response_model=ArchivePublic)
async def read_my_archive(call: LearnerCallDep) -> Response:
    """Your deposited outcomes grouped as 学历教育 / 证书 / 培训 / 其他, with credits, hours and count per group."""
    # two reads: on SQLite on the event loop, on PostgreSQL in a worker thread (node.deps.on_reader)
    return _json(await on_reader(call.session, lambda: learner_archive_json(call.session, call.ctx, call.me.id)))


# the learner's row with their current token version: one query checks the token and reads the learner
_LEARNER = PreparedRead(repo.LEARNER_ROW.add_columns(Learner.token_version))
_ITEMS = PreparedRead(repo.ARCHIVE_ROWS)


@fast_read("/api/v1/me/archive", learner=True)
async def fast_archive(lane: Lane, _scope: dict, _param: None, who: tuple[int, int]) -> tuple[bytes, bytes] | None:
    """`read_my_archive` in its plain case (node.fastlane): the same two queries and the same bytes."""
    async with lane.reading() as r:
        learner = await r.named(_LEARNER, {"learner_id": who[0]})
        if not learner or not current(who, learner[0].token_version) or learner[0].erased_at is not None:
            return None
        found = learner[0], await r.rows(_ITEMS, {"learner_id": who[0]})
    return archive_document(lane.ctx, *found), b"application/json"


@router.get("/learners/{learner_id}/archive", response_model=ArchivePublic)
def read_learner_archive(learner_id: Int64, ctx: CtxDep, session: SessionDep, staff: StaffFront) -> Response:
    """A learner's deposited outcomes grouped as 学历教育 / 证书 / 培训 / 其他, with credits, hours
    and count per group. Audited, refusals included."""
    with refusals_recorded(session, actor=staff, action="archive.read", target_type="learner",
                           target_id=learner_id):
        archive = learner_archive_json(session, ctx, learner_id)
    record(session, actor=staff, action="archive.read", target_type="learner", target_id=learner_id)
    return _json(archive)


def _json(archive: bytes) -> Response:
    # built and serialised once, in the endpoint's thread (returning the model would validate it again and
    # serialise it in a second worker-thread hop); the same bytes as the model's JSON, `response_model`
    # documents them
    return Response(archive, media_type="application/json")
