"""Signup tasks: thin. Each loads by id, claims what it works on with a conditional UPDATE (in
the service or the model's queryset), calls one service, and is safe to run twice.

Task names are kept from before the accounts package was split by concern
(``clusterweb.accounts.tasks.*``): beat schedules and queued messages name a task by this string."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from clusterweb.accounts.signup import provisioning, services
from clusterweb.errors import TransientError
from clusterweb.health.jobs import periodic_job

# Mail and directory hiccups while telling people: a few tries a minute apart, then the sweeper.
_NOTIFY_RETRY = {"max_retries": 5, "countdown": 60}


@shared_task(name="clusterweb.accounts.tasks.signup_review", bind=True)
def signup_review(self, signup_id: int) -> None:
    """A signup was submitted: auto-approve it, or ask the admins."""
    try:
        services.signup_review_request(signup_id=signup_id)
    except TransientError as exc:
        raise self.retry(exc=exc, **_NOTIFY_RETRY) from None


@shared_task(
    name="clusterweb.accounts.tasks.signup_provision",
    bind=True,
    max_retries=provisioning.PROVISION_MAX_RETRIES,
)
def signup_provision(self, signup_id: int) -> None:
    """An approved signup: write its LDAP account. Claims the signup's provisioning lease first;
    no claim (another worker has it, or it is done) means nothing to do."""
    signup = provisioning.signup_provision_claim(signup_id=signup_id)
    if signup is None:
        return
    delay = provisioning.signup_provision_attempt(signup=signup, retries=self.request.retries)
    if delay is not None:
        raise self.retry(countdown=delay)


@shared_task(name="clusterweb.accounts.tasks.signup_rejection_notify", bind=True)
def signup_rejection_notify(self, signup_id: int) -> None:
    try:
        services.signup_rejection_notify(signup_id=signup_id)
    except TransientError as exc:
        raise self.retry(exc=exc, **_NOTIFY_RETRY) from None


@shared_task(name="clusterweb.accounts.tasks.signup_sweep")
@periodic_job("signup-sweep", lambda: settings.SIGNUP_SWEEP_SECONDS)
def signup_sweep() -> dict[str, int]:
    return services.signups_sweep()
