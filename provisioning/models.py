"""Node pools and the inventory: every EC2 instance of the cluster, running or gone, merged with its
Kubernetes node, with the transitions the sync saw, plus the cluster's volumes, Elastic IPs and
stored data. The inventory is written only by the sync (``provisioning.inventory``); pages read it.
History is never deleted: a terminated node keeps its row, its lifetime and its events."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models


class PoolKind(models.TextChoices):
    BASE = "base", "Base (always on)"
    BURST = "burst", "Burst (only while needed)"


class Lifecycle(models.TextChoices):
    SPOT = "spot", "Spot"
    ON_DEMAND = "on-demand", "On-demand"


class Pool(models.Model):
    """A node pool: what may be launched in it and how. Admins edit pools on the Pools page or
    load them from a file (``manage.py pools load``); the sandbox seeds CONVENTIONS.md's
    defaults."""

    slug = models.SlugField(max_length=40, unique=True)
    kind = models.CharField(max_length=8, choices=PoolKind.choices)
    instance_types = models.JSONField(default=list)  # ["m5.xlarge", ...], preferred first
    lifecycle = models.CharField(max_length=16, choices=Lifecycle.choices)
    # A spot pool may launch on-demand when spot capacity is short (never silently: it is a
    # pool setting the admin chose).
    on_demand_fallback = models.BooleanField(default=False)
    max_nodes = models.PositiveIntegerField()
    max_hours = models.PositiveIntegerField(null=True, blank=True)  # None: no limit (base pools)
    zones = models.JSONField(default=list)  # ["eu-west-1a", ...]; empty: any zone
    subnets = models.JSONField(default=list)  # ["subnet-...", ...]; empty: the default subnets
    launch_template_name = models.CharField(max_length=128, blank=True)
    launch_template_id = models.CharField(max_length=64, blank=True)
    labels = models.JSONField(default=dict)  # Kubernetes node labels
    taints = models.JSONField(default=list)  # kubectl form: "key=value:Effect"
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    updated_by_username = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["kind", "slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_base(self) -> bool:
        return self.kind == PoolKind.BASE


class NodeState(models.TextChoices):
    """EC2's instance states, as slugs (CONVENTIONS.md)."""

    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    STOPPING = "stopping", "stopping"
    STOPPED = "stopped", "stopped"
    SHUTTING_DOWN = "shutting_down", "shutting down"
    TERMINATED = "terminated", "terminated"


# States in which AWS charges for the instance itself (stopped instances pay only for storage).
BILLED_STATES = (NodeState.PENDING, NodeState.RUNNING, NodeState.STOPPING, NodeState.SHUTTING_DOWN)
SPOT_INTERRUPTION_CODES = ("Server.SpotInstanceTermination", "Server.SpotInstanceShutdown")


class Node(models.Model):
    """One EC2 instance carrying ``clusterweb:cluster`` = CLUSTER_NAME, merged with its Kubernetes
    node (by providerID ``aws:///ZONE/INSTANCE_ID``). Fields from Kubernetes are None while no
    node has registered for the instance."""

    instance_id = models.CharField(max_length=32, unique=True)
    node_name = models.CharField(max_length=253, blank=True)
    pool = models.CharField(max_length=40, blank=True, db_index=True)  # slug; pools may go
    instance_type = models.CharField(max_length=32)
    capacity_type = models.CharField(max_length=16, choices=Lifecycle.choices)
    zone = models.CharField(max_length=32, blank=True)
    state = models.CharField(max_length=16, choices=NodeState.choices, db_index=True)
    state_reason = models.CharField(max_length=100, blank=True)  # EC2 StateReason code
    state_message = models.CharField(max_length=500, blank=True)  # EC2 StateReason message
    state_transition_reason = models.CharField(max_length=500, blank=True)
    ready = models.BooleanField(null=True)  # None: no Kubernetes node (yet, or any more)
    cpu = models.DecimalField(max_digits=9, decimal_places=3, null=True)  # allocatable cores
    memory_bytes = models.BigIntegerField(null=True)  # allocatable
    gpus = models.PositiveIntegerField(null=True)  # allocatable nvidia.com/gpu
    public_ipv4 = models.GenericIPAddressField(protocol="IPv4", null=True)  # billed per hour
    private_ip = models.GenericIPAddressField(null=True)
    launched_at = models.DateTimeField()
    terminated_at = models.DateTimeField(null=True, db_index=True)
    spot_interrupted_at = models.DateTimeField(null=True)
    owner = models.CharField(max_length=150, blank=True, db_index=True)
    request = models.CharField(max_length=64, blank=True)  # clusterweb:request tag
    tags = models.JSONField(default=dict)
    first_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["launched_at", "instance_id"]

    def __str__(self) -> str:
        return self.node_name or self.instance_id

    @property
    def name(self) -> str:
        return self.node_name or self.tags.get("Name", "") or self.instance_id

    @property
    def billed(self) -> bool:
        return self.state in BILLED_STATES

    def uptime(self, now: datetime) -> timedelta:
        """Since launch: until now while alive, until termination after."""
        end = self.terminated_at if self.terminated_at is not None else now
        return max(end - self.launched_at, timedelta(0))


class NodeEventKind(models.TextChoices):
    STATE = "state", "EC2 state"
    SPOT_INTERRUPTION = "spot_interruption", "Spot interruption"
    KUBERNETES = "kubernetes", "Kubernetes readiness"


class NodeEvent(models.Model):
    """A transition the sync saw: EC2 state (``pending`` → ``running``), a spot interruption, or
    the Kubernetes node's readiness (``absent``, ``not_ready``, ``ready``). ``at`` is when it
    happened as far as AWS says (a launch time, a transition reason's timestamp), otherwise when
    the sync first saw it."""

    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=20, choices=NodeEventKind.choices)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    at = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["node", "at"])]

    def __str__(self) -> str:
        return f"{self.node}: {self.from_state or '-'} -> {self.to_state}"


class Volume(models.Model):
    """An EBS volume of the cluster (attached to one of its instances, or tagged as a member).
    ``deleted_at``: when the sync first missed it."""

    volume_id = models.CharField(max_length=32, unique=True)
    node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.PROTECT, related_name="volumes"
    )
    instance_id = models.CharField(max_length=32, blank=True)
    size_gib = models.PositiveIntegerField()
    volume_type = models.CharField(max_length=16)
    # Provisioned performance as EC2 reports it (``Iops``, ``Throughput`` in MiB/s; None where a
    # type has none, e.g. throughput outside gp3): billed above gp3's baseline and on io1/io2.
    iops = models.PositiveIntegerField(null=True, blank=True)
    throughput = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16)
    zone = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField()
    first_seen_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["volume_id"]

    def __str__(self) -> str:
        return self.volume_id


class ElasticAddress(models.Model):
    """An Elastic IP of the cluster: billed per hour, attached or idle. ``released_at``: when the
    sync first missed it."""

    allocation_id = models.CharField(max_length=64, unique=True)
    public_ip = models.GenericIPAddressField(protocol="IPv4")
    instance_id = models.CharField(max_length=32, blank=True)
    first_seen_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["allocation_id"]

    def __str__(self) -> str:
        return self.public_ip


class StorageService(models.TextChoices):
    EFS = "efs", "EFS"
    S3 = "s3", "S3"


class StoredData(models.Model):
    """The size of one EFS file system or S3 bucket, as CloudWatch last published it
    (``measured_at`` is the datapoint's time; S3 publishes once a day)."""

    service = models.CharField(max_length=8, choices=StorageService.choices)
    resource = models.CharField(max_length=255)  # file system id or bucket name
    name = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(null=True)  # None: no datapoint yet
    measured_at = models.DateTimeField(null=True)
    first_seen_at = models.DateTimeField()
    gone_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["service", "resource"]
        constraints = [
            models.UniqueConstraint(fields=["service", "resource"], name="stored_data_unique")
        ]

    def __str__(self) -> str:
        return f"{self.service}:{self.resource}"


PART_EC2, PART_KUBERNETES, PART_STORAGE, PART_SPOT = "ec2", "kubernetes", "storage", "spot_prices"
PART_LABELS = {
    PART_EC2: "EC2 instances, volumes and addresses",
    PART_KUBERNETES: "Kubernetes nodes",
    PART_STORAGE: "EFS and S3 sizes",
    PART_SPOT: "Spot prices",
}


class SyncPart(models.Model):
    """One part of a sync (``ec2``, ``kubernetes``, ``storage``, ``spot_prices``): when it last
    succeeded and how it last failed. Each part is recorded on its own, so Kubernetes being down
    does not hide that EC2 was read a minute ago."""

    name = models.CharField(max_length=20, primary_key=True)
    last_started_at = models.DateTimeField(null=True)
    last_ok_at = models.DateTimeField(null=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_error_at = models.DateTimeField(null=True)
    last_summary = models.JSONField(default=dict)

    def __str__(self) -> str:
        return self.name

    @property
    def failing(self) -> bool:
        """The latest attempt failed (an error newer than the last success)."""
        return self.last_error_at is not None and (
            self.last_ok_at is None or self.last_error_at >= self.last_ok_at
        )


class SyncClaim(models.Model):
    """Who runs a sync now. A run takes the row with one conditional UPDATE (free, or its claim
    expired) and gives it back when done; a second run that finds it taken returns at once."""

    name = models.CharField(max_length=20, primary_key=True)
    claimed_until = models.DateTimeField(null=True)
    token = models.CharField(max_length=32, blank=True)

    def __str__(self) -> str:
        return self.name


# Launch requests live in their own package; imported here so the app (and its one migrations
# folder) holds them. At the end: they refer to Pool and Lifecycle above.
from provisioning.launches.execution_models import LaunchExecution  # noqa: E402, F401
from provisioning.launches.models import (  # noqa: E402, F401
    ApprovalPolicy,
    LaunchRequest,
    LaunchStep,
)
