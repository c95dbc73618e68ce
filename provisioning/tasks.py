"""Inventory tasks (the spot price sync is billing's: ``billing.tasks``): thin, periodic, safe to
run twice (the services claim a row first; a run that finds another in progress does nothing)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from clusterweb.errors import PermanentError, TransientError
from clusterweb.health.jobs import periodic_job
from provisioning import inventory

# AWS throttling or an unreachable API server: try again soon, a few times, then leave it to the
# next beat run. Countdowns stay far below Redis's visibility timeout (an hour).
RETRY_MAX = 4
RETRY_FIRST_SECONDS = 5
RETRY_CAP_SECONDS = 60


def retry_countdown(retries: int) -> int:
    """Seconds before retry number ``retries + 1``: 5, 10, 20, 40, then 60 at most."""
    return min(RETRY_FIRST_SECONDS * 2**retries, RETRY_CAP_SECONDS)


def sync_outcome(task, result: inventory.SyncResult) -> dict:
    """Retry a transient failure with backoff; raise a permanent one, so the heartbeat records
    it (the parts that worked are recorded either way)."""
    if result.transient_failure:
        raise task.retry(
            countdown=retry_countdown(task.request.retries),
            exc=TransientError(result.errors),
        )
    if result.claimed and not result.ok:
        raise PermanentError(result.errors)
    return result.as_json()


@shared_task(name="provisioning.tasks.inventory_sync", bind=True, max_retries=RETRY_MAX)
@periodic_job("inventory-sync", lambda: settings.INVENTORY_SYNC_SECONDS)
def inventory_sync(self) -> dict:
    return sync_outcome(self, inventory.inventory_sync())
