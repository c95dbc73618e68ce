"""Cost jobs: thin and safe to run twice (each service takes a claim first; a run that finds
another in progress does nothing)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from billing.costs import services as cost_services
from clusterweb.errors import PermanentError
from clusterweb.health.jobs import periodic_job

# The Cost Explorer job runs this often; the service reads only when a read is due
# (COST_EXPLORER_INTERVAL_HOURS, or an hour after a failure), so most runs do nothing.
COST_EXPLORER_CHECK_SECONDS = 3600


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
