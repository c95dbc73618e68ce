"""The dashboard's daily cost chart as geometry for a server-rendered SVG (``billing/_chart.html``):
no script and no style attribute (the CSP forbids both), only shapes with presentation
attributes. Pure: money in, pixel positions out.

One bar per day of the month: the estimate so far (base below, burst on top), the forecast for
the rest of today and the days to come (paler), the bill as dots where Cost Explorer has
reported the day, and, once budgets exist, a dashed line at the budget's daily share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from billing.money import amount_str

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
COLORS = {"base": "#2f6690", "burst": "#e07a1f", "forecast": "#b8c7d6", "billed": "#1b1b1b"}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # base, burst, forecast
    title: str

    @property
    def fill(self) -> str:
        return COLORS[self.kind]


@dataclass(frozen=True)
class Dot:
    cx: float
    cy: float
    title: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass
class DailyChart:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    bars: list[Bar] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    billed_points: str = ""
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    today_x: float | None = None
    budget_y: float | None = None
    budget_label: str = ""
    empty: bool = True
    colors: dict[str, str] = field(default_factory=lambda: dict(COLORS))
    description: str = ""


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value - 1e-12:
            return step * power
    return 10 * power


def _money(value: Decimal | float) -> str:
    return f"${amount_str(Decimal(str(value)))}"


def daily_chart(
    *,
    first_day: date,
    days: int,
    estimate: dict[date, tuple[Decimal, Decimal]],
    forecast: dict[date, Decimal],
    billed: dict[date, Decimal],
    today: date | None,
    budget_daily: Decimal | None = None,
) -> DailyChart:
    """The chart of the month of ``first_day`` (``days`` long). ``estimate`` is (base, burst)
    per day so far, ``forecast`` what is still to come per day, ``billed`` Cost Explorer's
    total per day, ``today`` where "now" is (None for a past month)."""
    chart = DailyChart()
    plot_w = chart.right - chart.left
    plot_h = chart.bottom - chart.top
    slot = plot_w / days
    width = max(slot * 0.72, 1.0)
    totals = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        base, burst = estimate.get(day, (Decimal(0), Decimal(0)))
        totals.append(float(base + burst + forecast.get(day, Decimal(0))))
    highest = max([*totals, *(float(v) for v in billed.values()), 0.0])
    if budget_daily is not None:
        highest = max(highest, float(budget_daily))
    chart.empty = highest <= 0
    top_value = nice_ceiling(highest * 1.05)

    def y_of(value: float) -> float:
        return chart.bottom - plot_h * value / top_value

    for index in range(5):
        value = top_value * index / 4
        chart.y_ticks.append(Tick(round(y_of(value), 1), _money(value)))
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        x = chart.left + slot * offset + (slot - width) / 2
        base, burst = estimate.get(day, (Decimal(0), Decimal(0)))
        ahead = forecast.get(day, Decimal(0))
        level = 0.0
        for kind, value, what in (
            ("base", base, "estimate, base"),
            ("burst", burst, "estimate, burst"),
            ("forecast", ahead, "forecast"),
        ):
            if value <= 0:
                continue
            bottom = y_of(level)
            level += float(value)
            top = y_of(level)
            chart.bars.append(
                Bar(
                    round(x, 1),
                    round(top, 1),
                    round(width, 1),
                    round(max(bottom - top, 0.5), 1),
                    kind,
                    f"{day:%b %d}: {_money(value)} {what}",
                )
            )
        if offset == 0 or (offset + 1) % 5 == 0 or offset == days - 1:
            chart.x_ticks.append(Tick(round(chart.left + slot * (offset + 0.5), 1), str(day.day)))
        if day == today:
            chart.today_x = round(chart.left + slot * offset, 1)
    points = []
    for day, value in sorted(billed.items()):
        offset = (day - first_day).days
        if not 0 <= offset < days:
            continue
        cx = round(chart.left + slot * (offset + 0.5), 1)
        cy = round(y_of(float(value)), 1)
        chart.dots.append(Dot(cx, cy, f"{day:%b %d}: {_money(value)} billed (Cost Explorer)"))
        points.append(f"{cx},{cy}")
    chart.billed_points = " ".join(points)
    if budget_daily is not None:
        chart.budget_y = round(y_of(float(budget_daily)), 1)
        chart.budget_label = f"budget {_money(budget_daily)}/day"
    so_far = sum((sum(v, Decimal(0)) for v in estimate.values()), Decimal(0))
    ahead = sum(forecast.values(), Decimal(0))
    chart.description = (
        f"Daily cost for {first_day:%B %Y}: {_money(so_far)} estimated so far, "
        f"{_money(ahead)} forecast for the rest of the month, "
        f"{len(chart.dots)} day{'s' if len(chart.dots) != 1 else ''} billed by Cost Explorer."
    )
    return chart
