"""Writes of the cost features, each run by a periodic job (``billing.tasks``):

- ``cost_rows_refresh``: recompute this month's cost rows (and last month's, while it may still
  change) from the inventory and the price catalog, and write only the difference. Database
  only; safe to run twice; one run at a time.
- ``cost_explorer_refresh``: read the bill from Cost Explorer, at most every
  COST_EXPLORER_INTERVAL_HOURS. The only code that calls get_cost_and_usage: pages and commands
  read what it stored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from billing.costs import costing
from billing.costs.costing import Charge, Transition
from billing.models import (
    IPV4_ITEM,
    BilledCost,
    BilledDay,
    CostExplorerRead,
    CostMonth,
    CostRow,
    CostService,
    PriceKind,
    ResourceKind,
)
from billing.prices.pricebook import PriceBook
from clusterweb import clock
from clusterweb.errors import IntegrationError
from clusterweb.integrations import aws
from provisioning.inventory import sync_claim, sync_release
from provisioning.models import (
    SPOT_INTERRUPTION_CODES,
    ElasticAddress,
    Node,
    NodeEvent,
    NodeEventKind,
    Pool,
    PoolKind,
    StoredData,
    Volume,
)

logger = logging.getLogger(__name__)

COST_CLAIM, CE_CLAIM = "cost-rows", "cost-explorer"
# Last month is recomputed during the first two days of a month: a node that ended just before
# midnight may be seen ending by a sync after it. Longer, if last month was never computed to its
# end (Clusterweb was down over the turn of the month).
PREVIOUS_MONTH_SETTLE = timedelta(days=2)
# Each get_cost_and_usage request costs this (AWS's price; every page of results is a request).
CE_REQUEST_USD = "0.01"
# After a failed read, try again after this long (or the interval, if shorter): soon enough for
# a throttle to have passed, rare enough never to matter on the bill.
CE_RETRY_AFTER_FAILURE = timedelta(hours=1)
# A past month is read until AWS no longer marks its days as estimated, but not after this many
# days into the next month (AWS finalises a month within a few days).
CE_PAST_MONTH_DAYS = 15
# A month of daily results by service fits one page; this only bounds a misbehaving answer.
CE_MAX_PAGES = 20
# The latest read first; of reads started at the same moment a failed one first, then the newest
# row: "was the last read a failure?" has one answer whatever order the database returns ties in.
CE_LATEST_FIRST = ("-started_at", "ok", "-pk")

ROW_FIELDS = (
    "month",
    "day",
    "end",
    "label",
    "service",
    "pool",
    "pool_kind",
    "owner",
    "request",
    "usage",
    "unit",
    "price",
    "price_kind",
    "price_source",
    "price_notice",
    "cost",
    "rule",
)


# --- Cost rows -----------------------------------------------------------------------------------
@dataclass
class MonthRefresh:
    month: date
    through: datetime
    rows: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unknown_prices: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "month": f"{self.month:%Y-%m}",
            "through": self.through.isoformat(),
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "unknown_prices": self.unknown_prices,
        }


@dataclass
class CostRefreshResult:
    """What one refresh did. ``claimed`` False: another refresh was running; nothing done."""

    claimed: bool
    at: datetime
    months: list[MonthRefresh] = field(default_factory=list)

    @property
    def moved(self) -> bool:
        """Some cost row was written: the month's figure may have changed."""
        return any(m.created or m.updated or m.deleted for m in self.months)

    def as_json(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "at": self.at.isoformat(),
            "months": [m.as_json() for m in self.months],
        }


def cost_rows_refresh(*, now: datetime | None = None) -> CostRefreshResult:
    """Recompute the cost rows of this month (and of last month while it may still change) from
    the inventory's lifetimes and the price catalog, up to ``now``, writing only what differs.
    A price or lifetime that changed is therefore reflected at the next run."""
    now = clock.now() if now is None else now
    token = sync_claim(COST_CLAIM, now=now)
    if not token:
        return CostRefreshResult(claimed=False, at=now)
    try:
        current = costing.month_start(now)
        previous = costing.month_before(current)
        months = [current]
        unfinished = CostMonth.objects.filter(month=previous.date(), through__lt=current)
        if now - current < PREVIOUS_MONTH_SETTLE or unfinished.exists():
            months.insert(0, previous)
        result = CostRefreshResult(claimed=True, at=now)
        for start in months:
            result.months.append(_month_refresh(start, now))
        return result
    finally:
        sync_release(COST_CLAIM, token)


def _month_refresh(start: datetime, now: datetime) -> MonthRefresh:
    end = min(costing.month_after(start), now)
    wanted = dict(_rows_compute(start, end, now)) if end > start else {}
    outcome = MonthRefresh(month=start.date(), through=max(end, start))
    with transaction.atomic():
        stored = {
            (row.resource_kind, row.resource_id, row.start): row
            for row in CostRow.objects.filter(month=start.date())
        }
        created, changed = [], []
        for key, values in wanted.items():
            row = stored.pop(key, None)
            if row is None:
                kind, resource_id, piece_start = key
                created.append(
                    CostRow(
                        resource_kind=kind,
                        resource_id=resource_id,
                        start=piece_start,
                        computed_at=now,
                        **values,
                    )
                )
            elif any(getattr(row, name) != values[name] for name in ROW_FIELDS):
                for name in ROW_FIELDS:
                    setattr(row, name, values[name])
                row.computed_at = now
                changed.append(row)
        CostRow.objects.bulk_create(created, batch_size=500)
        CostRow.objects.bulk_update(changed, [*ROW_FIELDS, "computed_at"], batch_size=500)
        if stored:
            CostRow.objects.filter(pk__in=[row.pk for row in stored.values()]).delete()
        outcome.rows = len(wanted)
        outcome.created, outcome.updated, outcome.deleted = len(created), len(changed), len(stored)
        outcome.unknown_prices = sum(values["price"] is None for values in wanted.values())
        CostMonth.objects.update_or_create(
            month=start.date(),
            defaults={
                "through": outcome.through,
                "refreshed_at": now,
                "rows": outcome.rows,
                "unknown_prices": outcome.unknown_prices,
            },
        )
    return outcome


@dataclass(frozen=True)
class _Owner:
    """Who a resource's cost is attributed to."""

    pool: str = ""
    pool_kind: str = PoolKind.BASE
    owner: str = ""
    request: str = ""


def _rows(
    charges: Iterable[Charge],
    *,
    kind: str,
    resource_id: str,
    label: str,
    service: str,
    who: _Owner,
) -> Iterator[tuple[tuple[str, str, datetime], dict[str, Any]]]:
    for charge in charges:
        yield (
            (kind, resource_id, charge.start),
            {
                "month": charge.start.date().replace(day=1),
                "day": charge.day,
                "end": charge.end,
                "label": label[:255],
                "service": service,
                "pool": who.pool[:40],
                "pool_kind": who.pool_kind,
                "owner": who.owner[:150],
                "request": who.request[:64],
                "usage": charge.usage,
                "unit": charge.unit,
                "price": charge.price,
                "price_kind": charge.price_kind,
                "price_source": charge.price_source[:400],
                "price_notice": charge.price_notice[:500],
                "cost": charge.cost,
                "rule": charge.rule[:200],
            },
        )


def _interrupted_at(node: Node) -> datetime | None:
    """When AWS reclaimed a spot node: as the sync recorded it, or from EC2's state reason."""
    if node.spot_interrupted_at is not None:
        return node.spot_interrupted_at
    if node.state_reason.startswith(SPOT_INTERRUPTION_CODES):
        return node.terminated_at
    return None


def _overlapping(queryset, begin: str, finish: str, start: datetime, end: datetime):
    """Rows whose [begin, finish) overlaps [start, end) (finish None: still there)."""
    return queryset.filter(**{f"{begin}__lt": end}).filter(
        Q(**{f"{finish}__isnull": True}) | Q(**{f"{finish}__gt": start})
    )


def _rows_compute(
    start: datetime, end: datetime, now: datetime
) -> Iterator[tuple[tuple[str, str, datetime], dict[str, Any]]]:
    """Every cost row of ``[start, end)``, keyed by (resource kind, resource id, piece start)."""
    window = (start, end)
    region = settings.AWS_REGION
    pools = {pool.slug: pool for pool in Pool.objects.all()}

    def kind_of(slug: str) -> str:
        # A node of no known pool is counted as burst: only pools marked base are always-on.
        pool = pools.get(slug)
        return pool.kind if pool is not None else PoolKind.BURST

    # Stopped nodes have no terminated_at: they stay in, and their transitions say when they ran.
    nodes = list(
        Node.objects.filter(Q(terminated_at__isnull=True) | Q(terminated_at__gt=start)).order_by(
            "pk"
        )
    )
    transitions: dict[int, list[Transition]] = defaultdict(list)
    events = NodeEvent.objects.filter(
        node__in=[n.pk for n in nodes], kind=NodeEventKind.STATE
    ).values_list("node_id", "at", "from_state", "to_state")
    for node_id, at, old, new in events:
        transitions[node_id].append(Transition(at, old, new))
    addresses = list(_overlapping(ElasticAddress.objects, "first_seen_at", "released_at", *window))
    elastic_ips = {a.public_ip for a in addresses}
    # A node keeps its public IPv4 rows after EC2 stops reporting the address (a terminated
    # instance has none): once charged, always charged for its runs.
    had_ipv4 = set(
        CostRow.objects.filter(
            resource_kind=ResourceKind.NODE_IPV4, resource_id__in=[n.instance_id for n in nodes]
        ).values_list("resource_id", flat=True)
    )
    book = PriceBook.load(region, start, end, {n.instance_type for n in nodes})
    ipv4_marks = book.breakpoints(PriceKind.IPV4, IPV4_ITEM, start, end)
    by_instance = {}
    for node in nodes:
        by_instance[node.instance_id] = node
        ran = costing.node_runs(
            launched_at=node.launched_at,
            terminated_at=node.terminated_at,
            state=node.state,
            transitions=transitions.get(node.pk, []),
            now=now,
        )
        if not ran:
            continue
        who = _Owner(node.pool, kind_of(node.pool), node.owner, node.request)
        spot = node.capacity_type == "spot"
        zone = node.zone or None

        def quote_at(at: datetime, node: Node = node, spot: bool = spot, zone=zone):
            return book.instance(node.instance_type, spot=spot, zone=zone, at=at)

        price_kind = PriceKind.SPOT if spot else PriceKind.ON_DEMAND
        yield from _rows(
            costing.instance_charges(
                runs=ran,
                window=window,
                quote_at=quote_at,
                breakpoints=book.breakpoints(price_kind, node.instance_type, start, end, zone=zone),
                spot_interrupted_at=_interrupted_at(node),
                spot=spot,
            ),
            kind=ResourceKind.NODE,
            resource_id=node.instance_id,
            label=node.name,
            service=CostService.COMPUTE,
            who=who,
        )
        has_address = node.public_ipv4 and node.public_ipv4 not in elastic_ips
        if has_address or node.instance_id in had_ipv4:
            for run_start, run_end in ran:
                yield from _rows(
                    costing.hourly_charges(
                        start=run_start,
                        end=run_end,
                        window=window,
                        quote_at=book.ipv4,
                        breakpoints=ipv4_marks,
                    ),
                    kind=ResourceKind.NODE_IPV4,
                    resource_id=node.instance_id,
                    label=f"public IPv4 of {node.name}",
                    service=CostService.IPV4,
                    who=who,
                )
    volumes = _overlapping(
        Volume.objects.select_related("node"), "created_at", "deleted_at", *window
    )
    for volume in volumes:
        service = f"ebs-{volume.volume_type}"
        node = volume.node
        who = _Owner()
        label = f"{volume.volume_id} ({volume.size_gib} GiB {volume.volume_type})"
        if node is not None:
            who = _Owner(node.pool, kind_of(node.pool), node.owner, node.request)
            label += f" of {node.name}"
        yield from _rows(
            costing.storage_charges(
                start=volume.created_at,
                end=volume.deleted_at or end,
                window=window,
                gb=Decimal(volume.size_gib),
                quote_at=lambda at, service=service: book.storage(service, at),
                breakpoints=book.breakpoints(PriceKind.STORAGE, service, start, end),
            ),
            kind=ResourceKind.VOLUME,
            resource_id=volume.volume_id,
            label=label,
            service=CostService.EBS,
            who=who,
        )
        # Provisioned IOPS and throughput where charged: a line per rate, prorated the same way.
        for piece, quote in book.volume_performance(
            volume.volume_type, volume.iops, volume.throughput
        ):
            yield from _rows(
                costing.storage_charges(
                    start=volume.created_at,
                    end=volume.deleted_at or end,
                    window=window,
                    gb=Decimal(piece.units),
                    quote_at=lambda at, quote=quote: quote,
                    unit=piece.rate.unit,
                ),
                kind=ResourceKind.VOLUME,
                resource_id=f"{volume.volume_id}:{piece.key}",
                label=f"{volume.volume_id} {piece.described}" + label[len(volume.volume_id) :],
                service=CostService.EBS,
                who=who,
            )
    stored = _overlapping(
        StoredData.objects.filter(size_bytes__isnull=False), "first_seen_at", "gone_at", *window
    )
    for data in stored:
        kind = ResourceKind.EFS if data.service == "efs" else ResourceKind.S3
        yield from _rows(
            costing.storage_charges(
                start=data.first_seen_at,
                end=data.gone_at or end,
                window=window,
                gb=costing.gb_of(data.size_bytes),
                quote_at=lambda at, service=data.service: book.storage(service, at),
                breakpoints=book.breakpoints(PriceKind.STORAGE, data.service, start, end),
            ),
            kind=kind,
            resource_id=data.resource,
            label=f"{data.get_service_display()} {data.name or data.resource}",
            service=CostService.EFS if data.service == "efs" else CostService.S3,
            who=_Owner(),
        )
    for address in addresses:
        attached = by_instance.get(address.instance_id)
        who = _Owner()
        if attached is not None:
            who = _Owner(attached.pool, kind_of(attached.pool), attached.owner, attached.request)
        yield from _rows(
            costing.hourly_charges(
                start=address.first_seen_at,
                end=address.released_at or end,
                window=window,
                quote_at=book.ipv4,
                breakpoints=ipv4_marks,
            ),
            kind=ResourceKind.ELASTIC_IP,
            resource_id=address.allocation_id,
            label=f"Elastic IP {address.public_ip}",
            service=CostService.IPV4,
            who=who,
        )


# --- The bill, from Cost Explorer ----------------------------------------------------------------
@dataclass
class CostExplorerOutcome:
    """What one run of the Cost Explorer job did: ``reads`` made (none when it was not due)."""

    at: datetime
    reason: str
    reads: list[CostExplorerRead] = field(default_factory=list)
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return all(read.ok for read in self.reads)

    @property
    def requests(self) -> int:
        return sum(read.requests for read in self.reads)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "reason": self.reason,
            "requests": self.requests,
            "reads": [
                {
                    "month": f"{read.month:%Y-%m}",
                    "period": [read.period_start.isoformat(), read.period_end.isoformat()],
                    "ok": read.ok,
                    "requests": read.requests,
                    "days": read.days,
                    "final": read.final,
                    "error": read.error or None,
                }
                for read in self.reads
            ],
        }


def cost_explorer_period(today: date, *, previous_final: bool) -> tuple[date, date] | None:
    """The one period ``[start, end)`` to read on ``today``, in ONE get_cost_and_usage request:
    this month's full days, preceded by last month while it is not final and we are less than
    CE_PAST_MONTH_DAYS into this one. On the 1st this month has no full day (Cost Explorer
    refuses Start == End, and today is not over): last month alone, or nothing."""
    current = today.replace(day=1)
    start = current
    if not previous_final and (today - current).days < CE_PAST_MONTH_DAYS:
        start = (current - timedelta(days=1)).replace(day=1)
    if today <= start:
        return None
    return start, today


def cost_explorer_due(now: datetime) -> tuple[bool, str]:
    """Whether a read is due: never read, or the last read is COST_EXPLORER_INTERVAL_HOURS old
    (CE_RETRY_AFTER_FAILURE after a failure, if that is shorter)."""
    last = CostExplorerRead.objects.order_by(*CE_LATEST_FIRST).first()
    if last is None:
        return True, "never read"
    interval = timedelta(hours=settings.COST_EXPLORER_INTERVAL_HOURS)
    wait = interval if last.ok else min(interval, CE_RETRY_AFTER_FAILURE)
    if now - last.started_at >= wait:
        return True, f"last read {'failed' if not last.ok else 'done'} at {last.started_at:%H:%M}"
    return False, f"next read after {last.started_at + wait:%Y-%m-%d %H:%M} UTC"


def cost_explorer_refresh(
    *, now: datetime | None = None, force: bool = False
) -> CostExplorerOutcome:
    """Read the bill from Cost Explorer when a read is due (or ``force``): this month's full
    days, and last month until it is final, in one request (one read; more only if AWS pages the
    answer). The days read replace those stored before. A failure is recorded on its read (the
    estimate is never touched) and tried again later."""
    now = clock.now() if now is None else now
    if not settings.COST_EXPLORER_ENABLED:
        return CostExplorerOutcome(at=now, reason="disabled (COST_EXPLORER_ENABLED is off)")
    token = sync_claim(CE_CLAIM, now=now)
    if not token:
        return CostExplorerOutcome(at=now, reason="another read is in progress")
    try:
        due, reason = cost_explorer_due(now)
        if not (due or force):
            return CostExplorerOutcome(at=now, reason=f"not due: {reason}")
        outcome = CostExplorerOutcome(at=now, reason="forced" if force and not due else reason)
        today = now.date()
        previous = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        final = CostExplorerRead.objects.filter(month=previous, final=True).exists()
        period = cost_explorer_period(today, previous_final=final)
        if period is not None:
            read, permanent = _period_read(*period, now=now, today=today)
            outcome.reads.append(read)
            outcome.permanent |= permanent
        return outcome
    finally:
        sync_release(CE_CLAIM, token)


def _period_read(
    start: date, end: date, *, now: datetime, today: date
) -> tuple[CostExplorerRead, bool]:
    """One read of ``[start, end)``; its ``month`` is the first month it covers, and ``final``
    says whether that month is final (a past month, every day present and none estimated)."""
    month = start.replace(day=1)
    read = CostExplorerRead.objects.create(
        month=month, period_start=start, period_end=end, started_at=now
    )
    days: list[aws.BilledDay] = []
    token: str | None = None
    try:
        for _ in range(CE_MAX_PAGES):
            page = aws.cost_and_usage_page(start, end, page_token=token)
            read.requests += page.requests
            days += page.days
            token = page.next_token
            if not token:
                break
    except IntegrationError as exc:
        read.requests += getattr(exc, "requests", 1)
        read.error = f"{exc.code or type(exc).__name__}: {exc}"[:500]
        read.finished_at = now
        read.save(update_fields=["requests", "error", "finished_at"])
        logger.warning("Cost Explorer read of %s failed: %s", f"{month:%Y-%m}", read.error)
        return read, exc.permanent
    wanted = {d: day for day in days if start <= (d := day.day) < end}
    with transaction.atomic():
        for day, found in sorted(wanted.items()):
            billed, _ = BilledDay.objects.update_or_create(
                day=day,
                defaults={
                    "month": day.replace(day=1),
                    "estimated": found.estimated,
                    "read": read,
                    "fetched_at": now,
                },
            )
            BilledCost.objects.filter(billed_day=billed).delete()
            BilledCost.objects.bulk_create(
                BilledCost(
                    billed_day=billed, service=name[:200], amount=value.quantize(costing.PLACES)
                )
                for name, value in sorted(found.amounts.items())
            )
        read.ok = True
        read.days = len(wanted)
        read.finished_at = now
        month_end = (month + timedelta(days=32)).replace(day=1)
        first_month = [found for day, found in wanted.items() if day < month_end]
        expected = (min(end, month_end) - start).days
        read.final = (
            month < today.replace(day=1)
            and start == month
            and len(first_month) == expected
            and not any(day.estimated for day in first_month)
        )
        read.save(update_fields=["requests", "ok", "days", "finished_at", "final"])
    return read, False
