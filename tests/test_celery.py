"""Celery on Redis, with a real worker subprocess: round trips, the shared clock and failpoints
across processes, and what happens when Redis is down. The worker reports through the database
(the ``health.ping`` task writes an audit row), as every task in Clusterweb does."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.urls import reverse

from clusterweb.audit.models import AuditEvent
from clusterweb.celery import app
from clusterweb.health.tasks import ping
from clusterweb.tasking import enqueue, enqueue_on_commit

# On SQLite too: web and worker share one database file (WAL, IMMEDIATE transactions).
pytestmark = pytest.mark.sqlite


def wait_for_ping(value: str, timeout: float = 20) -> AuditEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = AuditEvent.objects.filter(action="health.ping", target=value).first()
        if event:
            return event
        time.sleep(0.05)
    raise AssertionError(f"the worker did not run ping({value!r})")


def queue_length() -> int:
    with app.connection_for_write() as conn:
        return conn.default_channel.client.llen("celery")


def test_a_task_round_trips_through_redis_and_a_worker(celery_worker):
    assert enqueue(ping, "hello") is True
    event = wait_for_ping("hello")
    assert event.source == "task"


def test_the_clock_offset_reaches_the_worker_process(celery_worker, shared_clock):
    shared_clock.set_offset(timedelta(days=40).total_seconds())
    enqueue(ping, "future")
    event = wait_for_ping("future")
    # The row's time comes from clock.now() in the worker process.
    assert event.at - datetime.now(UTC) > timedelta(days=39)


def test_a_failpoint_armed_by_the_test_fires_in_the_worker(celery_worker, failpoints):
    failpoints.arm("health.ping", "raise")
    enqueue(ping, "blocked")
    deadline = time.monotonic() + 20
    while "failpoint health.ping fired" not in celery_worker.log_tail(200):
        assert time.monotonic() < deadline, celery_worker.log_tail()
        time.sleep(0.05)
    failpoints.clear()
    enqueue(ping, "after")
    wait_for_ping("after")
    # The solo worker runs tasks in order: the first one ran, and stopped at the failpoint.
    assert not AuditEvent.objects.filter(action="health.ping", target="blocked").exists()


def test_enqueue_on_commit_sends_only_after_the_commit(celery_worker):
    with transaction.atomic():
        enqueue_on_commit(ping, "after-commit")
        time.sleep(0.3)
        assert queue_length() == 0
        assert not AuditEvent.objects.filter(target="after-commit").exists()
    wait_for_ping("after-commit")


@pytest.mark.django_db
def test_with_redis_down_enqueue_logs_and_returns_false_quickly(redis, caplog):
    redis.stop()
    started = time.monotonic()
    assert enqueue(ping, "lost") is False
    assert "could not enqueue clusterweb.health.tasks.ping" in caplog.text
    # Bounded by REDIS_TIMEOUT and one retry, not by Celery's default retry loop.
    assert time.monotonic() - started < 5


@pytest.mark.django_db
def test_with_redis_down_pages_render_and_healthz_says_redis_is_down(redis, as_alice):
    redis.stop()
    assert as_alice.get(reverse("home")).status_code == 200
    assert as_alice.get(reverse("audit:list")).status_code == 200
    report = as_alice.get(reverse("healthz")).json()
    assert report["redis"]["ok"] is False
    assert report["worker"]["ok"] is False
    assert report["database"]["ok"] is True


def test_the_worker_comes_back_after_a_redis_restart(redis, celery_worker):
    redis.stop()
    redis.start()
    enqueue(ping, "back")
    wait_for_ping("back", timeout=40)
