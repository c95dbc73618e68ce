"""Where will this month end? Pure functions: no database and no clock. The caller passes the
moment, the month-to-date estimate, what runs now with its hourly cost, and planned launches
(the launch feature will pass the approved ones).

The assumptions, which ``Forecast.assumptions`` also states in sentences for the page:

- The month to date is the estimate from the cost rows (``month_to_date``), as of ``at``.
- Base nodes, storage and public IPv4 addresses run on at today's prices until the month ends.
- A running burst node runs until its time limit, the ``clusterweb:expires-at`` tag or else its
  pool's ``max_hours`` from launch, or to the month's end when it has none. A node already past
  its limit is counted to the month's end: nothing has stopped it, and the forecast must not
  hide the forgotten launch that is the reason it exists.
- Spot nodes keep today's spot price; storage keeps its last measured size.
- A planned launch runs ``count`` instances from ``start`` for ``hours`` (the part inside the
  rest of the month).
- Items without a price are left out, and counted.

It works from the first second of a month: then the month to date is zero and everything is
forecast.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from billing.costs.costing import HOUR, cut, month_after, month_seconds, month_start, seconds
from billing.money import amount

BASE, BURST, STORAGE, ADDRESSES, PLANNED = "base", "burst", "storage", "addresses", "planned"
GROUPS = {
    BASE: "Base nodes",
    BURST: "Burst nodes",
    STORAGE: "Storage",
    ADDRESSES: "Public IPv4 addresses",
    PLANNED: "Planned launches",
}


@dataclass(frozen=True)
class RunningItem:
    """Something that costs money by the hour now: a node, a volume, a file system or bucket, a
    public address. ``hourly`` None: the catalog has no price for it. ``limit``: when a burst
    node's time is up (None: no limit). ``node``: the name of the node the item goes with (its
    public IPv4 address, its root volume), which shares its limit; empty for a node itself and
    for what stands alone. Only nodes are counted as nodes."""

    key: str
    label: str
    group: str
    hourly: Decimal | None
    limit: datetime | None = None
    limit_source: str = ""
    pool: str = ""
    owner: str = ""
    node: str = ""


@dataclass(frozen=True)
class PlannedLaunch:
    """A launch not running yet: ``count`` instances of ``instance_type`` from ``start`` for
    ``hours``, at ``hourly`` each (None: no price)."""

    label: str
    instance_type: str
    lifecycle: str
    count: int
    start: datetime
    hours: Decimal
    hourly: Decimal | None


@dataclass(frozen=True)
class ForecastLine:
    key: str
    label: str
    group: str
    hourly: Decimal | None  # for all of the line's instances together
    start: datetime
    end: datetime
    cost: Decimal  # rounded to the cent
    overdue: bool = False
    limit: datetime | None = None
    node: str = ""  # the node this line goes with (its address, its volume); empty for a node

    @property
    def unknown(self) -> bool:
        return self.hourly is None

    @property
    def hours(self) -> Decimal:
        return max(seconds(self.end - self.start), Decimal(0)) / HOUR


@dataclass(frozen=True)
class Forecast:
    at: datetime
    month_start: datetime
    month_end: datetime
    month_to_date: Decimal
    lines: tuple[ForecastLine, ...]
    assumptions: tuple[str, ...]
    daily: dict[date, Decimal] = field(default_factory=dict)  # unrounded, for the chart

    @property
    def remaining(self) -> Decimal:
        return sum((line.cost for line in self.lines), Decimal("0.00"))

    @property
    def total(self) -> Decimal:
        """The month to date plus every line, each rounded to the cent."""
        return self.month_to_date + self.remaining

    @property
    def unknown(self) -> int:
        return sum(line.unknown for line in self.lines)

    def by_group(self) -> list[tuple[str, str, Decimal, int]]:
        """(group, label, amount, lines) for the groups that have lines, in GROUPS order."""
        totals: dict[str, Decimal] = defaultdict(Decimal)
        counts: dict[str, int] = defaultdict(int)
        for line in self.lines:
            totals[line.group] += line.cost
            counts[line.group] += 1
        return [(g, label, totals[g], counts[g]) for g, label in GROUPS.items() if counts[g]]


def time_limit(
    *, expires_at: str | None, launched_at: datetime, max_hours: int | None
) -> tuple[datetime | None, str]:
    """A burst node's time limit: the ``clusterweb:expires-at`` tag (ISO 8601, UTC when it names
    no zone) when it parses, else ``max_hours`` after launch, else none."""
    if expires_at:
        try:
            moment = datetime.fromisoformat(expires_at.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), "expires-at tag"
    if max_hours:
        return launched_at + timedelta(hours=max_hours), f"pool limit of {max_hours} h"
    return None, ""


def storage_hourly(gb: Decimal, gb_month_price: Decimal, at: datetime) -> Decimal:
    """The cost of ``gb`` GB for one hour in ``at``'s month (GB-months prorated by time)."""
    return gb * gb_month_price * HOUR / Decimal(month_seconds(month_start(at)))


def _spread(daily: dict[date, Decimal], hourly: Decimal, start: datetime, end: datetime) -> None:
    for a, b in cut(start, end):
        daily[a.date()] += hourly * seconds(b - a) / HOUR


def forecast_month(
    *,
    at: datetime,
    month_to_date: Decimal,
    running: Iterable[RunningItem] = (),
    planned: Iterable[PlannedLaunch] = (),
) -> Forecast:
    """The month of ``at``: ``month_to_date`` plus what ``running`` and ``planned`` add from
    ``at`` until the month ends, under the module's assumptions."""
    start = month_start(at)
    end = month_after(start)
    lines: list[ForecastLine] = []
    daily: dict[date, Decimal] = defaultdict(Decimal)
    overdue: list[ForecastLine] = []
    limited = unlimited = 0
    for item in running:
        until, late = end, False
        if item.group == BURST:
            # An address or volume of a burst node runs as long as its node; only nodes count.
            counted = not item.node
            if item.limit is None:
                unlimited += counted
            elif item.limit <= at:
                late = True
            else:
                limited += counted
                until = min(item.limit, end)
        span_end = max(until, at)
        cost = Decimal("0.00")
        if item.hourly is not None:
            cost = amount(item.hourly * seconds(span_end - at) / HOUR)
            _spread(daily, item.hourly, at, span_end)
        line = ForecastLine(
            key=item.key,
            label=item.label,
            group=item.group,
            hourly=item.hourly,
            start=at,
            end=span_end,
            cost=cost,
            overdue=late,
            limit=item.limit,
            node=item.node,
        )
        lines.append(line)
        if late and not item.node:
            overdue.append(line)
    planned = list(planned)
    for plan in planned:
        plan_start = max(plan.start, at)
        plan_end = min(plan.start + timedelta(hours=float(plan.hours)), end)
        span_end = max(plan_end, plan_start)
        hourly = None if plan.hourly is None else plan.hourly * plan.count
        cost = Decimal("0.00")
        if hourly is not None:
            cost = amount(hourly * seconds(span_end - plan_start) / HOUR)
            _spread(daily, hourly, plan_start, span_end)
        lines.append(
            ForecastLine(
                key=f"planned:{plan.label}",
                label=f"{plan.label}: {plan.count} x {plan.instance_type} {plan.lifecycle}",
                group=PLANNED,
                hourly=hourly,
                start=plan_start,
                end=span_end,
                cost=cost,
            )
        )
    assumptions = _assumptions(
        at=at,
        end=end,
        lines=lines,
        limited=limited,
        unlimited=unlimited,
        overdue=overdue,
        planned=planned,
    )
    return Forecast(
        at=at,
        month_start=start,
        month_end=end,
        month_to_date=month_to_date,
        lines=tuple(lines),
        assumptions=tuple(assumptions),
        daily=dict(daily),
    )


def _plural(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _assumptions(
    *,
    at: datetime,
    end: datetime,
    lines: list[ForecastLine],
    limited: int,
    unlimited: int,
    overdue: list[ForecastLine],
    planned: list[PlannedLaunch],
) -> list[str]:
    last_day = (end - timedelta(days=1)).date()
    said = [f"Month to date: the estimate as of {at:%Y-%m-%d %H:%M} UTC."]
    if at >= end:
        return [*said, "The month is over: the forecast is the month's estimate."]
    if any(line.group in (BASE, STORAGE, ADDRESSES) for line in lines):
        said.append(
            "Base nodes, storage and public IPv4 addresses keep running at today's prices "
            f"until the month ends ({last_day:%Y-%m-%d} 24:00 UTC)."
        )
    if limited or unlimited or overdue:
        text = (
            f"{_plural(limited + unlimited + len(overdue), 'running burst node')}: each runs "
            "until its time limit (the clusterweb:expires-at tag, else its pool's max hours "
            "from launch)"
        )
        if unlimited:
            text += f"; {unlimited} without a limit run{'s' if unlimited == 1 else ''} to the "
            text += "month's end"
        said.append(text + ".")
    for line in overdue:
        said.append(
            f"{line.label} is past its time limit ({line.limit:%Y-%m-%d %H:%M} UTC) and still "
            "running: counted to the month's end, with its public IPv4 address and volumes."
        )
    if any(line.group in (BASE, BURST) for line in lines):
        said.append("Spot nodes keep today's spot price; storage keeps its last measured size.")
    if planned:
        said.append(
            f"{_plural(len(planned), 'planned launch', 'planned launches')} included: "
            + "; ".join(
                f"{p.label} ({p.count} x {p.instance_type} {p.lifecycle}, {p.hours} h from "
                f"{p.start:%Y-%m-%d %H:%M} UTC)"
                for p in planned
            )
            + "."
        )
    else:
        said.append("No planned launches are included.")
    unknown = sum(line.unknown for line in lines)
    if unknown:
        said.append(f"{_plural(unknown, 'item')} without a price left out.")
    return said
