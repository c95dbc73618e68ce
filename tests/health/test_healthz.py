"""Health a probe can use: liveness (no dependency), readiness (database reachable and migrated)
and the JSON report, whose worker and beat come from recorded heartbeats, never a live ping."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.urls import reverse

from clusterweb import clock
from clusterweb.health import services
from clusterweb.health.models import Heartbeat, ProcessBeat

pytestmark = pytest.mark.django_db


def test_liveness_answers_in_milliseconds_without_any_dependency(client, django_assert_num_queries):
    client.get(reverse("healthz_live"))  # the first request of a process loads the URLconf
    timings = []
    with django_assert_num_queries(0):
        for _ in range(3):
            started = time.monotonic()
            response = client.get(reverse("healthz_live"))
            timings.append(time.monotonic() - started)
            assert response.status_code == 200
            assert response.json() == {"live": True}
    # The best of three: a shared, loaded machine may stall any one request.
    assert min(timings) < 0.05, timings


def test_readiness_is_ok_on_a_migrated_database(client):
    response = client.get(reverse("healthz_ready"))
    assert response.status_code == 200
    assert response.json() == {"ready": True}


def test_readiness_is_503_with_a_reason_while_a_migration_is_missing(client):
    services.readiness_forget()
    latest = MigrationRecorder.Migration.objects.filter(app="health").order_by("-id").first()
    latest.delete()
    response = client.get(reverse("healthz_ready"))
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert f"health.{latest.name}" in body["reason"]
    assert "manage.py migrate" in body["reason"]


def test_the_report_before_migrations_is_503_with_a_reason_not_a_500(client):
    services.readiness_forget()
    MigrationRecorder.Migration.objects.filter(app="health").delete()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE health_heartbeat RENAME TO health_heartbeat_gone")
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    report = response.json()
    assert report["database"]["ok"] is False
    assert "migrate" in report["database"]["error"]


def test_the_report_reads_worker_and_beat_from_heartbeats_without_a_live_ping(
    client, directory_server, redis, settings, shared_clock
):
    now = clock.now()
    ProcessBeat.objects.create(name="worker", seen_at=now - timedelta(seconds=5), detail="w1@h")
    ProcessBeat.objects.create(name="beat", seen_at=now - timedelta(seconds=5))
    services.heartbeats_register_scheduled()
    Heartbeat.objects.update(last_ok_at=now)
    started = time.monotonic()
    response = client.get(reverse("healthz"))
    elapsed = time.monotonic() - started
    assert elapsed < 0.8, f"the report took {elapsed:.2f} s"  # the old worker ping alone: 1 s
    report = response.json()
    assert response.status_code == 200
    assert report["worker"]["ok"] is True and report["worker"]["age_seconds"] >= 5
    assert report["beat"]["ok"] is True
    assert report["ok"] is True
    # No worker for three intervals: reported, and still 200 (a late worker must never get the
    # web pods restarted).
    shared_clock.advance(settings.HEARTBEAT_INTERVAL_SECONDS * 3)
    response = client.get(reverse("healthz"))
    report = response.json()
    assert response.status_code == 200
    assert report["worker"]["ok"] is False
    assert report["worker"]["age_seconds"] >= settings.HEARTBEAT_INTERVAL_SECONDS * 3
    assert report["beat"]["ok"] is False
    assert report["jobs"]["watchdog"]["late"] is True
    assert report["ok"] is False


def test_a_worker_that_never_reported_is_not_ok(client, directory_server, redis):
    report = client.get(reverse("healthz")).json()
    assert report["worker"] == {"ok": False, "age_seconds": None, "error": "never seen"}


@pytest.mark.django_db(transaction=True)
def test_a_running_worker_records_its_heartbeat(celery_worker):
    from clusterweb.health.tasks import ping
    from clusterweb.tasking import enqueue

    ProcessBeat.objects.all().delete()
    deadline = time.monotonic() + 30
    # A worker records before a task at most every 10 s: keep giving it tasks until it does.
    while not ProcessBeat.objects.filter(name="worker").exists() and time.monotonic() < deadline:
        enqueue(ping, "beat")
        time.sleep(0.5)
    beat = ProcessBeat.objects.get(name="worker")
    assert abs((clock.now() - beat.seen_at).total_seconds()) < 30
    assert "@" in beat.detail  # the worker's node name


def test_publishing_the_watchdog_records_the_beat(redis, transactional_db):
    from clusterweb.celery import app
    from clusterweb.health.tasks import watchdog

    try:
        watchdog.apply_async()
        assert ProcessBeat.objects.get(name="beat").seen_at is not None
    finally:
        app.control.purge()  # the watchdog was published to prove the hook, not to run
