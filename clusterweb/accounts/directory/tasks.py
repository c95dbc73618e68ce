"""Directory administration's tasks: the periodic sync, and stopping a disabled person's
JupyterHub servers. Thin, like every task here."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from clusterweb.accounts.directory import services
from clusterweb.errors import TransientError
from clusterweb.health.jobs import periodic_job


# The task name is kept from before the accounts package was split by concern: beat schedules
# (clusterweb/celery.py) and queued messages name the task by this string.
@shared_task(name="clusterweb.accounts.tasks.directory_sync")
@periodic_job("directory-sync", lambda: settings.DIRECTORY_SYNC_SECONDS)
def directory_sync() -> dict[str, int]:
    """Copy the directory's people, groups, keys and locks into the database (the Users and
    profile pages read the copy)."""
    return services.directory_users_sync()


# Hub hiccups: a few tries a minute apart (stopping is idempotent).
_STOP_RETRY = {"max_retries": 10, "countdown": 60}


@shared_task(name="clusterweb.accounts.tasks.account_servers_stop", bind=True)
def account_servers_stop(self, uid: str) -> list[str]:
    """Stop every JupyterHub server of a disabled person (enqueued by ``account_disable``, never
    run in the page request)."""
    try:
        return services.account_servers_stop(uid=uid)
    except TransientError as exc:
        raise self.retry(exc=exc, **_STOP_RETRY) from None
