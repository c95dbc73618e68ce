"""Launch request tasks: thin. Each loads by id, claims what it works on with a conditional
UPDATE (in the service), and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from clusterweb.errors import TransientError
from clusterweb.health.jobs import periodic_job
from provisioning.launches import services

# Mail hiccups: a few tries a minute apart (far below Redis's visibility timeout).
_NOTIFY_RETRY = {"max_retries": 5, "countdown": 60}


@shared_task(name="provisioning.launches.tasks.launch_admins_notify", bind=True)
def launch_admins_notify(self, request_id: int) -> None:
    """A request waits for approval: email every admin (once)."""
    try:
        services.launch_admins_notify(request_id=request_id)
    except TransientError as exc:
        raise self.retry(exc=exc, **_NOTIFY_RETRY) from None


@shared_task(name="provisioning.launches.tasks.launch_requester_notify", bind=True)
def launch_requester_notify(self, request_id: int) -> None:
    """A request was decided or expired: email its requester (once per state)."""
    try:
        services.launch_requester_notify(request_id=request_id)
    except TransientError as exc:
        raise self.retry(exc=exc, **_NOTIFY_RETRY) from None


@shared_task(name="provisioning.launches.tasks.launch_expire")
@periodic_job("launch-expire", lambda: settings.LAUNCH_EXPIRE_SWEEP_SECONDS)
def launch_expire() -> int:
    """Requests undecided for LAUNCH_APPROVAL_HOURS become ``expired``."""
    return services.expire_pending()
