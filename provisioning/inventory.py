"""The inventory sync: what runs, read from AWS and Kubernetes into the database, which is all the
pages read.

``inventory_sync`` runs three parts, each recorded on its own in a ``SyncPart`` row (success time,
last error), so one outside system being down never stops or hides the others:

- ``ec2``: every instance tagged ``clusterweb:cluster`` = CLUSTER_NAME (all states, all pages)
  becomes or updates a ``Node``; state changes and spot interruptions become ``NodeEvent`` rows;
  then the cluster's EBS volumes and Elastic IPs.
- ``kubernetes``: each node is merged into its instance's row by providerID
  (``aws:///ZONE/INSTANCE_ID``): name, Ready, allocatable cpu/memory/GPU.
- ``storage``: EFS file systems (by tag) and S3 buckets (``S3_BUCKETS``, or by tag) with their
  latest CloudWatch size.

The spot price sync is billing's job (``billing.tasks.spot_prices_sync``); the inventory only
answers which instance types and zones it covers (``spot_price_targets``) and lends it the claim
and the part record (``sync_claim``, ``part_run``: its ``spot_prices`` part).

Both are safe to run twice: a second run over the same answers writes nothing to the inventory,
and a run that finds another one in progress (a ``SyncClaim`` taken with a conditional UPDATE,
with an expiry in case a worker dies) returns at once.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from clusterweb import clock
from clusterweb.errors import IntegrationError
from clusterweb.integrations import aws, k8s
from provisioning.models import (
    PART_EC2,
    PART_KUBERNETES,
    PART_STORAGE,
    SPOT_INTERRUPTION_CODES,
    ElasticAddress,
    Lifecycle,
    Node,
    NodeEvent,
    NodeEventKind,
    NodeState,
    Pool,
    SpecSource,
    StorageService,
    StoredData,
    StoredSize,
    SyncClaim,
    SyncPart,
    Volume,
    VolumeSpec,
)

logger = logging.getLogger(__name__)

INVENTORY_CLAIM, SPOT_CLAIM = "inventory", "spot-prices"
# A run gives its claim back when it ends. The expiry only matters when a worker dies mid-run; it
# is longer than a run can take (each part stops at its first failed call, and every call is
# bounded by the adapters' timeouts and attempts: a few minutes at worst), so two runs never
# overlap, and short enough that the inventory recovers within minutes after a crash.
CLAIM_SECONDS = 600
PROVIDER_ID_RE = re.compile(r"^aws:///(?P<zone>[^/]*)/(?P<instance>i-[0-9a-zA-Z]+)$")
# EC2's StateTransitionReason, e.g. "User initiated (2026-11-29 07:02:39 GMT)" (moto writes
# "UTC" for the same moment: read both, it is the same clock).
TRANSITION_TIME_RE = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")
VANISHED_REASON = "no longer reported by EC2 (terminated instances disappear after about an hour)"
CPU_PLACES = Decimal("0.001")
# Windows for the newest CloudWatch datapoint: EFS publishes its size every few minutes, S3 once
# a day (at midnight UTC), so S3 is read over two days.
EFS_WINDOW, S3_WINDOW = timedelta(hours=6), timedelta(days=2)
# Daily size points are read from the last one recorded; after a long outage, at most this far
# back (a CloudWatch call returns at most 1,440 points; a month and a half is plenty).
SIZE_BACKFILL = timedelta(days=45)
# Daily points are asked for at most hourly per file system or bucket (S3 publishes one a day;
# EFS's day average moves slowly): 24 GetMetricStatistics calls a day instead of 1,440.
SIZE_READ_INTERVAL = timedelta(hours=1)
# EC2 reports a modification's StartTime to the second.
STARTTIME_PRECISION = timedelta(seconds=1)


# --- Results -------------------------------------------------------------------------------------
@dataclass
class PartResult:
    name: str
    ok: bool
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    transient: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "summary": self.summary, "error": self.error or None}


@dataclass
class SyncResult:
    """What one run did. ``claimed`` False: another run was in progress, nothing was done."""

    claimed: bool
    at: datetime
    parts: dict[str, PartResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.claimed and all(p.ok for p in self.parts.values())

    @property
    def transient_failure(self) -> bool:
        return any(not p.ok and p.transient for p in self.parts.values())

    @property
    def errors(self) -> str:
        return "; ".join(f"{p.name}: {p.error}" for p in self.parts.values() if not p.ok)

    def as_json(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "at": self.at.isoformat(),
            "ok": self.ok,
            "parts": {name: part.as_json() for name, part in self.parts.items()},
        }


# --- The claim -----------------------------------------------------------------------------------
def sync_claim(name: str, *, seconds: int = CLAIM_SECONDS, now: datetime | None = None) -> str:
    """Take the claim ``name`` for ``seconds`` if it is free or expired, with one conditional
    UPDATE (two runs cannot both win it). Returns the token to release it with, or "" when
    another run holds it."""
    now = clock.now() if now is None else now
    if not SyncClaim.objects.filter(name=name).exists():
        try:
            with transaction.atomic():
                SyncClaim.objects.create(name=name)
        except IntegrityError:
            pass  # created by a concurrent run in between: fine, the UPDATE decides
    token = secrets.token_hex(8)
    won = (
        SyncClaim.objects.filter(name=name)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .update(claimed_until=now + timedelta(seconds=seconds), token=token)
    )
    return token if won else ""


def sync_release(name: str, token: str) -> None:
    """Give the claim back (only if it is still ours: an expired claim may have been taken)."""
    SyncClaim.objects.filter(name=name, token=token).update(claimed_until=None, token="")


def part_run(name: str, work: Callable[[datetime], dict[str, Any]], now: datetime) -> PartResult:
    """Run one part and record its outcome in its ``SyncPart`` row. Integration errors are
    recorded and returned, never raised: the other parts still run."""
    SyncPart.objects.get_or_create(name=name)
    SyncPart.objects.filter(name=name).update(last_started_at=now)
    try:
        summary = work(now)
    except IntegrationError as exc:
        text = f"{exc.system or 'outside system'} {exc.code or type(exc).__name__}: {exc}"[:500]
        logger.warning("inventory sync part %s failed: %s", name, text)
        SyncPart.objects.filter(name=name).update(last_error=text, last_error_at=clock.now())
        return PartResult(name, ok=False, error=text, transient=not exc.permanent)
    SyncPart.objects.filter(name=name).update(last_ok_at=now, last_error="", last_summary=summary)
    return PartResult(name, ok=True, summary=summary)


# --- The inventory sync --------------------------------------------------------------------------
def inventory_sync(*, now: datetime | None = None) -> SyncResult:
    """Read EC2, Kubernetes and storage sizes into the database (see the module docstring)."""
    now = clock.now() if now is None else now
    token = sync_claim(INVENTORY_CLAIM, now=now)
    if not token:
        return SyncResult(claimed=False, at=now)
    try:
        result = SyncResult(claimed=True, at=now)
        for name, work in (
            (PART_EC2, _ec2_sync),
            (PART_KUBERNETES, _kubernetes_sync),
            (PART_STORAGE, _storage_sync),
        ):
            result.parts[name] = part_run(name, work, now)
        return result
    finally:
        sync_release(INVENTORY_CLAIM, token)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def transition_time(reason: str) -> datetime | None:
    """The timestamp in EC2's StateTransitionReason (``User initiated (2026-11-29 07:02:39
    GMT)``), or None."""
    match = TRANSITION_TIME_RE.search(reason or "")
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _instance_values(instance: aws.InventoryInstance, node: Node | None) -> dict[str, Any]:
    tags = dict(instance.tags)
    return {
        "instance_type": instance.instance_type,
        "capacity_type": instance.lifecycle,
        "zone": instance.zone,
        "state": instance.state,
        "state_reason": (instance.state_reason_code or "")[:100],
        "state_message": (instance.state_reason_message or "")[:500],
        "state_transition_reason": instance.state_transition_reason[:500],
        "public_ipv4": instance.public_ip,
        "private_ip": instance.private_ip,
        "launched_at": _utc(instance.launch_time),
        # An untagged instance may still get its pool from its Kubernetes node's label.
        "pool": tags.get("clusterweb:pool") or (node.pool if node is not None else ""),
        "owner": tags.get("clusterweb:owner", "")[:150],
        "request": tags.get("clusterweb:request", "")[:64],
        "tags": tags,
    }


def _event(node: Node, kind: str, old: str, new: str, at: datetime, reason: str) -> None:
    NodeEvent.objects.create(
        node=node,
        kind=kind,
        from_state=old,
        to_state=new,
        at=at,
        reason=reason[:500],
        recorded_at=clock.now(),
        instance_type=node.instance_type if kind != NodeEventKind.KUBERNETES else "",
    )


RUNNING = (NodeState.PENDING, NodeState.RUNNING)
STOPPED = (NodeState.STOPPED, NodeState.STOPPING)


def _instance_record(instance: aws.InventoryInstance, node: Node | None, now: datetime) -> str:
    """Create or update one node from its instance; returns ``created``, ``changed`` or
    ``unchanged``."""
    values = _instance_values(instance, node)
    if instance.public_ip:
        values["last_public_ipv4"] = instance.public_ip  # a later None never clears it
    happened = transition_time(instance.state_transition_reason)
    reason = instance.state_transition_reason or instance.state_reason_message or ""
    interrupted = (instance.state_reason_code or "").startswith(SPOT_INTERRUPTION_CODES)
    with transaction.atomic():
        retyped_unseen, old_launch = False, None
        if node is None:
            node = Node(instance_id=instance.instance_id, first_seen_at=now, **values)
            old_state, outcome = "", "created"
            changed = list(values)
        else:
            node = Node.objects.select_for_update().get(pk=node.pk)
            old_state, outcome = node.state, "changed"
            old_launch, old_type = node.launched_at, node.instance_type
            retyped_unseen = (
                old_state in RUNNING
                and values["state"] in RUNNING
                and values["instance_type"] != old_type
            )
            if node.state not in STOPPED and not retyped_unseen:
                # EC2 moves LaunchTime only when a stopped instance starts again: otherwise the
                # launch time first recorded stays (seeded history included; billing uses it).
                values["launched_at"] = node.launched_at
            changed = [name for name, value in values.items() if getattr(node, name) != value]
            for name in changed:
                setattr(node, name, values[name])
        if node.state == NodeState.TERMINATED and node.terminated_at is None:
            node.terminated_at = happened or now
            changed.append("terminated_at")
        elif node.state != NodeState.TERMINATED and node.terminated_at is not None:
            node.terminated_at = None  # it was only missing from a describe, not gone
            changed.append("terminated_at")
        if interrupted and node.spot_interrupted_at is None:
            node.spot_interrupted_at = happened or now
            changed.append("spot_interrupted_at")
        if not changed:
            return "unchanged"
        if outcome == "created":
            node.save()
        else:
            node.save(update_fields=sorted(set(changed)))
        if outcome == "changed" and retyped_unseen:
            # A type changes only while an instance is stopped: it was stopped and started
            # again between two syncs. Its old run ends and the new one starts at the new
            # LaunchTime (the stop itself was not seen: the old run errs long, never the new).
            restart = node.launched_at if old_launch and node.launched_at > old_launch else now
            note = f"stopped and started between two syncs, {old_type} -> {node.instance_type}"
            node.instance_type = old_type
            _event(node, NodeEventKind.STATE, old_state, NodeState.STOPPED, restart, note)
            node.instance_type = values["instance_type"]
            _event(node, NodeEventKind.STATE, NodeState.STOPPED, node.state, restart, note)
        elif node.state != old_state:
            if not old_state:
                at = node.launched_at if node.state in RUNNING else happened or now
                note = "first seen by the inventory sync" + (f"; {reason}" if reason else "")
            elif node.state in RUNNING and old_state in STOPPED:
                # A restart is dated at the new LaunchTime, not when the sync noticed it; if
                # EC2's LaunchTime did not move, the sync's time is all there is.
                moved = old_launch is not None and node.launched_at > old_launch
                at = node.launched_at if moved else now
                note = reason or "started again"
            else:
                at = (happened if node.state in ("stopped", "terminated") else None) or now
                note = reason
            _event(node, NodeEventKind.STATE, old_state, node.state, at, note)
        if "spot_interrupted_at" in changed:
            _event(
                node,
                NodeEventKind.SPOT_INTERRUPTION,
                old_state,
                node.state,
                node.spot_interrupted_at,
                f"{instance.state_reason_code}: AWS reclaimed the spot instance"
                + (f" ({instance.state_reason_message})" if instance.state_reason_message else ""),
            )
    if outcome == "created" or "instance_type" in changed:
        _price_gap_note(node)
    return outcome


def _price_gap_note(node: Node) -> None:
    """A new node of a type the catalog cannot price: admins see it on the Prices page."""
    from billing.prices import selectors as prices
    from billing.prices.services import price_gap_record

    if not prices.on_demand_quote(settings.AWS_REGION, node.instance_type).known:
        price_gap_record(
            kind="on-demand",
            region=settings.AWS_REGION,
            item=node.instance_type,
            context=f"node {node.instance_id}",
        )


def _vanished_record(node: Node, now: datetime) -> None:
    with transaction.atomic():
        node = Node.objects.select_for_update().get(pk=node.pk)
        if node.state == NodeState.TERMINATED:
            return
        old = node.state
        node.state = NodeState.TERMINATED
        node.terminated_at = now
        node.public_ipv4 = None
        node.save(update_fields=["state", "terminated_at", "public_ipv4"])
        _event(node, NodeEventKind.STATE, old, NodeState.TERMINATED, now, VANISHED_REASON)


def _ec2_sync(now: datetime) -> dict[str, Any]:
    instances = aws.instances_inventory(settings.CLUSTER_NAME)
    known = {
        n.instance_id: n
        for n in Node.objects.filter(instance_id__in=[i.instance_id for i in instances])
    }
    counts = {"created": 0, "changed": 0, "unchanged": 0}
    for instance in instances:
        counts[_instance_record(instance, known.get(instance.instance_id), now)] += 1
    seen = {i.instance_id for i in instances}
    vanished = [
        n for n in Node.objects.exclude(state=NodeState.TERMINATED) if n.instance_id not in seen
    ]
    for node in vanished:
        _vanished_record(node, now)
    alive = [i.instance_id for i in instances if i.state != NodeState.TERMINATED]
    # Anything once seen as the cluster's is asked about by id until EC2 says it is gone: a
    # volume or address its instance left behind is billed all the same.
    tracked_volumes = Volume.objects.filter(deleted_at__isnull=True).values_list(
        "volume_id", flat=True
    )
    tracked_addresses = ElasticAddress.objects.filter(released_at__isnull=True).values_list(
        "allocation_id", flat=True
    )
    alive_nodes = set(Node.objects.filter(instance_id__in=alive).values_list("pk", flat=True))
    volumes = _volumes_record(
        aws.volumes_describe(settings.CLUSTER_NAME, alive, list(tracked_volumes)), alive_nodes, now
    )
    addresses = _addresses_record(
        aws.addresses_describe(settings.CLUSTER_NAME, alive, list(tracked_addresses)),
        alive_nodes,
        now,
    )
    return {
        "instances": len(instances),
        "running": sum(i.state == NodeState.RUNNING for i in instances),
        **counts,
        "vanished": len(vanished),
        "volumes": volumes["volumes"],
        "elastic_ips": addresses["elastic_ips"],
        "left_behind": volumes["left_behind"] + addresses["left_behind"],
    }


def _left_behind(
    row: Volume | ElasticAddress, values: dict[str, Any], alive: set[int], now: datetime
) -> datetime | None:
    """When a volume or address was first seen left behind: the cluster instance it belonged to
    (``node``) is no longer alive, yet EC2 still reports it (and bills it). None while that
    instance lives, or when it never belonged to one (a tagged volume or address nobody
    attached is the cluster's own, not left behind). An attachment EC2 still names after the
    termination does not count."""
    if values["node_id"] is None or values["node_id"] in alive:
        return None
    return row.left_behind_at or now


SPEC_FIELDS = ("size_gib", "volume_type", "iops", "throughput")


def _spec_changes(rows: list[Volume], now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """When each changed volume's new size, type or performance took effect, with the StartTime
    of EC2's modification record that says so: its latest record, unless that one already dated
    the current spec or is older than it. Volumes without such a record are left out: the
    caller dates them ``now`` (EC2 keeps these records for a limited time, and a layer may lack
    them)."""
    if not rows:
        return {}
    latest: dict[str, VolumeSpec | None] = {
        v.volume_id: v.specs.order_by("-since").first() for v in rows
    }
    try:
        modifications = aws.volume_modifications([v.volume_id for v in rows])
    except IntegrationError as exc:
        # Dating a change is not worth stopping the inventory for (a policy written before
        # this call existed lacks ec2:DescribeVolumesModifications; `doctor` names it): the
        # change is dated when the sync saw it, and says so.
        logger.warning("volume modifications unreadable, dated by the sync: %s", exc)
        return {}
    newest: dict[str, datetime] = {}
    for modification in modifications:
        started = _utc(modification.started_at)
        newest[modification.volume_id] = max(started, newest.get(modification.volume_id, started))
    found: dict[str, tuple[datetime, datetime]] = {}
    for volume_id, started in newest.items():
        spec = latest.get(volume_id)
        # AWS's clock may run a little ahead of ours: a start "after now" is now.
        since = min(started, now)
        if spec is not None:
            if spec.modification_started_at == started:
                continue  # the record that dated the current spec
            # StartTime comes in whole seconds: a record up to a second older than the
            # current spec may still be newer; it cannot have started before the sync that
            # recorded that spec.
            if started <= spec.since - STARTTIME_PRECISION:
                continue
            since = max(since, spec.recorded_at, spec.since)
        found[volume_id] = (since, started)
    return found


def _volumes_record(volumes: list[aws.Volume], alive: set[int], now: datetime) -> dict[str, int]:
    nodes = dict(
        Node.objects.filter(
            instance_id__in={v.instance_id for v in volumes if v.instance_id}
        ).values_list("instance_id", "pk")
    )
    existing = {
        v.volume_id: v for v in Volume.objects.filter(volume_id__in=[v.volume_id for v in volumes])
    }
    respecced: list[tuple[Volume, dict[str, Any]]] = []
    left = 0
    for volume in volumes:
        values = {
            "node_id": nodes.get(volume.instance_id or ""),
            "instance_id": volume.instance_id or "",
            "size_gib": volume.size_gib,
            "volume_type": volume.volume_type,
            # A modified volume (ModifyVolume) reports its new figures: the sync takes them,
            # and a new spec dated at the modification keeps the old ones for earlier days.
            "iops": volume.iops,
            "throughput": volume.throughput,
            "state": volume.state,
            "zone": volume.zone,
            "created_at": _utc(volume.created_at),
            "deleted_at": None,
        }
        row = existing.get(volume.volume_id)
        if row is None:
            with transaction.atomic():
                row = Volume.objects.create(volume_id=volume.volume_id, first_seen_at=now, **values)
                _spec_add(row, row.created_at, SpecSource.CREATED, now)
            if (left_at := _left_behind(row, values, alive, now)) is not None:
                Volume.objects.filter(pk=row.pk).update(left_behind_at=left_at)
                left += 1
            continue
        # A volume's creation time never changes in EC2: the one first recorded stays (seeded
        # history included; billing prorates storage from it).
        values["created_at"] = row.created_at
        if values["node_id"] is None:
            values["node_id"] = row.node_id  # detached: keep the node it belonged to
        values["left_behind_at"] = _left_behind(row, values, alive, now)
        left += values["left_behind_at"] is not None
        changed = [k for k, v in values.items() if getattr(row, k) != v]
        if any(name in changed for name in SPEC_FIELDS):
            respecced.append((row, values))
            continue
        if changed:
            for name in changed:
                setattr(row, name, values[name])
            row.save(update_fields=changed)
    dated = _spec_changes([row for row, _ in respecced], now)
    for row, values in respecced:
        with transaction.atomic():
            changed = [k for k, v in values.items() if getattr(row, k) != v]
            for name in changed:
                setattr(row, name, values[name])
            row.save(update_fields=changed)
            if row.volume_id in dated:
                since, started = dated[row.volume_id]
                _spec_add(row, since, SpecSource.MODIFICATION, now, started)
            else:
                _spec_add(row, now, SpecSource.SEEN, now)
    Volume.objects.filter(deleted_at__isnull=True).exclude(
        volume_id__in=[v.volume_id for v in volumes]
    ).update(deleted_at=now)
    return {"volumes": len(volumes), "left_behind": left}


def _spec_add(
    row: Volume, since: datetime, source: str, now: datetime, started: datetime | None = None
) -> None:
    """A new spec from ``since`` (never before the volume existed, never before its latest
    spec: history is only ever added to)."""
    latest = row.specs.order_by("-since").first()
    since = max(since, row.created_at, latest.since if latest is not None else since)
    if latest is not None and latest.since == since:
        # Two changes dated at one moment: the newer figures win at that moment.
        VolumeSpec.objects.filter(pk=latest.pk).update(
            **{name: getattr(row, name) for name in SPEC_FIELDS},
            source=source,
            modification_started_at=started,
            recorded_at=now,
        )
        return
    VolumeSpec.objects.create(
        volume=row,
        since=since,
        **{name: getattr(row, name) for name in SPEC_FIELDS},
        source=source,
        modification_started_at=started,
        recorded_at=now,
    )


def _addresses_record(
    addresses: list[aws.ElasticAddress], alive: set[int], now: datetime
) -> dict[str, int]:
    nodes = dict(
        Node.objects.filter(
            instance_id__in={a.instance_id for a in addresses if a.instance_id}
        ).values_list("instance_id", "pk")
    )
    existing = {
        a.allocation_id: a
        for a in ElasticAddress.objects.filter(
            allocation_id__in=[a.allocation_id for a in addresses]
        )
    }
    left = 0
    for address in addresses:
        values = {
            "public_ip": address.public_ip,
            "instance_id": address.instance_id or "",
            "node_id": nodes.get(address.instance_id or ""),
            "released_at": None,
        }
        row = existing.get(address.allocation_id)
        if row is None:
            ElasticAddress.objects.create(
                allocation_id=address.allocation_id, first_seen_at=now, **values
            )
            continue
        if values["node_id"] is None:
            values["node_id"] = row.node_id  # disassociated: keep the instance it served
        values["left_behind_at"] = _left_behind(row, values, alive, now)
        left += values["left_behind_at"] is not None
        changed = [k for k, v in values.items() if getattr(row, k) != v]
        if changed:
            for name in changed:
                setattr(row, name, values[name])
            row.save(update_fields=changed)
    ElasticAddress.objects.filter(released_at__isnull=True).exclude(
        allocation_id__in=[a.allocation_id for a in addresses]
    ).update(released_at=now)
    return {"elastic_ips": len(addresses), "left_behind": left}


# --- Kubernetes ----------------------------------------------------------------------------------
def instance_id_from_provider(provider_id: str) -> str:
    """``i-...`` from a providerID ``aws:///ZONE/INSTANCE_ID``; "" for anything else."""
    match = PROVIDER_ID_RE.match(provider_id or "")
    return match.group("instance") if match else ""


def _readiness(ready: bool | None) -> str:
    return "absent" if ready is None else "ready" if ready else "not_ready"


def _kubernetes_sync(now: datetime) -> dict[str, Any]:
    listed = k8s.client_from_settings().nodes_list()
    by_instance: dict[str, k8s.Node] = {}
    unmatched = []
    for kube_node in listed:
        instance_id = instance_id_from_provider(kube_node.provider_id)
        if instance_id:
            by_instance[instance_id] = kube_node
        else:
            unmatched.append(kube_node.name)
    rows = Node.objects.filter(Q(instance_id__in=list(by_instance)) | Q(ready__isnull=False))
    merged = changed_count = 0
    for node in rows:
        kube_node = by_instance.get(node.instance_id)
        if kube_node is not None:
            merged += 1
            values: dict[str, Any] = {
                "node_name": kube_node.name,
                "ready": kube_node.ready,
                "cpu": kube_node.cpu.quantize(CPU_PLACES),
                "memory_bytes": kube_node.memory,
                "gpus": kube_node.gpu,
                "pool": node.pool or kube_node.pool,
            }
        else:
            # The node left the cluster: its name and last allocatable stay on record.
            values = {"ready": None}
        changed = [k for k, v in values.items() if getattr(node, k) != v]
        if not changed:
            continue
        changed_count += 1
        old = node.ready
        with transaction.atomic():
            for name in changed:
                setattr(node, name, values[name])
            node.save(update_fields=changed)
            if "ready" in changed:
                _event(
                    node,
                    NodeEventKind.KUBERNETES,
                    _readiness(old),
                    _readiness(node.ready),
                    now,
                    f"Kubernetes node {node.node_name}"
                    + (" left the cluster" if node.ready is None else ""),
                )
    known = set(
        Node.objects.filter(instance_id__in=list(by_instance)).values_list("instance_id", flat=True)
    )
    unmatched += sorted(by_instance[i].name for i in set(by_instance) - known)
    return {
        "nodes": len(listed),
        "merged": merged,
        "changed": changed_count,
        "unmatched": unmatched,
    }


# --- Storage sizes -------------------------------------------------------------------------------
METRICS = {
    StorageService.EFS: ("AWS/EFS", "StorageBytes", "FileSystemId", {"StorageClass": "Total"}),
    StorageService.S3: (
        "AWS/S3",
        "BucketSizeBytes",
        "BucketName",
        {"StorageType": "StandardStorage"},
    ),
}


def _storage_sync(now: datetime) -> dict[str, Any]:
    found: list[tuple[str, str, str, aws.MetricPoint | None]] = []
    for fs in aws.file_systems_describe(settings.CLUSTER_NAME):
        point = aws.metric_latest(
            "AWS/EFS",
            "StorageBytes",
            {"FileSystemId": fs.file_system_id, "StorageClass": "Total"},
            now - EFS_WINDOW,
        )
        found.append((StorageService.EFS, fs.file_system_id, fs.name, point))
    buckets = list(settings.S3_BUCKETS) or aws.buckets_tagged(settings.CLUSTER_NAME)
    for bucket in buckets:
        point = aws.metric_latest(
            "AWS/S3",
            "BucketSizeBytes",
            {"BucketName": bucket, "StorageType": "StandardStorage"},
            now - S3_WINDOW,
        )
        found.append((StorageService.S3, bucket, bucket, point))
    seen = set()
    for service, resource, name, point in found:
        seen.add((service, resource))
        row = StoredData.objects.filter(service=service, resource=resource).first()
        values: dict[str, Any] = {"name": name[:255], "gone_at": None}
        if point is not None:
            # A missing datapoint keeps the last known size (S3 publishes once a day).
            values.update(size_bytes=int(point.value), measured_at=_utc(point.at))
        if row is None:
            row = StoredData.objects.create(
                service=service, resource=resource, first_seen_at=now, **values
            )
        else:
            changed = [k for k, v in values.items() if getattr(row, k) != v]
            if changed:
                for key in changed:
                    setattr(row, key, values[key])
                row.save(update_fields=changed)
        _sizes_record(row, now)
    gone = [
        row.pk
        for row in StoredData.objects.filter(gone_at__isnull=True)
        if (row.service, row.resource) not in seen
    ]
    StoredData.objects.filter(pk__in=gone).update(gone_at=now)
    return {
        "efs": sum(s == StorageService.EFS for s, *_ in found),
        "s3": sum(s == StorageService.S3 for s, *_ in found),
        "bytes": sum(int(p.value) for *_, p in found if p is not None),
    }


def _sizes_record(row: StoredData, now: datetime) -> None:
    """The daily size points of one file system or bucket since the last one recorded (the
    first time: since the day before it was first seen), up to ``now``. A point already
    recorded is revised only if it was read before its day was over (EFS's daily Average of a
    day still running is the day so far): today's, and once more at the first read after its
    day ended, which gives the whole day (the day is still open, DAY_SETTLE in
    billing.costs.services). A point read after its day ended keeps its size."""
    if row.sizes_read_at is not None and row.sizes_read_at <= now < row.sizes_read_at + (
        SIZE_READ_INTERVAL
    ):
        return
    namespace, metric, key, extra = METRICS[StorageService(row.service)]
    last = row.sizes.order_by("-at").first()
    today = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    if last is not None:
        start = min(last.at, today)
    else:
        start = datetime.combine(
            row.first_seen_at.date() - timedelta(days=1), datetime.min.time(), tzinfo=UTC
        )
    start = max(start, today - SIZE_BACKFILL)
    points = aws.metric_daily(namespace, metric, {key: row.resource, **extra}, start, now)
    for point in points:
        at = _utc(point.at)
        if at > now:
            continue
        size = int(point.value)
        stored = StoredSize.objects.filter(stored=row, at=at).first()
        if stored is None:
            if last is None or at > last.at:
                StoredSize.objects.create(stored=row, at=at, size_bytes=size, recorded_at=now)
        elif stored.size_bytes != size and stored.recorded_at < at + timedelta(days=1):
            stored.size_bytes, stored.recorded_at = size, now
            stored.save(update_fields=["size_bytes", "recorded_at"])
    StoredData.objects.filter(pk=row.pk).update(sizes_read_at=now)


# --- Spot prices ---------------------------------------------------------------------------------
def spot_price_targets() -> tuple[list[str], set[str] | None]:
    """The instance types whose spot prices matter (every pool's, and those of spot nodes
    running now) and the zones (None: any zone, when a pool names none)."""
    pools = list(Pool.objects.all())
    spot_nodes = list(
        Node.objects.filter(capacity_type=Lifecycle.SPOT)
        .exclude(state=NodeState.TERMINATED)
        .values_list("instance_type", "zone")
    )
    types = {t for pool in pools for t in pool.instance_types} | {t for t, _ in spot_nodes}
    zones: set[str] | None = {z for pool in pools for z in pool.zones} | {z for _, z in spot_nodes}
    if not pools or any(not pool.zones for pool in pools):
        zones = None
    return sorted(types), zones


# --- Launches record their own instances (issue 18) ----------------------------------------------
def instances_record(
    instances: list[aws.InventoryInstance], kube_nodes: list[k8s.Node], *, now: datetime
) -> None:
    """Record ``instances`` (and their Kubernetes nodes, matched by providerID) with the sync's
    own upsert, keyed on the instance id, so the Nodes page shows a launch's nodes at once rather
    than at the next sync. The same rules as the sync: a row changes only where a value changed,
    and state changes become events. A sync running at the same moment writes the same values;
    the row lock (``select_for_update``) orders the two, and a row the sync created first is
    updated instead of created twice."""
    by_instance = {instance_id_from_provider(n.provider_id): n for n in kube_nodes}
    for instance in instances:
        try:
            _instance_record(
                instance, Node.objects.filter(instance_id=instance.instance_id).first(), now
            )
        except IntegrityError:  # the sync created it between our read and our insert
            _instance_record(instance, Node.objects.get(instance_id=instance.instance_id), now)
        kube_node = by_instance.get(instance.instance_id)
        with transaction.atomic():
            node = Node.objects.select_for_update().get(instance_id=instance.instance_id)
            if kube_node is None:
                # No node (yet, or any more): as the sync records a node that left the cluster.
                values: dict[str, Any] = {"ready": None}
            else:
                values = {
                    "node_name": kube_node.name,
                    "ready": kube_node.ready,
                    "cpu": kube_node.cpu.quantize(CPU_PLACES),
                    "memory_bytes": kube_node.memory,
                    "gpus": kube_node.gpu,
                }
            changed = [k for k, v in values.items() if getattr(node, k) != v]
            if not changed:
                continue
            old = node.ready
            for name in changed:
                setattr(node, name, values[name])
            node.save(update_fields=changed)
            if "ready" in changed:
                _event(
                    node,
                    NodeEventKind.KUBERNETES,
                    _readiness(old),
                    _readiness(node.ready),
                    now,
                    f"Kubernetes node {node.node_name}"
                    + (" left the cluster" if node.ready is None else ""),
                )
