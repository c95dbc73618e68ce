"""Reads of the inventory and the pools: what each user may see, each node's hourly price with its
source, and how fresh the sync is. Database only: no page request calls AWS or Kubernetes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum

from billing.prices import selectors as prices
from billing.prices.pricebook import PriceBook
from billing.prices.selectors import PriceQuote
from clusterweb import clock
from clusterweb.permissions import is_admin
from provisioning.models import (
    PART_LABELS,
    PART_SPOT,
    ElasticAddress,
    Lifecycle,
    Node,
    NodeState,
    Pool,
    PoolKind,
    StoredData,
    SyncPart,
    Volume,
)

# A sync whose last success is older than this many intervals is stale: the page says so.
STALE_AFTER_INTERVALS = 3
GIB = 1024**3


# --- Who sees what -------------------------------------------------------------------------------
def base_pool_slugs() -> list[str]:
    return list(Pool.objects.filter(kind=PoolKind.BASE).values_list("slug", flat=True))


def nodes_visible_to(user: Any) -> QuerySet[Node]:
    """Admins: every node. Collaborators: their own (owner tag = their uid) and the always-on
    (base pool) ones. Anyone else: none."""
    if is_admin(user):
        return Node.objects.all()
    if getattr(user, "role", None) == "collaborator":
        return Node.objects.filter(Q(owner=user.username) | Q(pool__in=base_pool_slugs()))
    return Node.objects.none()


# --- Sync freshness ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartStatus:
    name: str
    label: str
    last_ok_at: datetime | None
    last_error: str
    failing: bool
    age_seconds: int | None
    stale: bool


@dataclass(frozen=True)
class SyncStatus:
    """How fresh the inventory is: the EC2 part's last success is the "as of" of the nodes."""

    parts: list[PartStatus]
    as_of: datetime | None
    age_seconds: int | None
    stale_after_seconds: int

    @property
    def never(self) -> bool:
        return self.as_of is None

    @property
    def warnings(self) -> list[PartStatus]:
        return [p for p in self.parts if p.failing or p.stale]

    @property
    def problem(self) -> bool:
        return self.never or bool(self.warnings)


def sync_status(now: datetime | None = None) -> SyncStatus:
    now = clock.now() if now is None else now
    interval = settings.INVENTORY_SYNC_SECONDS
    stale_after = interval * STALE_AFTER_INTERVALS
    rows = {row.name: row for row in SyncPart.objects.filter(name__in=list(PART_LABELS))}
    parts = []
    for name, label in PART_LABELS.items():
        if name == PART_SPOT:
            continue  # shown by billing's spot freshness rule on every price instead
        row = rows.get(name)
        ok_at = row.last_ok_at if row else None
        age = max(0, int((now - ok_at).total_seconds())) if ok_at else None
        parts.append(
            PartStatus(
                name=name,
                label=label,
                last_ok_at=ok_at,
                last_error=row.last_error if row else "",
                failing=bool(row and row.failing),
                age_seconds=age,
                stale=age is None or age > stale_after,
            )
        )
    ec2 = next(p for p in parts if p.name == "ec2")
    return SyncStatus(
        parts=parts,
        as_of=ec2.last_ok_at,
        age_seconds=ec2.age_seconds,
        stale_after_seconds=stale_after,
    )


# --- Prices --------------------------------------------------------------------------------------
class _Quotes:
    """Storage and address price lookups of one page, each asked once (a handful of services);
    nodes are priced from a ``PriceBook`` (``node_rows``)."""

    def __init__(self, region: str, at: datetime) -> None:
        self.region, self.at = region, at
        self._cache: dict[tuple, PriceQuote] = {}

    def ipv4(self) -> PriceQuote:
        if ("ipv4",) not in self._cache:
            self._cache[("ipv4",)] = prices.ipv4_quote(self.region, self.at)
        return self._cache[("ipv4",)]

    def storage(self, service: str) -> PriceQuote:
        key = ("storage", service)
        if key not in self._cache:
            self._cache[key] = prices.storage_quote(self.region, service, self.at)
        return self._cache[key]


@dataclass
class NodeRow:
    """One node with its hourly price: ``price`` for the instance (None when it is not billed:
    stopped or terminated), ``ipv4`` for its public address, ``hourly`` their known sum."""

    node: Node
    uptime: timedelta
    price: PriceQuote | None
    ipv4: PriceQuote | None

    @property
    def hourly(self) -> Decimal | None:
        parts = [q.price for q in (self.price, self.ipv4) if q is not None]
        if not parts or any(p is None for p in parts):
            return None
        return sum(parts, Decimal(0))

    @property
    def price_unknown(self) -> bool:
        return any(q is not None and not q.known for q in (self.price, self.ipv4))

    @property
    def spot_fallback(self) -> bool:
        return self.price is not None and self.price.fallback

    def as_json(self) -> dict[str, Any]:
        node = self.node
        return {
            "id": node.instance_id,
            "state": node.state,
            "name": node.name,
            "node_name": node.node_name or None,
            "pool": node.pool or None,
            "instance_type": node.instance_type,
            "capacity_type": node.capacity_type,
            "zone": node.zone,
            "ready": node.ready,
            "owner": node.owner or None,
            "request": node.request or None,
            "launched_at": node.launched_at.isoformat(),
            "terminated_at": node.terminated_at.isoformat() if node.terminated_at else None,
            "uptime_seconds": int(self.uptime.total_seconds()),
            "state_reason": node.state_reason or None,
            "spot_interrupted_at": (
                node.spot_interrupted_at.isoformat() if node.spot_interrupted_at else None
            ),
            "public_ipv4": node.public_ipv4,
            "cpu": None if node.cpu is None else format(node.cpu.normalize(), "f"),
            "memory_bytes": node.memory_bytes,
            "gpus": node.gpus,
            "hourly": _rate(self.hourly),
            "price": _quote_json(self.price),
            "ipv4_price": _quote_json(self.ipv4),
        }


def _rate(value: Decimal | None) -> str | None:
    from billing.money import rate_str

    return None if value is None else rate_str(value)


def _quote_json(quote: PriceQuote | None) -> dict[str, Any] | None:
    if quote is None:
        return None
    return {
        "hourly": _rate(quote.price),
        "kind": quote.kind,
        "source": quote.source,
        "effective_from": quote.effective_from.isoformat() if quote.effective_from else None,
        "notice": quote.notice,
    }


SORTS = {
    # sort parameter: (label, key on a NodeRow)
    "name": ("Name", lambda r: (r.node.name.lower(),)),
    "pool": ("Pool", lambda r: (r.node.pool, r.node.name.lower())),
    "type": ("Type", lambda r: (r.node.instance_type, r.node.name.lower())),
    "capacity": ("Spot/on-demand", lambda r: (r.node.capacity_type, r.node.name.lower())),
    "zone": ("Zone", lambda r: (r.node.zone, r.node.name.lower())),
    "state": ("State", lambda r: (r.node.state, r.node.name.lower())),
    "ready": ("Ready", lambda r: (_readiness_rank(r.node.ready), r.node.name.lower())),
    "uptime": ("Uptime", lambda r: (r.uptime, r.node.name.lower())),
    "price": ("$/h", lambda r: (r.hourly is None, r.hourly or 0, r.node.name.lower())),
    "owner": ("Owner", lambda r: (r.node.owner, r.node.name.lower())),
}
DEFAULT_SORT = "name"


def _readiness_rank(ready: bool | None) -> int:
    return 0 if ready else 1 if ready is False else 2


def sort_parse(value: str | None) -> tuple[str, bool]:
    """A whitelisted sort key and direction from ``?sort=`` (``-price`` sorts descending);
    anything else falls back to the default."""
    value = (value or "").strip()
    descending = value.startswith("-")
    key = value.lstrip("-")
    if key not in SORTS:
        return DEFAULT_SORT, False
    return key, descending


@dataclass
class Inventory:
    """What the nodes table shows."""

    rows: list[NodeRow]
    sort: str
    descending: bool
    terminated_shown: bool
    terminated_this_month: int
    status: SyncStatus
    now: datetime
    month_start: datetime
    region: str
    unknown_prices: int = 0
    total_hourly: Decimal = Decimal(0)
    billed_nodes: int = 0
    sorts: dict[str, str] = field(default_factory=dict)
    # Billed nodes whose instance price is unknown: listed in red, never counted as $0.
    unpriced: list[NodeRow] = field(default_factory=list)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def node_rows(nodes: Iterable[Node], *, now: datetime, region: str) -> list[NodeRow]:
    """Each node with its prices at ``now``, from one price book: the same few queries whatever
    the number of nodes, instance types, zones and lifecycles (the lookups' rules)."""
    nodes = list(nodes)
    book = PriceBook.load(region, now, now, {n.instance_type for n in nodes if n.billed})
    rows = []
    for node in nodes:
        billed = node.billed
        price = None
        if billed:
            spot = node.capacity_type == Lifecycle.SPOT
            price = book.instance(node.instance_type, spot=spot, zone=node.zone or None, at=now)
        rows.append(
            NodeRow(
                node=node,
                uptime=node.uptime(now),
                price=price,
                ipv4=book.ipv4(now) if billed and node.public_ipv4 else None,
            )
        )
    return rows


def node_inventory(
    *,
    nodes: QuerySet[Node],
    sort: str | None = None,
    terminated: bool = False,
    now: datetime | None = None,
) -> Inventory:
    """The nodes table for ``nodes`` (already restricted to what the viewer may see): live nodes,
    plus those terminated this month when ``terminated``; sorted by a whitelisted key."""
    now = clock.now() if now is None else now
    start = month_start(now)
    region = settings.AWS_REGION
    ended = nodes.filter(state=NodeState.TERMINATED)
    recent = Q(terminated_at__gte=start) | Q(terminated_at__isnull=True)
    shown = nodes.exclude(state=NodeState.TERMINATED)
    if terminated:
        shown = nodes.filter(~Q(state=NodeState.TERMINATED) | recent)
    rows = node_rows(shown, now=now, region=region)
    key, descending = sort_parse(sort)
    rows.sort(key=SORTS[key][1], reverse=descending)
    billed = [r for r in rows if r.price is not None]
    inventory = Inventory(
        rows=rows,
        sort=key,
        descending=descending,
        terminated_shown=terminated,
        terminated_this_month=ended.filter(recent).count(),
        status=sync_status(now),
        now=now,
        month_start=start,
        region=region,
        billed_nodes=len(billed),
        unknown_prices=sum(r.hourly is None for r in billed),
        total_hourly=sum((r.hourly for r in billed if r.hourly is not None), Decimal(0)),
        sorts={name: label for name, (label, _) in SORTS.items()},
        unpriced=sorted(
            (r for r in billed if r.price.price is None), key=lambda r: r.node.launched_at
        ),
    )
    return inventory


# --- Storage and addresses (admins) ------------------------------------------------------------
@dataclass
class StorageLine:
    label: str
    size_gib: Decimal | None
    measured_at: datetime | None
    source: str
    quote: PriceQuote | None
    measure: str = "GiB"  # what ``size_gib`` counts: GiB, or a volume's IOPS or MiB/s

    @property
    def monthly(self) -> Decimal | None:
        if self.size_gib is None or self.quote is None or self.quote.price is None:
            return None
        return self.size_gib * self.quote.price


@dataclass
class StorageSummary:
    lines: list[StorageLine]
    elastic_ips: list[ElasticAddress]
    ipv4_quote: PriceQuote
    public_ipv4_count: int


def storage_summary(now: datetime | None = None) -> StorageSummary:
    """EBS by volume type, EFS and S3 sizes, and the public IPv4 addresses, each with the
    catalog's price (GB-month or address-hour) and its source."""
    now = clock.now() if now is None else now
    quotes = _Quotes(settings.AWS_REGION, now)
    lines = []
    volumes = (
        Volume.objects.filter(deleted_at__isnull=True)
        .values("volume_type")
        .annotate(gib=Sum("size_gib"))
        .order_by("volume_type")
    )
    # Charged IOPS and throughput by type and rate, summed over the volumes (a handful of rows:
    # one per distinct type and figures).
    performance: dict[str, dict[str, list]] = defaultdict(dict)
    provisioned = (
        Volume.objects.filter(deleted_at__isnull=True)
        .values_list("volume_type", "iops", "throughput")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for volume_type, iops, throughput, count in provisioned:
        for piece, quote in prices.volume_performance(
            settings.AWS_REGION, volume_type, iops, throughput
        ):
            entry = performance[volume_type].setdefault(piece.key, [piece, quote, 0])
            entry[2] += piece.units * count
    for group in volumes:
        # Each volume type at its own price (io1/io2 from the EBS performance table); a type
        # without one is unpriced, never priced as another type.
        service = f"ebs-{group['volume_type']}"
        lines.append(
            StorageLine(
                label=f"EBS {group['volume_type']}",
                size_gib=Decimal(group["gib"] or 0),
                measured_at=None,
                source="EC2 describe_volumes (provisioned size)",
                quote=quotes.storage(service),
            )
        )
        for key in sorted(performance[group["volume_type"]]):
            piece, quote, units = performance[group["volume_type"]][key]
            lines.append(
                StorageLine(
                    label=f"EBS {group['volume_type']} {piece.label}",
                    size_gib=Decimal(units),
                    measured_at=None,
                    source="EC2 describe_volumes (provisioned Iops, Throughput)",
                    quote=quote,
                    measure=piece.rate.measure,
                )
            )
    for row in StoredData.objects.filter(gone_at__isnull=True):
        size = (
            None
            if row.size_bytes is None
            else (Decimal(row.size_bytes) / GIB).quantize(Decimal("0.001"))
        )
        lines.append(
            StorageLine(
                label=f"{row.get_service_display()} {row.name or row.resource}",
                size_gib=size,
                measured_at=row.measured_at,
                source="CloudWatch "
                + ("AWS/EFS StorageBytes" if row.service == "efs" else "AWS/S3 BucketSizeBytes"),
                quote=quotes.storage(row.service),
            )
        )
    addresses = list(ElasticAddress.objects.select_related("node").filter(released_at__isnull=True))
    node_ips = set(
        Node.objects.exclude(public_ipv4__isnull=True)
        .exclude(state=NodeState.TERMINATED)
        .values_list("public_ipv4", flat=True)
    )
    return StorageSummary(
        lines=lines,
        elastic_ips=addresses,
        ipv4_quote=quotes.ipv4(),
        public_ipv4_count=len(node_ips | {a.public_ip for a in addresses}),
    )


# --- Left behind ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeftBehind:
    """A volume or Elastic IP still billed after the instance it belonged to terminated."""

    kind: str  # "volume" or "elastic-ip"
    resource_id: str
    described: str  # "100 GiB gp3", "203.0.113.7"
    instance_id: str
    owner: str
    since: datetime  # when the sync first saw it left behind
    quote: PriceQuote
    units: Decimal  # GiB, or 1 address

    @property
    def hourly(self) -> Decimal | None:
        """USD an hour: an address-hour, or a GB-month over a 730-hour month."""
        if self.quote.price is None:
            return None
        if self.kind == "elastic-ip":
            return self.quote.price
        return self.units * self.quote.price / 730


def left_behind_visible_to(user: Any, now: datetime | None = None) -> list[LeftBehind]:
    """Volumes and Elastic IPs left behind by terminated instances and still reported by EC2
    (so still billed), oldest first: admins see all, collaborators those their own instances
    left. Each with the catalog's price of what it costs while it stays."""
    now = clock.now() if now is None else now
    owners = Q()
    if not is_admin(user):
        if getattr(user, "role", None) != "collaborator":
            return []
        owners = Q(node__owner=user.username)
    quotes = _Quotes(settings.AWS_REGION, now)
    found = [
        LeftBehind(
            kind="volume",
            resource_id=v.volume_id,
            described=f"{v.size_gib} GiB {v.volume_type}",
            instance_id=v.node.instance_id,
            owner=v.node.owner,
            since=v.left_behind_at,
            quote=quotes.storage(f"ebs-{v.volume_type}"),
            units=Decimal(v.size_gib),
        )
        for v in Volume.objects.select_related("node").filter(
            owners, deleted_at__isnull=True, left_behind_at__isnull=False
        )
    ]
    found += [
        LeftBehind(
            kind="elastic-ip",
            resource_id=a.allocation_id,
            described=a.public_ip,
            instance_id=a.node.instance_id,
            owner=a.node.owner,
            since=a.left_behind_at,
            quote=quotes.ipv4(),
            units=Decimal(1),
        )
        for a in ElasticAddress.objects.select_related("node").filter(
            owners, released_at__isnull=True, left_behind_at__isnull=False
        )
    ]
    return sorted(found, key=lambda item: (item.since, item.resource_id))


# --- Pools ---------------------------------------------------------------------------------------
def pools_list() -> list[Pool]:
    """Every pool, base first, each with ``live_nodes``: its nodes not terminated."""
    counts: dict[str, int] = {}
    for slug in Node.objects.exclude(state=NodeState.TERMINATED).values_list("pool", flat=True):
        counts[slug] = counts.get(slug, 0) + 1
    pools = list(Pool.objects.order_by("kind", "slug"))
    for pool in pools:
        pool.live_nodes = counts.get(pool.slug, 0)
    return pools
