"""Statistics: summary tables kept by an incremental job over the ledger (and, for reviews, by the review
workflow in its own transaction). Layout and reasons: docs/statistics.md."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models.types import BigId, UtcDateTime

__all__ = ["StatsCounter", "StatsLearnerMonth", "StatsReviewClock", "StatsState"]


class StatsCounter(SQLModel, table=True):
    """One counter per metric × grain × period start × up to three dimensions: `count` events and `amount` (a
    sum in thousandths: credits, or seconds of waiting for review decisions). grain `d`: the row counts one day;
    grain `m`: one calendar month (`day` is the month's first day). A dimension that does not apply is ''."""

    __tablename__ = "stats_counter"
    metric: str = Field(sa_column=sa.Column(sa.String(40), primary_key=True))
    grain: str = Field(sa_column=sa.Column(sa.String(1), primary_key=True))
    day: dt.date = Field(sa_column=sa.Column(sa.Date, primary_key=True))
    dim1: str = Field(default="", sa_column=sa.Column(sa.String(64), primary_key=True))
    dim2: str = Field(default="", sa_column=sa.Column(sa.String(64), primary_key=True))
    dim3: str = Field(default="", sa_column=sa.Column(sa.String(64), primary_key=True))
    count: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    amount: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))


class StatsState(SQLModel, table=True):
    """The job's high-water mark: every ledger event with seq < `next_seq` is counted. The job locks this row
    for its whole transaction, so two workers never count one event twice."""

    __tablename__ = "stats_state"
    name: str = Field(primary_key=True, max_length=40)
    next_seq: int = Field(default=0, sa_type=sa.BigInteger)
    updated_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())


class StatsLearnerMonth(SQLModel, table=True):
    """A learner seen active (any ledger event about them) in a month: the distinct count of active learners
    per month is incremented only when this row is new."""

    __tablename__ = "stats_learner_month"
    learner_id: int = Field(sa_column=sa.Column(BigId, primary_key=True, autoincrement=False))
    month: dt.date = Field(sa_column=sa.Column(sa.Date, primary_key=True))


class StatsReviewClock(SQLModel, table=True):
    """When an individual deposit application entered the review stage it waits in (submitted, approved at the
    first stage, appealed): its decision's time to decision is measured from here. Removed when it is decided."""

    __tablename__ = "stats_review_clock"
    application_id: int = Field(sa_column=sa.Column(BigId, primary_key=True, autoincrement=False))
    queue: str = Field(max_length=64)  # the reviewing organisation's code ('centre' for the centre's queues)
    stage: str = Field(max_length=10)
    entered_at: dt.datetime = Field(sa_type=UtcDateTime())
