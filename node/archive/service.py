"""Building a learner's archive from two queries (items, totals)."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session

from node.archive import repository as repo
from node.archive.groups import ARCHIVE_GROUPS, group_of
from node.archive.schemas import ArchiveGroup, ArchivePublic, Totals
from node.context import NodeContext
from node.deposits.schemas import AchievementPublic
from node.deposits.service import achievement_public
from node.errors import NotFound
from node.learners.service import learner_public
from node.models import Learner

__all__ = ["learner_archive"]


def learner_archive(session: Session, ctx: NodeContext, learner_id: int) -> ArchivePublic:
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    items: dict[str, list[AchievementPublic]] = {g.key: [] for g in ARCHIVE_GROUPS}
    for achievement, app_id in repo.archive_items(session, learner_id):
        items[group_of(achievement.type)].append(achievement_public(achievement, app_id))
    sums = repo.group_totals(session, learner_id)
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
