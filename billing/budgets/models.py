"""Budget rows. Imported by ``billing.models`` (one app, one migrations folder).

Every email this package sends is a *delivery* row claimed before anything is sent: a unique
constraint on what the email is about (a budget's threshold in a month, a person's statement
for a month) makes a second claim fail, so concurrent evaluations, restarts and retries cannot
send it twice. The row then carries the delivery (at least once, with backoff) until it is
marked sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models

AMOUNT_DIGITS = {"max_digits": 12, "decimal_places": 2}
DEFAULT_THRESHOLDS = [50, 80, 100]
DEFAULT_FORECAST_THRESHOLDS = [100]
CLUSTER_KEY = "cluster"


class Budget(models.Model):
    """The cluster's monthly budget (one row, ``key`` "cluster"). ``monthly`` None: no budget
    set, nothing is evaluated. The freeze lives here too: one flag with a reason, until
    ``frozen_until`` (the 1st of the next month) or an admin lifts it."""

    key = models.CharField(max_length=16, unique=True, default=CLUSTER_KEY)
    monthly = models.DecimalField(**AMOUNT_DIGITS, null=True, blank=True)
    # Percent of actual spend, and percent of the forecast, each 1..1000, ascending.
    thresholds = models.JSONField(default=list)
    forecast_thresholds = models.JSONField(default=list)
    # Extra addresses beside the admins (who always get the alerts).
    recipients = models.JSONField(default=list)
    updated_at = models.DateTimeField(null=True, blank=True)
    updated_by_username = models.CharField(max_length=150, blank=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_until = models.DateTimeField(null=True, blank=True)
    frozen_reason = models.CharField(max_length=500, blank=True)
    frozen_by_username = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"budget {self.key}: {self.monthly}"

    def frozen_at_time(self, now: datetime) -> bool:
        return self.frozen_at is not None and (self.frozen_until is None or now < self.frozen_until)


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"


class Delivery(models.Model):
    """One email to deliver at least once. ``next_attempt_at``: when a sender may take it next
    (a sender takes it with a conditional UPDATE that moves this forward by a lease, so one
    sender at a time; a sender killed mid-way leaves it to be taken again after the lease)."""

    month = models.DateField()  # first day of the UTC month it is about
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    claimed_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    recipients = models.JSONField(default=list)

    class Meta:
        abstract = True

    @property
    def sent(self) -> bool:
        return self.state == DeliveryState.SENT


class ThresholdKind(models.TextChoices):
    ACTUAL = "actual", "of actual spend"
    FORECAST = "forecast", "of the forecast"


class BudgetAlert(Delivery):
    """A threshold of a budget crossed in a month: the claim, then the email. ``threshold`` is
    ``actual-80`` or ``forecast-100``. The figures are those of the moment of the claim."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    threshold = models.CharField(max_length=24)
    kind = models.CharField(max_length=16, choices=ThresholdKind.choices)
    percent = models.PositiveIntegerField()
    budget_amount = models.DecimalField(**AMOUNT_DIGITS)
    spend = models.DecimalField(**AMOUNT_DIGITS)
    forecast = models.DecimalField(**AMOUNT_DIGITS)

    class Meta:
        constraints = [
            # The rule of issue 20: each threshold fires at most once per budget per month.
            models.UniqueConstraint(
                fields=["budget", "month", "threshold"], name="budget_alert_once"
            )
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="budget_alert_due")]
        ordering = ["month", "claimed_at", "pk"]

    def __str__(self) -> str:
        return f"budget alert {self.threshold} {self.month:%Y-%m} ({self.state})"

    @property
    def label(self) -> str:
        return f"{self.percent} % {ThresholdKind(self.kind).label}"

    def message_id(self, domain: str) -> str:
        """Derived from the claim: a duplicate (SMTP accepted, the worker died before marking it
        sent) carries the same Message-ID, so mail clients fold it."""
        return f"<budget-alert-{self.budget_id}-{self.month:%Y-%m}-{self.threshold}@{domain}>"


class Statement(Delivery):
    """A person's monthly statement: once per person per month."""

    username = models.CharField(max_length=150)
    admin = models.BooleanField(default=False)  # the whole cluster's statement
    total = models.DecimalField(**AMOUNT_DIGITS)
    final = models.BooleanField(default=False)  # the bill was final when it was claimed

    class Meta:
        constraints = [models.UniqueConstraint(fields=["month", "username"], name="statement_once")]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="statement_due")]
        ordering = ["month", "username"]

    def __str__(self) -> str:
        return f"statement {self.month:%Y-%m} for {self.username} ({self.state})"

    def message_id(self, domain: str) -> str:
        return f"<statement-{self.month:%Y-%m}-{self.username}@{domain}>"


def backoff(attempts: int) -> timedelta:
    """How long after a failed attempt to try again: 1, 2, 4, 8, then 15 minutes (the beat
    evaluation every 15 minutes is what retries, so a longer wait would gain nothing)."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 15))
