"""The usage page's chart: one bar per day, drawn as inline SVG on the server (no script, no library).
The geometry is worked out here; the template only writes the shapes.

May import: ``periods``, ``selectors`` (the rows it draws).
"""

from __future__ import annotations

from dataclasses import dataclass

from qtap_site.budgets.periods import money
from qtap_site.budgets.selectors import Row

WIDTH, HEIGHT, GAP = 720, 160, 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str  # shown on hover and read by screen readers


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    measure: str  # what the bars measure: "cost" or "tokens"


def day_bars(days: list[Row]) -> Chart:
    """Bars of each day's cost (or tokens, when nothing in the range cost anything), tallest = full height."""
    by_cost = any(day.cost > 0 for day in days)
    values = [float(day.cost) if by_cost else float(day.tokens) for day in days]
    top = max(values, default=0.0) or 1.0
    step = WIDTH / max(len(days), 1)
    bars = []
    for index, (day, value) in enumerate(zip(days, values, strict=True)):
        height = HEIGHT * value / top
        title = f"{day.label}: {money(day.cost)}, {day.tokens:,} tokens, {day.replies} replies"
        x, width = round(index * step, 2), round(max(step - GAP, 1), 2)
        bars.append(Bar(x, round(HEIGHT - height, 2), width, round(height, 2), title))
    return Chart(WIDTH, HEIGHT, bars, "cost" if by_cost else "tokens")
