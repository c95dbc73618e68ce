"""What carrying out a launch request needs to remember: the engine's place in its steps, the lease
of the worker running a step, what it launched and what it cost. One row per request, created when
execution first looks at it; the request's state stays on ``LaunchRequest`` (the only truth about
where a request is), this row only says how far its steps got."""

from __future__ import annotations

from django.db import models


class LaunchExecution(models.Model):
    request = models.OneToOneField(
        "provisioning.LaunchRequest", on_delete=models.CASCADE, related_name="execution"
    )
    # The step to run next (``provisioning.launches.execution.PHASES``).
    phase = models.CharField(max_length=24, blank=True)
    # A worker runs a step only while it holds the lease: taken with one conditional UPDATE, given
    # back when the step ends, expiring in case the worker dies (a second delivery of the same
    # task finds it taken and does nothing).
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    # When the next look is due; the sweeper enqueues again what is overdue.
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Transient failures in a row (throttling, timeouts, 5xx): the backoff grows with them.
    failures = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    # What was launched: spot or on-demand (after a fallback), where, which instances.
    capacity_type = models.CharField(max_length=16, blank=True)
    fell_back = models.BooleanField(default=False)
    fallback_reason = models.CharField(max_length=200, blank=True)
    instance_ids = models.JSONField(default=list)
    token_id = models.CharField(max_length=6, blank=True)  # the bootstrap token's public half
    deadline = models.DateTimeField(null=True, blank=True)  # of the current waiting step
    # At the end: the cost of its instances from the cost rows, and why it differs from the quote.
    actual_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    cost_reasons = models.JSONField(default=list)
    interrupted = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"execution of request {self.request_id} ({self.phase or 'not started'})"
