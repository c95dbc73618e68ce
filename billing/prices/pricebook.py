"""Every price of one region over a stretch of time, loaded in a fixed number of queries,
answering "what did X cost per unit at T" with the same rules as ``billing.prices.selectors``
(which answers one question per few queries: right for a page showing one price, wrong for a
month of pieces).

The cost refresh asks it for every piece of every resource of a month; the dashboard's forecast
asks it for today's prices of what runs now. ``breakpoints`` tells where a price may change, so
the cost model can cut time there.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q

from billing.models import (
    IPV4_ITEM,
    CatalogPrice,
    PriceKind,
    PriceOverride,
    SpotPricePoint,
    SpotPriceSync,
)
from billing.prices import ebs
from billing.prices.selectors import (
    PriceQuote,
    _catalog_resolve,
    _spot_resolve,
    volume_performance,
)


class PriceBook:
    """Prices of ``region``: catalog rows and overrides (all of them: a few hundred rows), spot
    points of ``instance_types`` from the one in force at ``start`` until ``end``, and the
    region's last spot sync (spot points count only while it is recent, as in the lookups)."""

    def __init__(
        self,
        region: str,
        *,
        catalog: Iterable[CatalogPrice],
        overrides: Iterable[PriceOverride],
        points: Iterable[SpotPricePoint],
        last_sync: SpotPriceSync | None,
        max_age: timedelta,
    ) -> None:
        self.region = region
        self.last_sync = last_sync
        self.max_age = max_age
        self._rows: dict[tuple[str, str], list[CatalogPrice]] = defaultdict(list)
        for row in catalog:
            self._rows[(row.kind, row.item)].append(row)
        self._overrides: dict[tuple[str, str], list[PriceOverride]] = defaultdict(list)
        for override in overrides:
            self._overrides[(override.kind, override.item)].append(override)
        self._points: dict[tuple[str, str], list[SpotPricePoint]] = defaultdict(list)
        for point in points:
            self._points[(point.instance_type, point.zone)].append(point)
        self._times: dict[tuple[str, str], list[datetime]] = {}
        for key, found in self._points.items():
            found.sort(key=lambda p: p.at)
            self._times[key] = [p.at for p in found]
        self._cache: dict[tuple, PriceQuote] = {}

    @classmethod
    def load(
        cls,
        region: str,
        start: datetime,
        end: datetime,
        instance_types: Iterable[str] = (),
    ) -> PriceBook:
        """The prices of ``region`` for ``[start, end]`` in at most six queries."""
        types = sorted(set(instance_types))
        points: list[SpotPricePoint] = []
        if types:
            base = SpotPricePoint.objects.filter(region=region, instance_type__in=types)
            latest = (
                base.filter(at__lte=start).values("instance_type", "zone").annotate(m=Max("at"))
            )
            wanted = {(r["instance_type"], r["zone"], r["m"]) for r in latest}
            if wanted:
                at_start = base.filter(at__in={m for *_, m in wanted})
                points += [p for p in at_start if (p.instance_type, p.zone, p.at) in wanted]
            if end > start:
                points += list(base.filter(at__gt=start, at__lte=end))
        return cls(
            region,
            catalog=CatalogPrice.objects.filter(region=region),
            overrides=PriceOverride.objects.filter(region=region, effective_from__lte=end).filter(
                Q(ended_at__isnull=True) | Q(ended_at__gt=start)
            ),
            points=points,
            last_sync=SpotPriceSync.objects.filter(region=region).order_by("-synced_at").first(),
            max_age=timedelta(hours=settings.SPOT_PRICE_MAX_AGE_HOURS),
        )

    # --- quotes ------------------------------------------------------------------------------
    def catalog(self, kind: str, item: str, at: datetime) -> PriceQuote:
        key = (kind, item, at)
        if key not in self._cache:
            self._cache[key] = _catalog_resolve(
                kind,
                self.region,
                item,
                at,
                self._overrides.get((kind, item), []),
                self._rows.get((kind, item), []),
            )
        return self._cache[key]

    def on_demand(self, instance_type: str, at: datetime) -> PriceQuote:
        return self.catalog(PriceKind.ON_DEMAND, instance_type, at)

    def storage(self, service: str, at: datetime) -> PriceQuote:
        return self.catalog(PriceKind.STORAGE, service, at)

    def volume_performance(
        self, volume_type: str, iops: int | None, throughput: int | None
    ) -> list[tuple[ebs.Piece, PriceQuote]]:
        """A volume's charged IOPS and throughput (the bundled EBS performance table)."""
        return volume_performance(self.region, volume_type, iops, throughput)

    def ipv4(self, at: datetime) -> PriceQuote:
        return self.catalog(PriceKind.IPV4, IPV4_ITEM, at)

    def fresh(self, at: datetime) -> bool:
        """Spot points count at ``at`` when a spot sync happened at most SPOT_PRICE_MAX_AGE_HOURS
        before it (a later sync also covers it: a sync records the price history)."""
        return self.last_sync is not None and self.last_sync.synced_at >= at - self.max_age

    def _point_at(self, instance_type: str, zone: str, at: datetime) -> SpotPricePoint | None:
        times = self._times.get((instance_type, zone))
        if not times:
            return None
        index = bisect.bisect_right(times, at) - 1
        return self._points[(instance_type, zone)][index] if index >= 0 else None

    def spot(self, instance_type: str, zone: str | None, at: datetime) -> PriceQuote:
        """The spot price in ``zone`` (None: the highest of the region's zones) at ``at``, or
        on-demand with the lookups' notice when no spot figure can be trusted."""
        key = ("spot", instance_type, zone, at)
        if key in self._cache:
            return self._cache[key]
        overrides = [
            o
            for o in self._overrides.get((PriceKind.SPOT, instance_type), [])
            if o.effective_from <= at and (o.ended_at is None or o.ended_at > at)
        ]
        zones = [zone] if zone else sorted({z for t, z in self._points if t == instance_type})
        points = {}
        for name in zones:
            point = self._point_at(instance_type, name, at)
            if point is not None:
                points[name] = point
        quote = _spot_resolve(
            self.region,
            instance_type,
            at,
            zone or None,
            override=max(overrides, key=lambda o: (o.effective_from, o.pk)) if overrides else None,
            on_demand=self.on_demand(instance_type, at),
            points=points,
            fresh=self.fresh(at),
            last_sync=self.last_sync,
        )
        self._cache[key] = quote
        return quote

    def instance(self, instance_type: str, *, spot: bool, zone: str | None, at: datetime):
        if spot:
            return self.spot(instance_type, zone, at)
        return self.on_demand(instance_type, at)

    # --- where prices may change -------------------------------------------------------------
    def _catalog_marks(self, kind: str, item: str) -> set[datetime]:
        marks = {row.effective_from for row in self._rows.get((kind, item), [])}
        for override in self._overrides.get((kind, item), []):
            marks.add(override.effective_from)
            if override.ended_at is not None:
                marks.add(override.ended_at)
        return marks

    def breakpoints(
        self,
        kind: str,
        item: str,
        start: datetime,
        end: datetime,
        *,
        zone: str | None = None,
    ) -> list[datetime]:
        """Moments inside ``(start, end)`` at which the price of ``item`` may change: catalog
        rows and overrides, and for spot prices also the zone's points (every zone's without a
        zone) and the moment spot prices go stale."""
        if kind == PriceKind.SPOT:
            marks = self._catalog_marks(PriceKind.ON_DEMAND, item)
            marks |= self._catalog_marks(PriceKind.SPOT, item)
            for (instance_type, name), times in self._times.items():
                if instance_type == item and (not zone or name == zone):
                    marks.update(times)
            if self.last_sync is not None:
                # The first moment the points no longer count.
                marks.add(self.last_sync.synced_at + self.max_age + timedelta(microseconds=1))
        else:
            marks = self._catalog_marks(kind, item)
        return sorted(m for m in marks if start < m < end)
