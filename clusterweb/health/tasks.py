from __future__ import annotations

from celery import shared_task
from django.conf import settings

from clusterweb import clock
from clusterweb.failpoints import failpoint
from clusterweb.health import services
from clusterweb.health.jobs import periodic_job


@shared_task(name="clusterweb.health.tasks.watchdog")
@periodic_job("watchdog", lambda: settings.HEARTBEAT_INTERVAL_SECONDS)
def watchdog() -> list[str]:
    services.heartbeats_register_scheduled()
    return services.late_jobs_alert()


@shared_task(name="clusterweb.health.tasks.ping")
def ping(value: str) -> dict[str, str]:
    """A round trip through the broker and a worker: echoes ``value`` with the worker's clock.
    Passes the ``health.ping`` failpoint, so tests can show failpoints reach a worker."""
    failpoint("health.ping")
    return {"echo": value, "now": clock.now().isoformat()}
