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
