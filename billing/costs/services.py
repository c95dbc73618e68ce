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
from django.db.models import Max, Q

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
    PriceOverride,
    ResourceKind,
)
from billing.prices.pricebook import PriceBook
from clusterweb import clock
from clusterweb.errors import IntegrationError
from clusterweb.integrations import aws
from provisioning.inventory import sync_claim, sync_release
from provisioning.models import (
    PART_EC2,
    PART_STORAGE,
    SPOT_INTERRUPTION_CODES,
    ElasticAddress,
    Node,
    NodeEvent,
    NodeEventKind,
    Pool,
    PoolKind,
    StoredData,
    SyncPart,
    Volume,
    VolumeSpec,
)

logger = logging.getLogger(__name__)

COST_CLAIM, CE_CLAIM = "cost-rows", "cost-explorer"
# Last month is recomputed during the first two days of a month: a node that ended just before
# midnight may be seen ending by a sync after it. Longer, if last month was never computed to its
# end (Clusterweb was down over the turn of the month).
PREVIOUS_MONTH_SETTLE = timedelta(days=2)
# A day closes (its rows are never rewritten by the periodic refresh) once the inventory sync
# has succeeded this long after the day ended: a termination or a stop seen late, a volume
# modification, S3's daily size point (published with a lag of up to a day) and spot price
# points that arrive late all land while the day is still open.
DAY_SETTLE = timedelta(days=2)
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
    """Recompute the open days' cost rows of this month (and of last month while it has open
    days) from the inventory's history and the price catalog, up to ``now``, writing only what
    differs, then close the days the inventory has settled (docs/costs.md, "History"). A
    closed day is never rewritten, except from the start of a new admin price override that
    starts before it (that month is refreshed too)."""
    now = clock.now() if now is None else now
    token = sync_claim(COST_CLAIM, now=now)
    if not token:
        return CostRefreshResult(claimed=False, at=now)
    try:
        current = costing.month_start(now)
        previous = costing.month_before(current)
        months = [current]
        unfinished = CostMonth.objects.filter(month=previous.date()).filter(
            Q(through__lt=current) | Q(closed_through__lt=current)
        )
        if now - current < PREVIOUS_MONTH_SETTLE or unfinished.exists():
            months.insert(0, previous)
        reopened = _reopened(now)
        months = sorted(set(months) | set(reopened))
        closing = _closing_point(now)
        result = CostRefreshResult(claimed=True, at=now)
        for start in months:
            result.months.append(_month_refresh(start, now, closing, reopened.get(start)))
        return result
    finally:
        sync_release(COST_CLAIM, token)


def _closing_point(now: datetime) -> datetime | None:
    """The midnight before which every day is settled and may close: DAY_SETTLE before the
    last time both the EC2 and the storage parts of the inventory sync succeeded (a day is
    closed only once the sync has seen well past its end; while a part is failing, nothing
    more closes). None: the inventory has never synced both."""
    seen = list(
        SyncPart.objects.filter(name__in=(PART_EC2, PART_STORAGE)).values_list(
            "last_ok_at", flat=True
        )
    )
    if len(seen) < 2 or any(moment is None for moment in seen):
        return None
    settled = min([*seen, now]) - DAY_SETTLE
    return costing.midnight(settled.date())


def _reopened(now: datetime) -> dict[datetime, tuple[datetime, int]]:
    """Months with closed days that a new admin price override reaches back into: the month's
    start -> (the midnight to reopen from, the newest override's id). An override is new to a
    month when its id is above the month's ``override_mark``."""
    months = list(CostMonth.objects.filter(closed_through__isnull=False))
    if not months:
        return {}
    overrides = list(
        PriceOverride.objects.filter(
            region=settings.AWS_REGION, pk__gt=min(m.override_mark for m in months)
        ).values_list("pk", "effective_from")
    )
    found = {}
    for month in months:
        new = [(pk, at) for pk, at in overrides if pk > month.override_mark]
        starts = [at for _, at in new if at < month.closed_through]
        if starts:
            start = costing.midnight(month.month)
            found[start] = (max(start, costing.midnight(min(starts).date())), max(new)[0])
    return found


def _month_refresh(
    start: datetime,
    now: datetime,
    closing: datetime | None = None,
    reopen: tuple[datetime, int] | None = None,
) -> MonthRefresh:
    """Recompute the month's open days (from its ``closed_through``, or from ``reopen``'s
    midnight) up to ``now``, then close what ``closing`` allows."""
    end = min(costing.month_after(start), now)
    month_row = CostMonth.objects.filter(month=start.date()).first()
    closed = month_row.closed_through if month_row is not None else None
    mark = month_row.override_mark if month_row is not None else 0
    if reopen is not None:
        closed, mark = min(closed or reopen[0], reopen[0]), max(mark, reopen[1])
    open_from = max(start, closed) if closed is not None else start
    # Read before the rows are computed: an override added meanwhile is newer than the mark.
    newest_override = PriceOverride.objects.aggregate(newest=Max("pk"))["newest"] or 0
    wanted = dict(_rows_compute(open_from, end, now)) if end > open_from else {}
    outcome = MonthRefresh(month=start.date(), through=max(end, start))
    if closing is not None:
        # Only days computed by now close; a closed day stays closed.
        new_closed = max(min(closing, costing.month_after(start), end), open_from)
        if new_closed > start:
            closed = new_closed
            mark = max(mark, newest_override)
    with transaction.atomic():
        stored = {
            (row.resource_kind, row.resource_id, row.start): row
            for row in CostRow.objects.filter(month=start.date(), start__gte=open_from)
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
        if open_from > start:
            # The closed days' rows count too (they are part of the month's figures).
            closed_rows = CostRow.objects.filter(month=start.date(), start__lt=open_from)
            outcome.rows += closed_rows.count()
            outcome.unknown_prices += closed_rows.filter(price__isnull=True).count()
        outcome.unknown_prices += sum(values["price"] is None for values in wanted.values())
        CostMonth.objects.update_or_create(
            month=start.date(),
            defaults={
                "through": outcome.through,
                "refreshed_at": now,
                "rows": outcome.rows,
                "unknown_prices": outcome.unknown_prices,
                "closed_through": closed,
                "override_mark": mark,
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


def _spans(start: datetime, end: datetime, history: list, current: Any = None) -> list[tuple]:
    """``[start, end)`` cut where a recorded value changes: ``(since, until, value)`` for each
    value of ``history`` (``VolumeSpec`` rows, or ``(at, value)`` pairs), in force from its
    time until the next one's. The first value also covers any time before it (what was known
    first); without history, ``current`` covers it all."""
    entries = sorted(
        ((h.since, h) if isinstance(h, VolumeSpec) else (h[0], h[1]) for h in history),
        key=lambda entry: entry[0],
    )
    if not entries:
        return [(start, end, current)] if end > start else []
    found = []
    for index, (since, value) in enumerate(entries):
        begin = start if index == 0 else max(since, start)
        until = entries[index + 1][0] if index + 1 < len(entries) else end
        until = min(until, end)
        if until > begin:
            found.append((begin, until, value))
    return found


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
    ).values_list("node_id", "at", "from_state", "to_state", "instance_type")
    for node_id, at, old, new, instance_type in events:
        transitions[node_id].append(Transition(at, old, new, instance_type))
    addresses = list(
        _overlapping(
            ElasticAddress.objects.select_related("node"), "first_seen_at", "released_at", *window
        )
    )
    elastic_ips = {a.public_ip for a in addresses}
    # A node keeps its public IPv4 rows after EC2 stops reporting the address (a terminated
    # instance has none): once charged, always charged for its runs.
    had_ipv4 = set(
        CostRow.objects.filter(
            resource_kind=ResourceKind.NODE_IPV4, resource_id__in=[n.instance_id for n in nodes]
        ).values_list("resource_id", flat=True)
    )
    # Every type a node ran as (a run is priced as the type it ran as, not as today's).
    types = {n.instance_type for n in nodes} | {
        step.instance_type for steps in transitions.values() for step in steps if step.instance_type
    }
    book = PriceBook.load(region, start, end, types)
    ipv4_marks = book.breakpoints(PriceKind.IPV4, IPV4_ITEM, start, end)
    by_instance = {}
    for node in nodes:
        by_instance[node.instance_id] = node
        typed = costing.node_typed_runs(
            launched_at=node.launched_at,
            terminated_at=node.terminated_at,
            state=node.state,
            transitions=transitions.get(node.pk, []),
            now=now,
            instance_type=node.instance_type,
        )
        if not typed:
            continue
        ran = [(run_start, run_end) for run_start, run_end, _ in typed]
        who = _Owner(node.pool, kind_of(node.pool), node.owner, node.request)
        spot = node.capacity_type == "spot"
        zone = node.zone or None
        price_kind = PriceKind.SPOT if spot else PriceKind.ON_DEMAND
        for instance_type in dict.fromkeys(t for _, _, t in typed):

            def quote_at(at: datetime, instance_type=instance_type, spot=spot, zone=zone):
                return book.instance(instance_type, spot=spot, zone=zone, at=at)

            yield from _rows(
                costing.instance_charges(
                    runs=[(a, b) for a, b, t in typed if t == instance_type],
                    window=window,
                    quote_at=quote_at,
                    breakpoints=book.breakpoints(price_kind, instance_type, start, end, zone=zone),
                    spot_interrupted_at=_interrupted_at(node),
                    spot=spot,
                ),
                kind=ResourceKind.NODE,
                resource_id=node.instance_id,
                label=node.name,
                service=CostService.COMPUTE,
                who=who,
            )
        # The address it has, or had before EC2 dropped it on a stop or a termination.
        address = node.public_ipv4 or node.last_public_ipv4
        has_address = address and address not in elastic_ips
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
        Volume.objects.select_related("node").prefetch_related("specs"),
        "created_at",
        "deleted_at",
        *window,
    )
    for volume in volumes:
        node = volume.node
        who = _Owner()
        owned = ""
        if node is not None:
            who = _Owner(node.pool, kind_of(node.pool), node.owner, node.request)
            owned = f" of {node.name}" + (" (left behind)" if volume.left_behind_at else "")
        # Each spec (size, type, performance) priced over its own time only.
        for since, until, spec in _spans(
            volume.created_at, volume.deleted_at or end, list(volume.specs.all()), volume
        ):
            service = f"ebs-{spec.volume_type}"
            label = f"{volume.volume_id} ({spec.size_gib} GiB {spec.volume_type}){owned}"
            yield from _rows(
                costing.storage_charges(
                    start=since,
                    end=until,
                    window=window,
                    gb=Decimal(spec.size_gib),
                    quote_at=lambda at, service=service: book.storage(service, at),
                    breakpoints=book.breakpoints(PriceKind.STORAGE, service, start, end),
                ),
                kind=ResourceKind.VOLUME,
                resource_id=volume.volume_id,
                label=label,
                service=CostService.EBS,
                who=who,
            )
            # Provisioned IOPS and throughput where charged: a line per rate, prorated the same.
            for piece, quote in book.volume_performance(
                spec.volume_type, spec.iops, spec.throughput
            ):
                yield from _rows(
                    costing.storage_charges(
                        start=since,
                        end=until,
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
        StoredData.objects.filter(size_bytes__isnull=False).prefetch_related("sizes"),
        "first_seen_at",
        "gone_at",
        *window,
    )
    for data in stored:
        kind = ResourceKind.EFS if data.service == "efs" else ResourceKind.S3
        points = [(p.at, p.size_bytes) for p in data.sizes.all()]
        if not points:  # measured before the size history was kept: its one known size
            points = [(data.measured_at or data.first_seen_at, data.size_bytes)]
        # Each day's point priced over its own time: a size measured today never reprices
        # yesterday. Before the first point, the first one known.
        for since, until, size in _spans(data.first_seen_at, data.gone_at or end, points):
            yield from _rows(
                costing.storage_charges(
                    start=since,
                    end=until,
                    window=window,
                    gb=costing.gb_of(size),
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
        # The instance it serves, else the one it served (an address left behind is still
        # counted to that instance's owner).
        attached = by_instance.get(address.instance_id) or address.node
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
            label=f"Elastic IP {address.public_ip}"
            + (f" (left behind by {address.node.name})" if address.left_behind_at else ""),
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
