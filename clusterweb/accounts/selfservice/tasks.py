"""Self-service's task: the lookup behind a reset request, after the response."""

from __future__ import annotations

from celery import shared_task

from clusterweb.accounts.selfservice import services
from clusterweb.errors import TransientError

# Mail and directory hiccups while telling people: a few tries a minute apart.
_NOTIFY_RETRY = {"max_retries": 5, "countdown": 60}


# The task name is kept from before the accounts package was split by concern: queued messages
# name the task by this string.
@shared_task(name="clusterweb.accounts.tasks.password_reset_self_service", bind=True)
def password_reset_self_service(self, email: str) -> None:
    """A self-service reset request: look the address up and send the links, after the
    response (which says the same whether the address is known or not)."""
    try:
        services.password_reset_self_service(email=email)
    except TransientError as exc:
        raise self.retry(exc=exc, **_NOTIFY_RETRY) from None
