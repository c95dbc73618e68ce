from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models


class Heartbeat(models.Model):
    """When a periodic job last ran and last succeeded. The watchdog reads these rows: a job more
    than two intervals past its last success is late, and admins are told once per incident."""

    name = models.CharField(max_length=100, primary_key=True)
    interval_seconds = models.PositiveIntegerField()
    registered_at = models.DateTimeField()
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Set when the alert for the current incident went out; cleared by the next success.
    alerted_at = models.DateTimeField(null=True, blank=True)
    # The claim of one attempt to send that alert: whoever sets it (the worker's watchdog, or
    # the web process's alert thread) sends; it lapses on its own, so a sender that died
    # mid-attempt blocks nobody for long.
    alert_claimed_until = models.DateTimeField(null=True, blank=True)
    # After a failed attempt: when the next may start (the back-off), how many failed in this
    # incident, and why the last one failed ("no recipient" included: nobody was told).
    alert_next_attempt_at = models.DateTimeField(null=True, blank=True)
    alert_failures = models.PositiveIntegerField(default=0)
    alert_error = models.CharField(max_length=500, blank=True)

    LATE_AFTER_INTERVALS = 2

    def __str__(self) -> str:
        return self.name

    def since(self) -> datetime:
        return self.last_ok_at or self.registered_at

    def age_seconds(self, now: datetime) -> int:
        return max(0, int((now - self.since()).total_seconds()))

    def is_late(self, now: datetime) -> bool:
        return now - self.since() > timedelta(
            seconds=self.interval_seconds * self.LATE_AFTER_INTERVALS
        )


class ProcessBeat(models.Model):
    """When a long-running process was last seen alive, as it records itself: ``worker`` (a
    Celery worker, every interval and at each task) and ``beat`` (each time beat publishes the
    watchdog). Health reports and ``doctor`` read these rows; nothing pings a process live."""

    name = models.CharField(max_length=20, primary_key=True)
    seen_at = models.DateTimeField()
    detail = models.CharField(max_length=255, blank=True)  # e.g. the worker's node name

    def __str__(self) -> str:
        return self.name

    def age_seconds(self, now: datetime) -> int:
        return max(0, int((now - self.seen_at).total_seconds()))
