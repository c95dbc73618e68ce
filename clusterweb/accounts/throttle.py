"""Rate limits for the forms that strangers can reach, kept in the database (not Redis: a Redis
outage must not switch them off, and the web and signup sites share the database).

Every client reaches Clusterweb through the bastion, so all share one address: limits are keyed
on what an attempt is about (an invitation, a reset link, a user name, an email address), as the
login lockout (``LoginThrottle``) is. A fixed window: at most ``ACCOUNTS_ATTEMPT_LIMIT``
attempts per key within ``ACCOUNTS_ATTEMPT_WINDOW_SECONDS``; the attempt over the limit is
refused and not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from clusterweb import clock
from clusterweb.accounts.models import Throttle

# Scopes: what is being attempted.
SIGNUP_SUBMIT = "signup"  # key: the invitation's signup id
RESET_LINK = "reset.link"  # key: the reset link's id
RESET_USER = "reset.user"  # key: the user name
RESET_REQUEST_ADDRESS = "reset.address"  # key: the email address, lowercased
RESET_REQUEST_USER = "reset.request_user"  # key: the user name (self-service requests)
PASSWORD_CHANGE = "password.change"  # noqa: S105 - a scope name; key: the user name


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_seconds: int = 0

    @property
    def minutes(self) -> int:
        return max(1, round(self.retry_after_seconds / 60))


def attempt(*pairs: tuple[str, str]) -> Verdict:
    """Count one attempt under each ``(scope, key)``. Refused (and counted nowhere) when any key
    has used up its window already."""
    now = clock.now()
    window = timedelta(seconds=settings.ACCOUNTS_ATTEMPT_WINDOW_SECONDS)
    limit = settings.ACCOUNTS_ATTEMPT_LIMIT
    with transaction.atomic():
        rows = []
        for scope, key in pairs:
            row, _ = Throttle.objects.select_for_update().get_or_create(
                scope=scope, key=key[:255], defaults={"window_started_at": now}
            )
            if now - row.window_started_at >= window:
                row.attempts, row.window_started_at = 0, now
            rows.append(row)
        full = [row for row in rows if row.attempts >= limit]
        if full:
            until = max(row.window_started_at + window for row in full)
            return Verdict(False, int((until - now).total_seconds()) + 1)
        for row in rows:
            row.attempts += 1
            row.save(update_fields=["attempts", "window_started_at"])
    return Verdict(True)


def forget(scope: str, key: str) -> None:
    """Clear a key's count (after the action it guards succeeded)."""
    Throttle.objects.filter(scope=scope, key=key[:255]).delete()
