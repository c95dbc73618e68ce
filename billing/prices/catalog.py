"""Reading price tables: the bundled CSV tables in ``billing/data/`` and AWS's bulk price list
offer files for AmazonEC2.

Parsing is pure (rows in, dataclasses out); ``catalog_rows_store`` writes them with whichever model
class it is given, so the data migration can pass its historical model.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
ON_DEMAND_FILE = DATA_DIR / "on_demand_prices.csv"
STORAGE_FILE = DATA_DIR / "storage_prices.csv"
IPV4_FILE = DATA_DIR / "ipv4_prices.csv"

# Kept as literals (not imported from billing.models) so the data migration can use this module
# without importing the current models.
ON_DEMAND, STORAGE, IPV4 = "on-demand", "storage", "ipv4"
IPV4_ITEM = "public-ipv4"
EBS_VOLUME_SERVICES = {
    "gp2": "ebs-gp2",
    "gp3": "ebs-gp3",
    "st1": "ebs-st1",
    "sc1": "ebs-sc1",
    "standard": "ebs-standard",
}
# Offer files older than the regionCode attribute name the region only by its location.
LOCATION_REGIONS = {
    "US East (N. Virginia)": "us-east-1",
    "US East (Northern Virginia)": "us-east-1",
    "US East (Ohio)": "us-east-2",
    "US West (N. California)": "us-west-1",
    "US West (Oregon)": "us-west-2",
    "EU (Ireland)": "eu-west-1",
    "Europe (Ireland)": "eu-west-1",
    "EU (London)": "eu-west-2",
    "Europe (London)": "eu-west-2",
    "EU (Paris)": "eu-west-3",
    "Europe (Paris)": "eu-west-3",
    "EU (Frankfurt)": "eu-central-1",
    "Europe (Frankfurt)": "eu-central-1",
    "EU (Stockholm)": "eu-north-1",
    "Europe (Stockholm)": "eu-north-1",
}
COMPUTE_FAMILIES = {"Compute Instance", "Compute Instance (bare metal)"}
SOURCE_MAX = 400


@dataclass(frozen=True)
class CatalogRow:
    kind: str
    region: str
    item: str
    price: Decimal
    effective_from: datetime
    confidence: str
    source: str


# --- Bundled tables ------------------------------------------------------------------------------
def _table(path: Path) -> list[dict[str, str]]:
    """The rows of a bundled CSV table; lines starting with ``#`` are its header comment."""
    with path.open(newline="") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def _day(text: str) -> datetime:
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)


def bundled_rows() -> list[CatalogRow]:
    """Every row of the three bundled tables."""
    rows = [
        CatalogRow(
            ON_DEMAND,
            r["region"],
            r["instance_type"],
            Decimal(r["usd_per_hour"]),
            _day(r["effective_from"]),
            r["confidence"],
            r["source"],
        )
        for r in _table(ON_DEMAND_FILE)
    ]
    rows += [
        CatalogRow(
            STORAGE,
            r["region"],
            r["service"],
            Decimal(r["usd_per_gb_month"]),
            _day(r["effective_from"]),
            r["confidence"],
            r["source"],
        )
        for r in _table(STORAGE_FILE)
    ]
    rows += [
        CatalogRow(
            IPV4,
            r["region"],
            IPV4_ITEM,
            Decimal(r["usd_per_address_hour"]),
            _day(r["effective_from"]),
            r["confidence"],
            r["source"],
        )
        for r in _table(IPV4_FILE)
    ]
    return rows


def catalog_rows_store(
    model: Any, rows: Iterable[CatalogRow], *, origin: str, loaded_at: datetime
) -> tuple[int, int]:
    """Store ``rows`` with ``model`` (CatalogPrice, current or historical), keyed on kind, region,
    item and effective date: storing the same rows twice changes nothing. Returns (created,
    updated)."""
    created = updated = 0
    for row in rows:
        _, was_created = model.objects.update_or_create(
            kind=row.kind,
            region=row.region,
            item=row.item,
            effective_from=row.effective_from,
            defaults={
                "price": row.price,
                "source": row.source[:SOURCE_MAX],
                "confidence": row.confidence,
                "origin": origin,
                "loaded_at": loaded_at,
            },
        )
        created += was_created
        updated += not was_created
    return created, updated


# --- AWS bulk price list offer files -------------------------------------------------------------
class OfferFileError(ValueError):
    """The file is not an AmazonEC2 offer file in the bulk price list format."""


@dataclass
class OfferImport:
    rows: list[CatalogRow]
    skipped: int = 0
    conflicts: int = 0
    offer: dict[str, str] = field(default_factory=dict)

    @property
    def regions(self) -> list[str]:
        return sorted({row.region for row in self.rows})


def _region(attributes: dict[str, Any]) -> str | None:
    return attributes.get("regionCode") or LOCATION_REGIONS.get(attributes.get("location", ""))


def _effective(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _product_key(product: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, item) for the products Clusterweb prices, None for every other product."""
    attributes = product.get("attributes") or {}
    family = product.get("productFamily", "")
    volume = attributes.get("volumeApiName")
    if volume in EBS_VOLUME_SERVICES and family in ("Storage", ""):
        return STORAGE, EBS_VOLUME_SERVICES[volume]
    instance_type = attributes.get("instanceType")
    if not instance_type or (family and family not in COMPUTE_FAMILIES):
        return None
    # Plain on-demand Linux: not Windows/RHEL/SUSE, not dedicated, no SQL Server pre-installed,
    # not the price of reserved-but-idle capacity (capacitystatus).
    wanted = {
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    if any(attributes.get(name) != value for name, value in wanted.items()):
        return None
    if attributes.get("licenseModel", "No License required") != "No License required":
        return None
    return ON_DEMAND, instance_type


def _on_demand_price(terms: dict[str, Any], kind: str) -> tuple[Decimal, datetime] | None:
    """The USD price and effective date of a product's on-demand term (first tier)."""
    unit = "GB-Mo" if kind == STORAGE else "Hrs"
    for term in terms.values():
        for dimension in (term.get("priceDimensions") or {}).values():
            if dimension.get("unit") != unit or str(dimension.get("beginRange", "0")) != "0":
                continue
            try:
                price = Decimal(str(dimension["pricePerUnit"]["USD"]))
                effective = _effective(term["effectiveDate"])
            except (KeyError, InvalidOperation, ValueError, TypeError):
                continue
            if price > 0:
                return price.normalize(), effective
    return None


def offer_file_parse(
    data: Any, *, source_name: str, regions: set[str] | None = None
) -> OfferImport:
    """The Linux on-demand instance prices and EBS storage prices of an AmazonEC2 offer file
    (``products`` + ``terms.OnDemand``), optionally only for ``regions``."""
    if not isinstance(data, dict) or not isinstance(data.get("products"), dict):
        raise OfferFileError("not a price list offer file: no 'products' object")
    if data.get("offerCode", "AmazonEC2") != "AmazonEC2":
        raise OfferFileError(f"offer file is for {data.get('offerCode')!r}, expected AmazonEC2")
    on_demand = (data.get("terms") or {}).get("OnDemand")
    if not isinstance(on_demand, dict):
        raise OfferFileError("not a price list offer file: no 'terms.OnDemand' object")
    offer = {
        key: str(data[key]) for key in ("offerCode", "version", "publicationDate") if key in data
    }
    label = f"AWS Price List bulk offer file {source_name}"
    if offer.get("version"):
        label += f" version {offer['version']}"
    if offer.get("publicationDate"):
        label += f" published {offer['publicationDate']}"
    result = OfferImport(rows=[], offer=offer)
    chosen: dict[tuple[str, str, str, datetime], CatalogRow] = {}
    for sku, product in data["products"].items():
        key = _product_key(product if isinstance(product, dict) else {})
        region = _region((product or {}).get("attributes") or {}) if key else None
        if key is None or region is None or (regions and region not in regions):
            result.skipped += 1
            continue
        priced = _on_demand_price(on_demand.get(sku) or {}, key[0])
        if priced is None:
            result.skipped += 1
            continue
        price, effective = priced
        row = CatalogRow(
            key[0], region, key[1], price, effective, "confirmed", f"{label}, SKU {sku}"
        )
        slot = (row.kind, row.region, row.item, row.effective_from)
        if slot in chosen and chosen[slot].price != row.price:
            # Two products claim the same price slot: keep the higher one (an estimate may be
            # too high, never silently too low) and count it so the operator hears about it.
            result.conflicts += 1
            if chosen[slot].price >= row.price:
                continue
        chosen[slot] = row
    result.rows = sorted(chosen.values(), key=lambda r: (r.kind, r.region, r.item))
    return result
