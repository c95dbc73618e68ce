"""Billing tests: the bundled catalog present (transactional tests elsewhere in the suite flush
every table, the data migration's rows included), and helpers for spot price points."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from billing.models import CatalogPrice
from billing.prices.catalog import bundled_rows, catalog_rows_store
from billing.prices.services import SpotPoint, spot_price_points_record
from clusterweb import clock


def bundled_catalog_ensure() -> None:
    if not CatalogPrice.objects.filter(origin="bundled").exists():
        catalog_rows_store(CatalogPrice, bundled_rows(), origin="bundled", loaded_at=clock.now())


@pytest.fixture(autouse=True)
def _bundled_catalog(request):
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    bundled_catalog_ensure()


def spot_point(instance_type: str, price: str, at: datetime, zone: str = "eu-west-1a") -> SpotPoint:
    return SpotPoint(zone[:-1], zone, instance_type, Decimal(price), at)


def spot_record(*points: SpotPoint, synced_at: datetime | None = None, region: str = "eu-west-1"):
    return spot_price_points_record(
        points=list(points), synced_at=synced_at or clock.now(), regions=[region], source="test"
    )


# --- Cost features: a moment of the shared clock, cost rows and the bill ------------------------
@pytest.fixture
def clock_at(shared_clock):
    """``clock_at(moment)`` moves the shared clock (every process of the run) to ``moment``
    (give or take the milliseconds the test takes) and returns it."""

    def move(moment: datetime) -> datetime:
        shared_clock.set_offset((moment - datetime.now(UTC)).total_seconds())
        return moment

    return move


def ce_calls(layer) -> int:
    """get_cost_and_usage requests the AWS layer's recorder saw since it started."""
    from sandbox.aws import wire

    if not layer.controls.recording.exists():
        return 0
    count = 0
    for line in layer.controls.recording.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "/moto-api/" in entry.get("url", ""):
            continue
        if wire.parse_recorded(entry).action == "GetCostAndUsage":
            count += 1
    return count


# --- Cost Explorer answers queued in moto (the layer's own bill answers otherwise) ---------------
def ce_result(days: dict[date, dict[str, Decimal]], *, estimated: bool = True) -> dict[str, Any]:
    """A GetCostAndUsage answer (daily, grouped by SERVICE, UnblendedCost) for ``days``."""
    return {
        "ResultsByTime": [
            {
                "TimePeriod": {
                    "Start": day.isoformat(),
                    "End": (day + timedelta(days=1)).isoformat(),
                },
                "Total": {},
                "Groups": [
                    {
                        "Keys": [name],
                        "Metrics": {"UnblendedCost": {"Amount": f"{value:.10f}", "Unit": "USD"}},
                    }
                    for name, value in sorted(services.items())
                ],
                "Estimated": estimated,
            }
            for day, services in sorted(days.items())
        ],
        "DimensionValueAttributes": [],
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }


def ce_results_inject(endpoint: str, results: list[dict[str, Any]]) -> None:
    """Queue answers in the moto server: each new get_cost_and_usage request body takes the
    next one (the same body gets the same answer again). While any are queued, the AWS layer
    lets moto answer instead of its own bill (sandbox/aws/bill.py): for the reader's tests."""
    answer = requests.post(
        f"{endpoint.rstrip('/')}/moto-api/static/ce/cost-and-usage-results",
        json={"results": results},
        timeout=10,
    )
    answer.raise_for_status()
