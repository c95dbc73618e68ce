"""The daily cleanup: expired sessions, stale throttle rows and audit events past their retention
are removed; everything still in use stays."""

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session

from clusterweb import clock
from clusterweb.accounts.models import LoginThrottle, SignupSiteSession, Throttle
from clusterweb.audit.models import AuditEvent
from clusterweb.audit.services import audit_record
from clusterweb.celery import beat_schedule
from clusterweb.health.tasks import cleanup

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def _session(key: str, expires_in: timedelta) -> None:
    Session.objects.create(session_key=key, session_data="", expire_date=clock.now() + expires_in)


def test_it_runs_daily_from_beat():
    assert beat_schedule()["cleanup"] == {
        "task": "clusterweb.health.tasks.cleanup",
        "schedule": 86400.0,
    }


def test_it_removes_expired_sessions_and_keeps_live_ones():
    _session("expired", -timedelta(minutes=1))
    _session("live", timedelta(hours=1))
    result = cleanup()
    assert set(Session.objects.values_list("session_key", flat=True)) == {"live"}
    assert result["sessions"] == 1


def test_it_removes_the_signup_sites_expired_sessions_too():
    for key, expires_in in (("old", -timedelta(minutes=1)), ("open", timedelta(hours=1))):
        SignupSiteSession.objects.create(
            session_key=key, session_data="", expire_date=clock.now() + expires_in
        )
    result = cleanup()
    assert set(SignupSiteSession.objects.values_list("session_key", flat=True)) == {"open"}
    assert result["sessions"] == 1


def test_it_removes_throttle_rows_whose_window_has_passed(settings):
    now = clock.now()
    window = timedelta(seconds=settings.ACCOUNTS_ATTEMPT_WINDOW_SECONDS)
    Throttle.objects.create(scope="signup", key="old", attempts=3, window_started_at=now - window)
    Throttle.objects.create(scope="signup", key="fresh", attempts=3, window_started_at=now)
    lockout = timedelta(seconds=settings.LOGIN_LOCKOUT_WINDOW_SECONDS)
    LoginThrottle.objects.create(username="old", failures=2, first_failure_at=now - 2 * lockout)
    LoginThrottle.objects.create(username="counting", failures=2, first_failure_at=now)
    LoginThrottle.objects.create(
        username="locked",
        failures=5,
        first_failure_at=now - 2 * lockout,
        locked_until=now + timedelta(minutes=5),
    )
    result = cleanup()
    assert list(Throttle.objects.values_list("key", flat=True)) == ["fresh"]
    assert set(LoginThrottle.objects.values_list("username", flat=True)) == {"counting", "locked"}
    assert result["throttles"] == 2


def test_audit_events_are_kept_400_days_by_default_then_removed(settings, shared_clock):
    assert settings.AUDIT_RETENTION_DAYS == 400
    audit_record(action="login.failed", actor_username="mallory")
    shared_clock.advance(200 * 86400)
    audit_record(action="login.failed", actor_username="eve")
    shared_clock.advance(201 * 86400)
    result = cleanup()
    left = set(AuditEvent.objects.values_list("actor_username", flat=True))
    assert "mallory" not in left and "eve" in left
    assert result["audit_events"] == 1


def test_the_audit_retention_is_configurable(settings, shared_clock):
    settings.AUDIT_RETENTION_DAYS = 30
    audit_record(action="login.failed", actor_username="mallory")
    shared_clock.advance(31 * 86400)
    cleanup()
    assert not AuditEvent.objects.filter(actor_username="mallory").exists()


def test_running_it_twice_removes_nothing_more():
    _session("expired", -timedelta(minutes=1))
    first = cleanup()
    second = cleanup()
    assert first["sessions"] == 1
    assert second == {"sessions": 0, "throttles": 0, "audit_events": 0}
