"""Reads of the cost features: the month-to-date estimate (from the cost rows), the bill (as the
Cost Explorer job stored it) beside it over the same days, and the forecast to the month's end.
Database only, in a fixed number of queries whatever the number of nodes or days: sums run in
the database, per resource (the items whose rounded amounts add up to every total).

Nothing here calls AWS: the dashboard and ``manage.py cost`` read what the jobs stored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, F, Max, Min, Q, Sum

from billing.costs import costing, forecasting
from billing.costs.forecasting import Forecast, RunningItem
from billing.costs.services import CE_LATEST_FIRST, CE_REQUEST_USD
from billing.models import (
    BilledCost,
    BilledDay,
    CostExplorerRead,
    CostMonth,
    CostRow,
    CostService,
    ResourceKind,
)
from billing.money import amount
from billing.prices.pricebook import PriceBook
from clusterweb import clock
from provisioning.launches.models import RESERVING_STATES, LaunchRequest
from provisioning.models import (
    BILLED_STATES,
    ElasticAddress,
    Node,
    Pool,
    PoolKind,
    StoredData,
    Volume,
)

NONE = "(none)"  # the key for costs of no pool or no owner (shared storage, base nodes)
# Cost Explorer's service names and the estimate's services they hold. "EC2 - Other" carries EBS
# volumes but also snapshots, NAT gateways and some data transfer; public IPv4 addresses are
# billed under "Amazon Virtual Private Cloud" since February 2024. Every other service (data
# transfer, CloudWatch, Cost Explorer itself, tax...) is "billed only": the estimate does not
# model it.
CE_SERVICES = {
    "Amazon Elastic Compute Cloud - Compute": CostService.COMPUTE,
    "EC2 - Other": CostService.EBS,
    "Amazon Elastic File System": CostService.EFS,
    "Amazon Simple Storage Service": CostService.S3,
    "Amazon Virtual Private Cloud": CostService.IPV4,
}
# A difference between the bill and the estimate above this share is highlighted.
DIFFERENCE_HIGHLIGHT_PERCENT = Decimal(10)
ZERO = Decimal("0.00")


# --- The estimate --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResourceCost:
    """One resource's month-to-date cost, rounded to the cent: the item every total sums."""

    kind: str
    resource_id: str
    label: str
    service: str
    pool: str
    pool_kind: str
    owner: str
    request: str
    amount: Decimal
    unknown_prices: int
    unpriced_since: datetime | None = None  # the first piece without any price
    unpriced_span: timedelta = timedelta(0)  # how long it ran without a price


@dataclass(frozen=True)
class Unpriced:
    """A resource that ran this month without any price for some of its time: its cost over that
    time is not in any total. Never shown as $0: pages list it in red, ``cost --json`` under
    ``unpriced``."""

    resource: str
    kind: str
    label: str
    item: str  # the instance type of a node, else empty
    since: datetime
    span: timedelta
    running: bool  # a node still billed now

    @property
    def hours(self) -> Decimal:
        return (Decimal(int(self.span.total_seconds())) / 3600).quantize(Decimal("0.01"))

    def as_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "kind": self.kind,
            "since": self.since.isoformat(),
            "hours": str(self.hours),
        }


def _sums(items: Iterable[ResourceCost], key: Callable[[ResourceCost], str]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for item in items:
        totals[key(item) or NONE] += item.amount
    return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class MonthEstimate:
    month: date
    start: datetime
    end: datetime
    record: CostMonth | None
    items: list[ResourceCost]
    daily: dict[date, tuple[Decimal, Decimal]]  # (base, burst), unrounded, for the chart
    unpriced: list[Unpriced] = field(default_factory=list)

    @property
    def unpriced_running_nodes(self) -> list[Unpriced]:
        return [u for u in self.unpriced if u.kind == "node" and u.running]

    @property
    def unpriced_others(self) -> list[Unpriced]:
        return [u for u in self.unpriced if not (u.kind == "node" and u.running)]

    @property
    def as_of(self) -> datetime | None:
        return self.record.through if self.record else None

    @property
    def has_data(self) -> bool:
        return bool(self.items)

    @property
    def total(self) -> Decimal:
        return sum((i.amount for i in self.items), ZERO)

    @property
    def base(self) -> Decimal:
        return sum((i.amount for i in self.items if i.pool_kind == PoolKind.BASE), ZERO)

    @property
    def burst(self) -> Decimal:
        return sum((i.amount for i in self.items if i.pool_kind != PoolKind.BASE), ZERO)

    @property
    def unknown_prices(self) -> int:
        return sum(i.unknown_prices for i in self.items)

    def by_pool(self) -> dict[str, Decimal]:
        return _sums(self.items, lambda i: i.pool)

    def by_owner(self) -> dict[str, Decimal]:
        return _sums(self.items, lambda i: i.owner)

    def by_request(self) -> dict[str, Decimal]:
        return _sums((i for i in self.items if i.request), lambda i: i.request)

    def by_service(self) -> list[tuple[str, str, Decimal]]:
        sums = _sums(self.items, lambda i: i.service)
        return [(s, label, sums.get(s, ZERO)) for s, label in CostService.choices]

    def owned_by(self, uid: str) -> Decimal:
        return sum((i.amount for i in self.items if i.owner == uid), ZERO)

    def requests_of(self, uid: str) -> dict[str, Decimal]:
        return _sums((i for i in self.items if i.request and i.owner == uid), lambda i: i.request)


def month_estimate(start: datetime) -> MonthEstimate:
    """The month starting at ``start`` as its cost rows have it (three queries)."""
    month = start.date()
    rows = CostRow.objects.filter(month=month)
    per_resource = rows.values(
        "resource_kind", "resource_id", "service", "pool", "pool_kind", "owner", "request"
    ).annotate(
        cost=Sum("cost"),
        unknown=Count("id", filter=Q(price__isnull=True)),
        label=Max("label"),
        unpriced_since=Min("start", filter=Q(price__isnull=True)),
        unpriced_span=Sum(
            F("end") - F("start"), filter=Q(price__isnull=True), output_field=DurationField()
        ),
    )
    items = [
        ResourceCost(
            kind=r["resource_kind"],
            resource_id=r["resource_id"],
            label=r["label"] or r["resource_id"],
            service=r["service"],
            pool=r["pool"],
            pool_kind=r["pool_kind"],
            owner=r["owner"],
            request=r["request"],
            amount=amount(r["cost"] or Decimal(0)),
            unknown_prices=r["unknown"],
            unpriced_since=r["unpriced_since"],
            unpriced_span=r["unpriced_span"] or timedelta(0),
        )
        for r in per_resource.order_by()
    ]
    items.sort(key=lambda i: (-i.amount, i.kind, i.resource_id))
    unpriced = _unpriced(items)
    daily: dict[date, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in rows.values("day", "pool_kind").annotate(cost=Sum("cost")).order_by():
        daily[r["day"]][0 if r["pool_kind"] == PoolKind.BASE else 1] += r["cost"] or 0
    return MonthEstimate(
        month=month,
        start=start,
        end=costing.month_after(start),
        record=CostMonth.objects.filter(month=month).first(),
        items=items,
        daily={day: (v[0], v[1]) for day, v in daily.items()},
        unpriced=unpriced,
    )


def _unpriced(items: list[ResourceCost]) -> list[Unpriced]:
    """The items with pieces of no price, oldest first; for nodes also their instance type and
    whether they still run (one more query, only when a node has no price)."""
    missing = [i for i in items if i.unpriced_since is not None]
    node_ids = [i.resource_id for i in missing if i.kind == ResourceKind.NODE]
    nodes = (
        {n.instance_id: n for n in Node.objects.filter(instance_id__in=node_ids)}
        if node_ids
        else {}
    )
    found = []
    for item in missing:
        node = nodes.get(item.resource_id) if item.kind == ResourceKind.NODE else None
        found.append(
            Unpriced(
                resource=item.resource_id,
                kind=item.kind,
                label=item.label,
                item=node.instance_type if node else "",
                since=item.unpriced_since,
                span=item.unpriced_span,
                running=node is not None and node.state in BILLED_STATES,
            )
        )
    found.sort(key=lambda u: (u.since, u.kind, u.resource))
    return found


# --- The bill ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceComparison:
    service: str
    label: str
    billed: Decimal
    estimate: Decimal

    @property
    def difference(self) -> Decimal:
        """How far the estimate is from the bill: positive when it is above."""
        return self.estimate - self.billed

    @property
    def percent(self) -> Decimal | None:
        """The difference in percent of the bill (None: nothing billed)."""
        if not self.billed:
            return None
        return (self.difference / self.billed * 100).quantize(Decimal("0.1"))

    @property
    def highlight(self) -> bool:
        if self.percent is None:
            return self.estimate != 0
        return abs(self.percent) > DIFFERENCE_HIGHLIGHT_PERCENT


@dataclass
class BilledSummary:
    month: date
    enabled: bool
    interval_hours: int
    last_ok: CostExplorerRead | None
    last_attempt: CostExplorerRead | None
    days: list[date]
    by_ce_service: list[tuple[str, Decimal, str | None]]  # (AWS name, amount, our service)
    comparison: list[ServiceComparison]
    requests_this_month: int
    daily: dict[date, Decimal] = field(default_factory=dict)
    # The days the comparison covers: present in full. The others, with why they are left out.
    compared_days: list[date] = field(default_factory=list)
    not_compared: list[tuple[date, str]] = field(default_factory=list)
    # AWS no longer marks the month as estimated (until then its figures may still change).
    final: bool = False

    @property
    def as_of(self) -> datetime | None:
        return self.last_ok.finished_at if self.last_ok else None

    @property
    def has_data(self) -> bool:
        return bool(self.days)

    @property
    def total(self) -> Decimal | None:
        if not self.has_data:
            return None
        return sum((value for _, value, _ in self.by_ce_service), ZERO)

    @property
    def billed_only(self) -> list[tuple[str, Decimal]]:
        return [(name, value) for name, value, ours in self.by_ce_service if ours is None]

    @property
    def modelled(self) -> ServiceComparison:
        return ServiceComparison(
            "all",
            "Modelled services",
            sum((c.billed for c in self.comparison), ZERO),
            sum((c.estimate for c in self.comparison), ZERO),
        )

    @property
    def failing(self) -> bool:
        """The latest attempt failed (the bill shown is from an earlier read, if any)."""
        return self.last_attempt is not None and not self.last_attempt.ok

    @property
    def requests_cost(self) -> Decimal:
        return amount(Decimal(CE_REQUEST_USD) * self.requests_this_month)

    @property
    def first_day(self) -> date | None:
        return self.days[0] if self.days else None

    @property
    def last_day(self) -> date | None:
        return self.days[-1] if self.days else None

    @property
    def compared_spans(self) -> list[tuple[date, date]]:
        """The compared days as runs of consecutive days (first, last)."""
        spans: list[list[date]] = []
        for day in self.compared_days:
            if spans and (day - spans[-1][1]).days == 1:
                spans[-1][1] = day
            else:
                spans.append([day, day])
        return [(a, b) for a, b in spans]


NO_DATA_YET = "no data from AWS yet"
LATEST_PARTIAL = "AWS's latest day, may still be partial"


def complete_days(
    days: Iterable[date], with_data: set[date], *, latest_with_data: date | None, final: bool
) -> tuple[list[date], list[tuple[date, str]]]:
    """Which billed days are present in full, so that comparing them with the estimate means
    something: a day for which Cost Explorer returned no cost at all is not there yet (it is
    not $0 billed), and AWS's latest day with data is routinely partial (it fills days in
    order: a day followed by a day with data is complete). Every day of a final month is."""
    compared, left_out = [], []
    for day in sorted(days):
        if final or (day in with_data and latest_with_data is not None and day < latest_with_data):
            compared.append(day)
        else:
            left_out.append((day, NO_DATA_YET if day not in with_data else LATEST_PARTIAL))
    return compared, left_out


def month_billed(start: datetime) -> BilledSummary:
    """The bill of the month starting at ``start`` as the Cost Explorer job stored it, and the
    estimate over the days present in full (nine queries)."""
    month = start.date()
    end = costing.month_after(start)
    days = list(BilledDay.objects.filter(month=month).values_list("day", flat=True).order_by("day"))
    costs = BilledCost.objects.filter(billed_day__month=month)
    daily = {
        r["billed_day__day"]: r["total"] or Decimal(0)
        for r in costs.values("billed_day__day").annotate(total=Sum("amount")).order_by()
    }
    reads = CostExplorerRead.objects.filter(period_start__lt=end.date(), period_end__gt=month)
    final = CostExplorerRead.objects.filter(month=month, final=True).exists()
    compared, left_out = complete_days(
        days,
        set(daily),
        latest_with_data=BilledCost.objects.aggregate(m=Max("billed_day__day"))["m"],
        final=final,
    )
    by_ce = [
        (r["service"], amount(r["total"] or Decimal(0)), CE_SERVICES.get(r["service"]))
        for r in costs.values("service").annotate(total=Sum("amount")).order_by("service")
    ]
    compared_by_ce = [
        (r["service"], amount(r["total"] or Decimal(0)), CE_SERVICES.get(r["service"]))
        for r in costs.filter(billed_day__day__in=compared)
        .values("service")
        .annotate(total=Sum("amount"))
        .order_by("service")
    ]
    same_days = CostRow.objects.filter(month=month, day__in=compared)
    estimate_by_service = {
        r["service"]: amount(r["total"] or Decimal(0))
        for r in same_days.values("service").annotate(total=Sum("cost")).order_by()
    }
    comparison = []
    if compared:
        for service, label in CostService.choices:
            billed = sum((v for _, v, ours in compared_by_ce if ours == service), ZERO)
            comparison.append(
                ServiceComparison(service, label, billed, estimate_by_service.get(service, ZERO))
            )
    requests = CostExplorerRead.objects.filter(started_at__gte=start, started_at__lt=end)
    return BilledSummary(
        month=month,
        enabled=settings.COST_EXPLORER_ENABLED,
        interval_hours=settings.COST_EXPLORER_INTERVAL_HOURS,
        last_ok=reads.filter(ok=True).order_by("-finished_at", "-pk").first(),
        last_attempt=CostExplorerRead.objects.order_by(*CE_LATEST_FIRST).first(),
        days=days,
        by_ce_service=by_ce,
        comparison=comparison,
        requests_this_month=requests.aggregate(n=Sum("requests"))["n"] or 0,
        daily=daily,
        compared_days=compared,
        not_compared=left_out,
        final=final,
    )


# --- The forecast --------------------------------------------------------------------------------
def running_items(at: datetime) -> list[RunningItem]:
    """What costs money by the hour at ``at``, priced at ``at`` (a fixed number of queries):
    billed nodes and their public IPv4 addresses, volumes, EFS and S3 storage, Elastic IPs."""
    region = settings.AWS_REGION
    pools = {pool.slug: pool for pool in Pool.objects.all()}
    nodes = list(Node.objects.filter(state__in=BILLED_STATES).order_by("launched_at", "pk"))
    addresses = list(ElasticAddress.objects.filter(released_at__isnull=True))
    elastic_ips = {a.public_ip for a in addresses}
    book = PriceBook.load(region, at, at, {n.instance_type for n in nodes})
    items: list[RunningItem] = []
    limits: dict[int, tuple[datetime | None, str]] = {}
    names: dict[int, str] = {node.pk: node.name for node in nodes}
    ipv4 = book.ipv4(at).price
    for node in nodes:
        pool = pools.get(node.pool)
        base = pool is not None and pool.kind == PoolKind.BASE
        limit, source = (None, "")
        if not base:
            limit, source = forecasting.time_limit(
                expires_at=node.tags.get("clusterweb:expires-at"),
                launched_at=node.launched_at,
                max_hours=pool.max_hours if pool is not None else None,
            )
        limits[node.pk] = (limit, source)
        spot = node.capacity_type == "spot"
        quote = book.instance(node.instance_type, spot=spot, zone=node.zone or None, at=at)
        group = forecasting.BASE if base else forecasting.BURST
        items.append(
            RunningItem(
                key=f"node:{node.instance_id}",
                label=f"{node.name} ({node.instance_type} {node.capacity_type})",
                group=group,
                hourly=quote.price,
                limit=limit,
                limit_source=source,
                pool=node.pool,
                owner=node.owner,
            )
        )
        if node.public_ipv4 and node.public_ipv4 not in elastic_ips:
            items.append(
                RunningItem(
                    key=f"ipv4:{node.instance_id}",
                    label=f"public IPv4 of {node.name}",
                    group=forecasting.ADDRESSES if base else forecasting.BURST,
                    hourly=ipv4,
                    limit=limit,
                    limit_source=source,
                    pool=node.pool,
                    owner=node.owner,
                    node=node.name,
                )
            )
    for volume in Volume.objects.filter(deleted_at__isnull=True).order_by("volume_id"):
        # Each type at its own price (io1/io2 from the EBS performance table), never another's.
        price = book.storage(f"ebs-{volume.volume_type}", at).price
        # A volume of a burst node is deleted with it (root volumes are): it ends at its limit.
        limit = limits.get(volume.node_id, (None, ""))[0]
        burst = volume.node_id in limits and limit is not None
        label = f"{volume.volume_id} ({volume.size_gib} GiB {volume.volume_type})"
        items.append(
            RunningItem(
                key=f"volume:{volume.volume_id}",
                label=label,
                group=forecasting.BURST if burst else forecasting.STORAGE,
                hourly=None
                if price is None
                else forecasting.storage_hourly(Decimal(volume.size_gib), price, at),
                limit=limit if burst else None,
                node=names[volume.node_id] if burst else "",
            )
        )
        # Its provisioned IOPS and throughput where charged, prorated like the GB-months.
        for piece, quote in book.volume_performance(
            volume.volume_type, volume.iops, volume.throughput
        ):
            items.append(
                RunningItem(
                    key=f"volume:{volume.volume_id}:{piece.key}",
                    label=f"{volume.volume_id} {piece.described}",
                    group=forecasting.BURST if burst else forecasting.STORAGE,
                    hourly=forecasting.storage_hourly(Decimal(piece.units), quote.price, at),
                    limit=limit if burst else None,
                    node=names[volume.node_id] if burst else "",
                )
            )
    for data in StoredData.objects.filter(gone_at__isnull=True, size_bytes__isnull=False):
        price = book.storage(data.service, at).price
        items.append(
            RunningItem(
                key=f"{data.service}:{data.resource}",
                label=f"{data.get_service_display()} {data.name or data.resource}",
                group=forecasting.STORAGE,
                hourly=None
                if price is None
                else forecasting.storage_hourly(costing.gb_of(data.size_bytes), price, at),
            )
        )
    for address in addresses:
        items.append(
            RunningItem(
                key=f"eip:{address.allocation_id}",
                label=f"Elastic IP {address.public_ip}",
                group=forecasting.ADDRESSES,
                hourly=ipv4,
            )
        )
    return items


def planned_launches(at: datetime) -> list[forecasting.PlannedLaunch]:
    """Approved launch requests that run nothing yet, as the forecast's planned launches: each
    starts at ``at`` for its granted hours, at the hourly price it was quoted (approved) at. A
    request with a billed node already is counted by its nodes, not here."""
    started = set(
        Node.objects.filter(state__in=BILLED_STATES)
        .exclude(request="")
        .values_list("request", flat=True)
    )
    planned = []
    for launch in LaunchRequest.objects.filter(state__in=RESERVING_STATES).order_by("pk"):
        if str(launch.pk) in started or launch.instance_type is None:
            continue
        planned.append(
            forecasting.PlannedLaunch(
                label=f"launch {launch.pk}",
                instance_type=launch.instance_type,
                lifecycle=launch.capacity_type,
                count=launch.granted_count,
                start=at,
                hours=Decimal(launch.granted_hours),
                hourly=launch.approved_hourly
                if launch.approved_hourly is not None
                else launch.hourly,
            )
        )
    return planned


def month_forecast(
    estimate: MonthEstimate,
    *,
    now: datetime,
    planned: Iterable[forecasting.PlannedLaunch] | None = None,
) -> Forecast:
    """The forecast of ``estimate``'s month: from the estimate's "as of" (or now, when there is
    none yet) to the month's end. A past month's forecast is its estimate. ``planned``: the
    launches to add; by default the approved launch requests that run nothing yet."""
    if now >= estimate.end:
        return _over(estimate)
    at = estimate.as_of or now
    at = max(min(at, now), estimate.start)
    if planned is None:
        planned = planned_launches(at)
    return forecasting.forecast_month(
        at=at, month_to_date=estimate.total, running=running_items(at), planned=planned
    )


def _over(estimate: MonthEstimate) -> Forecast:
    return Forecast(
        at=estimate.end,
        month_start=estimate.start,
        month_end=estimate.end,
        month_to_date=estimate.total,
        lines=(),
        assumptions=("The month is over: the forecast is the month's estimate.",),
    )


# --- Everything about one month ------------------------------------------------------------------
@dataclass
class CostOverview:
    month: date
    now: datetime
    estimate: MonthEstimate
    billed: BilledSummary
    forecast: Forecast

    @property
    def current(self) -> bool:
        return self.estimate.start <= self.now < self.estimate.end

    def as_json(self) -> dict[str, Any]:
        """``manage.py cost --json``, exactly as CONVENTIONS.md has it."""
        from billing.money import amount_str

        billed = self.billed
        return {
            "month": f"{self.month:%Y-%m}",
            "currency": "USD",
            "estimate": {
                "total": amount_str(self.estimate.total),
                "base": amount_str(self.estimate.base),
                "burst": amount_str(self.estimate.burst),
                "as_of": self.estimate.as_of.isoformat() if self.estimate.as_of else None,
            },
            "billed": {
                "total": None if billed.total is None else amount_str(billed.total),
                "as_of": billed.as_of.isoformat() if billed.as_of else None,
                "ce_requests_this_month": billed.requests_this_month,
            },
            "forecast": {"total": amount_str(self.forecast.total)},
            "by_pool": {k: amount_str(v) for k, v in self.estimate.by_pool().items()},
            "by_owner": {k: amount_str(v) for k, v in self.estimate.by_owner().items()},
            "unpriced": [u.as_json() for u in self.estimate.unpriced],
        }


def cost_overview(*, month: date | None = None, now: datetime | None = None) -> CostOverview:
    """The estimate, the bill and the forecast of ``month`` (this month by default)."""
    now = clock.now() if now is None else now
    start = costing.month_start(now) if month is None else costing.midnight(month.replace(day=1))
    estimate = month_estimate(start)
    return CostOverview(
        month=start.date(),
        now=now,
        estimate=estimate,
        billed=month_billed(start),
        forecast=month_forecast(estimate, now=now),
    )


# --- The dashboard -------------------------------------------------------------------------------
def dashboard_for(user: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """What the dashboard shows ``user``: totals for everyone, per-owner detail for admins only
    (a collaborator sees their own figure and launch requests), the chart, and the nodes table
    restricted as on the Nodes page."""
    from django.urls import reverse

    from billing.costs.charts import daily_chart
    from clusterweb.permissions import is_admin
    from provisioning.selectors import node_inventory, nodes_visible_to

    now = clock.now() if now is None else now
    overview = cost_overview(now=now)
    estimate, forecast = overview.estimate, overview.forecast
    admin = is_admin(user)
    days = (estimate.end - estimate.start).days
    chart = daily_chart(
        first_day=estimate.month,
        days=days,
        estimate=estimate.daily,
        forecast=forecast.daily,
        billed=overview.billed.daily,
        today=now.date() if overview.current else None,
        budget_daily=None,  # budgets are a later feature: their daily share goes here
    )
    by_service = estimate.by_service()
    return {
        "overview": overview,
        "estimate": estimate,
        "billed": overview.billed,
        "forecast": forecast,
        "chart": chart,
        "by_service": by_service,
        "by_pool": estimate.by_pool(),
        "by_owner": estimate.by_owner() if admin else None,
        "by_request": estimate.by_request() if admin else estimate.requests_of(user.username),
        "mine": None if admin else estimate.owned_by(user.username),
        "is_admin": admin,
        "none_key": NONE,
        "ce_request_usd": CE_REQUEST_USD,
        "inventory": node_inventory(nodes=nodes_visible_to(user), now=now),
        "poll_url": f"{reverse('provisioning:nodes')}?sort=name",
    }
