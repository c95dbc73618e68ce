"""Directory administration's periodic task: thin, like every task here."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from clusterweb.accounts.directory import services
from clusterweb.health.jobs import periodic_job


# The task name is kept from before the accounts package was split by concern: beat schedules
# (clusterweb/celery.py) and queued messages name the task by this string.
@shared_task(name="clusterweb.accounts.tasks.directory_sync")
@periodic_job("directory-sync", lambda: settings.DIRECTORY_SYNC_SECONDS)
def directory_sync() -> dict[str, int]:
    """Copy the directory's people, groups, keys and locks into the database (the Users and
    profile pages read the copy)."""
    return services.directory_users_sync()
