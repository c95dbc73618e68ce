"""The late-job alert: never sent inside a page request; the worker sends it while it is alive,
otherwise a background thread of the web process does, on the same claimed rows, backing off after
a failure; an alert with nobody to send it to is said so and stays open."""

import time

import pytest
from django.urls import reverse

from clusterweb import clock
from clusterweb.health import services
from clusterweb.health.models import Heartbeat
from sandbox.services.smtp import StalledSmtp
from tests.fixtures.personas import user_for

# Below the mail timeout under tests (2 s): a page that waited on the mail server would take at
# least that; the margin is room for a loaded machine.
PAGE_BUDGET_SECONDS = 1.8


@pytest.fixture
def jobs_late(settings, shared_clock):
    """Every scheduled job succeeded, then no worker ran for three intervals (it was killed)."""
    services.heartbeats_register_scheduled()
    Heartbeat.objects.update(last_ok_at=clock.now())
    shared_clock.advance(settings.HEARTBEAT_INTERVAL_SECONDS * 3)
    return shared_clock


def _timed_get(client, url):
    started = time.monotonic()
    response = client.get(url)
    return response, time.monotonic() - started


def _wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.django_db(transaction=True)
def test_a_stalled_mail_server_never_slows_a_page_and_one_mail_goes_out_when_it_answers(
    as_alice, jobs_late, mailbox, settings
):
    with StalledSmtp() as stalled:
        settings.EMAIL_PORT = stalled.port
        for url in (reverse("home"), reverse("audit:list"), reverse("home")):
            page, elapsed = _timed_get(as_alice, url)
            assert page.status_code == 200
            assert b"late-jobs-banner" in page.content
            assert elapsed < PAGE_BUDGET_SECONDS, f"{url} took {elapsed:.2f} s"
        # The web process's background thread tried, waited out the mail timeout and backs off.
        assert _wait_until(lambda: Heartbeat.objects.exclude(alert_error="").exists())
        assert not Heartbeat.objects.filter(alerted_at__isnull=False).exists()
        page, elapsed = _timed_get(as_alice, reverse("home"))
        assert elapsed < PAGE_BUDGET_SECONDS
        assert b"not been emailed yet" in page.content
    # The mail server answers again; after the back-off the next attempt goes out, once.
    settings.EMAIL_PORT = mailbox.port
    jobs_late.advance(services.ALERT_BACKOFF_MAX_SECONDS)
    for _ in range(3):
        page, elapsed = _timed_get(as_alice, reverse("home"))
        assert elapsed < PAGE_BUDGET_SECONDS
    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    assert "watchdog" in messages[0].subject
    assert _wait_until(lambda: all(beat.alerted_at for beat in services.heartbeats_late()))
    for _ in range(3):
        as_alice.get(reverse("home"))
    time.sleep(0.3)
    assert len(mailbox.messages) == 1
    assert b"Admins were emailed" in as_alice.get(reverse("home")).content


@pytest.mark.django_db(transaction=True)
def test_with_nobody_viewing_pages_a_web_workers_alert_thread_retries_on_its_own(
    as_alice, jobs_late, mailbox, settings, monkeypatch
):
    """A gunicorn worker's alert thread looks again by itself: the alert goes out once the mail
    server answers, although nobody opens a page after the first failed attempt."""
    from clusterweb.health import alerter

    monkeypatch.setattr(alerter, "RECHECK_SECONDS", 0.1)
    monkeypatch.setattr(alerter, "_periodic", True)  # as gunicorn_conf.post_worker_init starts it
    with StalledSmtp() as stalled:
        settings.EMAIL_PORT = stalled.port
        alerter.poke()  # the last page anybody opened
        assert _wait_until(lambda: Heartbeat.objects.exclude(alert_error="").exists())
    settings.EMAIL_PORT = mailbox.port
    jobs_late.advance(services.ALERT_BACKOFF_MAX_SECONDS)
    messages = mailbox.wait_for(1)
    assert len(messages) == 1 and "watchdog" in messages[0].subject
    assert _wait_until(lambda: all(beat.alerted_at for beat in services.heartbeats_late()))
    time.sleep(0.3)  # more rounds of the thread send nothing more
    assert len(mailbox.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_a_page_view_never_sends_the_alert_itself(as_alice, jobs_late, mailbox, settings):
    """While the watchdog itself runs (a worker is alive), only it sends: a page does not."""
    Heartbeat.objects.filter(pk="watchdog").update(last_ok_at=clock.now())
    as_alice.get(reverse("home"))
    time.sleep(0.3)
    assert mailbox.messages == []
    assert services.late_jobs_alert()  # the worker's watchdog
    assert len(mailbox.wait_for(1)) == 1


@pytest.mark.django_db
@pytest.mark.sqlite
def test_an_alert_with_nobody_to_tell_says_so_and_stays_open(
    as_bob, jobs_late, mailbox, settings, alice
):
    settings.ALERT_EMAILS = []
    assert services.late_jobs_alert() == []
    assert mailbox.messages == []
    assert not Heartbeat.objects.filter(alerted_at__isnull=False).exists()
    page = as_bob.get(reverse("home")).content.decode()
    assert "Admins have been emailed" not in page
    assert "Nobody has been emailed" in page
    assert "ALERT_EMAILS" in page  # who would be told
    # An admin with an address logs in: the next attempt reaches them.
    user_for(alice)
    jobs_late.advance(services.ALERT_BACKOFF_MAX_SECONDS)
    assert "watchdog" in services.late_jobs_alert()
    assert mailbox.wait_for(1)[0].recipients == ["alice@example.org"]
