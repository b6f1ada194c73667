"""Building a learner's archive from two queries (items, totals)."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session

from node.archive import repository as repo
from node.archive.groups import ARCHIVE_GROUPS, group_of
from node.archive.schemas import ArchiveGroup, ArchivePublic, Totals
from node.context import NodeContext
from node.deposits.schemas import AchievementPublic
from node.errors import NotFound
from node.learners.service import learner_public

__all__ = ["archive_json", "learner_archive"]


def learner_archive(session: Session, ctx: NodeContext, learner_id: int) -> ArchivePublic:
    """Two queries of rows (the learner, the items); no ORM objects are built. The totals are summed here from the
    items' exact decimals (each achievement counted once), which is what `repo.group_totals` computes in SQL."""
    learner = repo.learner_row(session, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    items: dict[str, list[AchievementPublic]] = {g.key: [] for g in ARCHIVE_GROUPS}
    sums: dict[str, repo.GroupTotals] = {}
    counted: set[int] = set()
    for row in repo.archive_rows(session, learner_id):
        key = group_of(row.type)
        items[key].append(AchievementPublic.model_validate(row._mapping))
        if row.id not in counted:
            counted.add(row.id)
            t = sums.get(key) or repo.GroupTotals(0, Decimal(0), Decimal(0))
            sums[key] = repo.GroupTotals(t.count + 1, t.credits + (row.credits or 0), t.hours + (row.hours or 0))
    zero = repo.GroupTotals(0, Decimal(0), Decimal(0))
    groups = []
    for g in ARCHIVE_GROUPS:
        t = sums.get(g.key, zero)
        groups.append(ArchiveGroup(key=g.key, name_zh=g.name_zh, name_en=g.name_en, types=list(g.types),
                                   totals=Totals(count=t.count, credits=t.credits, hours=t.hours),
                                   items=items[g.key]))
    overall = Totals(
        count=sum(t.count for t in sums.values()),
        credits=sum((t.credits for t in sums.values()), Decimal(0)),
        hours=sum((t.hours for t in sums.values()), Decimal(0)),
    )
    return ArchivePublic(learner=learner_public(ctx, learner), groups=groups, totals=overall)


def archive_json(archive: ArchivePublic) -> bytes:
    """The archive as the API serves it (the JSON FastAPI would write for `response_model=ArchivePublic`)."""
    return archive.model_dump_json().encode()
