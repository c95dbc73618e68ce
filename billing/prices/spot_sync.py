"""The spot price sync's work: read describe_spot_price_history through the AWS adapter for the
instance types and zones it is given, since the region's last spot sync, and record the points
(``billing.prices.services.spot_price_points_record``). Which types and zones matter is the
inventory's answer (pools, running spot nodes), passed in by the job (``billing.tasks``): this
module imports nothing from ``provisioning``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from billing.prices import selectors as prices
from billing.prices.services import SpotPoint, spot_price_points_record
from clusterweb.errors import PermanentError
from clusterweb.integrations import aws

# How far back the first spot price sync reads (later ones start at the previous sync).
SPOT_FIRST_WINDOW = timedelta(days=1)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def spot_prices_read(types: Iterable[str], zones: set[str] | None, now: datetime) -> dict[str, Any]:
    """Record the spot price points of ``types`` in ``zones`` (None: any zone of the region)
    since the region's last spot sync; the summary the sync part stores."""
    types = list(types)
    region = settings.AWS_REGION
    if not types:
        return {"types": 0, "received": 0, "new": 0}
    last = prices.spot_sync_last(region)
    since = now - SPOT_FIRST_WINDOW
    if last is not None and since < last.synced_at <= now:
        since = last.synced_at
    history = aws.spot_price_history(types, since)
    points = [
        SpotPoint(region, p.zone, p.instance_type, p.price, _utc(p.at))
        for p in history
        if p.zone.startswith(region)
        and (zones is None or p.zone in zones)
        and p.price.is_finite()
        and p.price > 0
    ]
    try:
        recorded = spot_price_points_record(points=points, synced_at=now, regions=[region])
    except ValueError as exc:  # AWS answered something the catalog refuses to store
        raise PermanentError(str(exc), system="aws", code="spot_price_invalid") from exc
    return {"types": len(types), "received": recorded.received, "new": recorded.new}
