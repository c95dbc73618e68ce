"""Believable spot prices for the sandbox, labelled as simulated.

There is no spot market in the sandbox. ``spot_share`` gives a stable share of the on-demand price
(between 28% and 38%, varying by type, zone and day, deterministically): `make run`'s replayed
month (``sandbox/history.py``) sets the AWS layer's spot price history with it, and the product's
own spot price sync reads them from the layer as it would from AWS.

``sandbox_spot_prices_seed`` writes such points straight into the database instead (one a day per
zone for the last days, for every type the catalog prices in the region) and records a spot price
sync, for tests that need prices without the layer. Points already stored are left as they are.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from billing.prices import selectors
from billing.prices.services import SpotPoint, SpotRecordResult, spot_price_points_record
from clusterweb import clock

SANDBOX_SPOT_SOURCE = "sandbox (simulated spot price, not from AWS)"
ZONE_SUFFIXES = ("a", "b", "c")
LOW, SPREAD = Decimal("0.28"), Decimal("0.10")


def spot_share(instance_type: str, zone: str, day: str) -> Decimal:
    """A stable share of on-demand in [0.28, 0.38) for one type, zone and day."""
    digest = hashlib.sha256(f"{instance_type}|{zone}|{day}".encode()).digest()
    return LOW + SPREAD * Decimal(int.from_bytes(digest[:4], "big")) / Decimal(2**32)


def sandbox_spot_prices_seed(
    *, region: str = "eu-west-1", days: int = 7, now: datetime | None = None
) -> SpotRecordResult:
    """Seed simulated spot price points for ``region`` and record a spot price sync at ``now``."""
    now = clock.now() if now is None else now
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    points = []
    for instance_type in selectors.instance_types(region):
        on_demand = selectors.on_demand_quote(region, instance_type, now)
        if not on_demand.known:
            continue
        for offset, suffix in enumerate(ZONE_SUFFIXES):
            zone = f"{region}{suffix}"
            for day in range(days):
                # Zones change price at different hours, as AWS's do.
                at = start + timedelta(days=day, hours=3 + 5 * offset)
                if at > now:
                    continue
                share = spot_share(instance_type, zone, at.date().isoformat())
                price = (on_demand.price * share).quantize(
                    Decimal("0.0001"), rounding=ROUND_HALF_UP
                )
                points.append(
                    SpotPoint(region, zone, instance_type, max(price, Decimal("0.0001")), at)
                )
    return spot_price_points_record(
        points=points, synced_at=now, regions=[region], source=SANDBOX_SPOT_SOURCE
    )
