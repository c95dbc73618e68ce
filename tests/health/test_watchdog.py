"""Heartbeats, the late-job banner, the one-email-per-incident alert, and /healthz."""

from datetime import timedelta

import pytest
from django.urls import reverse

from clusterweb import clock
from clusterweb.health import services
from clusterweb.health.models import Heartbeat
from clusterweb.health.tasks import watchdog

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def watchdog_ran_now(settings):
    """Every scheduled job (the watchdog and whatever else beat runs) has just succeeded."""
    services.heartbeats_register_scheduled()
    Heartbeat.objects.update(last_ok_at=clock.now())


def test_every_scheduled_job_gets_a_heartbeat_row(settings):
    services.heartbeats_register_scheduled()
    beat = Heartbeat.objects.get(pk="watchdog")
    assert beat.interval_seconds == settings.HEARTBEAT_INTERVAL_SECONDS
    assert not beat.is_late(clock.now())


def test_running_a_job_records_its_success(mailbox):
    watchdog()
    beat = Heartbeat.objects.get(pk="watchdog")
    assert beat.last_ok_at is not None and beat.last_error == ""


def test_a_job_two_intervals_late_shows_the_banner_and_sends_one_email(
    as_alice, watchdog_ran_now, shared_clock, mailbox, settings
):
    assert b"late-jobs-banner" not in as_alice.get(reverse("home")).content
    shared_clock.advance(settings.HEARTBEAT_INTERVAL_SECONDS * 2 + 5)
    page = as_alice.get(reverse("home"))
    assert b"late-jobs-banner" in page.content
    assert b"watchdog" in page.content
    services.late_jobs_alert()  # the watchdog's share, on a worker
    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    assert messages[0].recipients == ["alice@example.org"]
    assert "watchdog" in messages[0].subject
    assert "two intervals late" in messages[0].text()
    # One incident, one mail; the next success closes the watchdog's incident.
    watchdog()
    assert Heartbeat.objects.get(pk="watchdog").alerted_at is None
    assert b"watchdog (" not in as_alice.get(reverse("home")).content
    shared_clock.advance(settings.HEARTBEAT_INTERVAL_SECONDS * 3)
    services.late_jobs_alert()
    messages = mailbox.wait_for(2)
    assert len(messages) == 2
    assert "watchdog" in messages[1].subject


def test_one_interval_late_is_not_yet_an_incident(
    as_alice, watchdog_ran_now, shared_clock, mailbox, settings
):
    shared_clock.advance(settings.HEARTBEAT_INTERVAL_SECONDS * 1.5)
    assert b"late-jobs-banner" not in as_alice.get(reverse("home")).content
    assert services.late_jobs_alert() == []


def test_a_failed_alert_mail_is_tried_again(watchdog_ran_now, shared_clock, settings, mailbox):
    shared_clock.advance(settings.HEARTBEAT_INTERVAL_SECONDS * 3)
    settings.ALERT_EMAILS = ["ops@example.org"]
    settings.EMAIL_PORT = 1  # nothing listens there
    assert services.late_jobs_alert() == []
    watchdog_row = Heartbeat.objects.get(pk="watchdog")
    assert watchdog_row.alerted_at is None
    assert watchdog_row.alert_failures == 1 and "could not send" in watchdog_row.alert_error
    settings.EMAIL_PORT = mailbox.port
    # Not before the back-off is over; then it goes out.
    assert services.late_jobs_alert() == []
    shared_clock.advance(services.ALERT_BACKOFF_SECONDS)
    assert "watchdog" in services.late_jobs_alert()
    watchdog_row.refresh_from_db()
    assert watchdog_row.alerted_at is not None and watchdog_row.alert_error == ""


def test_alerts_go_to_alert_emails_when_set(watchdog_ran_now, shared_clock, settings, mailbox):
    settings.ALERT_EMAILS = ["ops@example.org"]
    shared_clock.advance(settings.HEARTBEAT_INTERVAL_SECONDS * 3)
    services.late_jobs_alert()
    assert mailbox.wait_for(1)[0].recipients == ["ops@example.org"]


def test_healthz_reports_every_dependency_and_each_jobs_age(
    client, directory_server, redis, watchdog_ran_now, shared_clock, settings
):
    shared_clock.advance(settings.HEARTBEAT_INTERVAL_SECONDS * 3)
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    report = response.json()
    assert report["database"] == {"ok": True}
    assert report["redis"] == {"ok": True}
    assert report["ldap"] == {"ok": True}
    assert report["worker"]["ok"] is False  # no worker has recorded a heartbeat
    job = report["jobs"]["watchdog"]
    assert job["late"] is True
    assert job["age_seconds"] >= settings.HEARTBEAT_INTERVAL_SECONDS * 3
    assert report["beat"]["ok"] is False
    assert report["ok"] is False


def test_healthz_says_when_the_directory_is_down(client, directory_server):
    directory_server.stop()
    report = client.get(reverse("healthz")).json()
    assert report["ldap"]["ok"] is False
    assert "unreachable" in report["ldap"]["error"]


def test_healthz_with_a_worker_and_fresh_jobs_is_ok(client, directory_server, celery_worker):
    from clusterweb.celery import app

    services.heartbeats_register_scheduled()
    Heartbeat.objects.update(last_ok_at=clock.now() - timedelta(seconds=1))
    services.process_beat_record("worker")  # what a worker records when it is ready
    try:
        watchdog.apply_async()  # as beat publishes it: beat's heartbeat
    finally:
        app.control.purge()
    report = client.get(reverse("healthz")).json()
    assert report["worker"]["ok"] is True, report["worker"]
    assert report["beat"]["ok"] is True
    assert report["ok"] is True
