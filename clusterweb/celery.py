"""The Celery app and the beat schedule.

Every periodic task is a thin wrapper decorated with ``periodic_job`` (clusterweb.health.jobs), so
it records a heartbeat the watchdog checks.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterweb.settings")

app = Celery("clusterweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    lambda: ["clusterweb.health", "clusterweb.accounts", "provisioning", "billing"]
)


def beat_schedule() -> dict[str, dict]:
    from django.conf import settings

    from billing.tasks import PRICE_LOOKUP_SECONDS

    return {
        # The watchdog: proves beat and a worker are alive, and alerts admins when any periodic
        # job is more than two intervals late. Cost guardrails depend on it.
        "watchdog": {
            "task": "clusterweb.health.tasks.watchdog",
            "schedule": float(settings.HEARTBEAT_INTERVAL_SECONDS),
        },
        # The signup sweeper: expires invitations past their time and enqueues again approvals
        # stuck in `provisioning` (a lost task, a killed worker, retries exhausted while the
        # directory was down), so an approval is never dropped.
        "signup-sweep": {
            "task": "clusterweb.accounts.tasks.signup_sweep",
            "schedule": float(settings.SIGNUP_SWEEP_SECONDS),
        },
        # The directory sync: copies people, groups, SSH keys and locks into the database, which
        # is all the Users and profile pages read. Clusterweb's own writes refresh the copy at
        # once; this catches changes made in the directory by other means.
        "directory-sync": {
            "task": "clusterweb.accounts.tasks.directory_sync",
            "schedule": float(settings.DIRECTORY_SYNC_SECONDS),
        },
        # The inventory sync: reads EC2, Kubernetes, volumes, storage sizes and public IPv4
        # addresses into the database, which is all the Nodes page reads. Every minute, so a
        # forgotten or interrupted node shows up while it still costs little.
        "inventory-sync": {
            "task": "provisioning.tasks.inventory_sync",
            "schedule": float(settings.INVENTORY_SYNC_SECONDS),
        },
        # The spot price sync: spot prices of the pools' types and zones. Hourly is plenty for
        # prices that move a few times a day, and stays well inside SPOT_PRICE_MAX_AGE_HOURS, past
        # which spot prices count as unknown.
        "spot-price-sync": {
            "task": "billing.tasks.spot_prices_sync",
            "schedule": float(settings.SPOT_PRICE_SYNC_SECONDS),
        },
        # The price lookup: asks AWS's Price List Query API for the on-demand price of any type
        # the inventory saw or a pool names that the catalog lacks, so no node stays unpriced
        # (a type is asked at most once a day; most runs make no call). Hourly: a new type is
        # priced within the hour, well before a month's estimate matters.
        "price-lookup": {
            "task": "billing.tasks.price_lookups_sync",
            "schedule": float(PRICE_LOOKUP_SECONDS),
        },
        # The cost refresh: recomputes this month's cost rows from the inventory and the price
        # catalog (database only). At the inventory sync's pace, so the month-to-date estimate
        # and the dashboard follow what runs within a minute.
        "cost-refresh": {
            "task": "billing.tasks.cost_refresh",
            "schedule": float(settings.COST_REFRESH_SECONDS),
        },
        # The bill from Cost Explorer: hourly check, but a read only every
        # COST_EXPLORER_INTERVAL_HOURS (each request costs $0.01 and AWS's data changes at most
        # three times a day). The only caller of get_cost_and_usage: no page or command calls it.
        "cost-explorer": {
            "task": "billing.tasks.cost_explorer_read",
            "schedule": 3600.0,
        },
    }


@app.on_after_configure.connect
def _setup_periodic_tasks(sender: Celery, **kwargs: object) -> None:
    sender.conf.beat_schedule = beat_schedule()
