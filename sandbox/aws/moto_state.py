"""What the layer changes inside moto's in-process backends, where moto has no API for it: a spot
interruption, the interruption warning on an SQS queue, storage sizes published to CloudWatch,
and keeping moto's own S3 size estimate out of a size the layer set.

These reach into moto 5.2's models (``Instance._reason``, ``CloudWatchBackend.metric_data``,
``S3Backend.get_cloudwatch_metrics``), which are not a public API; moto is pinned, and the layer's
tests fail loudly if an upgrade moves them. Nothing here goes over HTTP, so none of it shows up in
the request recorder as something the product called.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from sandbox.aws import clock

SPOT_TERMINATION_CODE = "Server.SpotInstanceTermination"
SPOT_TERMINATION_MESSAGE = "Server.SpotInstanceTermination: Spot instance termination"


class NotFound(LookupError):
    """No such resource in any account or region the backends hold."""


class Conflict(ValueError):
    """The resource exists but is not in a state the operation applies to."""


def account_for(access_key: str, headers: Mapping[str, str]) -> str:
    """The account moto files a request under, decided the way moto decides it (environment,
    then the ``x-moto-account-id`` header, then the access key's IAM user)."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if headers.get("x-moto-account-id"):
        return headers["x-moto-account-id"]
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key)


def _utc_naive(moment: datetime) -> datetime:
    # moto keeps CloudWatch timestamps as naive UTC and compares them with naive datetimes.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _existing(backend_dict: Any) -> Iterator[tuple[str, str, Any]]:
    # dict.items() on moto's lazily-filled dicts lists only the backends already created, so
    # searching never instantiates a backend for every region.
    for account_id, regions in list(dict.items(backend_dict)):
        for region, backend in list(dict.items(regions)):
            yield account_id, region, backend


# --- EC2: spot interruption ------------------------------------------------------------------
def instance_find(instance_id: str) -> tuple[str, str, Any]:
    """(account, region, moto Instance) of ``instance_id``, wherever it lives."""
    from moto.ec2.models import ec2_backends

    for account_id, region, backend in _existing(ec2_backends):
        for reservation in list(backend.reservations.values()):
            for instance in reservation.instances:
                if instance.id == instance_id:
                    return account_id, region, instance
    raise NotFound(f"The instance ID '{instance_id}' does not exist")


def instances_all() -> Iterator[Any]:
    """Every moto instance, in every account and region whose EC2 backend exists."""
    from moto.ec2.models import ec2_backends

    for _, _, backend in _existing(ec2_backends):
        for reservation in list(backend.reservations.values()):
            yield from list(reservation.instances)


def instance_state_set(instance: Any, state: str) -> None:
    """Put a moto instance in ``state`` with EC2's code for it (see ``lifecycle.STATE_CODES``)."""
    from sandbox.aws.lifecycle import STATE_CODES

    instance._state.name = state
    instance._state.code = STATE_CODES[state]


def transition_reason_in_gmt(instance: Any) -> None:
    """EC2 words a user's stop or termination ``User initiated (2026-11-29 07:02:39 GMT)``;
    moto writes ``... UTC)``. Same moment, EC2's spelling (*StateTransitionReason*, Instance,
    EC2 API reference)."""
    reason = getattr(instance, "_reason", "") or ""
    if reason.startswith("User initiated (") and reason.endswith(" UTC)"):
        instance._reason = reason[: -len(" UTC)")] + " GMT)"


def spot_interruptible(instance_id: str) -> tuple[str, str, Any]:
    """The instance, if AWS could interrupt it now: a spot instance, pending or running."""
    account_id, region, instance = instance_find(instance_id)
    if instance.lifecycle != "spot":
        raise Conflict(f"{instance_id} is an on-demand instance: only spot instances are reclaimed")
    if instance.state not in ("pending", "running"):
        raise Conflict(f"{instance_id} is {instance.state}: only a running instance is reclaimed")
    return account_id, region, instance


def spot_terminate(instance_id: str, at: datetime | None = None) -> bool:
    """Terminate a spot instance the way a capacity reclaim does: state ``terminated``, state
    reason ``Server.SpotInstanceTermination``, a service-initiated transition reason, and its
    one-time spot request closed. Returns False when the instance is gone or already stopped
    (a reset or a user's terminate got there first)."""
    try:
        _, _, instance = instance_find(instance_id)
    except NotFound:
        return False
    if instance.state not in ("pending", "running"):
        return False
    from moto.ec2.models.instances import StateReason

    at = at or clock.now()
    instance.ec2_backend.terminate_instances([instance_id])
    # moto's terminate records a user-initiated shutdown; a reclaim is the service's doing.
    instance._reason = f"Service initiated ({at.strftime('%Y-%m-%d %H:%M:%S')} GMT)"
    instance.state_reason = StateReason(SPOT_TERMINATION_MESSAGE, SPOT_TERMINATION_CODE)
    for request in list(instance.ec2_backend.spot_instance_requests.values()):
        if getattr(request, "instance", None) is instance:
            # A one-time request ends with its instance; a persistent one waits for capacity.
            request.state = "closed" if request.type == "one-time" else "open"
            request._status_code = "instance-terminated-no-capacity"
            request.status_message = (
                "There is no longer enough Spot capacity available for the instance."
            )
    return True


def spot_warning_event(instance_id: str, account_id: str, region: str, at: datetime) -> dict:
    """The EventBridge event AWS emits two minutes before it reclaims a spot instance."""
    import uuid

    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": account_id,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{account_id}:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "instance-action": "terminate"},
    }


def sqs_send(queue_url: str, body: Mapping[str, Any], region: str) -> None:
    """Put ``body`` (as JSON) on the moto SQS queue at ``queue_url``, as an EventBridge rule
    with an SQS target would. The URL's path is ``/ACCOUNT/NAME``."""
    from moto.sqs.models import sqs_backends

    parts = urlsplit(queue_url).path.strip("/").split("/")
    if len(parts) != 2:
        raise NotFound(f"not an SQS queue URL: {queue_url}")
    account_id, name = parts
    backend = sqs_backends[account_id][region]
    if name not in backend.queues:
        raise NotFound(f"The specified queue {name} does not exist in {region}")
    backend.send_message(name, json.dumps(body))


# --- CloudWatch: storage sizes ---------------------------------------------------------------
def efs_region(file_system_id: str) -> tuple[str, str] | None:
    """(account, region) of a moto EFS file system, after setting its reported size."""
    from moto.efs.models import efs_backends

    for account_id, region, backend in _existing(efs_backends):
        if file_system_id in backend.file_systems_by_id:
            return account_id, region
    return None


def efs_size_store(file_system_id: str, size: int) -> None:
    """Make ``DescribeFileSystems`` report ``size`` bytes (moto reports 0)."""
    from moto.efs.models import efs_backends

    for _, _, backend in _existing(efs_backends):
        file_system = backend.file_systems_by_id.get(file_system_id)
        if file_system is not None:
            file_system._size_value = size


def s3_bucket_home(bucket: str) -> tuple[str, str] | None:
    """(account, region) of a moto S3 bucket."""
    from moto.s3.models import s3_backends

    for account_id, _, backend in _existing(s3_backends):
        found = backend.buckets.get(bucket)
        if found is not None:
            return account_id, found.region_name
    return None


def metric_set(
    account_id: str,
    region: str,
    namespace: str,
    metric: str,
    dimensions: Mapping[str, str],
    value: float,
    at: datetime,
    unit: str = "Bytes",
) -> None:
    """Publish one datapoint through moto's ``put_metric_data``, replacing a datapoint of the
    same series at the same timestamp: setting a size twice must not average two values."""
    metric_series_put(account_id, region, namespace, metric, dimensions, [(at, value)], unit)


def metric_series_put(
    account_id: str,
    region: str,
    namespace: str,
    metric: str,
    dimensions: Mapping[str, str],
    points: list[tuple[datetime, float]],
    unit: str = "Bytes",
) -> None:
    """Publish many datapoints of one series at once (one pass over moto's data), each replacing
    a datapoint of the series at the same timestamp, as :func:`metric_set` does for one."""
    if not points:
        return
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[account_id][region]
    stamps = {_utc_naive(at) for at, _ in points}
    wanted = {(name, str(val)) for name, val in dimensions.items()}
    backend.metric_data = [
        datum
        for datum in backend.metric_data
        if not (
            datum.timestamp in stamps
            and datum.namespace == namespace
            and datum.name == metric
            and {(d.name, d.value) for d in datum.dimensions} == wanted
        )
    ]
    backend.put_metric_data(
        namespace,
        [
            {
                "MetricName": metric,
                "Value": float(value),
                "Unit": unit,
                "Timestamp": _utc_naive(at),
                "Dimensions": [{"Name": k, "Value": str(v)} for k, v in dimensions.items()],
            }
            for at, value in points
        ],
    )


class S3SizeOverride:
    """Keeps moto's computed ``AWS/S3 BucketSizeBytes`` (today's midnight, the sum of the keys
    it holds) away from buckets whose size the layer set; otherwise a read averages the two."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: set[str] = set()
        self._original: Any = None

    def install(self) -> None:
        from moto.s3.models import S3Backend

        if self._original is not None:
            return
        original = S3Backend.__dict__["get_cloudwatch_metrics"]
        buckets, lock = self._buckets, self._lock

        def get_cloudwatch_metrics(cls: type, account_id: str, region: str) -> list:
            metrics = original.__func__(cls, account_id, region)
            with lock:
                hidden = set(buckets)
            return [
                datum
                for datum in metrics
                if not (
                    datum.name == "BucketSizeBytes"
                    and any(d.name == "BucketName" and d.value in hidden for d in datum.dimensions)
                )
            ]

        S3Backend.get_cloudwatch_metrics = classmethod(get_cloudwatch_metrics)
        self._original = original

    def uninstall(self) -> None:
        from moto.s3.models import S3Backend

        if self._original is not None:
            S3Backend.get_cloudwatch_metrics = self._original
            self._original = None

    def hide(self, bucket: str) -> None:
        with self._lock:
            self._buckets.add(bucket)

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


# --- EC2: spot prices ------------------------------------------------------------------------
# moto answers DescribeSpotPriceHistory with $0.00001 for every offering, stamped 2006-01-02.
MOTO_SPOT_PRICE = Decimal("0.00001")


class SpotPriceHistory:
    """The spot price of each (instance type, zone), as a history of changes on the layer's
    clock, answering moto's ``DescribeSpotPriceHistory``. A pair nobody set costs moto's
    $0.00001 from the moment the layer started (or was reset), so the history has a timestamp
    of this cloud's time rather than 2006's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: dict[tuple[str, str], list[tuple[datetime, Decimal]]] = {}
        self.since = clock.now()
        self._original: Any = None

    def clear(self) -> None:
        with self._lock:
            self._changes.clear()
            self.since = clock.now()

    def set(self, instance_type: str, zone: str, price: Decimal, at: datetime) -> None:
        with self._lock:
            changes = self._changes.setdefault((instance_type, zone), [])
            changes[:] = sorted([c for c in changes if c[0] != at] + [(at, price)])

    def history(self, instance_type: str, zone: str) -> list[tuple[datetime, Decimal]]:
        """Changes in time order; the default price from ``since`` when none was set before."""
        with self._lock:
            changes = list(self._changes.get((instance_type, zone), []))
            since = self.since
        if not changes or changes[0][0] > since:
            changes.insert(0, (min(since, changes[0][0]) if changes else since, MOTO_SPOT_PRICE))
        return changes

    def current(self, instance_type: str, zone: str) -> Decimal:
        """The price in force now (the layer's clock)."""
        now = clock.now()
        in_force = [price for at, price in self.history(instance_type, zone) if at <= now]
        return in_force[-1] if in_force else self.history(instance_type, zone)[0][1]

    def install(self) -> None:
        from moto.ec2.responses.spot_instances import SpotInstances

        if self._original is not None:
            return
        original = SpotInstances.__dict__["describe_spot_price_history"]
        history = self

        def describe_spot_price_history(response: Any) -> Any:
            from moto.core.responses import ActionResult

            types = response._get_param("InstanceTypes", [])
            filters = response._filters_from_querystring()
            start = _moment(response._get_param("StartTime"))
            end = _moment(response._get_param("EndTime")) or clock.now()
            offerings = response.ec2_backend.describe_spot_price_history(types, filters)
            entries = []
            for offering in offerings:
                kind, zone = offering["InstanceType"], offering["Location"]
                changes = [c for c in history.history(kind, zone) if c[0] <= end]
                if start is not None:
                    # AWS includes the price in force at StartTime, then every change after it.
                    before = [c for c in changes if c[0] <= start][-1:]
                    changes = before + [c for c in changes if c[0] > start]
                for at, price in changes:
                    entries.append(
                        {
                            "InstanceType": kind,
                            "ProductDescription": "Linux/UNIX (Amazon VPC)",
                            "SpotPrice": str(price),
                            "AvailabilityZone": zone,
                            "Timestamp": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        }
                    )
            entries.sort(key=lambda e: e["Timestamp"], reverse=True)  # newest first, as AWS
            return ActionResult({"SpotPriceHistory": entries})

        SpotInstances.describe_spot_price_history = describe_spot_price_history
        self._original = original

    def uninstall(self) -> None:
        from moto.ec2.responses.spot_instances import SpotInstances

        if self._original is not None:
            SpotInstances.describe_spot_price_history = self._original
            self._original = None


def _moment(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value)
        try:
            moment = datetime.fromtimestamp(float(text), UTC)
        except ValueError:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def offered_types(region: str, zone: str | None = None) -> set[str]:
    """moto's instance type offerings for the region, or for one of its zones: the layer's
    oracle of what EC2 offers where (moto ships AWS's own offering lists)."""
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS

    if zone:
        offerings = INSTANCE_TYPE_OFFERINGS["availability-zone"].get(region, [])
        return {o["InstanceType"] for o in offerings if o.get("Location") == zone}
    offerings = INSTANCE_TYPE_OFFERINGS["region"].get(region, [])
    return {o["InstanceType"] for o in offerings}


def region_zones(region: str) -> list[str]:
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS

    offerings = INSTANCE_TYPE_OFFERINGS["availability-zone"].get(region, [])
    return sorted({o["Location"] for o in offerings})


def launch_template_data(account_id: str, region: str, params: Mapping[str, str]) -> dict:
    """The launch template version a ``RunInstances`` names (``LaunchTemplate.*``), as moto
    keeps it (nested, EC2's member names), or {} when it names none or one moto cannot find
    (moto then answers with its own error)."""
    spec = {
        key.split(".", 1)[1]: value
        for key, value in params.items()
        if key.startswith("LaunchTemplate.")
    }
    if not spec:
        return {}
    from moto.ec2.models import ec2_backends

    try:
        backend = ec2_backends[account_id][region]
        return dict(backend._get_template_from_args(spec).data or {})
    except Exception:  # moto raises its own error for the launch; the layer has nothing to add
        return {}


def subnet_zone(account_id: str, region: str, subnet_id: str) -> str | None:
    from moto.ec2.models import ec2_backends

    try:
        return ec2_backends[account_id][region].get_subnet(subnet_id).availability_zone
    except Exception:
        return None


# --- Metering: what moto holds now (metering.py) ---------------------------------------------
def volumes_metered() -> dict[str, dict[str, Any]]:
    """Every EBS volume moto holds, by id: what its storage is billed by."""
    from moto.ec2.models import ec2_backends

    found = {}
    for _, region, backend in _existing(ec2_backends):
        for volume in list(backend.volumes.values()):
            found[volume.id] = {
                "region": region,
                "size": int(volume.size),
                "type": volume.volume_type,
                "iops": int(volume.iops or 0),
                "throughput": int(volume.throughput or 0),
            }
    return found


def elastic_addresses_metered() -> dict[str, dict[str, Any]]:
    """Every Elastic IP moto holds (attached or idle), by allocation id (or address)."""
    from moto.ec2.models import ec2_backends

    found = {}
    for _, region, backend in _existing(ec2_backends):
        for address in list(backend.addresses):
            found[address.allocation_id or address.public_ip] = {
                "region": region,
                "ip": address.public_ip,
            }
    return found


def buckets_metered() -> dict[str, dict[str, Any]]:
    """Every S3 bucket moto holds, by name."""
    from moto.s3.models import s3_backends

    found = {}
    for _, _, backend in _existing(s3_backends):
        for name, bucket in list(backend.buckets.items()):
            found[name] = {"region": bucket.region_name}
    return found


def file_systems_metered() -> dict[str, dict[str, Any]]:
    """Every EFS file system moto holds, by id."""
    from moto.efs.models import efs_backends

    found = {}
    for _, region, backend in _existing(efs_backends):
        for file_system_id in list(backend.file_systems_by_id):
            found[file_system_id] = {"region": region}
    return found


def ce_injected(account_id: str, body: bytes) -> bool:
    """Whether a test queued Cost Explorer answers in moto for this request (moto's
    ``/moto-api/static/ce/cost-and-usage-results``): the request takes moto's queued answer, or
    the one it took before for the same body."""
    from moto.ce.models import ce_backends

    for account, _, backend in _existing(ce_backends):
        if account != account_id:
            continue
        text = body.decode(errors="replace")
        if backend.cost_usage_results_queue or text in backend.cost_usage_results:
            return True
    return False


def addresses_disassociate(instance: Any) -> int:
    """Disassociate the Elastic IPs of an instance that terminated, as EC2 does ("When you
    terminate an instance ... any Elastic IP address associated with it is disassociated",
    *Elastic IP addresses*, EC2 User Guide); moto keeps them pointing at the terminated instance.
    The addresses stay allocated (and billed). Returns how many were disassociated."""
    count = 0
    for address in list(instance.ec2_backend.addresses):
        eni_instance = getattr(address.eni, "instance", None)
        if address.instance is instance or eni_instance is instance:
            address.eni = None
            address.instance = None
            address.association_id = None
            count += 1
    return count
