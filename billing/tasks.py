"""Billing's jobs, the spot price sync and the cost jobs: thin and safe to run twice (each takes a
claim first; a run that finds another in progress does nothing).

The jobs sit above both the prices and the inventory: the spot price sync asks the inventory which
types and zones matter and records their prices in the catalog (``billing.prices.spot_sync``)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.conf import settings

from billing.costs import services as cost_services
from billing.prices import spot_sync
from clusterweb import clock
from clusterweb.errors import PermanentError
from clusterweb.health.jobs import periodic_job
from provisioning import inventory
from provisioning.models import PART_SPOT
from provisioning.tasks import RETRY_MAX, sync_outcome

# The Cost Explorer job runs this often; the service reads only when a read is due
# (COST_EXPLORER_INTERVAL_HOURS, or an hour after a failure), so most runs do nothing.
COST_EXPLORER_CHECK_SECONDS = 3600


def spot_prices_run(*, now: datetime | None = None) -> inventory.SyncResult:
    """One spot price sync: under its own claim, the spot price points since the region's last
    sync for the pools' instance types and zones and those of running spot nodes, recorded as
    the ``spot_prices`` sync part."""
    now = clock.now() if now is None else now
    token = inventory.sync_claim(inventory.SPOT_CLAIM, now=now)
    if not token:
        return inventory.SyncResult(claimed=False, at=now)
    try:
        result = inventory.SyncResult(claimed=True, at=now)
        result.parts[PART_SPOT] = inventory.part_run(
            PART_SPOT,
            lambda at: spot_sync.spot_prices_read(*inventory.spot_price_targets(), at),
            now,
        )
        return result
    finally:
        inventory.sync_release(inventory.SPOT_CLAIM, token)


@shared_task(name="billing.tasks.spot_prices_sync", bind=True, max_retries=RETRY_MAX)
@periodic_job("spot-price-sync", lambda: settings.SPOT_PRICE_SYNC_SECONDS)
def spot_prices_sync(self) -> dict:
    """AWS throttling is retried with the inventory sync's backoff; a permanent failure fails the
    job (the heartbeat shows it)."""
    return sync_outcome(self, spot_prices_run())


@shared_task(name="billing.tasks.cost_refresh")
@periodic_job("cost-refresh", lambda: settings.COST_REFRESH_SECONDS)
def cost_refresh() -> dict:
    return cost_services.cost_rows_refresh().as_json()


@shared_task(name="billing.tasks.cost_explorer_read")
@periodic_job("cost-explorer", lambda: COST_EXPLORER_CHECK_SECONDS)
def cost_explorer_read() -> dict:
    """A failed read is recorded (the dashboard says when the bill was last read) and tried
    again in an hour; a permanent failure (credentials, IAM) also fails the job, so the
    heartbeat shows it and a late job alerts the admins."""
    outcome = cost_services.cost_explorer_refresh()
    if outcome.permanent:
        errors = "; ".join(read.error for read in outcome.reads if read.error)
        raise PermanentError(f"Cost Explorer: {errors}", system="aws")
    return outcome.as_json()
