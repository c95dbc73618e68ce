"""Launch requests as rows: what someone asked for, what it was quoted at, who decided, and the
step log the request page polls. Written only by ``provisioning.launches.services``."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from provisioning.models import Lifecycle, Pool


class LaunchKind(models.TextChoices):
    SPARK = "spark", "Spark workers"
    GPU = "gpu", "GPU node"
    JUPYTER = "jupyter", "Jupyter server"


class JupyterProfile(models.TextChoices):
    """CONVENTIONS.md: ``small`` runs on the admin nodes (no instance), ``large`` gets its own
    instance from the jupyter pool, ``gpu`` its own GPU node."""

    SMALL = "small", "Small (shared admin nodes)"
    LARGE = "large", "Large (own instance)"
    GPU = "gpu", "GPU (own GPU node)"


class LaunchState(models.TextChoices):
    """CONVENTIONS.md's launch request states (the same slugs in the database, pages and JSON)."""

    PENDING_APPROVAL = "pending_approval", "Pending approval"
    APPROVED = "approved", "Approved"
    LAUNCHING = "launching", "Launching"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


# Approved but not running yet: holds room in its pool and is counted by the forecast.
RESERVING_STATES = (LaunchState.APPROVED, LaunchState.LAUNCHING)
# Nothing more happens to a request in these.
FINAL_STATES = (
    LaunchState.STOPPED,
    LaunchState.REJECTED,
    LaunchState.CANCELLED,
    LaunchState.FAILED,
    LaunchState.EXPIRED,
)


class StopReason(models.TextChoices):
    """CONVENTIONS.md's ``stop_reason`` (null until stopped or cancelled)."""

    OWNER = "owner", "Stopped by its owner"
    ADMIN = "admin", "Stopped by an admin"
    TIME_LIMIT = "time_limit", "Time limit reached"
    IDLE = "idle", "Idle"
    CAP = "cap", "Cost cap reached"
    BUDGET = "budget", "Budget exhausted"
    ORPHAN = "orphan", "Orphan clean-up"
    DISABLED = "disabled", "Owner disabled"
    FAILED = "failed", "Launch failed"


class LaunchRequest(models.Model):
    """One request for compute, of any kind. The quote is frozen at request time (``hourly`` ...
    ``max_cost``); an approval may grant less than was asked (``approved_count``,
    ``approved_hours``), re-quoted (``approved_max_cost``): that maximum is what the launch may
    cost. ``attempt`` counts launch attempts, for idempotency keys (EC2 ClientToken) of the
    execution (issue 18)."""

    kind = models.CharField(max_length=16, choices=LaunchKind.choices)
    jupyter_profile = models.CharField(max_length=16, choices=JupyterProfile.choices, blank=True)
    pool = models.ForeignKey(Pool, on_delete=models.PROTECT, related_name="launch_requests")
    # NULL, not "": CONVENTIONS.md's JSON has null for a small Jupyter server (no instance).
    instance_type = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    count = models.PositiveIntegerField()
    capacity_type = models.CharField(max_length=16, choices=Lifecycle.choices)
    allow_on_demand_fallback = models.BooleanField(default=False)
    hours = models.PositiveIntegerField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="launch_requests"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    # The quote at request time (quotes.Quote).
    hourly = models.DecimalField(max_digits=12, decimal_places=6, null=True)  # None: unknown
    hourly_source = models.CharField(max_length=500, blank=True)
    hourly_kind = models.CharField(max_length=16, blank=True)  # spot / on-demand (price used)
    zone = models.CharField(max_length=32, blank=True)
    on_demand_hourly = models.DecimalField(max_digits=12, decimal_places=6, null=True)
    expected_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True)
    max_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True)
    quoted_at = models.DateTimeField()
    # Why an admin must decide (empty: approved by the policy at once).
    approval_reason = models.CharField(max_length=500, blank=True)

    # The decision. An approval may be smaller than the request.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_by_username = models.CharField(max_length=150, blank=True)
    decision_note = models.TextField(blank=True)
    self_approved = models.BooleanField(default=False)
    auto_approved = models.BooleanField(default=False)
    approved_count = models.PositiveIntegerField(null=True, blank=True)
    approved_hours = models.PositiveIntegerField(null=True, blank=True)
    approved_hourly = models.DecimalField(max_digits=12, decimal_places=6, null=True)
    approved_expected_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True)
    approved_max_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True)

    # Emails, each sent once (the tasks claim these with a conditional UPDATE).
    admins_notified_at = models.DateTimeField(null=True, blank=True)
    notified_state = models.CharField(max_length=20, blank=True)  # last state mailed to requester

    state = models.CharField(
        max_length=20,
        choices=LaunchState.choices,
        default=LaunchState.PENDING_APPROVAL,
        db_index=True,
    )
    # NULL until stopped or cancelled, as CONVENTIONS.md's JSON has it.
    stop_reason = models.CharField(  # noqa: DJ001
        max_length=16, choices=StopReason.choices, null=True, blank=True
    )
    error = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    running_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(count__gte=1), name="launch_count_positive"),
            models.CheckConstraint(condition=models.Q(hours__gte=1), name="launch_hours_positive"),
        ]

    def __str__(self) -> str:
        return f"launch {self.pk} {self.kind} for {self.owner_id} ({self.state})"

    @property
    def granted_count(self) -> int:
        """What may run: the approved count, or the request's while none was set."""
        return self.approved_count if self.approved_count is not None else self.count

    @property
    def granted_hours(self) -> int:
        return self.approved_hours if self.approved_hours is not None else self.hours

    @property
    def granted_max_cost(self) -> Decimal | None:
        """The most this launch may cost: the approved maximum, or the quoted one."""
        return self.approved_max_cost if self.approved_max_cost is not None else self.max_cost

    @property
    def approved_smaller(self) -> bool:
        return (self.approved_count is not None and self.approved_count < self.count) or (
            self.approved_hours is not None and self.approved_hours < self.hours
        )

    @property
    def approval_kind(self) -> str:
        """The kind the approval policy looks at: a ``gpu`` Jupyter server counts as ``gpu``."""
        if self.kind == LaunchKind.JUPYTER and self.jupyter_profile == JupyterProfile.GPU:
            return LaunchKind.GPU
        return self.kind


class StepState(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class LaunchStep(models.Model):
    """One line of a request's step log (the page polls it): started, then finished done or
    failed, with a detail for people (an instance id, a spot interruption, an error)."""

    request = models.ForeignKey(LaunchRequest, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=StepState.choices, default=StepState.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["request", "started_at"])]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.name} ({self.state})"


DEFAULT_THRESHOLD = Decimal("10.00")


class ApprovalPolicy(models.Model):
    """The one approval policy (row pk=1): a request whose maximum cost is over ``threshold``
    (USD) waits for an admin; so does a collaborator's request of a kind whose ``require_*`` is
    set. A ``gpu`` Jupyter server counts as ``gpu``."""

    threshold = models.DecimalField(max_digits=10, decimal_places=2, default=DEFAULT_THRESHOLD)
    require_spark = models.BooleanField(default=True)
    require_gpu = models.BooleanField(default=True)
    require_jupyter = models.BooleanField(default=False)
    updated_at = models.DateTimeField(null=True, blank=True)
    updated_by_username = models.CharField(max_length=150, blank=True)

    class Meta:
        verbose_name_plural = "approval policy"

    def __str__(self) -> str:
        return f"approval over ${self.threshold}"

    @classmethod
    def current(cls) -> ApprovalPolicy:
        """The policy row, with the defaults when nobody has set one (not saved)."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)

    def requires(self, kind: str) -> bool:
        """Whether a collaborator's request of ``kind`` (the approval kind) always waits."""
        return bool(getattr(self, f"require_{kind}", True))

    def as_json(self) -> dict:
        from billing.money import amount_str

        return {
            "id": 1,
            "threshold": amount_str(self.threshold),
            "require": {kind: self.requires(kind) for kind in LaunchKind.values},
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "updated_by": self.updated_by_username or None,
        }
