"""Column types shared by the tables, and the bounded types the API uses for values that reach a column."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

import annotated_types
import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "SCALE",
    "UtcDateTime",
    "BigId",
    "ExactDecimal",
    "Int32",
    "Int64",
    "LogString",
    "clean_text",
    "sqlite_datetime",
]

# Primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SCALE = 1000  # credits, hours and scores are stored in thousandths: exact on every database

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Every integer a request carries (ids, sequence numbers, versions, cursors) is one of these: a value no BIGINT
# column can hold is refused by validation (422) instead of failing where the database binds it (500).
# `tests/node/test_edge.py` walks the OpenAPI and fails on an unbounded integer.
# (An exclusive bound of 2**63: JSON Schema writers turn 2**63 - 1 into the float 2**63, which would not hold.)
Int64 = Annotated[int, annotated_types.Interval(ge=INT64_MIN, lt=INT64_MAX + 1)]
# A value bound to an INTEGER column (versions): PostgreSQL refuses a parameter past 2**31 - 1 there.
Int32 = Annotated[int, annotated_types.Interval(ge=-(2**31), le=2**31 - 1)]


def sqlite_datetime(value: dt.datetime) -> str:
    """A DateTime column's value as SQLAlchemy stores it on SQLite (for driver-level inserts that skip it)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def clean_text(value: str, length: int | None = None) -> str:
    """`value` made storable in any text column: NUL (refused by PostgreSQL) and lone surrogates (refused by
    UTF-8) become U+FFFD, and the result is clipped to `length` characters."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value if length is None else value[:length]


class LogString(TypeDecorator):
    """A log-like text column (audit fields, last errors, rejected-row reasons): whatever is written is made
    storable and clipped to the column's length, so that recording what happened can never fail. Never for
    data a request asks to store: that is validated at the edge (a clear 4xx) instead of being cut."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return clean_text(str(value), self.impl.length)


class UtcDateTime(TypeDecorator):
    """A point in time, always read back as an aware UTC datetime (SQLite keeps no offset and returned naive
    values, which responses then wrote without a timezone); aware values are stored converted to UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or not isinstance(value, dt.datetime):
            return value
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class ExactDecimal(TypeDecorator):
    """A Decimal stored as a scaled integer (three decimal places), so SQLite keeps it exact too."""

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, Decimal):
            value = Decimal(str(value))
        scaled = value * SCALE
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than three decimal places")
        return int(scaled)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return (Decimal(value) / SCALE).normalize() if value % SCALE else Decimal(value // SCALE)
