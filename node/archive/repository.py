"""The archive's two queries: the deposited items (with the application each came from), and the totals per
group computed by the database from the same rows (never stored)."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, select

from node.archive.groups import ARCHIVE_GROUPS, OTHER
from node.models import Achievement, DepositApplication

__all__ = ["GroupTotals", "archive_items", "group_totals"]


def _live(learner_id: int) -> tuple:
    return (Achievement.learner_id == learner_id, Achievement.status == "deposited")


def archive_items(session: Session, learner_id: int) -> list[tuple[Achievement, int | None]]:
    """Every deposited achievement of the learner, newest first, in one query."""
    stmt = (
        select(Achievement, DepositApplication.id)
        .outerjoin(DepositApplication, DepositApplication.achievement_id == Achievement.id)
        .where(*_live(learner_id))
        .order_by(sa.nulls_last(Achievement.earned_on.desc()), sa.nulls_last(Achievement.term.desc()),
                  Achievement.id.desc())
    )
    return [(a, app_id) for a, app_id in session.exec(stmt)]


class GroupTotals(NamedTuple):
    count: int
    credits: Decimal
    hours: Decimal


def _group_of_type() -> sa.ColumnElement[str]:
    # literal SQL constants (no bind parameters), so the CASE can be grouped on by its output name
    whens = [
        (Achievement.type.in_([sa.literal_column(f"'{t}'") for t in g.types]), sa.literal_column(f"'{g.key}'"))
        for g in ARCHIVE_GROUPS
    ]
    return sa.case(*whens, else_=sa.literal_column(f"'{OTHER}'"))


def group_totals(session: Session, learner_id: int) -> dict[str, GroupTotals]:
    """Count, credits and hours per archive group, in one aggregate query (exact: sums of scaled integers)."""
    grp = _group_of_type().label("grp")
    stmt = (
        sa.select(
            grp,
            sa.func.count(),
            sa.func.sum(Achievement.credits),
            sa.func.sum(Achievement.hours),
        )
        .where(*_live(learner_id))
        .group_by(sa.text("grp"))
    )
    return {
        key: GroupTotals(count=count, credits=credits or Decimal(0), hours=hours or Decimal(0))
        for key, count, credits, hours in session.execute(stmt)
    }
