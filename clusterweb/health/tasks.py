from __future__ import annotations

from celery import shared_task
from django.conf import settings

from clusterweb.audit.services import audit_record
from clusterweb.failpoints import failpoint
from clusterweb.health import services
from clusterweb.health.jobs import periodic_job


@shared_task(name="clusterweb.health.tasks.watchdog")
@periodic_job("watchdog", lambda: settings.HEARTBEAT_INTERVAL_SECONDS)
def watchdog() -> list[str]:
    services.heartbeats_register_scheduled()
    return services.late_jobs_alert()


@shared_task(name="clusterweb.health.tasks.ping")
def ping(value: str) -> None:
    """A round trip through the broker and a worker, for diagnostics: records ``health.ping`` in
    the audit log, stamped by the worker's clock. Passes the ``health.ping`` failpoint first, so
    tests can show that failpoints reach a worker."""
    failpoint("health.ping")
    audit_record(action="health.ping", target=value[:255], source="task")


@shared_task(name="clusterweb.health.tasks.cleanup")
@periodic_job("cleanup", lambda: 86400)
def cleanup() -> dict[str, int]:
    from clusterweb.health.cleanup import database_cleanup

    return database_cleanup()
