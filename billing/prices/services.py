"""Writes to the price catalog: admin overrides, bulk price list imports, spot price points and
the record of prices somebody needed but the catalog lacks. Every admin write is audited."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, F
from django.http import HttpRequest

from billing.models import (
    IPV4_ITEM,
    STORAGE_SERVICES,
    UNITS,
    CatalogOrigin,
    CatalogPrice,
    PriceGap,
    PriceKind,
    PriceOverride,
    SpotPricePoint,
    SpotPriceSync,
)
from billing.money import RATE_DECIMALS, positive_decimal, rate_str
from billing.prices.catalog import OfferImport, catalog_rows_store, offer_file_stream
from clusterweb import clock
from clusterweb.audit.services import audit_record
from clusterweb.permissions import is_admin

REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
# Prices a person types: hourly and GB-month rates with up to 6 decimals, as AWS lists them
# (CONVENTIONS.md), so a listed price never has to be rounded into another one.
OVERRIDE_PLACES = RATE_DECIMALS
SPOT_SYNC_SOURCE = "AWS EC2 describe_spot_price_history"


class PriceInputError(ValueError):
    """Bad input to a price write; ``field`` names the field (command line: exit 2)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def _source(request: HttpRequest | None, source: str) -> str:
    return source or ("web" if request is not None else "cli")


def _require_admin(actor: Any, what: str) -> None:
    if not is_admin(actor):
        raise PermissionDenied(f"Only admins may {what}.")


def price_item_check(kind: str, region: str, item: str) -> str:
    """The catalog item an override of ``kind`` may name, normalised; PriceInputError if not."""
    if kind not in PriceKind.values:
        raise PriceInputError(
            f"kind must be one of {', '.join(PriceKind.values)}, not {kind!r}", field="kind"
        )
    if not REGION_RE.match(region or ""):
        raise PriceInputError(
            f"region must be an AWS region code like eu-west-1, not {region!r}", field="region"
        )
    item = (item or "").strip()
    if kind == PriceKind.IPV4:
        return IPV4_ITEM
    if kind == PriceKind.STORAGE:
        if item not in STORAGE_SERVICES:
            raise PriceInputError(
                f"storage service must be one of {', '.join(STORAGE_SERVICES)}, not {item!r}",
                field="item",
            )
        return item
    if not INSTANCE_TYPE_RE.match(item):
        raise PriceInputError(f"instance type must look like m5.xlarge, not {item!r}", field="item")
    return item


@transaction.atomic
def price_override_add(
    *,
    actor: Any,
    kind: str,
    region: str,
    item: str,
    price: Any,
    note: str = "",
    request: HttpRequest | None = None,
    source: str = "",
    effective_from: datetime | None = None,
) -> PriceOverride:
    """Set an admin price for one kind, region and item from now on, or from a past
    ``effective_from`` (a correction: the cost refresh then recomputes the estimate from that
    day on, closed days included; docs/costs.md, "History"). An override already in force for
    the same key ends when the new one starts (it stays on record)."""
    _require_admin(actor, "override prices")
    item = price_item_check(kind, region, item)
    try:
        value = positive_decimal(price, places=OVERRIDE_PLACES, what="price")
    except ValueError as exc:
        raise PriceInputError(str(exc), field="price") from None
    note = (note or "").strip()
    if len(note) > 200:
        raise PriceInputError("note may be at most 200 characters", field="note")
    now = clock.now()
    start = now if effective_from is None else effective_from
    if start.tzinfo is None:
        raise PriceInputError("the start needs a time zone (UTC)", field="from")
    if start > now:
        raise PriceInputError("an override cannot start in the future", field="from")
    replaced = list(
        PriceOverride.objects.select_for_update()
        .filter(kind=kind, region=region, item=item, ended_at__isnull=True)
        .values_list("pk", "effective_from")
    )
    for pk, began in replaced:
        # Ends where the new one starts (at once, if it began after that).
        PriceOverride.objects.filter(pk=pk).update(
            ended_at=max(start, began), ended_by_username=actor.username
        )
    replaced = [pk for pk, _ in replaced]
    override = PriceOverride.objects.create(
        kind=kind,
        region=region,
        item=item,
        price=value,
        note=note,
        effective_from=start,
        created_by=actor,
        created_by_username=actor.username,
    )
    audit_record(
        action="price.override_added",
        actor=actor,
        target=f"{kind} {region} {item}",
        detail={
            "override": override.pk,
            "price": rate_str(value),
            "unit": UNITS[PriceKind(kind)],
            "note": note,
            "replaced": replaced,
            **({"effective_from": start.isoformat()} if start != now else {}),
        },
        request=request,
        source=_source(request, source),
    )
    return override


@transaction.atomic
def price_override_remove(
    *, actor: Any, override_id: int, request: HttpRequest | None = None, source: str = ""
) -> PriceOverride:
    """End an override now; the catalog price applies again from this moment."""
    _require_admin(actor, "remove price overrides")
    override = (
        PriceOverride.objects.select_for_update()
        .filter(pk=override_id, ended_at__isnull=True)
        .first()
    )
    if override is None:
        raise PriceInputError(f"no override {override_id} is in force", field="override")
    override.ended_at = clock.now()
    override.ended_by_username = actor.username
    override.save(update_fields=["ended_at", "ended_by_username"])
    audit_record(
        action="price.override_removed",
        actor=actor,
        target=f"{override.kind} {override.region} {override.item}",
        detail={"override": override.pk, "price": rate_str(override.price)},
        request=request,
        source=_source(request, source),
    )
    return override


@dataclass(frozen=True)
class CatalogImportResult:
    file: str
    created: int
    updated: int
    on_demand: int
    storage: int
    skipped: int
    conflicts: int
    regions: list[str]
    offer: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "created": self.created,
            "updated": self.updated,
            "on_demand": self.on_demand,
            "storage": self.storage,
            "skipped": self.skipped,
            "conflicts": self.conflicts,
            "regions": self.regions,
            "offer": self.offer,
        }


def price_catalog_import(
    *,
    actor: Any,
    path: Path,
    regions: Iterable[str] | None = None,
    request: HttpRequest | None = None,
    source: str = "",
) -> CatalogImportResult:
    """Add the Linux on-demand and EBS storage prices of an AWS bulk price list offer file for
    AmazonEC2 (JSON or CSV, e.g. .../AmazonEC2/current/REGION/index.json or index.csv) to the
    catalog, each with the file's effective date; earlier rows stay for the times before it. The
    file is streamed, never loaded whole (a regional file is hundreds of MB)."""
    _require_admin(actor, "import prices")
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            parsed: OfferImport = offer_file_stream(
                handle, source_name=Path(path).name, regions=set(regions or []) or None
            )
    except OSError as exc:
        raise PriceInputError(f"cannot read {path}: {exc.strerror}", field="file") from None
    except UnicodeDecodeError:
        raise PriceInputError(f"{path} is not a text file (UTF-8)", field="file") from None
    except ValueError as exc:
        raise PriceInputError(f"{path}: {exc}", field="file") from None
    if not parsed.rows:
        raise PriceInputError(
            f"{path} holds no Linux on-demand or EBS storage prices"
            + (f" for {', '.join(sorted(regions))}" if regions else ""),
            field="file",
        )
    with transaction.atomic():
        created, updated = catalog_rows_store(
            CatalogPrice, parsed.rows, origin=CatalogOrigin.IMPORT, loaded_at=clock.now()
        )
        result = CatalogImportResult(
            file=str(path),
            created=created,
            updated=updated,
            on_demand=sum(r.kind == PriceKind.ON_DEMAND for r in parsed.rows),
            storage=sum(r.kind == PriceKind.STORAGE for r in parsed.rows),
            skipped=parsed.skipped,
            conflicts=parsed.conflicts,
            regions=parsed.regions,
            offer=parsed.offer,
        )
        audit_record(
            action="price.catalog_imported",
            actor=actor,
            target=Path(path).name,
            detail={k: v for k, v in result.as_json().items() if k != "file"},
            request=request,
            source=_source(request, source),
        )
    return result


# --- Spot price points ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SpotPoint:
    """One point of describe_spot_price_history: price in force from ``at`` in ``zone``."""

    region: str
    zone: str
    instance_type: str
    price: Decimal
    at: datetime


@dataclass(frozen=True)
class SpotRecordResult:
    received: int
    new: int
    regions: list[str]


def spot_price_points_record(
    *,
    points: Iterable[SpotPoint],
    synced_at: datetime,
    regions: Iterable[str] = (),
    source: str = SPOT_SYNC_SOURCE,
) -> SpotRecordResult:
    """Store spot price points (a point already stored is left as it is: running a sync twice
    changes nothing) and record a successful sync at ``synced_at`` for every region of the points
    and of ``regions`` (a sync that found no new point still counts). Points are stored as
    received; the lookup refuses implausible ones."""
    points = list(points)
    if synced_at.tzinfo is None:
        raise ValueError("synced_at must be timezone-aware")
    for point in points:
        if not isinstance(point.price, Decimal) or not point.price.is_finite() or point.price <= 0:
            raise ValueError(
                f"spot price for {point.instance_type} in {point.zone} must be a "
                f"positive Decimal, not {point.price!r}"
            )
        if point.at.tzinfo is None:
            raise ValueError("spot price timestamps must be timezone-aware")
        if not point.zone.startswith(point.region):
            raise ValueError(f"zone {point.zone} is not in region {point.region}")
    now = clock.now()
    synced_regions = sorted({p.region for p in points} | set(regions))
    with transaction.atomic():
        before = _point_counts(synced_regions)
        SpotPricePoint.objects.bulk_create(
            [
                SpotPricePoint(
                    region=p.region,
                    zone=p.zone,
                    instance_type=p.instance_type,
                    price=p.price,
                    at=p.at,
                    source=source[:200],
                    recorded_at=now,
                )
                for p in points
            ],
            ignore_conflicts=True,
            batch_size=500,
        )
        after = _point_counts(synced_regions)
        for region in synced_regions:
            SpotPriceSync.objects.create(
                region=region,
                synced_at=synced_at,
                points_received=sum(p.region == region for p in points),
                points_new=after.get(region, 0) - before.get(region, 0),
                source=source[:200],
            )
    new = sum(after.values()) - sum(before.values())
    return SpotRecordResult(received=len(points), new=new, regions=synced_regions)


def _point_counts(regions: list[str]) -> dict[str, int]:
    rows = SpotPricePoint.objects.filter(region__in=regions).values("region")
    return {row["region"]: row["n"] for row in rows.annotate(n=Count("id"))}


# --- Prices the catalog lacks --------------------------------------------------------------------
def price_gap_record(*, kind: str, region: str, item: str, context: str = "") -> None:
    """Note that somebody needed a price the catalog lacks; admins see it on the Prices page."""
    now = clock.now()
    updated = PriceGap.objects.filter(kind=kind, region=region, item=item).update(
        last_seen_at=now, occurrences=F("occurrences") + 1, context=context[:200]
    )
    if not updated:
        PriceGap.objects.get_or_create(
            kind=kind,
            region=region,
            item=item,
            defaults={"first_seen_at": now, "last_seen_at": now, "context": context[:200]},
        )
