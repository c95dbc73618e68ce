"""Asking AWS for the on-demand prices the catalog lacks: the Price List Query API
(``pricing:GetProducts``, through its us-east-1 endpoint) for plain on-demand Linux, shared
tenancy, no pre-installed software, capacity status "Used".

Run by the price lookup job (``billing.tasks.price_lookups_sync``) for the types the inventory
saw and the pools name; and by ``manage.py pools load`` for a pool's new types. A price found
becomes a catalog row of origin "lookup" with its source (SKU, publication date) and the date it
was asked; every answer is cached in ``PriceLookup``, so a type is asked again only after
``ASK_AGAIN`` (a type AWS lists no price for, or a failed call) and never while the catalog has
it. Imports nothing from the inventory: the caller says which types matter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction

from billing.models import (
    CatalogOrigin,
    CatalogPrice,
    LookupOutcome,
    PriceKind,
    PriceLookup,
    PriceOverride,
)
from billing.prices.catalog import CatalogRow, _on_demand_price, _product_key, catalog_rows_store
from clusterweb import clock
from clusterweb.errors import IntegrationError
from clusterweb.integrations import aws

ASK_AGAIN = timedelta(hours=24)  # AWS's list changes rarely; a day keeps the job to few calls
SOURCE = "AWS Price List Query API (pricing GetProducts via us-east-1)"


def priced_types(region: str, types: Iterable[str]) -> set[str]:
    """The ``types`` that have an on-demand price in ``region`` (a catalog row of any origin, or
    an on-demand override): two queries."""
    wanted = set(types)
    found = set(
        CatalogPrice.objects.filter(
            kind=PriceKind.ON_DEMAND, region=region, item__in=wanted
        ).values_list("item", flat=True)
    )
    found |= set(
        PriceOverride.objects.filter(
            kind=PriceKind.ON_DEMAND, region=region, item__in=wanted, ended_at__isnull=True
        ).values_list("item", flat=True)
    )
    return found


@dataclass
class LookupRun:
    region: str
    asked: list[str] = field(default_factory=list)
    found: dict[str, Decimal] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0

    def as_json(self) -> dict:
        return {
            "region": self.region,
            "asked": self.asked,
            "found": {k: str(v) for k, v in self.found.items()},
            "not_found": self.not_found,
            "failed": self.failed,
            "requests": self.requests,
        }


def _due(region: str, types: set[str], now: datetime, *, force: bool) -> list[str]:
    if force:
        return sorted(types)
    recent = set(
        PriceLookup.objects.filter(
            region=region, instance_type__in=types, asked_at__gt=now - ASK_AGAIN
        ).values_list("instance_type", flat=True)
    )
    return sorted(types - recent)


def _price_of(products: list[dict], region: str, instance_type: str, asked: datetime):
    """The catalog row for the answer's product (the highest price if AWS returned several:
    an estimate may err high, never silently low), or None."""
    rows = []
    for document in products:
        product = document.get("product") or {}
        if _product_key(product) != (PriceKind.ON_DEMAND, instance_type):
            continue
        if (product.get("attributes") or {}).get("regionCode", region) != region:
            continue
        priced = _on_demand_price((document.get("terms") or {}).get("OnDemand") or {}, "on-demand")
        if priced is None:
            continue
        price, effective = priced
        published = document.get("publicationDate", "")
        source = (
            f"{SOURCE}, SKU {product.get('sku', '?')}"
            + (f", published {published}" if published else "")
            + f", asked {asked:%Y-%m-%d %H:%M} UTC"
        )
        rows.append(
            CatalogRow(
                PriceKind.ON_DEMAND, region, instance_type, price, effective, "confirmed", source
            )
        )
    return max(rows, key=lambda r: r.price) if rows else None


def price_lookups_run(
    *, region: str, types: Iterable[str], now: datetime | None = None, force: bool = False
) -> LookupRun:
    """Ask AWS for the on-demand price of each of ``types`` that ``region``'s catalog lacks and
    that was not asked within ``ASK_AGAIN`` (``force``: ask anyway). Safe to run twice: a type
    found is in the catalog and not asked again; an answer is stored under its key."""
    now = clock.now() if now is None else now
    wanted = set(types) - priced_types(region, types)
    run = LookupRun(region=region)
    for instance_type in _due(region, wanted, now, force=force):
        run.asked.append(instance_type)
        try:
            answer = aws.ec2_on_demand_products(region, instance_type)
        except IntegrationError as exc:
            run.failed[instance_type] = str(exc)
            run.requests += 1
            PriceLookup.objects.update_or_create(
                region=region,
                instance_type=instance_type,
                defaults={
                    "asked_at": now,
                    "outcome": LookupOutcome.FAILED,
                    "price": None,
                    "source": SOURCE,
                    "error": str(exc)[:500],
                    "requests": 1,
                },
            )
            continue
        run.requests += answer.requests
        row = _price_of(answer.products, region, instance_type, now)
        with transaction.atomic():
            if row is not None:
                catalog_rows_store(CatalogPrice, [row], origin=CatalogOrigin.LOOKUP, loaded_at=now)
                run.found[instance_type] = row.price
            else:
                run.not_found.append(instance_type)
            PriceLookup.objects.update_or_create(
                region=region,
                instance_type=instance_type,
                defaults={
                    "asked_at": now,
                    "outcome": LookupOutcome.FOUND if row else LookupOutcome.NOT_FOUND,
                    "price": row.price if row else None,
                    "source": row.source[:400] if row else SOURCE,
                    "error": "",
                    "requests": answer.requests,
                },
            )
    return run


def unpriceable_types(region: str, types: Iterable[str]) -> dict[str, PriceLookup]:
    """The ``types`` with no on-demand price in ``region`` that AWS was asked about and lists no
    price for (a failed call does not count: it says nothing about the type)."""
    wanted = set(types) - priced_types(region, types)
    return {
        lookup.instance_type: lookup
        for lookup in PriceLookup.objects.filter(
            region=region, instance_type__in=wanted, outcome=LookupOutcome.NOT_FOUND
        )
    }
