"""Building a learner's archive from two queries (items, totals)."""

from __future__ import annotations

from decimal import Decimal

import orjson
from sqlmodel import Session

from node.archive import repository as repo
from node.archive.groups import ARCHIVE_GROUPS, group_of
from node.archive.schemas import ArchiveGroup, ArchivePublic, Totals
from node.context import NodeContext
from node.deposits.schemas import AchievementPublic, dec_str
from node.errors import Gone, NotFound
from node.learners.service import learner_public

__all__ = ["archive_document", "archive_json", "learner_archive", "learner_archive_json"]


def learner_archive(session: Session, ctx: NodeContext, learner_id: int) -> ArchivePublic:
    """Two queries of rows (the learner, the items); no ORM objects are built. The totals are summed here from the
    items' exact decimals (each achievement counted once), which is what `repo.group_totals` computes in SQL."""
    learner = repo.learner_row(session, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    if learner.erased_at is not None:
        raise Gone("this learner's personal data has been erased", code="learner_erased")
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


# AchievementPublic's fields, in its order: the names of repo.ITEM_COLUMNS (a test keeps them equal)
_ITEM_FIELDS = tuple(AchievementPublic.model_fields)
_DECIMAL_FIELDS = frozenset({"credits", "hours"})


def learner_archive_json(session: Session, ctx: NodeContext, learner_id: int) -> bytes:
    """`archive_json(learner_archive(...))` without building the models: the same two queries, the rows written
    straight to JSON by orjson in the same shape, order and formats (decimals as `dec_str` strings, dates ISO,
    UTC times with "Z"); `tests/archive` checks the bytes equal. The values come from the database, where the
    deposit's validation put them, so they are not validated a second time. What the API routes send."""
    learner = repo.learner_row(session, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    if learner.erased_at is not None:
        raise Gone("this learner's personal data has been erased", code="learner_erased")
    return archive_document(ctx, learner, repo.archive_rows(session, learner_id))


def archive_document(ctx: NodeContext, learner, rows) -> bytes:
    """The archive's JSON from the learner's row (the columns of `repo.LEARNER_ROW`) and the item rows (of
    `repo.ARCHIVE_ROWS`, in its order): shared by the route and its fast lane (node.fastlane)."""
    items: dict[str, list[dict]] = {g.key: [] for g in ARCHIVE_GROUPS}
    sums: dict[str, list] = {}
    counted: set[int] = set()
    for row in rows:
        item = dict(zip(_ITEM_FIELDS, row, strict=True))
        credits, hours = item["credits"], item["hours"]
        item["credits"], item["hours"] = dec_str(credits), dec_str(hours)
        key = group_of(item["type"])
        items[key].append(item)
        if item["id"] not in counted:
            counted.add(item["id"])
            t = sums.setdefault(key, [0, Decimal(0), Decimal(0)])
            t[0] += 1
            t[1] += credits or 0
            t[2] += hours or 0
    groups = []
    overall = [0, Decimal(0), Decimal(0)]
    for g in ARCHIVE_GROUPS:
        count, credits, hours = sums.get(g.key, (0, Decimal(0), Decimal(0)))
        overall = [overall[0] + count, overall[1] + credits, overall[2] + hours]
        groups.append({"key": g.key, "name_zh": g.name_zh, "name_en": g.name_en, "types": list(g.types),
                       "totals": {"count": count, "credits": dec_str(credits), "hours": dec_str(hours)},
                       "items": items[g.key]})
    who = learner_public(ctx, learner)
    return orjson.dumps({
        "learner": {"id": who.id, "account_no": who.account_no, "id_type": who.id_type,
                    "id_number_masked": who.id_number_masked, "name": who.name, "pseudonym": who.pseudonym,
                    "created_at": who.created_at},
        "groups": groups,
        "totals": {"count": overall[0], "credits": dec_str(overall[1]), "hours": dec_str(overall[2])},
    }, option=orjson.OPT_UTC_Z)
