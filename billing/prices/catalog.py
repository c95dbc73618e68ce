"""Reading price tables: the bundled CSV tables in ``billing/data/`` and AWS's bulk price list
offer files for AmazonEC2.

Parsing is pure (rows in, dataclasses out); ``catalog_rows_store`` writes them with whichever model
class it is given, so the data migration can pass its historical model.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

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
    updated). A fixed number of queries whatever the number of rows (a bundled table has over a
    thousand)."""
    rows = list(rows)
    if not rows:
        return 0, 0
    stored = {
        (r.kind, r.region, r.item, r.effective_from): r
        for r in model.objects.filter(
            kind__in={row.kind for row in rows}, region__in={row.region for row in rows}
        )
    }
    fresh, changed = {}, []
    for row in rows:
        key = (row.kind, row.region, row.item, row.effective_from)
        values = {
            "price": row.price,
            "source": row.source[:SOURCE_MAX],
            "confidence": row.confidence,
            "origin": origin,
            "loaded_at": loaded_at,
        }
        found = stored.get(key)
        if found is None:
            fresh[key] = model(
                kind=row.kind,
                region=row.region,
                item=row.item,
                effective_from=row.effective_from,
                **values,
            )
            continue
        for name, value in values.items():
            setattr(found, name, value)
        changed.append(found)
    model.objects.bulk_create(list(fresh.values()), batch_size=500)
    if changed:
        model.objects.bulk_update(
            changed, ["price", "source", "confidence", "origin", "loaded_at"], batch_size=500
        )
    return len(fresh), len(changed)


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


class _Collector:
    """Gathers the prices of an offer file product by product (the same rules whether the file is
    a parsed dict, streamed JSON or streamed CSV): products first, then their on-demand terms."""

    def __init__(self, regions: set[str] | None) -> None:
        self.regions = regions
        self.wanted: dict[str, tuple[tuple[str, str], str]] = {}
        self.priced: dict[str, tuple[Decimal, datetime]] = {}
        self.skipped = 0
        self.offer: dict[str, str] = {}

    def product(self, sku: str, product: Any) -> None:
        key = _product_key(product if isinstance(product, dict) else {})
        region = _region((product or {}).get("attributes") or {}) if key else None
        if key is None or region is None or (self.regions and region not in self.regions):
            self.skipped += 1
            return
        self.wanted[sku] = (key, region)

    def terms(self, sku: str, terms: Any) -> None:
        found = self.wanted.get(sku)
        if found is None or sku in self.priced or not isinstance(terms, dict):
            return
        priced = _on_demand_price(terms, found[0][0])
        if priced is not None:
            self.priced[sku] = priced

    def meta(self, key: str, value: Any) -> None:
        if key in ("offerCode", "version", "publicationDate"):
            self.offer[key] = str(value)

    def result(self, source_name: str) -> OfferImport:
        if self.offer.get("offerCode", "AmazonEC2") != "AmazonEC2":
            raise OfferFileError(
                f"offer file is for {self.offer['offerCode']!r}, expected AmazonEC2"
            )
        label = f"AWS Price List bulk offer file {source_name}"
        if self.offer.get("version"):
            label += f" version {self.offer['version']}"
        if self.offer.get("publicationDate"):
            label += f" published {self.offer['publicationDate']}"
        result = OfferImport(rows=[], offer=dict(self.offer))
        result.skipped = self.skipped + sum(sku not in self.priced for sku in self.wanted)
        chosen: dict[tuple[str, str, str, datetime], CatalogRow] = {}
        for sku, (price, effective) in self.priced.items():
            (kind, item), region = self.wanted[sku]
            row = CatalogRow(
                kind, region, item, price, effective, "confirmed", f"{label}, SKU {sku}"
            )
            slot = (row.kind, row.region, row.item, row.effective_from)
            if slot in chosen and chosen[slot].price != row.price:
                # Two products claim the same price slot: keep the higher one (an estimate may
                # be too high, never silently too low) and count it so the operator hears of it.
                result.conflicts += 1
                if chosen[slot].price >= row.price:
                    continue
            chosen[slot] = row
        result.rows = sorted(chosen.values(), key=lambda r: (r.kind, r.region, r.item))
        return result


def offer_file_parse(
    data: Any, *, source_name: str, regions: set[str] | None = None
) -> OfferImport:
    """The Linux on-demand instance prices and EBS storage prices of an AmazonEC2 offer file
    already parsed (``products`` + ``terms.OnDemand``), optionally only for ``regions``."""
    if not isinstance(data, dict) or not isinstance(data.get("products"), dict):
        raise OfferFileError("not a price list offer file: no 'products' object")
    on_demand = (data.get("terms") or {}).get("OnDemand")
    if not isinstance(on_demand, dict):
        raise OfferFileError("not a price list offer file: no 'terms.OnDemand' object")
    collector = _Collector(regions)
    for key, value in data.items():
        collector.meta(key, value)
    for sku, product in data["products"].items():
        collector.product(sku, product)
    for sku, terms in on_demand.items():
        collector.terms(sku, terms)
    return collector.result(source_name)


# --- Streaming: a regional offer file is hundreds of MB; it is never loaded whole --------------
STREAM_CHUNK = 1 << 18
STREAM_VALUE_MAX = 64 << 20  # one product or one SKU's terms; far above any real one


class _JsonStream:
    """Walks a JSON document from a text handle, object member by object member, decoding one
    value at a time with ``raw_decode`` on a buffer of about one chunk."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.handle.read(STREAM_CHUNK)
        if not chunk:
            self.eof = True
            return False
        if len(self.buf) - self.pos > STREAM_VALUE_MAX:
            raise OfferFileError("a single value of the file is over 64 MB: not an offer file")
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                raise OfferFileError("the file ends in the middle of its JSON")

    def take(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise OfferFileError(f"not a price list offer file: expected {char!r}, found {found!r}")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._more():
                    continue
                raise OfferFileError(f"not JSON: {exc.msg} near character {exc.pos}") from None
            if end >= len(self.buf) and self._more():
                continue  # a number may go on in the next chunk
            self.pos = end
            return value

    def members(self) -> Iterator[str]:
        """The keys of the object at the cursor; the caller consumes each value."""
        self.take("{")
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise OfferFileError("not a price list offer file: an object key is not a string")
            self.take(":")
            yield key
            found = self.peek()
            self.pos += 1
            if found == "}":
                return
            if found != ",":
                raise OfferFileError(f"not JSON: expected ',' or '}}', found {found!r}")


def _json_stream(handle: IO[str], collector: _Collector) -> None:
    stream = _JsonStream(handle)
    if stream.peek() != "{":
        raise OfferFileError("not a price list offer file: not a JSON object")
    seen = set()
    for key in stream.members():
        if key == "products":
            seen.add(key)
            for sku in stream.members():
                collector.product(sku, stream.value())
        elif key == "terms":
            for term_type in stream.members():
                seen.add(f"terms.{term_type}")
                for sku in stream.members():
                    terms = stream.value()  # one SKU's terms; Reserved ones are dropped here
                    if term_type == "OnDemand":
                        collector.terms(sku, terms)
        else:
            collector.meta(key, stream.value())
    if "products" not in seen:
        raise OfferFileError("not a price list offer file: no 'products' object")
    if "terms.OnDemand" not in seen:
        raise OfferFileError("not a price list offer file: no 'terms.OnDemand' object")


# The CSV offer file's columns as the JSON attribute names Clusterweb reads.
CSV_ATTRIBUTES = {
    "Instance Type": "instanceType",
    "Operating System": "operatingSystem",
    "Tenancy": "tenancy",
    "Pre Installed S/W": "preInstalledSw",
    "CapacityStatus": "capacitystatus",
    "License Model": "licenseModel",
    "Region Code": "regionCode",
    "Location": "location",
    "Volume API Name": "volumeApiName",
}
CSV_META = {"OfferCode": "offerCode", "Version": "version", "Publication Date": "publicationDate"}


def _csv_stream(handle: IO[str], collector: _Collector) -> None:
    """AWS's CSV offer file: a few "name","value" lines, then a header row starting with SKU,
    then one row per SKU, term and price dimension."""
    reader = csv.reader(handle)
    header: list[str] | None = None
    for row in reader:
        if row and row[0] == "SKU":
            header = row
            break
        if len(row) >= 2 and row[0] in CSV_META:
            collector.meta(CSV_META[row[0]], row[1])
    if header is None:
        raise OfferFileError("not a price list offer file: no CSV header row starting with SKU")
    index = {name: number for number, name in enumerate(header)}
    for name in ("TermType", "PricePerUnit", "Unit", "EffectiveDate", "Currency"):
        if name not in index:
            raise OfferFileError(f"not a price list offer file: no {name!r} column")
    products: set[str] = set()
    for row in reader:
        if len(row) != len(header):
            continue
        record = dict(zip(header, row, strict=True))
        sku = record["SKU"]
        if sku not in products:
            products.add(sku)
            attributes = {
                key: record[column] for column, key in CSV_ATTRIBUTES.items() if record.get(column)
            }
            collector.product(
                sku, {"productFamily": record.get("Product Family", ""), "attributes": attributes}
            )
        if record["TermType"] != "OnDemand":
            continue
        collector.terms(
            sku,
            {
                record.get("OfferTermCode", "term"): {
                    "effectiveDate": record["EffectiveDate"],
                    "priceDimensions": {
                        record.get("RateCode", "rate"): {
                            "unit": record["Unit"],
                            "beginRange": record.get("StartingRange", "0") or "0",
                            "pricePerUnit": {record["Currency"]: record["PricePerUnit"]},
                        }
                    },
                }
            },
        )


def offer_file_stream(
    handle: IO[str], *, source_name: str, regions: set[str] | None = None
) -> OfferImport:
    """``offer_file_parse`` for a file read as it goes (JSON or CSV, told apart by the first
    character): memory holds one product or term at a time and the chosen prices, never the
    file."""
    first = handle.read(1)
    while first and first.isspace():
        first = handle.read(1)
    rest = _Prefixed(first, handle)
    collector = _Collector(regions)
    if first == "{":
        _json_stream(rest, collector)
    elif first:
        _csv_stream(rest, collector)
    else:
        raise OfferFileError("the file is empty")
    return collector.result(source_name)


class _Prefixed:
    """A text handle with one character put back in front."""

    def __init__(self, first: str, handle: IO[str]) -> None:
        self.first = first
        self.handle = handle

    def read(self, size: int = -1) -> str:
        text, self.first = self.first, ""
        return text + self.handle.read(size if size < 0 else max(size - len(text), 0))

    def __iter__(self) -> Iterator[str]:
        first, self.first = self.first, ""
        lines = iter(self.handle)
        head = next(lines, "")
        yield first + head
        yield from lines
