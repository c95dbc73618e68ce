"""Inventory tasks (the spot price sync is billing's: ``billing.tasks``): thin, periodic, safe to
run twice (the services claim a row first; a run that finds another in progress does nothing)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from clusterweb.errors import PermanentError, TransientError
from clusterweb.health.jobs import periodic_job
from clusterweb.tasking import enqueue, enqueue_in
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


# --- Launch execution (issue 18) -----------------------------------------------------------------
@shared_task(name="provisioning.tasks.launch_advance")
def launch_advance(request_id: int) -> None:
    """Run the launch request's next step (if no other worker runs one), then enqueue the look
    after it. Never retried by Celery: the step engine sorts errors itself, and the database
    row, not this message, says what is left to do (the sweeper re-enqueues a lost message)."""
    from provisioning.launches import execution

    delay = execution.launch_advance(request_id=request_id)
    if delay is not None:
        enqueue_in(delay, launch_advance, request_id)


@shared_task(name="provisioning.tasks.launches_sweep")
@periodic_job("launch-sweep", lambda: settings.LAUNCH_SWEEP_SECONDS)
def launches_sweep() -> dict:
    from provisioning.launches import execution

    # Time limits first: a launch past its hours begins stopping, and the sweep below finds it.
    ended = execution.launches_time_limit()
    ids = execution.launches_sweep()
    sent = sum(enqueue(launch_advance, request_id) for request_id in ids)
    untold = execution.launches_unnotified()
    mails = sum(enqueue(launch_ended_notify, request_id) for request_id in untold)
    return {
        "time_limit": len(ended),
        "overdue": len(ids),
        "enqueued": sent,
        "emails_enqueued": mails,
    }


@shared_task(name="provisioning.tasks.launch_ended_notify", bind=True, max_retries=5)
def launch_ended_notify(self, request_id: int) -> None:
    """A launch ended: email its requester the quote beside the actual cost (once)."""
    from provisioning.launches import outcomes

    try:
        outcomes.launch_ended_notify(request_id=request_id)
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=60) from None
