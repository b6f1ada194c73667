"""Named counters: a block of consecutive values reserved with one UPDATE (account numbers, status indexes)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from node.models import Counter

__all__ = ["reserve"]

_table = Counter.__table__


def reserve(session: Session, name: str, count: int = 1) -> int:
    """Reserve `count` values of counter `name`; returns the first (values start at 1)."""
    last = session.execute(
        sa.update(_table).where(_table.c.name == name).values(value=_table.c.value + count).returning(_table.c.value)
    ).scalar()
    if last is None:
        session.execute(sa.insert(_table).values(name=name, value=count))
        last = count
    return last - count + 1
