"""The Celery app and the beat schedule.

Every periodic task is a thin wrapper decorated with ``periodic_job`` (clusterweb.health.jobs), so
it records a heartbeat the watchdog checks.
"""

from __future__ import annotations

import logging
import os

from celery import Celery, signals
from celery.signals import after_setup_logger, after_setup_task_logger

from clusterweb.health import liveness

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterweb.settings")

app = Celery("clusterweb")


@app.on_configure.connect
def _check_configuration(sender: Celery, **kwargs: object) -> None:
    # Before Celery reads the settings: a worker or beat with a bad variable prints the same one
    # line as manage.py and exits 2, instead of a hundred-line traceback.
    from clusterweb.startup import exit_on_configuration_error

    exit_on_configuration_error()


app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    lambda: [
        "clusterweb.health",
        "clusterweb.accounts.signup",
        "clusterweb.accounts.directory",
        "clusterweb.accounts.selfservice",
        "provisioning",
        "provisioning.launches",
        "billing",
    ]
)


@after_setup_logger.connect
@after_setup_task_logger.connect
def escape_worker_log(logger, **kwargs) -> None:
    """The worker and beat set up their own log handlers (not settings.LOGGING's): escape the
    control characters of their messages too (clusterweb.logs)."""
    from clusterweb.logs import EscapingFormatter

    for handler in logger.handlers:
        if not isinstance(handler.formatter, EscapingFormatter):
            handler.setFormatter(EscapingFormatter(inner=handler.formatter or logging.Formatter()))


def beat_schedule() -> dict[str, dict]:
    from django.conf import settings

    from billing.tasks import BUDGET_EVALUATE_SECONDS, PRICE_LOOKUP_SECONDS

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
        # The budget: compares this month's actual spend and forecast with each threshold and
        # mails each crossed threshold once (a database claim first), retries unsent claims with
        # backoff, and on the first days of a month sends last month's statements. Every 15
        # minutes (and after a cost refresh that moved the figure): AWS Budgets lags 8-24 h,
        # Kubecost checks every 8 h; a launch costing a few dollars an hour is caught early.
        "budget-evaluate": {
            "task": "billing.tasks.budget_evaluate",
            "schedule": float(BUDGET_EVALUATE_SECONDS),
        },
        # The launch sweeper: enqueues again launches and stops that no task carries (a lost
        # message, a worker killed mid-step, Redis down when they were enqueued). The database
        # is the truth, the queue a hint; every minute, so a stuck launch resumes quickly.
        "launch-sweep": {
            "task": "provisioning.launches.tasks.launches_sweep",
            "schedule": float(settings.LAUNCH_SWEEP_SECONDS),
        },
        # The launch request sweeper: a request nobody decided within LAUNCH_APPROVAL_HOURS
        # becomes `expired` and its requester is told, so no stale request is approved days
        # later at a price nobody looked at. Every few minutes: expiry is measured in hours.
        "launch-expire": {
            "task": "provisioning.launches.tasks.launch_expire",
            "schedule": float(settings.LAUNCH_EXPIRE_SWEEP_SECONDS),
        },
        # The daily cleanup: expired sessions, rate-limit rows whose window has passed, and audit
        # events older than AUDIT_RETENTION_DAYS. Daily is enough: nothing reads those rows, they
        # only grow the tables.
        "cleanup": {
            "task": "clusterweb.health.tasks.cleanup",
            "schedule": 86400.0,
        },
        # The bill from Cost Explorer: hourly check, but a read only every
        # COST_EXPLORER_INTERVAL_HOURS (each request costs $0.01 and AWS's data changes at most
        # three times a day). The only caller of get_cost_and_usage: no page or command calls it.
        "cost-explorer": {
            "task": "billing.tasks.cost_explorer_read",
            "schedule": 3600.0,
        },
    }


# The worker and beat record their own heartbeats (clusterweb/health/liveness.py).
signals.worker_ready.connect(liveness.worker_ready, weak=False)
signals.task_prerun.connect(liveness.task_prerun, weak=False)
signals.beat_init.connect(liveness.beat_init, weak=False)
signals.before_task_publish.connect(liveness.before_task_publish, weak=False)


@app.on_after_configure.connect
def _setup_periodic_tasks(sender: Celery, **kwargs: object) -> None:
    sender.conf.beat_schedule = beat_schedule()
