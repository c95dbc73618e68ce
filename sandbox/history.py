"""A month of history for the sandbox (`make run`), so the first start shows a real month: a
month-to-date estimate, a chart, a forecast and a billed figure.

moto's instances are launched "now", so the month before the sandbox started is written here as
history the inventory sync keeps (it never moves a recorded launch or creation time):

- the always-on nodes (the control and admin instances `make run` launched in the simulated AWS)
  and their root volumes have been up since the 1st of the month, 00:00 UTC;
- a few burst nodes ran and ended on earlier days of the month (terminated rows with their
  transitions and root volumes), one of them a spot node AWS interrupted within its first hour;
- an EFS file system for home directories and an S3 bucket of data sets exist in the simulated
  AWS (with CloudWatch sizes), stored since the 1st;
- simulated spot price points cover the month (``sandbox.prices``);
- the cost rows are computed, and Cost Explorer results consistent with them (the modelled
  services day by day, plus a little CloudWatch that the estimate does not model) are injected
  into the moto server, then read once by the same service the periodic job calls.

``sandbox_history_seed`` is called by ``manage.py sandbox_seed`` after the pools are seeded. It
is safe to call twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings

from billing.costs import costing
from billing.costs.services import cost_explorer_refresh, cost_rows_refresh
from billing.models import CostRow, CostService
from clusterweb import clock
from clusterweb.integrations import aws
from provisioning.models import (
    Node,
    NodeEvent,
    NodeEventKind,
    NodeState,
    Pool,
    PoolKind,
    StoredData,
    Volume,
)
from sandbox.prices import sandbox_spot_prices_seed

GIB = 1024**3
HOME_FS, DATA_BUCKET = "sandbox-home", "sandbox-datasets"
HOME_BYTES, DATA_BYTES = 20 * GIB, 150 * GIB
# The estimate's services under Cost Explorer's names (billing.costs.selectors.CE_SERVICES).
CE_NAMES = {
    CostService.COMPUTE: "Amazon Elastic Compute Cloud - Compute",
    CostService.EBS: "EC2 - Other",
    CostService.EFS: "Amazon Elastic File System",
    CostService.S3: "Amazon Simple Storage Service",
    CostService.IPV4: "Amazon Virtual Private Cloud",
}
BILLED_ONLY = ("Amazon CloudWatch", Decimal("0.0100"))  # a day's metrics: not in the estimate


@dataclass(frozen=True)
class PastRun:
    """Burst nodes that ran on an earlier day: ``count`` of them, ``day`` days after the 1st
    (folded into the days the month has had so far), from ``hour`` for ``hours``."""

    pool: str
    instance_type: str
    owner: str
    request: str
    day: int
    hour: float
    hours: float
    count: int = 1
    zone: str = "b"
    interrupted: bool = False  # AWS reclaimed it (spot): at the end of its run


PAST_RUNS = (
    PastRun("spark", "m5.xlarge", "bob", "sandbox-1", day=0, hour=9, hours=4.5, count=3),
    PastRun("gpu", "g4dn.xlarge", "alice", "sandbox-2", day=1, hour=14, hours=3.75, zone="a"),
    PastRun("jupyter", "t2.xlarge", "bob", "sandbox-3", day=2, hour=10, hours=6, zone="c"),
    PastRun("spark", "m5.2xlarge", "alice", "sandbox-4", day=3, hour=8, hours=0.7,
            interrupted=True),
    PastRun("spark", "m5.4xlarge", "bob", "sandbox-5", day=5, hour=13, hours=8, count=2),
)  # fmt: skip


@dataclass
class HistorySummary:
    base_nodes: int = 0
    past_nodes: int = 0
    cost_rows: int = 0
    billed_days: int = 0

    def __str__(self) -> str:
        return (
            f"{self.base_nodes} always-on nodes up since the 1st, {self.past_nodes} burst nodes "
            f"that ended earlier this month, {self.cost_rows} cost rows, "
            f"{self.billed_days} billed days injected into Cost Explorer"
        )


def _fake_id(prefix: str, text: str, length: int = 17) -> str:
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:length]}"


def _gmt(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} GMT"


def sandbox_history_seed(*, now: datetime | None = None) -> HistorySummary:
    """Write the month's history (see the module docstring) and read the bill once."""
    now = clock.now() if now is None else now
    start = costing.month_start(now)
    days_so_far = (now.date() - start.date()).days
    summary = HistorySummary()
    sandbox_spot_prices_seed(region=settings.AWS_REGION, days=days_so_far + 2, now=now)
    summary.base_nodes = _base_nodes(start, now)
    summary.past_nodes = _past_runs(start, days_so_far, now)
    _storage(start, now)
    refreshed = cost_rows_refresh(now=now)
    summary.cost_rows = sum(m.rows for m in refreshed.months if m.month == start.date())
    summary.billed_days = _bill_inject(start.date(), now.date())
    cost_explorer_refresh(now=now, force=True)
    return summary


def _first_event(node: Node, at: datetime, reason: str) -> None:
    if not NodeEvent.objects.filter(node=node, kind=NodeEventKind.STATE).exists():
        NodeEvent.objects.create(
            node=node,
            kind=NodeEventKind.STATE,
            from_state="",
            to_state=NodeState.RUNNING,
            at=at,
            reason=reason,
            recorded_at=at,
        )


def _base_nodes(start: datetime, now: datetime) -> int:
    """The always-on instances of the simulated AWS, up since the 1st, with their volumes."""
    base = set(Pool.objects.filter(kind=PoolKind.BASE).values_list("slug", flat=True))
    instances = [
        i
        for i in aws.instances_inventory(settings.CLUSTER_NAME)
        if i.pool in base and i.state != NodeState.TERMINATED
    ]
    for instance in instances:
        node, _ = Node.objects.update_or_create(
            instance_id=instance.instance_id,
            defaults={
                "pool": instance.pool or "",
                "instance_type": instance.instance_type,
                "capacity_type": instance.lifecycle,
                "zone": instance.zone,
                "state": instance.state,
                "public_ipv4": instance.public_ip,
                "private_ip": instance.private_ip,
                "launched_at": start,
                "first_seen_at": start,
                "owner": instance.owner or "",
                "tags": dict(instance.tags),
            },
        )
        _first_event(node, start, "sandbox history: up since the 1st of the month")
    by_instance = {n.instance_id: n for n in Node.objects.filter(pool__in=base)}
    for volume in aws.volumes_describe(settings.CLUSTER_NAME, list(by_instance)):
        Volume.objects.update_or_create(
            volume_id=volume.volume_id,
            defaults={
                "node": by_instance.get(volume.instance_id or ""),
                "instance_id": volume.instance_id or "",
                "size_gib": volume.size_gib,
                "volume_type": volume.volume_type,
                "state": volume.state,
                "zone": volume.zone,
                "created_at": start,
                "first_seen_at": start,
                "deleted_at": None,
            },
        )
    return len(instances)


def _past_runs(start: datetime, days_so_far: int, now: datetime) -> int:
    """Burst nodes that ran and ended on earlier days (none on the 1st: no earlier day)."""
    if days_so_far < 1:
        return 0
    pools = {pool.slug: pool for pool in Pool.objects.all()}
    made = 0
    for number, run in enumerate(PAST_RUNS):
        day = start + timedelta(days=run.day % days_so_far)
        for copy in range(run.count):
            launched = day + timedelta(hours=run.hour, minutes=2 * copy)
            ended = launched + timedelta(hours=run.hours)
            instance_id = _fake_id("i", f"sandbox-history-{number}-{copy}")
            pool = pools.get(run.pool)
            tags = {
                "Name": f"{run.pool}-{run.request}-{copy + 1}",
                "clusterweb:cluster": settings.CLUSTER_NAME,
                "clusterweb:pool": run.pool,
                "clusterweb:owner": run.owner,
                "clusterweb:request": run.request,
            }
            if pool is not None and pool.max_hours:
                expires = launched + timedelta(hours=pool.max_hours)
                tags["clusterweb:expires-at"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
            spot = pool is None or pool.lifecycle == "spot"
            reason_code = "Client.UserInitiatedShutdown"
            if run.interrupted:
                reason_code = "Server.SpotInstanceTermination"
            transition = f"{'Service' if run.interrupted else 'User'} initiated ({_gmt(ended)})"
            node, _ = Node.objects.update_or_create(
                instance_id=instance_id,
                defaults={
                    "node_name": f"ip-10-0-2-{10 * number + copy}.{settings.AWS_REGION}"
                    ".compute.internal",
                    "pool": run.pool,
                    "instance_type": run.instance_type,
                    "capacity_type": "spot" if spot else "on-demand",
                    "zone": f"{settings.AWS_REGION}{run.zone}",
                    "state": NodeState.TERMINATED,
                    "state_reason": reason_code,
                    "state_message": f"{reason_code}: sandbox history",
                    "state_transition_reason": transition,
                    "launched_at": launched,
                    "terminated_at": ended,
                    "spot_interrupted_at": ended if run.interrupted else None,
                    "owner": run.owner,
                    "request": run.request,
                    "tags": tags,
                    "first_seen_at": launched,
                },
            )
            if not NodeEvent.objects.filter(node=node).exists():
                NodeEvent.objects.bulk_create(
                    [
                        NodeEvent(node=node, kind=NodeEventKind.STATE, from_state="",
                                  to_state=NodeState.RUNNING, at=launched,
                                  reason="sandbox history", recorded_at=launched),
                        NodeEvent(node=node, kind=NodeEventKind.STATE,
                                  from_state=NodeState.RUNNING, to_state=NodeState.TERMINATED,
                                  at=ended, reason=transition, recorded_at=ended),
                    ]
                    + (
                        [NodeEvent(node=node, kind=NodeEventKind.SPOT_INTERRUPTION,
                                   from_state=NodeState.RUNNING, to_state=NodeState.TERMINATED,
                                   at=ended, reason=f"{reason_code}: AWS reclaimed the spot "
                                   "instance (sandbox history)", recorded_at=ended)]
                        if run.interrupted
                        else []
                    )
                )  # fmt: skip
            Volume.objects.update_or_create(
                volume_id=_fake_id("vol", f"sandbox-history-{number}-{copy}"),
                defaults={
                    "node": node,
                    "instance_id": instance_id,
                    "size_gib": 100 if run.pool == "spark" else 50,
                    "volume_type": "gp3",
                    "state": "deleted",
                    "zone": node.zone,
                    "created_at": launched,
                    "first_seen_at": launched,
                    "deleted_at": ended,
                },
            )
            made += 1
    return made


def _storage(start: datetime, now: datetime) -> None:
    """The home directories' EFS and the data sets' bucket, in the simulated AWS with their
    CloudWatch sizes, and stored since the 1st."""
    from sandbox.aws import AwsControl

    tags = [{"Key": "clusterweb:cluster", "Value": settings.CLUSTER_NAME}]
    with aws.translated():
        efs = aws.client("efs")
        found = efs.describe_file_systems(CreationToken=HOME_FS)["FileSystems"]
        if found:
            fs_id = found[0]["FileSystemId"]
        else:
            fs_id = efs.create_file_system(
                CreationToken=HOME_FS, Tags=[*tags, {"Key": "Name", "Value": "home"}]
            )["FileSystemId"]
        s3 = aws.client("s3")
        names = {b["Name"] for b in s3.list_buckets().get("Buckets") or []}
        if DATA_BUCKET not in names:
            s3.create_bucket(
                Bucket=DATA_BUCKET,
                CreateBucketConfiguration={"LocationConstraint": settings.AWS_REGION},
            )
        s3.put_bucket_tagging(Bucket=DATA_BUCKET, Tagging={"TagSet": tags})
    control = AwsControl(os.environ["AWS_ENDPOINT_URL"])
    control.efs_size_set(fs_id, HOME_BYTES)
    control.s3_size_set(DATA_BUCKET, DATA_BYTES)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for service, resource, name, size, measured in (
        ("efs", fs_id, "home", HOME_BYTES, now.replace(second=0, microsecond=0)),
        ("s3", DATA_BUCKET, DATA_BUCKET, DATA_BYTES, today),
    ):
        StoredData.objects.update_or_create(
            service=service,
            resource=resource,
            defaults={
                "name": name,
                "size_bytes": size,
                "measured_at": measured,
                "first_seen_at": start,
                "gone_at": None,
            },
        )


def ce_result(days: dict[date, dict[str, Decimal]], *, estimated: bool = True) -> dict[str, Any]:
    """A GetCostAndUsage answer (daily, grouped by SERVICE, UnblendedCost) for ``days``."""
    return {
        "ResultsByTime": [
            {
                "TimePeriod": {
                    "Start": day.isoformat(),
                    "End": (day + timedelta(days=1)).isoformat(),
                },
                "Total": {},
                "Groups": [
                    {
                        "Keys": [name],
                        "Metrics": {"UnblendedCost": {"Amount": f"{value:.10f}", "Unit": "USD"}},
                    }
                    for name, value in sorted(services.items())
                ],
                "Estimated": estimated,
            }
            for day, services in sorted(days.items())
        ],
        "DimensionValueAttributes": [],
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }


def ce_results_inject(endpoint: str, results: list[dict[str, Any]]) -> None:
    """Queue answers in the moto server: each new get_cost_and_usage request body takes the
    next one (the same body gets the same answer again)."""
    request = urllib.request.Request(
        f"{endpoint.rstrip('/')}/moto-api/static/ce/cost-and-usage-results",
        data=json.dumps({"results": results}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def _bill_inject(first: date, today: date) -> int:
    """Cost Explorer's answer for this month's full days, from the cost rows (modelled services)
    plus a little CloudWatch: the bill the history would have produced."""
    days: dict[date, dict[str, Decimal]] = defaultdict(dict)
    rows = CostRow.objects.filter(month=first, day__lt=today).values_list("day", "service", "cost")
    for day, service, cost in rows:
        name = CE_NAMES[service]
        days[day][name] = days[day].get(name, Decimal(0)) + cost
    for offset in range((today - first).days):
        day = first + timedelta(days=offset)
        days[day][BILLED_ONLY[0]] = BILLED_ONLY[1]
    if not days:
        return 0
    ce_results_inject(os.environ["AWS_ENDPOINT_URL"], [ce_result(dict(days))])
    return len(days)
