"""``prices import`` streams AWS's regional offer file (JSON or CSV): a file is read as it goes,
so memory holds one product or one SKU's terms at a time and the prices kept, never the file
(AWS's regional AmazonEC2 file is hundreds of MB, most of it Reserved terms)."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from decimal import Decimal

import pytest

from billing.prices.catalog import OfferFileError, offer_file_stream

pytestmark = [pytest.mark.sqlite]
EFFECTIVE = "2026-12-01T00:00:00Z"


def _attributes(instance_type: str, **extra: str) -> dict:
    return {
        "instanceType": instance_type,
        "regionCode": "eu-west-1",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
        **extra,
    }


def _on_demand(sku: str, usd: str) -> dict:
    return {
        f"{sku}.JRTCKXETXF": {
            "effectiveDate": EFFECTIVE,
            "priceDimensions": {
                f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                    "unit": "Hrs",
                    "beginRange": "0",
                    "pricePerUnit": {"USD": usd},
                }
            },
        }
    }


def offer_json(products: int, handle: io.TextIOBase) -> None:
    """A regional offer file written piece by piece: ``products`` products, one in ten plain
    Linux, each with on-demand terms and bulky Reserved terms (as in AWS's file)."""
    handle.write('{"formatVersion":"v1.0","offerCode":"AmazonEC2","version":"2026120100",')
    handle.write('"publicationDate":"2026-12-01T00:00:00Z","products":{')
    for n in range(products):
        system = "Linux" if n % 10 == 0 else "Windows"
        product = {
            "sku": f"S{n}",
            "productFamily": "Compute Instance",
            "attributes": _attributes(f"t{n}.large", operatingSystem=system),
        }
        handle.write(("," if n else "") + json.dumps(f"S{n}") + ":" + json.dumps(product))
    handle.write('},"terms":{"OnDemand":{')
    for n in range(products):
        handle.write(("," if n else "") + f'"S{n}":' + json.dumps(_on_demand(f"S{n}", "0.125")))
    handle.write('},"Reserved":{')
    reserved = {f"R{k}": {"priceDimensions": {"x": {"description": "y" * 300}}} for k in range(8)}
    for n in range(products):
        handle.write(("," if n else "") + f'"S{n}":' + json.dumps(reserved))
    handle.write("}}}")


def peak_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_json_offer_file_is_read_as_it_goes_with_memory_far_below_its_size(tmp_path):
    path = tmp_path / "index.json"
    with path.open("w") as handle:
        offer_json(8000, handle)
    size = path.stat().st_size  # about 26 MB
    parsed = []

    def stream():
        with path.open() as handle:
            parsed.append(offer_file_stream(handle, source_name="index.json"))

    streamed = peak_bytes(stream)
    whole = peak_bytes(lambda: json.loads(path.read_text()))

    assert size > 25_000_000
    assert streamed < size / 10, f"peak {streamed} bytes for a {size}-byte file"
    assert whole > size  # the bound means something: loading it whole takes more than the file
    assert len(parsed[0].rows) == 800
    assert {row.price for row in parsed[0].rows} == {Decimal("0.125")}
    assert parsed[0].offer["version"] == "2026120100"


def test_a_csv_offer_file_gives_the_same_prices_as_its_json(tmp_path):
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL)
    writer.writerow(["FormatVersion", "v1.0"])
    writer.writerow(["Disclaimer", "This pricing list is for informational purposes only."])
    writer.writerow(["Publication Date", "2026-12-01T00:00:00Z"])
    writer.writerow(["Version", "2026120100"])
    writer.writerow(["OfferCode", "AmazonEC2"])
    header = [
        "SKU", "OfferTermCode", "RateCode", "TermType", "PriceDescription", "EffectiveDate",
        "StartingRange", "EndingRange", "Unit", "PricePerUnit", "Currency", "Product Family",
        "Location", "Instance Type", "Tenancy", "Operating System", "License Model",
        "CapacityStatus", "Pre Installed S/W", "Region Code", "Volume API Name",
    ]  # fmt: skip
    writer.writerow(header)

    def row(sku, term, usd, system="Linux", instance_type="g6.xlarge", unit="Hrs", volume=""):
        family = "Storage" if volume else "Compute Instance"
        writer.writerow([
            sku, "JRTCKXETXF", f"{sku}.R", term, "", "2026-12-01", "0", "Inf", unit, usd, "USD",
            family, "EU (Ireland)", "" if volume else instance_type, "" if volume else "Shared",
            "" if volume else system, "" if volume else "No License required",
            "" if volume else "Used", "" if volume else "NA", "eu-west-1", volume,
        ])  # fmt: skip

    row("G6", "OnDemand", "0.8792000000")
    row("G6", "Reserved", "0.5000000000")
    row("WN", "OnDemand", "1.2000000000", system="Windows")
    row("GP3", "OnDemand", "0.0880000000", unit="GB-Mo", volume="gp3")
    path = tmp_path / "index.csv"
    path.write_text(text.getvalue())

    with path.open(newline="") as handle:
        parsed = offer_file_stream(handle, source_name="index.csv")

    prices = {(r.kind, r.region, r.item): r.price for r in parsed.rows}
    assert prices == {
        ("on-demand", "eu-west-1", "g6.xlarge"): Decimal("0.8792"),
        ("storage", "eu-west-1", "ebs-gp3"): Decimal("0.088"),
    }
    assert parsed.offer == {
        "offerCode": "AmazonEC2",
        "version": "2026120100",
        "publicationDate": "2026-12-01T00:00:00Z",
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"hello": "world"}', "products"),
        ('{"products": {}, "terms": {"Reserved": {}}}', "OnDemand"),
        ('{"products": {"A": {"x": 1}', "ends in the middle"),
        ('"FormatVersion","v1.0"\n"nothing","here"\n', "header row"),
        ("", "empty"),
    ],
)
def test_a_file_that_is_not_an_offer_file_is_refused_saying_why(text, message):
    with pytest.raises(OfferFileError, match=message):
        offer_file_stream(io.StringIO(text), source_name="f")
