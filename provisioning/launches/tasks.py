"""Launch request tasks: thin. Each loads by id, claims what it works on with a conditional
UPDATE (in the service), and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from clusterweb.errors import TransientError
from clusterweb.health.jobs import periodic_job
from clusterweb.tasking import enqueue, enqueue_in, enqueue_on_commit
from provisioning.launches import execution, outcomes, services

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
    """Requests undecided for LAUNCH_APPROVAL_HOURS become ``expired``; the review and decision
    emails whose task was lost (broker down after the commit) are enqueued again."""
    admins, requesters = services.launch_notices_unsent()
    for request_id in admins:
        enqueue_on_commit(launch_admins_notify, request_id)
    for request_id in requesters:
        enqueue_on_commit(launch_requester_notify, request_id)
    return services.expire_pending()


# --- Launch execution (issue 18) -----------------------------------------------------------------
@shared_task(name="provisioning.launches.tasks.launch_advance")
def launch_advance(request_id: int) -> None:
    """Run the launch request's next step (if no other worker runs one), then enqueue the look
    after it. Never retried by Celery: the step engine sorts errors itself, and the database
    row, not this message, says what is left to do (the sweeper re-enqueues a lost message)."""
    delay = execution.launch_advance(request_id=request_id)
    if delay is not None:
        enqueue_in(delay, launch_advance, request_id)


@shared_task(name="provisioning.launches.tasks.launches_sweep")
@periodic_job("launch-sweep", lambda: settings.LAUNCH_SWEEP_SECONDS)
def launches_sweep() -> dict:
    # Time limits and cost caps first: a launch past its hours or its granted maximum cost
    # begins stopping, and the sweep below finds it.
    ended = execution.launches_time_limit()
    capped = execution.launches_cost_cap()
    ids = execution.launches_sweep()
    sent = sum(enqueue(launch_advance, request_id) for request_id in ids)
    untold = execution.launches_unnotified()
    mails = sum(enqueue(launch_ended_notify, request_id) for request_id in untold)
    return {
        "time_limit": len(ended),
        "cost_cap": len(capped),
        "overdue": len(ids),
        "enqueued": sent,
        "emails_enqueued": mails,
    }


@shared_task(name="provisioning.launches.tasks.launch_ended_notify", bind=True, max_retries=5)
def launch_ended_notify(self, request_id: int) -> None:
    """A launch ended: email its requester the quote beside the actual cost (once)."""
    try:
        outcomes.launch_ended_notify(request_id=request_id)
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=60) from None
