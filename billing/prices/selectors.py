"""What does X cost per hour (or GB-month, or address-hour) at time T, and where does the figure
come from. Reads only; every answer is a ``PriceQuote`` that names its source and effective date.

The rules, in order:
- An admin override in force at T wins (on-demand, fixed spot, storage, IPv4).
- Otherwise the catalog row with the latest effective date at or before T. For a time before the
  catalog's first row, that first row, with a notice saying so.
- Spot: the newest point at or before T for each zone (a point is in force until the next one),
  used only if the region's last successful spot sync is at most SPOT_PRICE_MAX_AGE_HOURS older
  than T and the point is within 5%-100% of the on-demand price at T. Without a zone, the highest
  in-band price among the zones (the owner prefers an estimate that errs high). Whenever no spot
  figure can be trusted, the on-demand price is returned with the notice "spot price unknown,
  on-demand shown" and the reason.
- Spot for a type without any on-demand price: the recent point is used as it is (the band cannot
  be checked) with the notice "spot price used unchecked" -- never $0 for a price AWS gave us.
- No price at all: ``price`` is None and the notice says "price unknown". Never a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Max, Q

from billing.models import (
    STORAGE_SERVICES,
    UNITS,
    CatalogPrice,
    Confidence,
    PriceGap,
    PriceKind,
    PriceLookup,
    PriceOverride,
    SpotPricePoint,
    SpotPriceSync,
)
from billing.money import rate_str
from billing.prices import ebs
from clusterweb import clock

# A spot price outside this band of the on-demand price is a bad data point, not a bargain.
SPOT_BAND_MIN = Decimal("0.05")
SPOT_BAND_MAX = Decimal("1")
SPOT_UNKNOWN = "spot price unknown, on-demand shown"
SPOT_UNCHECKED = "spot price used unchecked"


@dataclass(frozen=True)
class PriceQuote:
    """A price and where it comes from. ``kind`` is the kind of price actually used (a spot
    question answered with on-demand has kind "on-demand" and ``fallback`` set)."""

    price: Decimal | None
    source: str
    effective_from: datetime | None
    notice: str | None = None
    kind: str = PriceKind.ON_DEMAND
    unit: str = "hour"
    overridden: bool = False
    fallback: bool = False
    zone: str = ""

    @property
    def known(self) -> bool:
        return self.price is not None

    @property
    def price_text(self) -> str:
        return "unknown" if self.price is None else rate_str(self.price)

    def described(self) -> str:
        """The source in one line, with its date and any notice: what a page or the command line
        prints next to the figure."""
        text = self.source
        if self.effective_from is not None:
            text += f" (from {self.effective_from:%Y-%m-%d %H:%M} UTC)"
        if self.notice:
            text += f"; {self.notice}"
        return text


def _at(at: datetime | None) -> datetime:
    return clock.now() if at is None else at


def _in_force(at: datetime) -> Q:
    return Q(effective_from__lte=at) & (Q(ended_at__isnull=True) | Q(ended_at__gt=at))


def _override_quote(override: PriceOverride) -> PriceQuote:
    source = (
        f"override by {override.created_by_username or 'unknown'} "
        f"set {override.effective_from:%Y-%m-%d %H:%M} UTC"
    )
    if override.note:
        source += f": {override.note}"
    return PriceQuote(
        price=override.price,
        source=source,
        effective_from=override.effective_from,
        kind=override.kind,
        unit=UNITS[PriceKind(override.kind)],
        overridden=True,
    )


def _unknown(kind: str, region: str, item: str) -> PriceQuote:
    return PriceQuote(
        price=None,
        source="no price in the catalog",
        effective_from=None,
        notice=f"price unknown: no {kind} price for {item} in {region}",
        kind=kind,
        unit=UNITS[PriceKind(kind)],
    )


def _ebs_gb_month(region: str, item: str) -> PriceQuote | None:
    """The GB-month of an EBS type the storage table lacks (io1, io2) from the EBS performance
    table, or None: never another type's price."""
    rate = ebs.gb_month_rate(region, item.removeprefix("ebs-")) if item.startswith("ebs-") else None
    return None if rate is None else ebs_rate_quote(rate)


def ebs_rate_quote(rate: ebs.Rate) -> PriceQuote:
    """A rate of the EBS performance table as a quote (its unit: IOPS-month, MiB/s-month...)."""
    return PriceQuote(
        price=rate.price,
        source=rate.source,
        effective_from=rate.effective_from,
        notice=rate.notice,
        kind=PriceKind.STORAGE,
        unit=rate.unit,
    )


def volume_performance(
    region: str, volume_type: str, iops: int | None, throughput: int | None
) -> list[tuple[ebs.Piece, PriceQuote]]:
    """A volume's charged IOPS and throughput pieces, each with its quote (none at gp3's
    baseline, none for a type without performance rates)."""
    return [
        (piece, ebs_rate_quote(piece.rate))
        for piece in ebs.performance_pieces(region, volume_type, iops, throughput)
    ]


def _catalog_resolve(
    kind: str,
    region: str,
    item: str,
    at: datetime,
    overrides: Iterable[PriceOverride],
    rows: Iterable[CatalogPrice],
) -> PriceQuote:
    """The quote for one key from its overrides and catalog rows (any order)."""
    in_force = [
        o for o in overrides if o.effective_from <= at and (o.ended_at is None or o.ended_at > at)
    ]
    if in_force:
        return _override_quote(max(in_force, key=lambda o: (o.effective_from, o.pk)))
    rows = list(rows)
    if not rows:
        fallback = _ebs_gb_month(region, item) if kind == PriceKind.STORAGE else None
        return fallback or _unknown(kind, region, item)
    current = [r for r in rows if r.effective_from <= at]
    notice = None
    if current:
        row = max(current, key=lambda r: r.effective_from)
    else:
        row = min(rows, key=lambda r: r.effective_from)
        notice = (
            f"the catalog's first figure (from {row.effective_from:%Y-%m-%d}) shown for an "
            "earlier time"
        )
    if row.confidence == Confidence.DERIVED:
        notice = _join(notice, "derived figure, not read from AWS's list individually")
    elif row.confidence == Confidence.UNCONFIRMED:
        notice = _join(notice, "unconfirmed figure, not checked against AWS's current list")
    return PriceQuote(
        price=row.price,
        source=f"catalog: {row.source}",
        effective_from=row.effective_from,
        notice=notice,
        kind=kind,
        unit=UNITS[PriceKind(kind)],
    )


def _join(first: str | None, second: str) -> str:
    return second if not first else f"{first}; {second}"


def catalog_quote(kind: str, region: str, item: str, at: datetime | None = None) -> PriceQuote:
    """The list price of one on-demand instance type, storage service or public IPv4 address."""
    at = _at(at)
    overrides = PriceOverride.objects.filter(kind=kind, region=region, item=item).filter(
        _in_force(at)
    )
    rows = CatalogPrice.objects.filter(kind=kind, region=region, item=item)
    return _catalog_resolve(kind, region, item, at, overrides, rows)


def on_demand_quote(region: str, instance_type: str, at: datetime | None = None) -> PriceQuote:
    return catalog_quote(PriceKind.ON_DEMAND, region, instance_type, at)


def storage_quote(region: str, service: str, at: datetime | None = None) -> PriceQuote:
    return catalog_quote(PriceKind.STORAGE, region, service, at)


def ipv4_quote(region: str, at: datetime | None = None) -> PriceQuote:
    return catalog_quote(PriceKind.IPV4, region, "public-ipv4", at)


# --- Spot ----------------------------------------------------------------------------------------
def spot_sync_last(region: str) -> SpotPriceSync | None:
    """The region's latest successful spot price sync (at any time: a sync after T also covers T,
    since it records the price history)."""
    return SpotPriceSync.objects.filter(region=region).order_by("-synced_at").first()


def spot_sync_fresh(region: str, at: datetime | None = None) -> bool:
    """True when a spot sync of ``region`` happened no more than SPOT_PRICE_MAX_AGE_HOURS before
    ``at`` (or after it)."""
    oldest = _at(at) - timedelta(hours=settings.SPOT_PRICE_MAX_AGE_HOURS)
    return SpotPriceSync.objects.filter(region=region, synced_at__gte=oldest).exists()


def spot_points_latest(
    region: str, at: datetime | None = None, instance_types: Iterable[str] | None = None
) -> dict[tuple[str, str], SpotPricePoint]:
    """The point in force at ``at`` for each (instance type, zone) of ``region``."""
    at = _at(at)
    points = SpotPricePoint.objects.filter(region=region, at__lte=at)
    if instance_types is not None:
        points = points.filter(instance_type__in=list(instance_types))
    latest = {
        (row["instance_type"], row["zone"]): row["latest"]
        for row in points.values("instance_type", "zone").annotate(latest=Max("at"))
    }
    if not latest:
        return {}
    found = {}
    for point in points.filter(at__in=set(latest.values())):
        key = (point.instance_type, point.zone)
        if latest.get(key) == point.at:
            found[key] = point
    return found


def _spot_resolve(
    region: str,
    instance_type: str,
    at: datetime,
    zone: str | None,
    *,
    override: PriceOverride | None,
    on_demand: PriceQuote,
    points: dict[str, SpotPricePoint],
    fresh: bool,
    last_sync: SpotPriceSync | None,
) -> PriceQuote:
    if override is not None:
        return _override_quote(override)
    candidates = [points[zone]] if zone and zone in points else []
    if zone is None:
        candidates = list(points.values())
    where = f"{instance_type} in {zone or region}"
    if not on_demand.known:
        # Without an on-demand price the band cannot be checked, but a recent spot figure is
        # still AWS's own price: it is used, with a notice, rather than leaving the node at $0.
        if fresh and candidates:
            chosen = max(candidates, key=lambda p: (p.price, p.zone))
            source = f"spot price {chosen.zone}: {chosen.source}"
            if len(candidates) > 1:
                source += f" (highest of {len(candidates)} zones)"
            return PriceQuote(
                price=chosen.price,
                source=source,
                effective_from=chosen.at,
                notice=(
                    f"{SPOT_UNCHECKED}: no on-demand price for {instance_type} in {region} to "
                    "check it against"
                ),
                kind=PriceKind.SPOT,
                unit="hour",
                zone=chosen.zone,
            )
        return replace(
            on_demand,
            notice=(
                f"price unknown: no on-demand price for {instance_type} in {region}, and no "
                f"recent spot price for {where} either"
            ),
        )

    def unknown(reason: str) -> PriceQuote:
        return replace(
            on_demand, notice=_join(on_demand.notice, f"{SPOT_UNKNOWN} ({reason})"), fallback=True
        )

    if not fresh:
        hours = settings.SPOT_PRICE_MAX_AGE_HOURS
        if last_sync is None:
            return unknown(f"no spot price sync for {region} yet")
        return unknown(
            f"last spot price sync for {region} at {last_sync.synced_at:%Y-%m-%d %H:%M} UTC, "
            f"more than {hours} h before"
        )
    if not candidates:
        return unknown(f"no spot price recorded for {where}")
    low = on_demand.price * SPOT_BAND_MIN
    high = on_demand.price * SPOT_BAND_MAX
    in_band = [p for p in candidates if low <= p.price <= high]
    if not in_band:
        worst = candidates[0]
        return unknown(
            f"recorded spot price {rate_str(worst.price)} for {where} is outside 5%-100% of "
            f"on-demand {rate_str(on_demand.price)}"
        )
    chosen = max(in_band, key=lambda p: (p.price, p.zone))
    source = f"spot price {chosen.zone}: {chosen.source}"
    if len(candidates) > 1:
        source += f" (highest of {len(candidates)} zones)"
    notice = None
    if len(in_band) < len(candidates):
        dropped = sorted(p.zone for p in candidates if p not in in_band)
        notice = f"ignored spot prices outside 5%-100% of on-demand in {', '.join(dropped)}"
    return PriceQuote(
        price=chosen.price,
        source=source,
        effective_from=chosen.at,
        notice=notice,
        kind=PriceKind.SPOT,
        unit="hour",
        zone=chosen.zone,
    )


def spot_quote(
    region: str, instance_type: str, at: datetime | None = None, zone: str | None = None
) -> PriceQuote:
    """The spot price of ``instance_type`` at ``at`` in ``zone`` (or the highest of the region's
    zones), or the on-demand price with a notice when no spot figure can be trusted."""
    at = _at(at)
    override = (
        PriceOverride.objects.filter(kind=PriceKind.SPOT, region=region, item=instance_type)
        .filter(_in_force(at))
        .order_by("-effective_from", "-pk")
        .first()
    )
    on_demand = on_demand_quote(region, instance_type, at)
    points = {z: p for (_, z), p in spot_points_latest(region, at, [instance_type]).items()}
    return _spot_resolve(
        region,
        instance_type,
        at,
        zone,
        override=override,
        on_demand=on_demand,
        points=points,
        fresh=spot_sync_fresh(region, at),
        last_sync=spot_sync_last(region),
    )


# --- Whole catalog, for the Prices page and the command line --------------------------------------
def price_regions() -> list[str]:
    """Regions that have any catalog price or override: the regions an estimate may name."""
    catalog = set(CatalogPrice.objects.values_list("region", flat=True).distinct())
    overrides = set(PriceOverride.objects.values_list("region", flat=True).distinct())
    return sorted(catalog | overrides)


def instance_types(region: str) -> list[str]:
    """Instance types with an on-demand catalog price or override in ``region``."""
    catalog = CatalogPrice.objects.filter(kind=PriceKind.ON_DEMAND, region=region)
    overrides = PriceOverride.objects.filter(
        kind__in=[PriceKind.ON_DEMAND, PriceKind.SPOT], region=region, ended_at__isnull=True
    )
    names = set(catalog.values_list("item", flat=True)) | set(
        overrides.values_list("item", flat=True)
    )
    return sorted(names, key=instance_type_order)


_SIZES = ["nano", "micro", "small", "medium", "large", "xlarge"]


def instance_type_order(name: str) -> tuple:
    """Sort key: family, then size from nano up to metal (``m5.2xlarge`` before ``m5.12xlarge``)."""
    family, _, size = name.partition(".")
    if size in _SIZES:
        rank = _SIZES.index(size)
    elif size.endswith("xlarge") and size[:-6].isdigit():
        rank = len(_SIZES) + int(size[:-6])
    else:
        rank = 10_000
    return (family, rank, size)


@dataclass
class InstancePriceRow:
    instance_type: str
    on_demand: PriceQuote
    spot: PriceQuote


@dataclass
class PriceTable:
    region: str
    at: datetime
    instances: list[InstancePriceRow] = field(default_factory=list)
    storage: list[tuple[str, str, PriceQuote]] = field(default_factory=list)
    ipv4: PriceQuote | None = None
    last_sync: SpotPriceSync | None = None
    sync_fresh: bool = False


def price_table(region: str, at: datetime | None = None) -> PriceTable:
    """Every price of ``region`` at ``at``, with its source, in a handful of queries."""
    at = _at(at)
    rows_by_key: dict[tuple[str, str], list[CatalogPrice]] = defaultdict(list)
    for row in CatalogPrice.objects.filter(region=region):
        rows_by_key[(row.kind, row.item)].append(row)
    overrides_by_key: dict[tuple[str, str], list[PriceOverride]] = defaultdict(list)
    for override in PriceOverride.objects.filter(region=region).filter(_in_force(at)):
        overrides_by_key[(override.kind, override.item)].append(override)
    points_by_type: dict[str, dict[str, SpotPricePoint]] = defaultdict(dict)
    for (instance_type, zone), point in spot_points_latest(region, at).items():
        points_by_type[instance_type][zone] = point
    table = PriceTable(
        region=region,
        at=at,
        last_sync=spot_sync_last(region),
        sync_fresh=spot_sync_fresh(region, at),
    )
    types = {item for kind, item in rows_by_key if kind == PriceKind.ON_DEMAND} | {
        item for kind, item in overrides_by_key if kind in (PriceKind.ON_DEMAND, PriceKind.SPOT)
    }
    for instance_type in sorted(types, key=instance_type_order):
        key = (PriceKind.ON_DEMAND, instance_type)
        on_demand = _catalog_resolve(
            PriceKind.ON_DEMAND,
            region,
            instance_type,
            at,
            overrides_by_key.get(key, []),
            rows_by_key.get(key, []),
        )
        spot_overrides = overrides_by_key.get((PriceKind.SPOT, instance_type), [])
        spot = _spot_resolve(
            region,
            instance_type,
            at,
            None,
            override=max(spot_overrides, key=lambda o: (o.effective_from, o.pk))
            if spot_overrides
            else None,
            on_demand=on_demand,
            points=points_by_type.get(instance_type, {}),
            fresh=table.sync_fresh,
            last_sync=table.last_sync,
        )
        table.instances.append(InstancePriceRow(instance_type, on_demand, spot))
    services = {item for kind, item in rows_by_key if kind == PriceKind.STORAGE} | {
        item for kind, item in overrides_by_key if kind == PriceKind.STORAGE
    }
    for service in sorted(services):
        key = (PriceKind.STORAGE, service)
        quote = _catalog_resolve(
            PriceKind.STORAGE,
            region,
            service,
            at,
            overrides_by_key.get(key, []),
            rows_by_key.get(key, []),
        )
        table.storage.append((service, STORAGE_SERVICES.get(service, service), quote))
    key = (PriceKind.IPV4, "public-ipv4")
    table.ipv4 = _catalog_resolve(
        PriceKind.IPV4,
        region,
        "public-ipv4",
        at,
        overrides_by_key.get(key, []),
        rows_by_key.get(key, []),
    )
    return table


def price_overrides_in_force(at: datetime | None = None) -> list[PriceOverride]:
    at = _at(at)
    return list(PriceOverride.objects.filter(_in_force(at)).order_by("region", "kind", "item"))


def price_gaps_open(at: datetime | None = None) -> list[PriceGap]:
    """Prices somebody asked for that still have no catalog row or override."""
    at = _at(at)
    open_gaps = []
    for gap in PriceGap.objects.all()[:100]:
        kind = PriceKind.ON_DEMAND if gap.kind == PriceKind.SPOT else gap.kind
        if not catalog_quote(kind, gap.region, gap.item, at).known:
            open_gaps.append(gap)
    # What AWS's Price List answered the price lookup job for each instance type (one query).
    lookups = {
        (lookup.region, lookup.instance_type): lookup
        for lookup in PriceLookup.objects.filter(
            instance_type__in={g.item for g in open_gaps if g.kind != PriceKind.STORAGE}
        )
    }
    for gap in open_gaps:
        gap.lookup = lookups.get((gap.region, gap.item))
    return open_gaps
