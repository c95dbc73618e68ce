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
    StorageService,
    StoredData,
    SyncClaim,
    SyncPart,
    Volume,
)

logger = logging.getLogger(__name__)

INVENTORY_CLAIM, SPOT_CLAIM = "inventory", "spot-prices"
# A run gives its claim back when it ends. The expiry only matters when a worker dies mid-run; it
# is longer than a run can take (each part stops at its first failed call, and every call is
# bounded by the adapters' timeouts and attempts: a few minutes at worst), so two runs never
# overlap, and short enough that the inventory recovers within minutes after a crash.
CLAIM_SECONDS = 600
PROVIDER_ID_RE = re.compile(r"^aws:///(?P<zone>[^/]*)/(?P<instance>i-[0-9a-zA-Z]+)$")
# EC2's StateTransitionReason, e.g. "User initiated (2026-11-29 07:02:39 GMT)".
TRANSITION_TIME_RE = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) GMT\)")
VANISHED_REASON = "no longer reported by EC2 (terminated instances disappear after about an hour)"
CPU_PLACES = Decimal("0.001")
# Windows for the newest CloudWatch datapoint: EFS publishes its size every few minutes, S3 once
# a day (at midnight UTC), so S3 is read over two days.
EFS_WINDOW, S3_WINDOW = timedelta(hours=6), timedelta(days=2)


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
    )


def _instance_record(instance: aws.InventoryInstance, node: Node | None, now: datetime) -> str:
    """Create or update one node from its instance; returns ``created``, ``changed`` or
    ``unchanged``."""
    values = _instance_values(instance, node)
    happened = transition_time(instance.state_transition_reason)
    reason = instance.state_transition_reason or instance.state_reason_message or ""
    interrupted = (instance.state_reason_code or "").startswith(SPOT_INTERRUPTION_CODES)
    with transaction.atomic():
        if node is None:
            node = Node(instance_id=instance.instance_id, first_seen_at=now, **values)
            old_state, outcome = "", "created"
            changed = list(values)
        else:
            node = Node.objects.select_for_update().get(pk=node.pk)
            old_state, outcome = node.state, "changed"
            if node.state not in (NodeState.STOPPED, NodeState.STOPPING):
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
        if node.state != old_state:
            if not old_state:
                at = node.launched_at if node.state in ("pending", "running") else happened or now
                note = "first seen by the inventory sync" + (f"; {reason}" if reason else "")
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
    volumes = _volumes_record(aws.volumes_describe(settings.CLUSTER_NAME, alive), now)
    addresses = _addresses_record(aws.addresses_describe(settings.CLUSTER_NAME, alive), now)
    return {
        "instances": len(instances),
        "running": sum(i.state == NodeState.RUNNING for i in instances),
        **counts,
        "vanished": len(vanished),
        "volumes": volumes,
        "elastic_ips": addresses,
    }


def _volumes_record(volumes: list[aws.Volume], now: datetime) -> int:
    nodes = dict(
        Node.objects.filter(
            instance_id__in={v.instance_id for v in volumes if v.instance_id}
        ).values_list("instance_id", "pk")
    )
    existing = {
        v.volume_id: v for v in Volume.objects.filter(volume_id__in=[v.volume_id for v in volumes])
    }
    for volume in volumes:
        values = {
            "node_id": nodes.get(volume.instance_id or ""),
            "instance_id": volume.instance_id or "",
            "size_gib": volume.size_gib,
            "volume_type": volume.volume_type,
            # A modified volume (ModifyVolume) reports its new figures: the sync takes them.
            "iops": volume.iops,
            "throughput": volume.throughput,
            "state": volume.state,
            "zone": volume.zone,
            "created_at": _utc(volume.created_at),
            "deleted_at": None,
        }
        row = existing.get(volume.volume_id)
        if row is None:
            Volume.objects.create(volume_id=volume.volume_id, first_seen_at=now, **values)
            continue
        # A volume's creation time never changes in EC2: the one first recorded stays (seeded
        # history included; billing prorates storage from it).
        values["created_at"] = row.created_at
        changed = [k for k, v in values.items() if getattr(row, k) != v]
        if "node_id" in changed and values["node_id"] is None:
            changed.remove("node_id")  # detached: keep the node it belonged to
            values["node_id"] = row.node_id
        if changed:
            for name in changed:
                setattr(row, name, values[name])
            row.save(update_fields=changed)
    Volume.objects.filter(deleted_at__isnull=True).exclude(
        volume_id__in=[v.volume_id for v in volumes]
    ).update(deleted_at=now)
    return len(volumes)


def _addresses_record(addresses: list[aws.ElasticAddress], now: datetime) -> int:
    existing = {
        a.allocation_id: a
        for a in ElasticAddress.objects.filter(
            allocation_id__in=[a.allocation_id for a in addresses]
        )
    }
    for address in addresses:
        values = {
            "public_ip": address.public_ip,
            "instance_id": address.instance_id or "",
            "released_at": None,
        }
        row = existing.get(address.allocation_id)
        if row is None:
            ElasticAddress.objects.create(
                allocation_id=address.allocation_id, first_seen_at=now, **values
            )
            continue
        changed = [k for k, v in values.items() if getattr(row, k) != v]
        if changed:
            for name in changed:
                setattr(row, name, values[name])
            row.save(update_fields=changed)
    ElasticAddress.objects.filter(released_at__isnull=True).exclude(
        allocation_id__in=[a.allocation_id for a in addresses]
    ).update(released_at=now)
    return len(addresses)


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
            StoredData.objects.create(
                service=service, resource=resource, first_seen_at=now, **values
            )
            continue
        changed = [k for k, v in values.items() if getattr(row, k) != v]
        if changed:
            for key in changed:
                setattr(row, key, values[key])
            row.save(update_fields=changed)
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
