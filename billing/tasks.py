"""Billing's jobs, the spot price sync and the cost jobs: thin and safe to run twice (each takes a
claim first; a run that finds another in progress does nothing).

The jobs sit above both the prices and the inventory: the spot price sync asks the inventory which
types and zones matter and records their prices in the catalog (``billing.prices.spot_sync``)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.conf import settings

from billing.budgets import services as budget_services
from billing.costs import services as cost_services
from billing.models import PriceGap, PriceKind
from billing.prices import lookups, spot_sync
from clusterweb import clock
from clusterweb.errors import PermanentError
from clusterweb.health.jobs import periodic_job
from clusterweb.tasking import enqueue
from provisioning import inventory
from provisioning.models import PART_SPOT, Node, Pool
from provisioning.tasks import RETRY_MAX, sync_outcome

# The Cost Explorer job runs this often; the service reads only when a read is due
# (COST_EXPLORER_INTERVAL_HOURS, or an hour after a failure), so most runs do nothing.
COST_EXPLORER_CHECK_SECONDS = 3600
# The price lookup job runs this often; a type is asked at most once per lookups.ASK_AGAIN, and
# only while the catalog lacks it, so most runs make no call at all.
PRICE_LOOKUP_SECONDS = 3600


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
    result = cost_services.cost_rows_refresh()
    if result.moved:
        # The figure moved: the budget is evaluated now rather than at the next quarter hour.
        enqueue(budget_evaluate)
    return result.as_json()


# The budget is evaluated this often (and after a cost refresh that moved the figure).
BUDGET_EVALUATE_SECONDS = 900


@shared_task(name="billing.tasks.budget_evaluate")
@periodic_job("budget-evaluate", lambda: BUDGET_EVALUATE_SECONDS)
def budget_evaluate() -> dict:
    """Claim this month's crossed thresholds and last month's statements (each once), and send
    every claimed email that is due. An email that could not be sent stays claimed and is tried
    again with backoff by the next run; a run that sent nothing is still a success."""
    return budget_services.budget_run().as_json()


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


def price_lookup_targets() -> set[str]:
    """The instance types whose price matters: every type the inventory has seen, every type a
    pool names, and the on-demand price gaps somebody met (a pool refused, an estimate)."""
    types = set(Node.objects.values_list("instance_type", flat=True).distinct())
    types.update(
        PriceGap.objects.filter(kind=PriceKind.ON_DEMAND, region=settings.AWS_REGION).values_list(
            "item", flat=True
        )
    )
    for names in Pool.objects.values_list("instance_types", flat=True):
        types.update(name for name in names or [] if isinstance(name, str))
    return types


@shared_task(name="billing.tasks.price_lookups_sync")
@periodic_job("price-lookup", lambda: PRICE_LOOKUP_SECONDS)
def price_lookups_sync() -> dict:
    """Ask AWS's Price List Query API for the on-demand prices the catalog lacks (types seen in
    the inventory or named in a pool). A failed call is recorded per type and asked again after
    lookups.ASK_AGAIN; the job itself fails only if every call failed, so the heartbeat shows
    credentials or IAM trouble."""
    run = lookups.price_lookups_run(region=settings.AWS_REGION, types=price_lookup_targets())
    if run.asked and len(run.failed) == len(run.asked):
        raise PermanentError(
            "price lookup: " + "; ".join(f"{k}: {v}" for k, v in run.failed.items()),
            system="aws",
        )
    return run.as_json()
