"""The Price List Query API (service ``pricing``), which moto lacks: ``GetProducts`` answered
from the layer's own table, in AWS's response format.

What AWS does, and so what this does (AWS Price List Query API reference, GetProducts; AWS
Billing user guide, "Using the AWS Price List Query API"):

- The API is served from three endpoints only: us-east-1, eu-central-1 and ap-south-1. A
  request signed for any other region is refused here (AWS has no such endpoint at all).
- ``ServiceCode`` is required; ``FormatVersion`` is ``aws_v1`` (anything else is refused);
  ``Filters`` are ``{"Type", "Field", "Value"}``; ``TERM_MATCH`` keeps the products whose
  attribute ``Field`` equals ``Value`` (AWS compares case-insensitively). Other filter types
  (``EQUALS``, ``CONTAINS``, ``ANY_OF``, ``NONE_OF``) are refused here rather than guessed.
- ``MaxResults`` is 1 to 100 (default 100); ``NextToken`` continues a listing and is refused
  when it is not one this API issued.
- The answer is ``{"FormatVersion": "aws_v1", "PriceList": [...], "NextToken"?}`` where each
  ``PriceList`` entry is a JSON *string* holding one product: ``product`` (``productFamily``,
  ``attributes``, ``sku``), ``serviceCode``, ``terms`` (``OnDemand`` with ``priceDimensions``
  and ``pricePerUnit.USD`` as a 10-decimal string), ``version`` and ``publicationDate``.

The table: the layer's own on-demand Linux prices (``price_table.py``, written from AWS's price
pages; the layer imports nothing from Clusterweb's catalog) plus what a test or the sandbox sets
with ``price_list_set``.
For each type the table also holds the variants AWS lists beside plain on-demand Linux
(Windows, dedicated tenancy, reserved-but-unused capacity), priced differently, so a lookup
whose filters are wrong gets a wrong or ambiguous answer here as it would from AWS.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sandbox.aws import price_table, wire

ENDPOINT_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
PAGE_MAX = 100
PUBLISHED = "2026-11-29T00:00:00Z"
VERSION = "20261129000000"
LOCATIONS = {"us-east-1": "US East (N. Virginia)", "eu-west-1": "EU (Ireland)"}
# The variants of one type AWS lists beside plain on-demand Linux, with the factor of their price
# (made-up factors: the sandbox never prices a variant, it only has to differ).
VARIANTS = {
    "linux": ({}, Decimal(1)),
    "windows": ({"operatingSystem": "Windows"}, Decimal("1.5")),
    "dedicated": ({"tenancy": "Dedicated"}, Decimal("1.1")),
    "unused-reservation": ({"capacitystatus": "UnusedCapacityReservation"}, Decimal(1)),
}


_LISTED = {(price_table.REGION, kind): price for kind, price in price_table.ON_DEMAND.items()}


class PriceListTable:
    """On-demand Linux prices by (region, instance type). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set: dict[tuple[str, str], Decimal] = {}
        self.regions_asked: set[str] = set()  # the endpoints GetProducts was called at

    def set(self, region: str, instance_type: str, price: Decimal | None) -> None:
        """``price`` None: the type is not in AWS's list (in that region)."""
        with self._lock:
            self._set[(region, instance_type)] = price  # type: ignore[assignment]

    def clear(self) -> None:
        with self._lock:
            self._set.clear()
            self.regions_asked.clear()

    def prices(self) -> dict[tuple[str, str], Decimal]:
        with self._lock:
            table = {**_LISTED, **self._set}
        return {key: price for key, price in table.items() if price is not None}


def _products(table: PriceListTable) -> list[dict[str, Any]]:
    products = []
    for (region, instance_type), price in sorted(table.prices().items()):
        for variant, (changes, factor) in VARIANTS.items():
            sku = _sku(region, instance_type, variant)
            attributes = {
                "servicecode": "AmazonEC2",
                "instanceType": instance_type,
                "regionCode": region,
                "location": LOCATIONS.get(region, region),
                "locationType": "AWS Region",
                "operatingSystem": "Linux",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "capacitystatus": "Used",
                "licenseModel": "No License required",
                "marketoption": "OnDemand",
                "operation": "RunInstances",
                "usagetype": f"BoxUsage:{instance_type}",
                **changes,
            }
            usd = (price * factor).quantize(Decimal("0.0000000001"))
            term = f"{sku}.JRTCKXETXF"
            products.append(
                {
                    "product": {
                        "productFamily": "Compute Instance",
                        "attributes": attributes,
                        "sku": sku,
                    },
                    "serviceCode": "AmazonEC2",
                    "terms": {
                        "OnDemand": {
                            term: {
                                "offerTermCode": "JRTCKXETXF",
                                "sku": sku,
                                "effectiveDate": "2026-11-01T00:00:00Z",
                                "termAttributes": {},
                                "priceDimensions": {
                                    f"{term}.6YS6EN2CT7": {
                                        "rateCode": f"{term}.6YS6EN2CT7",
                                        "unit": "Hrs",
                                        "beginRange": "0",
                                        "endRange": "Inf",
                                        "description": (
                                            f"${usd.normalize()} per On Demand "
                                            f"{attributes['operatingSystem']} {instance_type} "
                                            "Instance Hour"
                                        ),
                                        "appliesTo": [],
                                        "pricePerUnit": {"USD": format(usd, "f")},
                                    }
                                },
                            }
                        }
                    },
                    "version": VERSION,
                    "publicationDate": PUBLISHED,
                }
            )
    return products


def _sku(region: str, instance_type: str, variant: str) -> str:
    raw = base64.b32encode(f"{region}|{instance_type}|{variant}".encode()).decode()
    return raw.replace("=", "")[:16]


def _error(request: wire.AwsRequest, code: str, message: str) -> wire.Reply:
    return wire.error_response(request, code, message, 400)


def answer(request: wire.AwsRequest, table: PriceListTable) -> wire.Reply | None:
    """The layer's answer to a Price List Query API request, or None for any other request."""
    if request.service != "pricing" or request.protocol != "json":
        return None
    table.regions_asked.add(request.region)
    if request.region not in ENDPOINT_REGIONS:
        return _error(
            request,
            "UnrecognizedClientException",
            f"The Price List Query API has no endpoint in {request.region}: use us-east-1, "
            "eu-central-1 or ap-south-1",
        )
    if request.action != "GetProducts":
        return _error(
            request, "InvalidParameterException", f"{request.action} is not simulated here"
        )
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _error(request, "InvalidParameterException", "the request body is not JSON")
    if not body.get("ServiceCode"):
        return _error(request, "InvalidParameterException", "ServiceCode is required")
    if body.get("FormatVersion", "aws_v1") != "aws_v1":
        return _error(request, "InvalidParameterException", "FormatVersion must be aws_v1")
    size = body.get("MaxResults", PAGE_MAX)
    if not isinstance(size, int) or not 1 <= size <= PAGE_MAX:
        return _error(request, "InvalidParameterException", "MaxResults must be 1 to 100")
    filters: list[Mapping[str, Any]] = body.get("Filters") or []
    for item in filters:
        if item.get("Type") != "TERM_MATCH":
            return _error(
                request,
                "InvalidParameterException",
                f"filter type {item.get('Type')!r} is not simulated here (TERM_MATCH only)",
            )
    start = 0
    if body.get("NextToken"):
        try:
            start = int(base64.urlsafe_b64decode(body["NextToken"].encode()).decode())
        except (ValueError, UnicodeDecodeError):
            return _error(request, "InvalidNextTokenException", "The NextToken is not valid")
    if body["ServiceCode"] != "AmazonEC2":
        found: list[dict[str, Any]] = []
    else:
        found = [
            p
            for p in _products(table)
            if all(
                str(p["product"]["attributes"].get(f.get("Field"), "")).lower()
                == str(f.get("Value", "")).lower()
                for f in filters
            )
        ]
    page = found[start : start + size]
    reply: dict[str, Any] = {
        "FormatVersion": "aws_v1",
        "PriceList": [json.dumps(p) for p in page],
    }
    if start + size < len(found):
        reply["NextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return wire.Reply(
        200,
        [("Content-Type", "application/x-amz-json-1.1")],
        json.dumps(reply).encode(),
    )
