"""The AWS adapter: the one place Clusterweb builds boto3 clients and reads AWS.

Clients are built lazily, once per process and configuration, with explicit timeouts and boto3's
adaptive retry mode (``AWS_CONNECT_TIMEOUT``, ``AWS_READ_TIMEOUT``, ``AWS_MAX_ATTEMPTS``) in
``AWS_REGION``. No endpoint is configured here: boto3 reads ``AWS_ENDPOINT_URL`` itself, which is
how the sandbox and the tests point it at the simulated AWS (``sandbox/aws``).

Failures come out as ``clusterweb.errors`` exceptions with ``system="aws"`` and AWS's error code
in ``.code`` (see :func:`translated`):

- :class:`CapacityError` (transient): AWS has no capacity for that type in that zone right now;
  another type or zone may work at once, the same one later.
- :class:`LimitError` (permanent): an account quota (vCPUs, spot instances) stops the request
  until the admin raises it.
- :class:`ThrottledError` (transient): too many calls; boto3 already backed off and retried.
- :class:`AuthError` (permanent): the credentials or the IAM policy do not allow the call.
- any other AWS client error, ``IdempotentParameterMismatch`` included: :class:`PermanentError`;
  unreachable, timed out, a garbled answer or a 5xx: :class:`TransientError`.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError
from django.conf import settings

from clusterweb import clock
from clusterweb.errors import IntegrationError, PermanentError, TransientError

SYSTEM = "aws"
CLUSTER_TAG = "clusterweb:cluster"

# Large pages keep a reconcile of a busy cluster to a few calls; EC2 caps describe pages at 1000.
_PAGE_SIZE = 100


class CapacityError(TransientError):
    """AWS has no spare capacity for the requested instance type in that zone. Another type or
    zone may succeed at once; the same one later."""


class ThrottledError(TransientError):
    """AWS refused the call's rate; boto3 already backed off and retried before giving up."""


class LimitError(PermanentError):
    """An account quota (vCPUs, spot instance count) stops the request until it is raised."""


class AuthError(PermanentError):
    """The credentials are missing, expired or not allowed this call by IAM."""


_CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "UnfulfillableCapacity",
        # Spot request status codes, for callers translating a spot request that never filled.
        "capacity-not-available",
        "capacity-oversubscribed",
    }
)
_LIMIT_CODES = frozenset(
    {
        "MaxSpotInstanceCountExceeded",
        "MaxSpotFleetRequestCountExceeded",
        "VcpuLimitExceeded",
        "InstanceLimitExceeded",
    }
)
_THROTTLING_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        # Cost Explorer's name for "too many calls" (it has no other limit error).
        "LimitExceededException",
    }
)
_AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
    }
)
# Codes AWS sends for its own trouble, whatever the HTTP status says.
_SERVER_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)


# --- errors --------------------------------------------------------------------------------------
def error_from(exc: Exception) -> IntegrationError:
    """The Clusterweb error for an exception raised by boto3/botocore (the rules are in the
    module docstring). Exceptions from elsewhere are not passed here."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or code or exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _CAPACITY_CODES:
            return CapacityError(message, system=SYSTEM, code=code)
        if code in _LIMIT_CODES:
            return LimitError(message, system=SYSTEM, code=code)
        if code in _THROTTLING_CODES:
            return ThrottledError(message, system=SYSTEM, code=code)
        if code in _AUTH_CODES or code.startswith("AccessDenied"):
            return AuthError(message, system=SYSTEM, code=code)
        if code in _SERVER_CODES or status >= 500:
            return TransientError(message, system=SYSTEM, code=code or str(status))
        return PermanentError(message, system=SYSTEM, code=code or str(status))
    name = type(exc).__name__
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return AuthError(f"no usable AWS credentials: {exc}", system=SYSTEM, code=name)
    if isinstance(exc, (NoRegionError, ParamValidationError)):
        return PermanentError(str(exc), system=SYSTEM, code=name)
    if isinstance(exc, (HTTPClientError, ResponseParserError, ConnectionError, TimeoutError)):
        # Unreachable, timed out, or an answer that was not AWS's (a proxy's error page).
        return TransientError(f"AWS unreachable: {exc}", system=SYSTEM, code=name)
    if isinstance(exc, BotoCoreError):
        return TransientError(str(exc), system=SYSTEM, code=name)
    return PermanentError(str(exc), system=SYSTEM, code=name)


@contextmanager
def translated() -> Iterator[None]:
    """Run boto3 calls with their errors translated by :func:`error_from` (the original is
    chained as ``__cause__``). Also a decorator: ``@translated()``."""
    try:
        yield
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        raise error_from(exc) from exc


# --- clients -------------------------------------------------------------------------------------
_lock = threading.Lock()
_sessions: dict[int, Any] = {}
_clients: dict[tuple, Any] = {}


def client_config(region: str | None = None) -> Config:
    """The botocore configuration every client gets, from settings (``region``: another region
    than AWS_REGION, for the services AWS serves from one region only)."""
    return Config(
        region_name=region or settings.AWS_REGION,
        connect_timeout=settings.AWS_CONNECT_TIMEOUT,
        read_timeout=settings.AWS_READ_TIMEOUT,
        # total_max_attempts counts the first attempt, like the AWS_MAX_ATTEMPTS of the AWS
        # SDKs; botocore's "max_attempts" key would count retries only.
        retries={"mode": "adaptive", "total_max_attempts": settings.AWS_MAX_ATTEMPTS},
        user_agent_appid="clusterweb",
    )


def client(service: str, *, region: str | None = None) -> Any:
    """The process's boto3 client for ``service`` (``"ec2"``, ``"ce"``, ``"cloudwatch"``...), in
    AWS_REGION or ``region``.

    Built on first use and reused: a client is thread-safe and holds the connection pool and the
    adaptive mode's rate limiter. A new one is built after a fork (Celery's prefork pool) or when
    the settings or ``AWS_ENDPOINT_URL`` change (tests)."""
    pid = os.getpid()
    key = (
        service,
        pid,
        region or settings.AWS_REGION,
        settings.AWS_CONNECT_TIMEOUT,
        settings.AWS_READ_TIMEOUT,
        settings.AWS_MAX_ATTEMPTS,
        os.environ.get("AWS_ENDPOINT_URL", ""),
    )
    with _lock:
        found = _clients.get(key)
        if found is None:
            import boto3

            # A boto3 Session is not thread-safe; one per process, used under the lock.
            session = _sessions.get(pid)
            if session is None:
                session = _sessions[pid] = boto3.session.Session()
            with translated():
                found = _clients[key] = session.client(service, config=client_config(region))
    return found


def clients_clear(*, sessions: bool = False) -> None:
    """Forget every client (tests: a fresh adaptive rate limiter per test). ``sessions`` also
    forgets the sessions, and with them the credentials they resolved."""
    with _lock:
        _clients.clear()
        if sessions:
            _sessions.clear()


# --- EC2 -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instance:
    """An EC2 instance as Clusterweb sees it. ``state`` is EC2's state as a slug
    (``shutting_down``, not ``shutting-down``); ``lifecycle`` is ``spot`` or ``on-demand``."""

    instance_id: str
    instance_type: str
    state: str
    lifecycle: str
    zone: str
    launch_time: datetime
    tags: dict[str, str] = field(default_factory=dict)
    private_ip: str | None = None
    state_reason_code: str | None = None
    state_reason_message: str | None = None

    @property
    def pool(self) -> str | None:
        return self.tags.get("clusterweb:pool")

    @property
    def owner(self) -> str | None:
        return self.tags.get("clusterweb:owner")

    @property
    def spot_interrupted(self) -> bool:
        """AWS reclaimed it (as opposed to someone terminating or stopping it)."""
        return (self.state_reason_code or "").startswith(
            ("Server.SpotInstanceTermination", "Server.SpotInstanceShutdown")
        )


def _instance(raw: Mapping[str, Any]) -> Instance:
    reason = raw.get("StateReason") or {}
    return Instance(
        instance_id=raw["InstanceId"],
        instance_type=raw["InstanceType"],
        state=raw["State"]["Name"].replace("-", "_"),
        lifecycle="spot" if raw.get("InstanceLifecycle") == "spot" else "on-demand",
        zone=(raw.get("Placement") or {}).get("AvailabilityZone", ""),
        launch_time=raw["LaunchTime"],
        tags={t["Key"]: t["Value"] for t in raw.get("Tags") or []},
        private_ip=raw.get("PrivateIpAddress"),
        state_reason_code=reason.get("Code"),
        state_reason_message=reason.get("Message"),
    )


@translated()
def instances_describe(
    cluster_name: str,
    *,
    lifecycle: str | None = None,
    states: Iterable[str] | None = None,
) -> list[Instance]:
    """Every instance tagged ``clusterweb:cluster=<cluster_name>`` (all pages), oldest launch
    first. ``states`` (slugs such as ``running``, ``shutting_down``) filters on the server;
    ``lifecycle`` (``spot`` or ``on-demand``) filters here, because AWS's
    ``instance-lifecycle`` filter cannot select on-demand instances (they carry no lifecycle)
    and moto does not implement it."""
    if lifecycle not in (None, "spot", "on-demand"):
        raise ValueError(f"lifecycle must be spot or on-demand, not {lifecycle!r}")
    filters = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]}]
    if states is not None:
        filters.append(
            {"Name": "instance-state-name", "Values": [s.replace("_", "-") for s in states]}
        )
    paginator = client("ec2").get_paginator("describe_instances")
    found = [
        _instance(raw)
        for page in paginator.paginate(Filters=filters, PaginationConfig={"PageSize": _PAGE_SIZE})
        for reservation in page["Reservations"]
        for raw in reservation["Instances"]
    ]
    if lifecycle is not None:
        found = [i for i in found if i.lifecycle == lifecycle]
    return sorted(found, key=lambda i: (i.launch_time, i.instance_id))


@dataclass(frozen=True)
class InstanceType:
    """What one instance type offers: vCPUs, memory in MiB and GPUs (0 for none)."""

    name: str
    vcpus: int
    memory_mib: int
    gpus: int
    gpu_memory_mib: int = 0


@translated()
def instance_types_describe(types: Sequence[str]) -> dict[str, InstanceType]:
    """The sizes of ``types``, by name. An unknown type raises :class:`PermanentError` (code
    ``InvalidInstanceType``); an empty list returns ``{}`` without calling AWS (which would list
    every type)."""
    if not types:
        return {}
    paginator = client("ec2").get_paginator("describe_instance_types")
    result: dict[str, InstanceType] = {}
    for page in paginator.paginate(InstanceTypes=list(dict.fromkeys(types))):
        for raw in page["InstanceTypes"]:
            gpus = (raw.get("GpuInfo") or {}).get("Gpus") or []
            result[raw["InstanceType"]] = InstanceType(
                name=raw["InstanceType"],
                vcpus=int(raw["VCpuInfo"]["DefaultVCpus"]),
                memory_mib=int(raw["MemoryInfo"]["SizeInMiB"]),
                gpus=sum(int(g.get("Count", 0)) for g in gpus),
                gpu_memory_mib=int((raw.get("GpuInfo") or {}).get("TotalGpuMemoryInMiB", 0)),
            )
    return result


@dataclass(frozen=True)
class SpotPrice:
    """One entry of the spot price history: the hourly price in USD from ``at`` on."""

    instance_type: str
    zone: str
    price: Decimal
    at: datetime
    product: str


@translated()
def spot_price_history(
    types: Sequence[str], since: datetime, *, product: str = "Linux/UNIX"
) -> list[SpotPrice]:
    """Spot prices of ``types`` since ``since`` (all pages), newest first, as AWS returns them:
    the first entry of each type and zone may predate ``since`` (it is the price in force
    then). Prices are Decimal USD per hour."""
    if not types:
        return []
    paginator = client("ec2").get_paginator("describe_spot_price_history")
    pages = paginator.paginate(
        InstanceTypes=list(dict.fromkeys(types)),
        StartTime=since,
        ProductDescriptions=[product],
        PaginationConfig={"PageSize": _PAGE_SIZE},
    )
    prices = [
        SpotPrice(
            instance_type=raw["InstanceType"],
            zone=raw.get("AvailabilityZone", ""),
            price=Decimal(raw["SpotPrice"]),
            at=raw["Timestamp"],
            product=raw.get("ProductDescription", product),
        )
        for page in pages
        for raw in page["SpotPriceHistory"]
    ]
    return sorted(prices, key=lambda p: p.at, reverse=True)


# --- CloudWatch ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricPoint:
    """A CloudWatch datapoint: the statistic over the period starting at ``at``."""

    at: datetime
    value: float
    unit: str


def _period(start: datetime, end: datetime, now: datetime) -> int:
    """The smallest period CloudWatch accepts for this window: at most 1440 datapoints per
    call, and coarser periods for older data (1-minute points are kept 15 days, 5-minute points
    63 days, hourly after that)."""
    seconds = max((end - start).total_seconds(), 60.0)
    period = max(60, math.ceil(seconds / 1440 / 60) * 60)
    age = now - start
    step = 3600 if age > timedelta(days=63) else 300 if age > timedelta(days=15) else 60
    return math.ceil(period / step) * step


@translated()
def metric_latest(
    namespace: str,
    metric: str,
    dimensions: Mapping[str, str],
    since: datetime,
    *,
    statistic: str = "Average",
) -> MetricPoint | None:
    """The newest datapoint of a metric since ``since`` (``None`` if there is none), e.g.
    ``metric_latest("AWS/EFS", "StorageBytes", {"FileSystemId": fs, "StorageClass": "Total"},
    since)`` or ``("AWS/S3", "BucketSizeBytes", {"BucketName": b, "StorageType":
    "StandardStorage"}, since)``. S3 publishes storage once a day, so read S3 sizes over at
    least the last two days."""
    now = clock.now()
    if since >= now:
        return None
    # EndTime is exclusive (and compared to the second): a minute ahead, so a datapoint stamped
    # this very second is still the newest one.
    end = now + timedelta(minutes=1)
    answer = client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": str(v)} for k, v in dimensions.items()],
        StartTime=since,
        EndTime=end,
        Period=_period(since, end, now),
        Statistics=[statistic],
    )
    points = answer.get("Datapoints") or []
    if not points:
        return None
    newest = max(points, key=lambda p: p["Timestamp"])
    return MetricPoint(newest["Timestamp"], float(newest[statistic]), newest.get("Unit", ""))


@translated()
def metric_daily(
    namespace: str,
    metric: str,
    dimensions: Mapping[str, str],
    start: datetime,
    end: datetime,
    *,
    statistic: str = "Average",
) -> list[MetricPoint]:
    """A metric's daily datapoints in ``[start, end)``, oldest first (Period one day, at most
    1,440 points a call: a window of years). S3 publishes ``BucketSizeBytes`` once a day,
    stamped 00:00 UTC; for EFS ``StorageBytes`` it is the day's statistic. Storage is billed
    by the size of each day, so the inventory keeps these, not only the latest."""
    if end <= start:
        return []
    answer = client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": str(v)} for k, v in dimensions.items()],
        StartTime=start,
        EndTime=end,
        Period=86400,
        Statistics=[statistic],
    )
    points = [
        MetricPoint(p["Timestamp"], float(p[statistic]), p.get("Unit", ""))
        for p in answer.get("Datapoints") or []
    ]
    return sorted(points, key=lambda p: p.at)


# --- Inventory (added for provisioning's inventory sync, issue 6) ---------------------------------
# What the sync needs beyond `instances_describe`: the billed public IPv4 address and the state
# transition reason (whose timestamp dates a termination), EBS volumes, Elastic IPs, EFS file
# systems and S3 buckets of the cluster. Same rules as above: one call per page, errors translated.
@dataclass(frozen=True)
class InventoryInstance(Instance):
    """An :class:`Instance` with what the inventory also records."""

    public_ip: str | None = None
    state_transition_reason: str = ""
    volume_ids: tuple[str, ...] = ()


def _inventory_instance(raw: Mapping[str, Any]) -> InventoryInstance:
    base = _instance(raw)
    return InventoryInstance(
        **vars(base),
        public_ip=raw.get("PublicIpAddress") or None,
        state_transition_reason=str(raw.get("StateTransitionReason") or ""),
        volume_ids=tuple(
            m["Ebs"]["VolumeId"]
            for m in raw.get("BlockDeviceMappings") or []
            if (m.get("Ebs") or {}).get("VolumeId")
        ),
    )


@translated()
def instances_inventory(cluster_name: str) -> list[InventoryInstance]:
    """Every instance tagged ``clusterweb:cluster=<cluster_name>``, in every state (all pages),
    oldest launch first, as :func:`instances_describe` reads them plus the public IPv4 address,
    the state transition reason and the attached volume ids. One call per page: the inventory
    sync runs every minute."""
    return _inventory_filtered([{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]}])


def _inventory_filtered(filters: list[dict[str, Any]]) -> list[InventoryInstance]:
    """DescribeInstances with these filters, all pages, oldest launch first."""
    paginator = client("ec2").get_paginator("describe_instances")
    found = [
        _inventory_instance(raw)
        for page in paginator.paginate(Filters=filters, PaginationConfig={"PageSize": _PAGE_SIZE})
        for reservation in page["Reservations"]
        for raw in reservation["Instances"]
    ]
    return sorted(found, key=lambda i: (i.launch_time, i.instance_id))


@dataclass(frozen=True)
class Volume:
    """An EBS volume: size in GiB, type (``gp3``...), state (``in-use``, ``available``...),
    provisioned IOPS and throughput (MiB/s) where EC2 reports them (None otherwise)."""

    volume_id: str
    size_gib: int
    volume_type: str
    state: str
    zone: str
    created_at: datetime
    instance_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    iops: int | None = None
    throughput: int | None = None


# EC2 accepts at most 200 values in one filter.
_FILTER_VALUES = 200


def _chunked(name: str, values: Sequence[str]) -> list[list[dict[str, Any]]]:
    """One filter list per chunk of at most _FILTER_VALUES values."""
    unique = list(dict.fromkeys(values))
    return [
        [{"Name": name, "Values": unique[i : i + _FILTER_VALUES]}]
        for i in range(0, len(unique), _FILTER_VALUES)
    ]


@translated()
def volumes_describe(
    cluster_name: str, instance_ids: Sequence[str] = (), volume_ids: Sequence[str] = ()
) -> list[Volume]:
    """EBS volumes of the cluster: those tagged ``clusterweb:cluster=<cluster_name>``, those
    attached to ``instance_ids`` (root volumes carry no tag unless the launch template adds it),
    and ``volume_ids`` (volumes already tracked: a volume left behind by a terminated instance is
    billed until it is deleted), each once, by id. A filter on ids that no longer exist answers
    nothing (``VolumeIds`` would fail the whole call)."""
    paginator = client("ec2").get_paginator("describe_volumes")
    queries = [[{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]}]]
    queries += _chunked("attachment.instance-id", instance_ids)
    queries += _chunked("volume-id", volume_ids)
    found: dict[str, Volume] = {}
    for filters in queries:
        for page in paginator.paginate(Filters=filters, PaginationConfig={"PageSize": _PAGE_SIZE}):
            for raw in page["Volumes"]:
                attached = [a for a in raw.get("Attachments") or [] if a.get("InstanceId")]
                found[raw["VolumeId"]] = Volume(
                    volume_id=raw["VolumeId"],
                    size_gib=int(raw.get("Size") or 0),
                    volume_type=str(raw.get("VolumeType") or ""),
                    state=str(raw.get("State") or ""),
                    zone=str(raw.get("AvailabilityZone") or ""),
                    created_at=raw["CreateTime"],
                    instance_id=attached[0]["InstanceId"] if attached else None,
                    tags={t["Key"]: t["Value"] for t in raw.get("Tags") or []},
                    iops=_int_or_none(raw.get("Iops")),
                    throughput=_int_or_none(raw.get("Throughput")),
                )
    return sorted(found.values(), key=lambda v: v.volume_id)


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class VolumeModification:
    """A ModifyVolume as EC2 records it: when it started and the configuration it aims at
    (None: that attribute was not modified). AWS bills the new configuration from the start."""

    volume_id: str
    started_at: datetime
    state: str
    target_size_gib: int | None = None
    target_volume_type: str | None = None
    target_iops: int | None = None
    target_throughput: int | None = None


@translated()
def volume_modifications(volume_ids: Sequence[str]) -> list[VolumeModification]:
    """The modifications EC2 remembers for ``volume_ids``, oldest first. By filter, not by
    ``VolumeIds``: a volume never modified is an error there (and the whole call fails). EC2
    keeps modification records for a limited time; a volume without one is dated by the sync."""
    ec2 = client("ec2")
    found: list[VolumeModification] = []
    for filters in _chunked("volume-id", volume_ids):
        token: str | None = None
        while True:
            answer = ec2.describe_volumes_modifications(
                Filters=filters, **({"NextToken": token} if token else {})
            )
            for raw in answer.get("VolumesModifications") or []:
                if raw.get("StartTime") is None:
                    continue
                found.append(
                    VolumeModification(
                        volume_id=raw["VolumeId"],
                        started_at=raw["StartTime"],
                        state=str(raw.get("ModificationState") or ""),
                        target_size_gib=_int_or_none(raw.get("TargetSize")),
                        target_volume_type=raw.get("TargetVolumeType") or None,
                        target_iops=_int_or_none(raw.get("TargetIops")),
                        target_throughput=_int_or_none(raw.get("TargetThroughput")),
                    )
                )
            token = answer.get("NextToken")
            if not token:
                break
    return sorted(found, key=lambda m: (m.started_at, m.volume_id))


@dataclass(frozen=True)
class ElasticAddress:
    """An Elastic IP: billed per hour whether attached or idle."""

    allocation_id: str
    public_ip: str
    instance_id: str | None = None


@translated()
def addresses_describe(
    cluster_name: str, instance_ids: Sequence[str] = (), allocation_ids: Sequence[str] = ()
) -> list[ElasticAddress]:
    """Elastic IPs tagged ``clusterweb:cluster=<cluster_name>``, associated with
    ``instance_ids``, or among ``allocation_ids`` (addresses already tracked: one left idle by a
    terminated instance is billed until it is released), each once (describe_addresses has no
    pages)."""
    ec2 = client("ec2")
    queries = [[{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]}]]
    queries += _chunked("instance-id", instance_ids)
    queries += _chunked("allocation-id", allocation_ids)
    found: dict[str, ElasticAddress] = {}
    for filters in queries:
        for raw in ec2.describe_addresses(Filters=filters)["Addresses"]:
            key = raw.get("AllocationId") or raw["PublicIp"]
            found[key] = ElasticAddress(
                allocation_id=key,
                public_ip=raw["PublicIp"],
                instance_id=raw.get("InstanceId") or None,
            )
    return sorted(found.values(), key=lambda a: a.allocation_id)


@dataclass(frozen=True)
class FileSystem:
    file_system_id: str
    name: str


@translated()
def file_systems_describe(cluster_name: str) -> list[FileSystem]:
    """EFS file systems tagged ``clusterweb:cluster=<cluster_name>`` (EFS cannot filter by tag:
    the tags come with each file system and are matched here)."""
    paginator = client("efs").get_paginator("describe_file_systems")
    found = []
    for page in paginator.paginate(PaginationConfig={"PageSize": _PAGE_SIZE}):
        for raw in page["FileSystems"]:
            tags = {t["Key"]: t["Value"] for t in raw.get("Tags") or []}
            if tags.get(CLUSTER_TAG) == cluster_name:
                found.append(FileSystem(raw["FileSystemId"], str(raw.get("Name") or "")))
    return sorted(found, key=lambda f: f.file_system_id)


# A bucket whose tags cannot be read is not one of ours: untagged, gone, another account's
# policy, or in another region.
_NOT_OURS = frozenset(
    {
        "NoSuchTagSet",
        "NoSuchBucket",
        "AccessDenied",
        "PermanentRedirect",
        "AuthorizationHeaderMalformed",
    }
)


@translated()
def buckets_tagged(cluster_name: str) -> list[str]:
    """Names of the S3 buckets tagged ``clusterweb:cluster=<cluster_name>`` (one tagging call
    per bucket of the account: S3 has no tag filter)."""
    s3 = client("s3")
    names = []
    for bucket in s3.list_buckets().get("Buckets") or []:
        try:
            tags = s3.get_bucket_tagging(Bucket=bucket["Name"]).get("TagSet") or []
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_OURS:
                continue
            raise
        if any(t["Key"] == CLUSTER_TAG and t["Value"] == cluster_name for t in tags):
            names.append(bucket["Name"])
    return sorted(names)


# --- Cost Explorer (added for the billed cost, issue 7) ------------------------------------------
# Every get_cost_and_usage request costs $0.01, each page of results included, so one call here is
# one page, and the caller counts the requests that went out (boto3's retries included).
@dataclass(frozen=True)
class BilledDay:
    """One day of Cost Explorer's answer: UnblendedCost in USD per AWS service name."""

    day: date
    estimated: bool
    amounts: dict[str, Decimal]


@dataclass(frozen=True)
class CostPage:
    days: list[BilledDay]
    next_token: str | None
    requests: int  # HTTP requests this page took (1 + boto3's retries)


def _requests_of(response: Mapping[str, Any] | None) -> int:
    retries = ((response or {}).get("ResponseMetadata") or {}).get("RetryAttempts") or 0
    return 1 + int(retries)


def cost_and_usage_page(start: date, end: date, *, page_token: str | None = None) -> CostPage:
    """One page of ``get_cost_and_usage`` for ``[start, end)`` (Cost Explorer's End is
    exclusive): daily UnblendedCost grouped by SERVICE. Cost Explorer refuses an empty period,
    so ``end`` must be after ``start`` (ValueError otherwise). A failure is raised translated,
    with ``.requests`` set to the requests it took."""
    if end <= start:
        raise ValueError(f"empty Cost Explorer period {start}..{end} (Start must be before End)")
    params: dict[str, Any] = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    if page_token:
        params["NextPageToken"] = page_token
    try:
        answer = client("ce").get_cost_and_usage(**params)
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        error = error_from(exc)
        error.requests = _requests_of(getattr(exc, "response", None))  # type: ignore[attr-defined]
        raise error from exc
    days = []
    for result in answer.get("ResultsByTime") or []:
        amounts: dict[str, Decimal] = {}
        for group in result.get("Groups") or []:
            name = (group.get("Keys") or ["(no service)"])[0]
            metric = (group.get("Metrics") or {}).get("UnblendedCost") or {}
            try:
                value = Decimal(str(metric.get("Amount", "0")))
            except InvalidOperation:
                raise PermanentError(
                    f"Cost Explorer sent a malformed amount {metric.get('Amount')!r}",
                    system=SYSTEM,
                    code="MalformedAmount",
                ) from None
            amounts[name] = amounts.get(name, Decimal(0)) + value
        days.append(
            BilledDay(
                day=date.fromisoformat(result["TimePeriod"]["Start"][:10]),
                estimated=bool(result.get("Estimated", False)),
                amounts=amounts,
            )
        )
    return CostPage(
        days=days, next_token=answer.get("NextPageToken") or None, requests=_requests_of(answer)
    )


# --- Price List Query API (issue 14) -------------------------------------------------------------
# AWS serves the Price List Query API from us-east-1 (and two other regions) only, whatever region
# the prices are for (AWS Billing user guide, "Using the AWS Price List Query API").
PRICING_REGION = "us-east-1"
# Plain on-demand Linux as the bundled catalog holds it: shared tenancy, no pre-installed
# software, capacity status "Used" (not the price of reserved-but-idle capacity), not a capacity
# block. TERM_MATCH on product attributes (field names as get_attribute_values lists them).
ON_DEMAND_LINUX = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "licenseModel": "No License required",
    "marketoption": "OnDemand",
}


@dataclass(frozen=True)
class PriceListAnswer:
    """The products ``get_products`` returned (each PriceList entry decoded from its JSON
    string: ``product``, ``terms``, ``publicationDate``...) and the requests it took."""

    products: list[dict[str, Any]]
    requests: int


@translated()
def ec2_on_demand_products(region: str, instance_type: str) -> PriceListAnswer:
    """Every AmazonEC2 product of ``instance_type`` in ``region`` that is plain on-demand Linux
    (``ON_DEMAND_LINUX``), all pages, through the us-east-1 endpoint."""
    filters = {"instanceType": instance_type, "regionCode": region, **ON_DEMAND_LINUX}
    params: dict[str, Any] = {
        "ServiceCode": "AmazonEC2",
        "FormatVersion": "aws_v1",
        "Filters": [
            {"Type": "TERM_MATCH", "Field": name, "Value": value} for name, value in filters.items()
        ],
        "MaxResults": _PAGE_SIZE,
    }
    products: list[dict[str, Any]] = []
    requests = 0
    pricing = client("pricing", region=PRICING_REGION)
    while True:
        answer = pricing.get_products(**params)
        requests += _requests_of(answer)
        for text in answer.get("PriceList") or []:
            try:
                document = json.loads(text) if isinstance(text, str) else text
            except ValueError:
                raise PermanentError(
                    "the Price List Query API sent an entry that is not JSON",
                    system=SYSTEM,
                    code="MalformedPriceList",
                ) from None
            if isinstance(document, dict):
                products.append(document)
        token = answer.get("NextToken")
        if not token:
            return PriceListAnswer(products=products, requests=requests)
        params["NextToken"] = token


# --- Launches (issue 18) -------------------------------------------------------------------------
# A launch request's instances are found by their tags, never by ids remembered somewhere else:
# the tags are written by the same RunInstances call that creates the instances, so a process
# that dies right after the call still finds them (EC2 applies TagSpecifications atomically with
# the launch: "Tag your Amazon EC2 resources › Tag your resources on creation").
REQUEST_TAG = "clusterweb:request"
EXPIRES_TAG = "clusterweb:expires-at"
# RunInstances' errors after which a spot launch may be retried on-demand: no spot capacity for
# the type in the zone, or AWS's price or count limits for spot ("Error codes for the Amazon EC2
# API"). The first two are CapacityError, the last LimitError; SpotMaxPriceTooLow is permanent
# for the same spot request, but an on-demand launch is not affected by it.
SPOT_FALLBACK_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "UnfulfillableCapacity",
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
    }
)
# EC2's limit on a ClientToken ("a unique, case-sensitive string of up to 64 ASCII characters").
CLIENT_TOKEN_MAX = 64


@dataclass(frozen=True)
class LaunchSpec:
    """One RunInstances call for a launch: ``count`` instances (all or none: MinCount =
    MaxCount) of ``instance_type`` from the pool's launch template, spot or on-demand."""

    launch_template_id: str
    instance_type: str
    count: int
    capacity_type: str  # "spot" or "on-demand"
    user_data: str
    tags: Mapping[str, str]
    client_token: str
    zone: str = ""
    subnet_id: str = ""


@translated()
def request_instances(
    cluster_name: str, request_id: str, *, instance_ids: Sequence[str] = ()
) -> list[InventoryInstance]:
    """The instances tagged with the cluster and ``clusterweb:request=<request_id>``, in every
    state, oldest launch first (one call per page); with ``instance_ids`` (what RunInstances
    answered), those too, each once: a tag filter may not show an instance launched a moment
    ago (DescribeInstances is eventually consistent), and a filter on ids answers nothing for an
    id EC2 no longer knows (``InstanceIds`` would fail the whole call)."""
    found = _inventory_filtered(
        [
            {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]},
            {"Name": f"tag:{REQUEST_TAG}", "Values": [str(request_id)]},
        ]
    )
    seen = {i.instance_id for i in found}
    extra = [i for i in dict.fromkeys(instance_ids) if i not in seen]
    for filters in _chunked("instance-id", extra):
        found += [i for i in _inventory_filtered(filters) if i.instance_id not in seen]
    return sorted(found, key=lambda i: (i.launch_time, i.instance_id))


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


@translated()
def instances_launch(spec: LaunchSpec) -> list[Instance]:
    """Launch ``spec`` with one RunInstances call carrying its ClientToken: the same call made
    again (a retry after a timeout, a second delivery of the task) returns the first call's
    instances instead of launching more (EC2 "Ensuring idempotency"). Errors are translated:
    :class:`CapacityError`, :class:`LimitError`, ``PermanentError(code="SpotMaxPriceTooLow")``..."""
    if spec.capacity_type not in ("spot", "on-demand"):
        raise ValueError(f"capacity_type must be spot or on-demand, not {spec.capacity_type!r}")
    if not 0 < len(spec.client_token) <= CLIENT_TOKEN_MAX:
        raise ValueError(f"a ClientToken has 1 to {CLIENT_TOKEN_MAX} characters")
    params: dict[str, Any] = {
        "LaunchTemplate": {"LaunchTemplateId": spec.launch_template_id},
        "InstanceType": spec.instance_type,
        "MinCount": spec.count,
        "MaxCount": spec.count,
        "UserData": spec.user_data,  # boto3 encodes it in base64
        "ClientToken": spec.client_token,
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": _tag_list(spec.tags)},
            {"ResourceType": "volume", "Tags": _tag_list(spec.tags)},
        ],
    }
    if spec.capacity_type == "spot":
        # No MaxPrice: AWS then caps the price at the on-demand price, which is what the quote's
        # maximum assumes. One-time, terminated on interruption: nothing restarts by itself.
        params["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {
                "SpotInstanceType": "one-time",
                "InstanceInterruptionBehavior": "terminate",
            },
        }
    if spec.subnet_id:
        params["SubnetId"] = spec.subnet_id
    elif spec.zone:
        params["Placement"] = {"AvailabilityZone": spec.zone}
    answer = client("ec2").run_instances(**params)
    return [_instance(raw) for raw in answer["Instances"]]


@translated()
def instances_terminate(instance_ids: Sequence[str]) -> None:
    """Terminate ``instance_ids`` (terminating one already shutting down or terminated is a
    no-op on EC2). Nothing to terminate: no call."""
    ids = list(dict.fromkeys(instance_ids))
    if ids:
        client("ec2").terminate_instances(InstanceIds=ids)


@translated()
def instances_tag(instance_ids: Sequence[str], tags: Mapping[str, str]) -> None:
    """Set ``tags`` on ``instance_ids`` (CreateTags overwrites a tag with the same key)."""
    ids = list(dict.fromkeys(instance_ids))
    if ids and tags:
        client("ec2").create_tags(Resources=ids, Tags=_tag_list(tags))


def request_volumes(cluster_name: str, request_id: str) -> list[Volume]:
    """The cluster's EBS volumes tagged ``clusterweb:request=<request_id>`` (a launch tags its
    volumes in the same RunInstances call), in every state, by id."""
    return [v for v in volumes_describe(cluster_name) if v.tags.get(REQUEST_TAG) == str(request_id)]


def volumes_delete(volume_ids: Sequence[str]) -> None:
    """Delete ``volume_ids`` (one DeleteVolume each; a volume already gone is success). A
    volume still attached raises (``VolumeInUse``): delete it once its instance is gone."""
    ec2 = client("ec2")
    for volume_id in dict.fromkeys(volume_ids):
        try:
            ec2.delete_volume(VolumeId=volume_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidVolume.NotFound":
                continue
            raise error_from(exc) from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise error_from(exc) from exc
