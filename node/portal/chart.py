"""A small bar chart of credits per year, drawn on the server as SVG (no JavaScript): pure functions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Bar", "Chart", "credits_by_year", "year_chart"]


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float
    bars: tuple[Bar, ...]
    maximum: Decimal


def credits_by_year(items: Iterable) -> dict[int, Decimal]:
    """Credits earned per year (the record's earned date, else when it was deposited)."""
    sums: dict[int, Decimal] = {}
    for item in items:
        when = item.earned_on or item.created_at.date()
        sums[when.year] = sums.get(when.year, Decimal(0)) + (item.credits or Decimal(0))
    return sums


def year_chart(sums: dict[int, Decimal], *, width: int = 640, height: int = 220) -> Chart | None:
    """Bars for every year from the first to the last (years without credits show as empty)."""
    if not sums:
        return None
    years = list(range(min(sums), max(sums) + 1))[-15:]
    top, bottom, side = 24.0, 32.0, 12.0
    maximum = max(max(sums.get(y, Decimal(0)) for y in years), Decimal(1))
    slot = (width - 2 * side) / len(years)
    bar_width = min(slot * 0.6, 60.0)
    usable = height - top - bottom
    bars = []
    for i, year in enumerate(years):
        value = sums.get(year, Decimal(0))
        h = float(value / maximum) * usable
        x = side + i * slot + (slot - bar_width) / 2
        bars.append(Bar(str(year), value, round(x, 1), round(top + usable - h, 1), round(bar_width, 1), round(h, 1)))
    return Chart(width, height, top + usable, tuple(bars), maximum)
