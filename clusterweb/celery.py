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
    }


@app.on_after_configure.connect
def _setup_periodic_tasks(sender: Celery, **kwargs: object) -> None:
    sender.conf.beat_schedule = beat_schedule()
