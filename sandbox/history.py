"""A month of history for the sandbox (`make run`), produced by **running the month through the
AWS layer**: scripted actions carry explicit timestamps through the layer's replay control
(``sandbox/aws/README.md``, "Replay"), and the product's own inventory sync and spot price sync
run after each step, as the 60 s sync would have. Nothing here writes a node, a volume, a cost row
or a bill: the product records what the layer shows it, and the dashboard's billed column is the
layer's own metering (``sandbox/aws/bill.py``) read through Cost Explorer.

The month (from ``sandbox.month.history_start``: the 1st, or a week back in the first days of a
month; ``sandbox.run.seed_aws`` launched the always-on nodes there):

- spot prices for every spot pool's types in each zone, changing once a day, at about a third of
  the on-demand price (``sandbox.prices.spot_share``);
- a data-sets bucket (5 TiB) and the home directories' EFS (20 GiB) from the start; the EFS grows
  to 24 GiB, and most of the bucket is deleted late in the month (80 GiB left);
- a 100 GiB gp3 data volume on admin-1, resized to 1000 GiB mid-month;
- burst runs on earlier days: spark, GPU and Jupyter spot nodes; a spark node AWS interrupts 42
  minutes after it started (free, by AWS's rule); a Jupyter node with an Elastic IP that outlives
  it (left behind, idle, still billed); two spark nodes, one with a 200 GiB scratch volume left
  behind when they end; a spark node running across midnight (across the month's end when the
  history spans two months);
- admin-2 stopped, changed from t2.small to m5.4xlarge and started again, then back.

Each action's moment is a share of the history's span, whole hours from its start, so the
script fits any day of the month. ``sandbox_history_seed`` is called by ``manage.py
sandbox_seed`` after the pools are seeded. It is safe to call twice: a history already in the
layer (its data-sets bucket exists) is not replayed again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from billing.costs.services import cost_explorer_refresh, cost_rows_refresh
from billing.tasks import spot_prices_run
from clusterweb import clock
from provisioning import inventory
from provisioning.models import Pool
from sandbox.aws import AwsControl
from sandbox.aws.price_table import ON_DEMAND
from sandbox.month import CLUSTER_TAG, history_start
from sandbox.prices import ZONE_SUFFIXES, spot_share

GIB = 1024**3
HOME_FS, DATA_BUCKET = "sandbox-home", "sandbox-datasets"
HOME_BYTES, HOME_GROWN_BYTES = 20 * GIB, 24 * GIB
DATA_BYTES, DATA_KEPT_BYTES = 5 * 1024 * GIB, 80 * GIB
DATA_VOLUME_GIB, DATA_VOLUME_RESIZED_GIB, SCRATCH_GIB = 100, 1000, 200
# One of the Amazon images moto ships in every region (any id launches; listing them is slow).
IMAGE_ID = "ami-12c6146b"
# Nothing is replayed closer to now than this: the layer refuses steps in the future.
MARGIN = timedelta(minutes=30)


@dataclass(frozen=True)
class PastRun:
    """Burst nodes that ran earlier: ``count`` of them from ``share`` of the history's span
    (whole hours) for ``hours``. ``interrupted_after``: AWS reclaims them after that many hours.
    ``elastic_ip``: an Elastic IP is associated with the first and left behind. ``scratch_gib``:
    an untagged volume attached to the first and left behind."""

    pool: str
    instance_type: str
    owner: str
    request: str
    share: float
    hours: float
    count: int = 1
    zone: str = "b"
    interrupted_after: float | None = None
    elastic_ip: bool = False
    scratch_gib: int = 0


PAST_RUNS = (
    PastRun("spark", "m5.xlarge", "bob", "sandbox-1", 0.04, 4.5, count=3),
    PastRun("gpu", "g4dn.xlarge", "alice", "sandbox-2", 0.12, 3.75, zone="a"),
    PastRun("jupyter", "t2.xlarge", "bob", "sandbox-3", 0.22, 6, zone="c", elastic_ip=True),
    PastRun("spark", "m5.2xlarge", "alice", "sandbox-4", 0.32, 8, interrupted_after=0.7),
    PastRun("spark", "m5.4xlarge", "bob", "sandbox-5", 0.52, 8, count=2, scratch_gib=SCRATCH_GIB),
)  # fmt: skip
# A run across midnight: ``share`` picks the day; it starts at 20:00 UTC, or 5 hours before the
# month's first moment when the history spans two months.
ACROSS_MIDNIGHT = PastRun("spark", "m5.xlarge", "alice", "sandbox-6", 0.66, 10)


@dataclass
class HistorySummary:
    start: datetime | None = None
    replayed: bool = False
    steps: int = 0
    syncs: int = 0
    burst_nodes: int = 0
    billed_days: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        if not self.replayed:
            return f"history already in place; billed days read: {self.billed_days}"
        return (
            f"replayed from {self.start:%Y-%m-%d %H:%M} UTC: {self.steps} steps through the AWS "
            f"layer, {self.burst_nodes} burst nodes, {self.syncs} inventory syncs, "
            f"{self.billed_days} billed days read from its Cost Explorer, {self.seconds:.1f} s"
        )


def sandbox_history_seed(
    *,
    now: datetime | None = None,
    start: datetime | None = None,
    control: AwsControl | None = None,
) -> HistorySummary:
    """Replay the month (the module docstring) up to ``now`` from ``start`` (default
    ``history_start(now)``), then run the product's cost refresh and Cost Explorer read once,
    as their periodic jobs would."""
    began = time.monotonic()
    now = clock.now() if now is None else now
    start = history_start(now) if start is None else start
    control = control or AwsControl(os.environ["AWS_ENDPOINT_URL"])
    summary = HistorySummary(start=start)
    if not _replayed_before():
        script = _Script(start, now, control, summary)
        script.play()
        summary.replayed = True
    # The product's own services, as the 60 s cost job and the Cost Explorer job run them: the
    # rows and the bill come from the estimate's code and the layer's metering, never from here.
    # The cost job ran at every turn of a month inside the history (closing the month before).
    first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start < first:
        cost_rows_refresh(now=first + timedelta(minutes=1))
    cost_rows_refresh(now=now)
    outcome = cost_explorer_refresh(now=now, force=True)
    summary.billed_days = sum(read.days for read in outcome.reads)
    summary.seconds = time.monotonic() - began
    return summary


def _replayed_before() -> bool:
    from clusterweb.integrations import aws

    with aws.translated():
        buckets = aws.client("s3").list_buckets().get("Buckets") or []
    return any(b["Name"] == DATA_BUCKET for b in buckets)


# --- The script ----------------------------------------------------------------------------------
Step = dict[str, Any]
Builder = Callable[[], list[Step]]


class _Script:
    """Builds the month's events in time order and plays them through the layer, syncing the
    product after each action."""

    def __init__(
        self, start: datetime, now: datetime, control: AwsControl, summary: HistorySummary
    ) -> None:
        self.start, self.now, self.control, self.summary = start, now, control, summary
        self.end = now - MARGIN
        self.hours = max(int((self.end - start).total_seconds() // 3600), 1)
        self.region = settings.AWS_REGION
        self.cluster = settings.CLUSTER_NAME
        self.ids: dict[str, Any] = {}
        self.prices: list[Step] = []
        self.actions: list[tuple[datetime, int, Builder]] = []

    def at(self, share: float, hours: float = 0) -> datetime:
        return self.start + timedelta(hours=round(share * self.hours) + hours)

    def action(self, moment: datetime, builder: Builder) -> None:
        if moment <= self.end:
            self.actions.append((moment, len(self.actions), builder))

    # --- playing ---------------------------------------------------------------------------
    def play(self) -> None:
        self._spot_prices()
        self._storage()
        self._data_volume()
        for run in (*PAST_RUNS, ACROSS_MIDNIGHT):
            self._burst(run)
        self._type_change(0.42, "m5.4xlarge")
        self._type_change(0.75, "t2.small")
        prices = sorted(self.prices, key=lambda s: s["at"])
        for moment, _, builder in sorted(self.actions, key=lambda a: (a[0], a[1])):
            due = [p for p in prices if p["at"] <= moment]
            prices = prices[len(due) :]
            if due:
                self.control.replay(due)
                self.summary.steps += len(due)
            steps = [{"at": moment, **s} for s in builder()]
            if steps:
                self.control.replay(steps)
                self.summary.steps += len(steps)
            self._sync(moment)
        if prices:
            self.control.replay(prices)
            self.summary.steps += len(prices)
        self._sync(self.now)

    def _sync(self, moment: datetime) -> None:
        """The product's syncs, as they would have run just after ``moment``."""
        result = inventory.inventory_sync(now=moment)
        spot = spot_prices_run(now=moment)
        self.summary.syncs += 1
        for name, outcome in (("inventory", result), ("spot price", spot)):
            if not outcome.ok:
                raise RuntimeError(f"the {name} sync failed at {moment:%Y-%m-%d %H:%M}: "
                                   f"{outcome.errors}")  # fmt: skip

    # --- what happens ------------------------------------------------------------------------
    def _spot_prices(self) -> None:
        """A price for every spot pool's type in each zone from the start, then one change a
        day per zone (zones change at different hours, as AWS's do)."""
        types = sorted(
            {
                kind
                for pool in Pool.objects.filter(lifecycle="spot")
                for kind in pool.instance_types
                if kind in ON_DEMAND
            }
        )
        days = (self.end.date() - self.start.date()).days + 1
        for instance_type in types:
            for offset, suffix in enumerate(ZONE_SUFFIXES):
                zone = f"{self.region}{suffix}"
                moments = [self.start] + [
                    self.start + timedelta(days=day, hours=3 + 5 * offset) for day in range(days)
                ]
                for moment in moments:
                    if moment > self.end:
                        continue
                    share = spot_share(instance_type, zone, moment.date().isoformat())
                    price = (ON_DEMAND[instance_type] * share).quantize(
                        Decimal("0.0001"), rounding=ROUND_HALF_UP
                    )
                    args = {"instance_type": instance_type, "zone": zone, "price": str(price)}
                    self.prices.append({"at": moment, "control": "spot_price_set", "args": args})

    def _storage(self) -> None:
        tags = [{"Key": CLUSTER_TAG, "Value": self.cluster}]
        self.action(
            self.start,
            lambda: [
                {
                    "service": "s3",
                    "action": "CreateBucket",
                    "params": {
                        "Bucket": DATA_BUCKET,
                        "CreateBucketConfiguration": {"LocationConstraint": self.region},
                    },
                },
                {
                    "service": "s3",
                    "action": "PutBucketTagging",
                    "params": {"Bucket": DATA_BUCKET, "Tagging": {"TagSet": tags}},
                },
                _size("s3_size_set", "bucket", DATA_BUCKET, DATA_BYTES),
            ],
        )

        def home() -> list[Step]:
            [created] = self.control.replay(
                [
                    {
                        "at": self.start,
                        "service": "efs",
                        "action": "CreateFileSystem",
                        "params": {
                            "CreationToken": HOME_FS,
                            "Tags": [*tags, {"Key": "Name", "Value": "home"}],
                        },
                    }
                ]
            )
            self.ids["efs"] = created["FileSystemId"]
            return [_size("efs_size_set", "file_system_id", self.ids["efs"], HOME_BYTES)]

        self.action(self.start, home)
        self.action(
            self.at(0.5, 13),
            lambda: [_size("efs_size_set", "file_system_id", self.ids["efs"], HOME_GROWN_BYTES)],
        )
        self.action(
            self.at(0.85, 10),
            lambda: [_size("s3_size_set", "bucket", DATA_BUCKET, DATA_KEPT_BYTES)],
        )

    def _base(self, name: str) -> str:
        """The instance id of an always-on node (``admin-1``) by its Name tag."""
        if name not in self.ids:
            from clusterweb.integrations import aws

            with aws.translated():
                found = aws.client("ec2").describe_instances(
                    Filters=[
                        {"Name": "tag:Name", "Values": [name]},
                        {"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster]},
                    ]
                )
            ids = [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]
            if not ids:
                raise RuntimeError(f"no always-on node {name} in the simulated AWS")
            self.ids[name] = ids[0]
        return self.ids[name]

    def _data_volume(self) -> None:
        def create() -> list[Step]:
            [volume] = self.control.replay(
                [
                    {
                        "at": self.start + timedelta(hours=1),
                        "action": "CreateVolume",
                        "params": {
                            "AvailabilityZone": f"{self.region}a",
                            "Size": DATA_VOLUME_GIB,
                            "VolumeType": "gp3",
                            "TagSpecifications": [
                                {
                                    "ResourceType": "volume",
                                    "Tags": [
                                        {"Key": CLUSTER_TAG, "Value": self.cluster},
                                        {"Key": "Name", "Value": "admin data"},
                                    ],
                                }
                            ],
                        },
                    }
                ]
            )
            self.ids["data-volume"] = volume["VolumeId"]
            return [
                _call(
                    "AttachVolume",
                    VolumeId=volume["VolumeId"],
                    InstanceId=self._base("admin-1"),
                    Device="/dev/sdf",
                )
            ]

        self.action(self.start + timedelta(hours=1), create)
        self.action(
            self.at(0.6, 2),
            lambda: [
                _call(
                    "ModifyVolume",
                    VolumeId=self.ids["data-volume"],
                    Size=DATA_VOLUME_RESIZED_GIB,
                )
            ],
        )

    def _type_change(self, share: float, new_type: str) -> None:
        stopped = self.at(share, 9)
        self.action(stopped, lambda: [_call("StopInstances", InstanceIds=[self._base("admin-2")])])
        self.action(
            stopped + timedelta(hours=1),
            lambda: [
                _call(
                    "ModifyInstanceAttribute",
                    InstanceId=self._base("admin-2"),
                    InstanceType={"Value": new_type},
                )
            ],
        )
        self.action(
            stopped + timedelta(hours=2),
            lambda: [_call("StartInstances", InstanceIds=[self._base("admin-2")])],
        )

    def _across_midnight_start(self) -> datetime:
        """20:00 UTC on the day ``ACROSS_MIDNIGHT.share`` picks, or 5 hours before the month's
        first moment when the history spans two months."""
        first = self.now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if self.start < first - timedelta(hours=5):
            return first - timedelta(hours=5)
        return self.at(ACROSS_MIDNIGHT.share).replace(hour=20)

    def _burst(self, run: PastRun) -> None:
        launched = (
            self._across_midnight_start() if run is ACROSS_MIDNIGHT else self.at(run.share, 9)
        )
        ended = launched + timedelta(hours=run.interrupted_after or run.hours)
        if ended > self.end:
            return
        pool = Pool.objects.filter(slug=run.pool).first()
        key = f"run:{run.request}"

        def launch() -> list[Step]:
            tags = [
                {"Key": "Name", "Value": f"{run.pool}-{run.request}"},
                {"Key": CLUSTER_TAG, "Value": self.cluster},
                {"Key": "clusterweb:pool", "Value": run.pool},
                {"Key": "clusterweb:owner", "Value": run.owner},
                {"Key": "clusterweb:request", "Value": run.request},
            ]
            if pool is not None and pool.max_hours:
                expires = launched + timedelta(hours=pool.max_hours)
                tags.append(
                    {"Key": "clusterweb:expires-at", "Value": f"{expires:%Y-%m-%dT%H:%M:%SZ}"}
                )
            spot = pool is None or pool.lifecycle == "spot"
            [answer] = self.control.replay(
                [
                    {
                        "at": launched,
                        "action": "RunInstances",
                        "params": {
                            "ImageId": IMAGE_ID,
                            "InstanceType": run.instance_type,
                            "MinCount": run.count,
                            "MaxCount": run.count,
                            "ClientToken": f"sandbox-history-{run.request}",
                            "Placement": {"AvailabilityZone": f"{self.region}{run.zone}"},
                            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
                            **({"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}),
                        },
                    }
                ]
            )
            self.ids[key] = [i["InstanceId"] for i in answer["Instances"]]
            self.summary.burst_nodes += run.count
            self.summary.steps += 1
            return []

        self.action(launched, launch)

        def first() -> str:  # the first node's id, once the launch step has run
            return self.ids[key][0]

        if run.elastic_ip:

            def address() -> list[Step]:
                [allocated] = self.control.replay(
                    [{"at": launched + timedelta(minutes=5), **_call("AllocateAddress",
                                                                   Domain="vpc")}]
                )  # fmt: skip
                self.summary.steps += 1
                return [
                    _call(
                        "AssociateAddress",
                        AllocationId=allocated["AllocationId"],
                        InstanceId=first(),
                    )
                ]

            self.action(launched + timedelta(minutes=5), address)
        if run.scratch_gib:

            def scratch() -> list[Step]:
                [volume] = self.control.replay(
                    [
                        {
                            "at": launched + timedelta(minutes=5),
                            **_call(
                                "CreateVolume",
                                AvailabilityZone=f"{self.region}{run.zone}",
                                Size=run.scratch_gib,
                                VolumeType="gp3",
                            ),
                        }
                    ]
                )
                self.summary.steps += 1
                return [
                    _call(
                        "AttachVolume",
                        VolumeId=volume["VolumeId"],
                        InstanceId=first(),
                        Device="/dev/sdg",
                    )
                ]

            self.action(launched + timedelta(minutes=5), scratch)
        if run.interrupted_after is not None:
            self.action(
                ended,
                lambda: [
                    {"control": "spot_interrupt", "args": {"instance_id": i}} for i in self.ids[key]
                ],
            )
        else:
            self.action(ended, lambda: [_call("TerminateInstances", InstanceIds=self.ids[key])])


def _call(action: str, **params: Any) -> Step:
    return {"action": action, "params": params}


def _size(control: str, name: str, resource: str, size: int) -> Step:
    return {"control": control, "args": {name: resource, "bytes": size}}
