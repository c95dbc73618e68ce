"""The quote of a launch: one service for the pages and the command line.

What a launch will cost at today's prices: the hourly price of one instance and where it comes
from (spot in the pool's zone, or on-demand, from ``billing.prices``), the **expected cost**
(hourly x count x hours) and the **maximum cost** at the on-demand ceiling (a spot price can rise
up to on-demand, and a fallback launches on-demand). The approval policy compares the maximum.
Beside it: the owner's cost so far this month and the month's forecast with this launch added.
An unknown price leaves the costs unknown (None): the policy then asks an admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from billing.costs import costing, forecasting
from billing.costs import selectors as costs
from billing.money import amount, amount_str, rate_str
from billing.prices import selectors as prices
from billing.prices.selectors import PriceQuote
from clusterweb import clock
from provisioning.models import Lifecycle, Pool

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Quote:
    """A launch's price now. ``hourly`` is one instance's price (None: unknown); the costs are
    for ``count`` instances over ``hours``, rounded to the cent."""

    at: datetime
    instance_type: str | None
    count: int
    hours: int
    capacity_type: str
    fallback: bool
    hourly: Decimal | None
    hourly_source: str
    hourly_kind: str  # the kind of price used: spot, or on-demand (also a spot figure's stand-in)
    zone: str
    notice: str | None
    on_demand_hourly: Decimal | None
    expected_cost: Decimal | None
    max_cost: Decimal | None
    owner: str
    owner_month_to_date: Decimal
    forecast: Decimal  # the month's forecast as it stands (approved launches included)
    forecast_with_launch: Decimal | None  # ... with this launch added (None: price unknown)

    @property
    def known(self) -> bool:
        return self.max_cost is not None

    def as_json(self) -> dict[str, Any]:
        def money(value: Decimal | None) -> str | None:
            return None if value is None else amount_str(value)

        return {
            "at": self.at.isoformat(),
            "instance_type": self.instance_type,
            "count": self.count,
            "hours": self.hours,
            "capacity_type": self.capacity_type,
            "allow_on_demand_fallback": self.fallback,
            "hourly": None if self.hourly is None else rate_str(self.hourly),
            "hourly_source": self.hourly_source,
            "hourly_kind": self.hourly_kind,
            "zone": self.zone or None,
            "notice": self.notice,
            "on_demand_hourly": (
                None if self.on_demand_hourly is None else rate_str(self.on_demand_hourly)
            ),
            "expected_cost": money(self.expected_cost),
            "max_cost": money(self.max_cost),
            "owner": self.owner,
            "owner_month_to_date": money(self.owner_month_to_date),
            "forecast": money(self.forecast),
            "forecast_with_launch": money(self.forecast_with_launch),
        }


def _spot_price(region: str, instance_type: str, pool: Pool, at: datetime) -> PriceQuote:
    """Spot in the pool's zone: the highest of its zones when it names several (a launch may
    land in any of them), or of the region's when it names none."""
    if not pool.zones:
        return prices.spot_quote(region, instance_type, at)
    found = [prices.spot_quote(region, instance_type, at, zone=zone) for zone in pool.zones]
    known = [q for q in found if q.known]
    if not known:
        return found[0]
    return max(known, key=lambda q: (q.kind == "spot", q.price, q.zone))


def hourly_price(
    *, pool: Pool, instance_type: str | None, capacity_type: str, at: datetime
) -> tuple[PriceQuote | None, PriceQuote | None]:
    """(the price the launch is quoted at, the on-demand price: the ceiling) for one instance;
    (None, None) for a launch without an instance (a small Jupyter server)."""
    if not instance_type:
        return None, None
    region = settings.AWS_REGION
    on_demand = prices.on_demand_quote(region, instance_type, at)
    if capacity_type == Lifecycle.ON_DEMAND:
        return on_demand, on_demand
    return _spot_price(region, instance_type, pool, at), on_demand


def launch_quote(
    *,
    pool: Pool,
    instance_type: str | None,
    count: int,
    hours: int,
    capacity_type: str,
    fallback: bool = False,
    owner: str = "",
    now: datetime | None = None,
) -> Quote:
    """What ``count`` x ``instance_type`` in ``pool`` for ``hours`` costs now (see the module)."""
    now = clock.now() if now is None else now
    used, on_demand = hourly_price(
        pool=pool, instance_type=instance_type, capacity_type=capacity_type, at=now
    )
    if used is None:  # no instance of its own: nothing to add
        hourly, ceiling = ZERO, ZERO
        source, kind, zone, notice = (
            "no instance of its own (runs on the admin nodes)",
            "",
            "",
            None,
        )
    else:
        hourly, ceiling = used.price, on_demand.price if on_demand is not None else None
        source, kind, zone, notice = used.described(), used.kind, used.zone, used.notice
    expected = None if hourly is None else amount(hourly * count * hours)
    # Spot can rise to on-demand (and a fallback launches on-demand): the ceiling is on-demand.
    maximum = None if ceiling is None else amount(ceiling * count * hours)
    if maximum is not None and expected is not None:
        maximum = max(maximum, expected)  # an override above on-demand is still the price
    start = costing.month_start(now)
    estimate = costs.month_estimate(start)
    month = costs.month_forecast(estimate, now=now)  # approved launches included
    with_launch = None
    if hourly is not None and instance_type:
        # This launch's part of the month, from the forecast's own moment (pure: no queries,
        # so the page's live quote stays cheap).
        plan = forecasting.PlannedLaunch(
            label="this launch",
            instance_type=instance_type,
            lifecycle=capacity_type,
            count=count,
            start=now,
            hours=Decimal(hours),
            hourly=hourly,
        )
        alone = forecasting.forecast_month(at=month.at, month_to_date=ZERO, planned=[plan])
        with_launch = month.total + (alone.total if month.at < month.month_end else ZERO)
    elif hourly is not None:
        with_launch = month.total
    forecast = month.total
    return Quote(
        at=now,
        instance_type=instance_type,
        count=count,
        hours=hours,
        capacity_type=capacity_type,
        fallback=fallback,
        hourly=hourly,
        hourly_source=source,
        hourly_kind=kind,
        zone=zone,
        notice=notice,
        on_demand_hourly=ceiling,
        expected_cost=expected,
        max_cost=maximum,
        owner=owner,
        owner_month_to_date=estimate.owned_by(owner) if owner else ZERO,
        forecast=forecast,
        forecast_with_launch=with_launch,
    )


def requote(
    launch: Any, *, count: int | None = None, hours: int | None = None, now: datetime | None = None
) -> Quote:
    """``launch`` quoted again now, at ``count`` x ``hours`` (by default what it asked for): what
    an approver sees beside the quote taken at request time."""
    return launch_quote(
        pool=launch.pool,
        instance_type=launch.instance_type,
        count=launch.count if count is None else count,
        hours=launch.hours if hours is None else hours,
        capacity_type=launch.capacity_type,
        fallback=launch.allow_on_demand_fallback,
        owner=launch.owner.username,
        now=now,
    )


@dataclass(frozen=True)
class QuoteChange:
    """How a quote moved since the request was made (the Approvals page shows it)."""

    before_hourly: Decimal | None
    after_hourly: Decimal | None
    before_max: Decimal | None
    after_max: Decimal | None

    @property
    def changed(self) -> bool:
        return (self.before_hourly, self.before_max) != (self.after_hourly, self.after_max)


def quote_change(launch: Any, quote: Quote) -> QuoteChange:
    """The request's frozen quote against ``quote`` (per instance-hour and the maximum)."""
    return QuoteChange(
        before_hourly=launch.hourly,
        after_hourly=quote.hourly,
        before_max=launch.max_cost,
        after_max=quote.max_cost,
    )
