"""The archive's two queries: the deposited items (with the application each came from), and the totals per
group computed by the database from the same rows (never stored)."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, select

from node.archive.groups import ARCHIVE_GROUPS, OTHER
from node.models import Achievement, DepositApplication, Learner

__all__ = ["ARCHIVE_ROWS", "ITEM_COLUMNS", "LEARNER_ROW", "GroupTotals", "archive_items", "archive_rows",
           "group_totals", "learner_row"]


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


# The columns of an archive item, named as AchievementPublic names its fields.
ITEM_COLUMNS = (
    Achievement.id, Achievement.type, Achievement.issuer_code, Achievement.issuer_name, Achievement.code,
    Achievement.title, Achievement.credits, Achievement.hours, Achievement.score_text.label("score"),
    Achievement.level, Achievement.certificate_no, Achievement.earned_on, Achievement.term, Achievement.expires_on,
    Achievement.source, Achievement.status, DepositApplication.id.label("application_id"), Achievement.created_at,
)
_ARCHIVE_ORDER = (sa.nulls_last(Achievement.earned_on.desc()), sa.nulls_last(Achievement.term.desc()),
                  Achievement.id.desc())


# Built once: a statement is a tree of objects whose building and cache key cost more than running it.
ARCHIVE_ROWS = (
    sa.select(*ITEM_COLUMNS)
    .outerjoin(DepositApplication, DepositApplication.achievement_id == Achievement.id)
    .where(Achievement.learner_id == sa.bindparam("learner_id"), Achievement.status == "deposited")
    .order_by(*_ARCHIVE_ORDER)
)
LEARNER_ROW = sa.select(Learner.id, Learner.account_no, Learner.id_type, Learner.id_masked, Learner.name_cipher,
                         Learner.key_id, Learner.pseudonym, Learner.created_at, Learner.erased_at).where(
    Learner.id == sa.bindparam("learner_id"))


def archive_rows(session: Session, learner_id: int) -> list[sa.Row]:
    """The same items as `archive_items`, as rows of ITEM_COLUMNS (no ORM objects: the archive only shows them;
    run on the session's connection, past the ORM's statement handling)."""
    return list(session.connection().execute(ARCHIVE_ROWS, {"learner_id": learner_id}))


def learner_row(session: Session, learner_id: int) -> sa.Row | None:
    """What the archive shows of a learner (the columns `learner_public` reads), or None."""
    return session.connection().execute(LEARNER_ROW, {"learner_id": learner_id}).first()


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


_GROUP_OF_TYPE = _group_of_type()


def group_totals(session: Session, learner_id: int) -> dict[str, GroupTotals]:
    """Count, credits and hours per archive group, in one aggregate query (exact: sums of scaled integers)."""
    grp = _GROUP_OF_TYPE.label("grp")
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
