"""Horizontal bar charts drawn on the server as SVG (no JavaScript), one bar per labelled figure: the shape of
node/portal/chart.py's year chart, for labels of any length (months, categories, institutions, queues)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["HBar", "HChart", "hbar_chart"]


@dataclass(frozen=True)
class HBar:
    label: str
    value: Any
    y: float
    width: float
    text_y: float


@dataclass(frozen=True)
class HChart:
    width: int
    height: int
    label_width: int
    bar_height: float
    bars: tuple[HBar, ...]


def hbar_chart(pairs: Sequence[tuple[str, Any]], *, width: int = 520, max_bars: int = 24) -> HChart | None:
    """A bar per (label, value), longest value the full width; None when there is nothing above zero."""
    pairs = [(str(label)[:28], value) for label, value in pairs[:max_bars]]
    values = [Decimal(str(v)) for _, v in pairs]
    top = max(values, default=Decimal(0))
    if top <= 0:
        return None
    label_width, row, bar_height, pad = 170, 26, 18.0, 56
    usable = width - label_width - pad
    bars = []
    for i, ((label, value), v) in enumerate(zip(pairs, values, strict=True)):
        y = 6 + i * row
        bars.append(HBar(label, value, float(y), round(float(max(v, Decimal(0)) / top) * usable, 1),
                         round(y + bar_height - 4, 1)))
    return HChart(width, 12 + len(bars) * row, label_width, bar_height, tuple(bars))
