"""Column types shared by the tables."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

__all__ = ["SCALE", "BigId", "ExactDecimal", "sqlite_datetime"]

# Primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SCALE = 1000  # credits, hours and scores are stored in thousandths: exact on every database


def sqlite_datetime(value: dt.datetime) -> str:
    """A DateTime column's value as SQLAlchemy stores it on SQLite (for driver-level inserts that skip it)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


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
