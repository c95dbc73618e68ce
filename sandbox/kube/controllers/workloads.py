"""The deployment and replicaset controllers ("Deployments", "ReplicaSet").

A Deployment owns ReplicaSets, one per pod template; each ReplicaSet owns the pods of its template.
Names, labels and owner references are what the real controllers write: ReplicaSet
``<deployment>-<pod-template-hash>``, pods ``<replicaset>-<5 random characters>``, the
``pod-template-hash`` label on both and in the ReplicaSet's selector, a controller owner reference
with ``blockOwnerDeletion`` on each. Deleting the Deployment deletes its ReplicaSets and their
pods through the store's garbage collector.

Rollouts follow ``spec.strategy``: RollingUpdate scales the new ReplicaSet up within ``maxSurge``
and the old ones down while keeping ``replicas - maxUnavailable`` pods available (the real
controller's reconcileNewReplicaSet / reconcileOldReplicaSets); Recreate scales the old ones to
zero, waits until their pods are gone, then scales the new one up. Not modelled: proportional
scaling of a rollout in progress (the new ReplicaSet is simply resized), rollbacks that reuse an
old ReplicaSet's revision number, orphan adoption, and ``minReadySeconds`` beyond availability.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from typing import Any

from ..errors import ApiError
from ..resources import DEPLOYMENTS, PODS, REPLICASETS
from ..store import Entry, Event, Key
from .base import (
    OwnerController,
    condition,
    controller_of,
    is_active,
    is_ready,
    owner_reference,
    parse_stamp,
    set_condition,
)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# The replicaset controller's burstReplicas: at most this many creations or deletions per sync.
BURST = 500
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString alphabet


def template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """A stable name suffix for a pod template: FNV-1a over the template (and the collision
    count, when there was one), rendered in apimachinery's safe alphabet like the real
    ``pod-template-hash`` (the bytes hashed differ: Go hashes its own struct dump)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_ALPHANUMS[ord(ch) % len(_ALPHANUMS)] for ch in str(value))


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    labels = (template.get("metadata") or {}).get("labels") or {}
    if HASH_LABEL not in labels:
        return template
    copied = copy.deepcopy(template)
    del copied["metadata"]["labels"][HASH_LABEL]
    return copied


def _owned_by(obj: dict[str, Any], uid: str, kind: str) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == uid and ref.get("kind") == kind


def _replicas(obj: dict[str, Any]) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def _status_count(obj: dict[str, Any], key: str) -> int:
    return int((obj.get("status") or {}).get(key, 0))


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def resolve_fenceposts(spec: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers: percentages of replicas, surge rounded up,
    unavailability down; both 0 is read as 1 unavailable (the real ResolveFenceposts)."""
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}

    def amount(value: Any, default: str, round_up: bool) -> int:
        value = default if value is None else value
        if isinstance(value, int):
            return value
        share = int(str(value).rstrip("%")) * replicas / 100
        return math.ceil(share) if round_up else math.floor(share)

    surge = amount(rolling.get("maxSurge"), "25%", True)
    unavailable = amount(rolling.get("maxUnavailable"), "25%", False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


# -- ReplicaSets ---------------------------------------------------------------------------------


def _pod_rank(entry: Entry) -> tuple[Any, ...]:
    """Which pods to delete first when scaling down (controller.ActivePods ordering): not yet
    scheduled, then Pending before Running, not ready before ready, then the newest."""
    pod = entry.obj
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", ""), 0)
    created = pod["metadata"].get("creationTimestamp", "")
    # Newest first: negate the timestamp by sorting on its reverse afterwards.
    return (bool(spec.get("nodeName")), phase_rank, is_ready(pod), _Reverse(created))


class _Reverse:
    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: _Reverse) -> bool:
        return self.value > other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reverse) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


class ReplicaSetController(OwnerController):
    name = "replicaset-controller"
    resource, child, owner_kind = REPLICASETS, PODS, "ReplicaSet"

    def _sync(self, key: Key) -> None:
        entry = self.store.peek(REPLICASETS, *key)
        if entry is None or entry.obj["metadata"].get("deletionTimestamp"):
            return
        rs = entry.obj
        uid = rs["metadata"]["uid"]
        pods = [
            p
            for p in self.store.list_entries(PODS, key[0]).items
            if _owned_by(p.obj, uid, "ReplicaSet")
        ]
        active = [p for p in pods if is_active(p.obj)]
        wanted = _replicas(rs)
        failure = ""
        changed = False
        if len(active) < wanted:
            failure = self._create(rs, min(wanted - len(active), BURST))
            changed = True
        elif len(active) > wanted:
            doomed = sorted(active, key=_pod_rank)[: min(len(active) - wanted, BURST)]
            for pod in doomed:
                self._delete(rs, pod)
            changed = True
        if changed and not failure:
            return  # the pods' own events bring this ReplicaSet back to count them
        self._write_status(entry, active, failure)

    def _create(self, rs: dict[str, Any], count: int) -> str:
        namespace, name = rs["metadata"]["namespace"], rs["metadata"]["name"]
        template = (rs.get("spec") or {}).get("template") or {}
        template_meta = template.get("metadata") or {}
        for _ in range(count):
            meta: dict[str, Any] = {
                "generateName": f"{name}-",
                "namespace": namespace,
                "labels": dict(template_meta.get("labels") or {}),
                "ownerReferences": [owner_reference(rs)],
            }
            if template_meta.get("annotations"):
                meta["annotations"] = dict(template_meta["annotations"])
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            try:
                created = self.store.create(PODS, pod)
            except ApiError as exc:
                message = f"Error creating: {exc.message}"
                self.ctx.events.record(rs, "Warning", "FailedCreate", message, self.name)
                return message
            self.ctx.events.record(
                rs,
                "Normal",
                "SuccessfulCreate",
                f"Created pod: {created['metadata']['name']}",
                self.name,
            )
        return ""

    def _write_status(self, entry: Entry, active: list[Entry], failure: str) -> None:
        rs = entry.obj
        spec = rs.get("spec") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = int(spec.get("minReadySeconds", 0))
        now = self.ctx.now()
        ready = available = labelled = 0
        next_check: float | None = None
        for pod in active:
            labels = pod.obj["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in template_labels.items()):
                labelled += 1
            if not is_ready(pod.obj):
                continue
            ready += 1
            since = (condition(pod.obj, "Ready") or {}).get("lastTransitionTime")
            waited = (now - parse_stamp(since)).total_seconds() if since else min_ready
            if waited >= min_ready:
                available += 1
            else:
                left = min_ready - waited
                next_check = left if next_check is None else min(next_check, left)
        if next_check is not None:
            key = (rs["metadata"]["namespace"], rs["metadata"]["name"])
            self.ctx.timers.after(next_check + 0.01, lambda: self.dirty.add(key))
        current = rs.get("status") or {}
        status: dict[str, Any] = {"replicas": len(active)}
        for name, value in (
            ("fullyLabeledReplicas", labelled),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("observedGeneration", rs["metadata"].get("generation", 1)),
        ):
            if value:  # omitempty
                status[name] = value
        conditions = [dict(c) for c in current.get("conditions") or ()]
        if failure:
            status["conditions"] = conditions
            set_condition(
                status,
                "ReplicaFailure",
                "True",
                self.ctx.stamp(),
                reason="FailedCreate",
                message=failure,
            )
        else:
            kept = [c for c in conditions if c.get("type") != "ReplicaFailure"]
            if kept:
                status["conditions"] = kept
        if status == current:
            return
        updated = entry.copy()
        updated["status"] = status
        self.store.update(REPLICASETS, updated, subresource="status")


# -- Deployments ---------------------------------------------------------------------------------


class DeploymentController(OwnerController):
    name = "deployment-controller"
    resource, child, owner_kind = DEPLOYMENTS, REPLICASETS, "Deployment"

    def observe(self, event: Event) -> None:
        super().observe(event)
        if event.resource is PODS and event.type == "DELETED":
            # Recreate waits for the old pods to be gone, which changes no ReplicaSet status.
            ref = controller_of(event.entry.obj)
            if ref is None or ref.get("kind") != "ReplicaSet":
                return
            rs = self.store.peek(REPLICASETS, event.key[0], ref["name"])
            owner = controller_of(rs.obj) if rs is not None else None
            if owner is not None and owner.get("kind") == "Deployment":
                self.dirty.add((event.key[0], owner["name"]))

    # -- one deployment ------------------------------------------------------------------------

    def _sync(self, key: Key) -> None:
        entry = self.store.peek(DEPLOYMENTS, *key)
        if entry is None or entry.obj["metadata"].get("deletionTimestamp"):
            return
        deployment = entry.obj
        uid = deployment["metadata"]["uid"]
        spec = deployment.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        all_rs = [
            e.obj
            for e in self.store.list_entries(REPLICASETS, key[0]).items
            if _owned_by(e.obj, uid, "Deployment")
        ]
        new_rs = next(
            (rs for rs in all_rs if _without_hash(rs["spec"]["template"]) == template), None
        )
        old_rs = [rs for rs in all_rs if rs is not new_rs]
        progress = ""  # "NewReplicaSetCreated" when this sync created it
        if not spec.get("paused"):
            if (spec.get("strategy") or {}).get("type") == "Recreate":
                new_rs, progress = self._recreate(deployment, new_rs, old_rs, replicas)
            else:
                new_rs, progress = self._rolling(deployment, new_rs, old_rs, replicas)
        all_rs = [rs for rs in (new_rs, *old_rs) if rs is not None]
        complete = self._write_status(entry, new_rs, all_rs, progress)
        if complete:
            self._clean_history(deployment, old_rs)

    def _rolling(
        self,
        deployment: dict[str, Any],
        new_rs: dict[str, Any] | None,
        old_rs: list[dict[str, Any]],
        replicas: int,
    ) -> tuple[dict[str, Any] | None, str]:
        spec = deployment["spec"]
        surge, unavailable = resolve_fenceposts(spec)
        max_total = replicas + surge
        reason = ""
        if new_rs is None:
            current = sum(_replicas(rs) for rs in old_rs)
            size = replicas if current == 0 else max(0, min(max_total - current, replicas))
            new_rs = self._create_rs(deployment, old_rs, size, max_total)
            if new_rs is None:
                return None, ""
            reason = "NewReplicaSetCreated"
        else:
            # reconcileNewReplicaSet
            have = _replicas(new_rs)
            if have > replicas:
                new_rs = self._scale(deployment, new_rs, replicas, max_total)
            elif have < replicas:
                total = sum(_replicas(rs) for rs in (new_rs, *old_rs))
                grow = min(max_total - total, replicas - have)
                if grow > 0:
                    new_rs = self._scale(deployment, new_rs, have + grow, max_total)
        # reconcileOldReplicaSets
        old_total = sum(_replicas(rs) for rs in old_rs)
        if old_total == 0:
            return new_rs, reason
        all_total = old_total + _replicas(new_rs)
        min_available = replicas - unavailable
        new_unavailable = _replicas(new_rs) - _status_count(new_rs, "availableReplicas")
        budget = all_total - min_available - max(new_unavailable, 0)
        if budget <= 0:
            return new_rs, reason
        old_sorted = sorted(old_rs, key=lambda rs: rs["metadata"].get("creationTimestamp", ""))
        # Unhealthy old replicas go first (cleanupUnhealthyReplicas).
        for index, rs in enumerate(old_sorted):
            if budget <= 0:
                break
            unhealthy = _replicas(rs) - _status_count(rs, "availableReplicas")
            cut = min(budget, unhealthy)
            if cut > 0:
                old_sorted[index] = self._scale(deployment, rs, _replicas(rs) - cut, max_total)
                budget -= cut
        # Then healthy ones, as far as availability allows
        # (scaleDownOldReplicaSetsForRollingUpdate).
        available = sum(_status_count(rs, "availableReplicas") for rs in (new_rs, *old_sorted))
        room = available - min_available
        for index, rs in enumerate(old_sorted):
            if room <= 0:
                break
            cut = min(_replicas(rs), room)
            if cut > 0:
                old_sorted[index] = self._scale(deployment, rs, _replicas(rs) - cut, max_total)
                room -= cut
        old_rs[:] = old_sorted
        return new_rs, reason

    def _recreate(
        self,
        deployment: dict[str, Any],
        new_rs: dict[str, Any] | None,
        old_rs: list[dict[str, Any]],
        replicas: int,
    ) -> tuple[dict[str, Any] | None, str]:
        scaled = False
        for index, rs in enumerate(old_rs):
            if _replicas(rs) > 0:
                old_rs[index] = self._scale(deployment, rs, 0, replicas)
                scaled = True
        if scaled:
            return new_rs, ""
        old_uids = {rs["metadata"]["uid"] for rs in old_rs}
        namespace = deployment["metadata"]["namespace"]
        for pod in self.store.list_entries(PODS, namespace).items:
            ref = controller_of(pod.obj)
            if ref is not None and ref.get("uid") in old_uids:
                status = pod.obj.get("status") or {}
                if status.get("phase") not in ("Succeeded", "Failed"):
                    return new_rs, ""  # old pods still running or terminating: wait
        if new_rs is None:
            created = self._create_rs(deployment, old_rs, replicas, replicas)
            return created, "NewReplicaSetCreated" if created is not None else ""
        if _replicas(new_rs) != replicas:
            new_rs = self._scale(deployment, new_rs, replicas, replicas)
        return new_rs, ""

    # -- writes --------------------------------------------------------------------------------

    def _create_rs(
        self,
        deployment: dict[str, Any],
        old_rs: list[dict[str, Any]],
        size: int,
        max_total: int,
    ) -> dict[str, Any] | None:
        meta = deployment["metadata"]
        spec = deployment["spec"]
        collisions = int((deployment.get("status") or {}).get("collisionCount", 0))
        suffix = template_hash(spec["template"], collisions)
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = suffix
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = suffix
        annotations = {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if k not in (REVISION, "kubectl.kubernetes.io/last-applied-configuration")
        }
        annotations[DESIRED] = str(int(spec.get("replicas", 1)))
        annotations[MAX_REPLICAS] = str(max_total)
        annotations[REVISION] = str(max((_revision(rs) for rs in old_rs), default=0) + 1)
        rs_spec: dict[str, Any] = {"replicas": size, "selector": selector, "template": template}
        if spec.get("minReadySeconds"):
            rs_spec["minReadySeconds"] = spec["minReadySeconds"]
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{suffix}",
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": rs_spec,
        }
        try:
            created = self.store.create(REPLICASETS, body)
        except ApiError as exc:
            if exc.code != 409:
                raise
            # A ReplicaSet of that name with another template: count a collision and rehash
            # ("Deployment status › Collision count").
            entry = self.store.peek(DEPLOYMENTS, meta["namespace"], meta["name"])
            if entry is not None:
                updated = entry.copy()
                updated.setdefault("status", {})["collisionCount"] = collisions + 1
                self.store.update(DEPLOYMENTS, updated, subresource="status")
            return None
        if size:
            self._scaled_event(deployment, created, 0, size)
        return created

    def _scale(
        self, deployment: dict[str, Any], rs: dict[str, Any], size: int, max_total: int
    ) -> dict[str, Any]:
        before = _replicas(rs)
        entry = self.store.peek(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
        if entry is None:
            return rs
        updated = entry.copy()
        updated["spec"]["replicas"] = size
        annotations = updated["metadata"].setdefault("annotations", {})
        annotations[DESIRED] = str(int(deployment["spec"].get("replicas", 1)))
        annotations[MAX_REPLICAS] = str(max_total)
        result = self.store.update(REPLICASETS, updated)
        if size != before:
            self._scaled_event(deployment, result, before, size)
        return result

    def _scaled_event(
        self, deployment: dict[str, Any], rs: dict[str, Any], before: int, after: int
    ) -> None:
        direction = "up" if after > before else "down"
        self.ctx.events.record(
            deployment,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {after}",
            self.name,
        )

    def _write_status(
        self,
        entry: Entry,
        new_rs: dict[str, Any] | None,
        all_rs: list[dict[str, Any]],
        progress: str,
    ) -> bool:
        """calculateStatus and syncRolloutStatus: counts, Available, Progressing (with the
        progress deadline). Returns whether the rollout is complete."""
        deployment = entry.obj
        spec = deployment.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        current = deployment.get("status") or {}
        available = sum(_status_count(rs, "availableReplicas") for rs in all_rs)
        total_spec = sum(_replicas(rs) for rs in all_rs)
        counts = {
            "replicas": sum(_status_count(rs, "replicas") for rs in all_rs),
            "updatedReplicas": _status_count(new_rs, "replicas") if new_rs else 0,
            "readyReplicas": sum(_status_count(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(total_spec - available, 0),
        }
        status: dict[str, Any] = {"observedGeneration": deployment["metadata"]["generation"]}
        status.update({k: v for k, v in counts.items() if v})  # omitempty
        if current.get("collisionCount"):
            status["collisionCount"] = current["collisionCount"]
        status["conditions"] = [dict(c) for c in current.get("conditions") or ()]
        now = self.ctx.stamp()
        _, unavailable = resolve_fenceposts(spec)
        if available >= replicas - unavailable:
            set_condition(
                status,
                "Available",
                "True",
                now,
                reason="MinimumReplicasAvailable",
                message="Deployment has minimum availability.",
                update_time=True,
            )
        else:
            set_condition(
                status,
                "Available",
                "False",
                now,
                reason="MinimumReplicasUnavailable",
                message="Deployment does not have minimum availability.",
                update_time=True,
            )
        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        complete = (
            counts["updatedReplicas"] == replicas
            and counts["replicas"] == replicas
            and available == replicas
        )
        old_counts = {k: int(current.get(k, 0)) for k in counts}
        moved = (
            counts["updatedReplicas"] > old_counts["updatedReplicas"]
            or counts["replicas"] - counts["updatedReplicas"]
            < old_counts["replicas"] - old_counts["updatedReplicas"]
            or counts["readyReplicas"] > old_counts["readyReplicas"]
            or available > old_counts["availableReplicas"]
        )
        progressing = condition({"status": status}, "Progressing")
        deadline = spec.get("progressDeadlineSeconds")
        if spec.get("paused"):
            set_condition(
                status,
                "Progressing",
                "Unknown",
                now,
                reason="DeploymentPaused",
                message="Deployment is paused",
                update_time=True,
            )
        elif progress == "NewReplicaSetCreated":
            set_condition(
                status,
                "Progressing",
                "True",
                now,
                reason="NewReplicaSetCreated",
                message=f'Created new replica set "{rs_name}"',
                update_time=True,
            )
        elif complete and new_rs is not None:
            set_condition(
                status,
                "Progressing",
                "True",
                now,
                reason="NewReplicaSetAvailable",
                message=f'ReplicaSet "{rs_name}" has successfully progressed.',
                update_time=True,
            )
        elif moved and new_rs is not None:
            cond = condition({"status": status}, "Progressing")
            if cond is not None and cond.get("reason") == "ReplicaSetUpdated":
                cond["lastUpdateTime"] = now  # progress keeps the deadline away
            set_condition(
                status,
                "Progressing",
                "True",
                now,
                reason="ReplicaSetUpdated",
                message=f'ReplicaSet "{rs_name}" is progressing.',
                update_time=True,
            )
        elif new_rs is not None and progressing is None:
            set_condition(
                status,
                "Progressing",
                "True",
                now,
                reason="FoundNewReplicaSet",
                message=f'Found new replica set "{rs_name}"',
                update_time=True,
            )
        progressing = condition({"status": status}, "Progressing")
        if (
            deadline
            and not complete
            and not spec.get("paused")
            and progressing is not None
            and progressing.get("status") == "True"
        ):
            # DeploymentTimedOut: no progress for progressDeadlineSeconds since lastUpdateTime.
            since = parse_stamp(progressing.get("lastUpdateTime") or now)
            waited = (self.ctx.now() - since).total_seconds()
            if waited > int(deadline):
                set_condition(
                    status,
                    "Progressing",
                    "False",
                    now,
                    reason="ProgressDeadlineExceeded",
                    message=f'ReplicaSet "{rs_name}" has timed out progressing.',
                    update_time=True,
                )
            else:
                key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
                self.ctx.timers.after(int(deadline) - waited + 1, lambda: self.dirty.add(key))
        if not status["conditions"]:
            del status["conditions"]
        if status != current:
            updated = entry.copy()
            updated["status"] = status
            self.store.update(DEPLOYMENTS, updated, subresource="status")
        return complete and not spec.get("paused")

    def _clean_history(self, deployment: dict[str, Any], old_rs: list[dict[str, Any]]) -> None:
        """Delete the oldest unused ReplicaSets beyond ``revisionHistoryLimit``."""
        limit = int((deployment.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [rs for rs in old_rs if _replicas(rs) == 0 and _status_count(rs, "replicas") == 0]
        if len(idle) <= limit:
            return
        idle.sort(key=_revision)
        for rs in idle[: len(idle) - limit]:
            with contextlib.suppress(ApiError):
                self.store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])


__all__ = [
    "HASH_LABEL",
    "DeploymentController",
    "ReplicaSetController",
    "resolve_fenceposts",
    "template_hash",
]
