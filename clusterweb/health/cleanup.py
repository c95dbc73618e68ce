"""The daily cleanup: rows that only grow and that nothing reads once they are stale."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models import Q

from clusterweb import clock
from clusterweb.accounts.models import LoginThrottle, SignupSiteSession, Throttle
from clusterweb.audit.models import AuditEvent


def database_cleanup() -> dict[str, int]:
    """Remove expired sessions (of both sites), rate-limit rows whose window has passed (a
    username still locked keeps its row) and audit events older than ``AUDIT_RETENTION_DAYS``.
    Safe to run twice: a second run finds nothing. Returns how many rows of each kind went."""
    now = clock.now()
    sessions, _ = Session.objects.filter(expire_date__lt=now).delete()
    signup_sessions, _ = SignupSiteSession.objects.filter(expire_date__lt=now).delete()
    window = timedelta(seconds=settings.ACCOUNTS_ATTEMPT_WINDOW_SECONDS)
    throttles, _ = Throttle.objects.filter(window_started_at__lte=now - window).delete()
    # A login throttle counts failures within its window and may lock the name for a while:
    # stale once both are over.
    lockout_window = timedelta(seconds=settings.LOGIN_LOCKOUT_WINDOW_SECONDS)
    logins, _ = (
        LoginThrottle.objects.filter(
            Q(first_failure_at__isnull=True) | Q(first_failure_at__lte=now - lockout_window)
        )
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .delete()
    )
    horizon = now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    audit_events, _ = AuditEvent.objects.filter(at__lt=horizon).delete()
    return {
        "sessions": sessions + signup_sessions,
        "throttles": throttles + logins,
        "audit_events": audit_events,
    }
