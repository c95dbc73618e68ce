"""The node lifecycle controller, its NoExecute taint manager, and the pod garbage collector.

Node lifecycle ("Nodes › Node controller", "Taints and Tolerations › Taint Nodes by Condition",
"› Taint based Evictions"): taints follow conditions and ``spec.unschedulable``:

- Ready False: ``node.kubernetes.io/not-ready`` NoSchedule and NoExecute; Ready Unknown:
  ``node.kubernetes.io/unreachable`` NoSchedule and NoExecute; Ready True: neither;
- MemoryPressure, DiskPressure, PIDPressure True, NetworkUnavailable True: the matching
  ``node.kubernetes.io/*-pressure`` / ``network-unavailable`` NoSchedule taint;
- ``spec.unschedulable`` (a cordon): ``node.kubernetes.io/unschedulable`` NoSchedule.

NoExecute taints carry ``timeAdded``. When a node's Ready turns Unknown its pods' Ready condition
turns False (MarkPodsNotReady). There are no heartbeats: a node's conditions change only when
someone (the cloud bridge, a test) writes them.

Taint manager ("Taint based Evictions"): a pod on a node with a NoExecute taint it does not
tolerate is deleted at once; one it tolerates for ``tolerationSeconds`` is deleted that long after
the taint's ``timeAdded``. The pod first gets ``DisruptionTarget`` (``DeletionByTaintManager``).

Pod GC ("Pod Lifecycle › Pod garbage collection"): a pod bound to a node that does not exist,
for ``pod_gc_quarantine`` seconds, is marked ``Failed`` with ``DisruptionTarget``
(``DeletionByPodGC``, "PodGC: node no longer exists") and then deleted with a grace period of 0.
The terminated-pod threshold (12,500) is not modelled.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import Any

from ..errors import ApiError
from ..resources import NODES, PODS
from ..store import Event, Key
from .base import (
    Context,
    Controller,
    condition,
    is_terminal,
    key_of,
    node_ready_status,
    parse_stamp,
    set_condition,
)
from .scheduling import NOT_READY_TAINT, UNREACHABLE_TAINT, UNSCHEDULABLE_TAINT, tolerates

_CONDITION_TAINTS = {
    "MemoryPressure": ("node.kubernetes.io/memory-pressure", "True"),
    "DiskPressure": ("node.kubernetes.io/disk-pressure", "True"),
    "PIDPressure": ("node.kubernetes.io/pid-pressure", "True"),
    "NetworkUnavailable": ("node.kubernetes.io/network-unavailable", "True"),
}
_MANAGED = {
    (NOT_READY_TAINT, "NoSchedule"),
    (NOT_READY_TAINT, "NoExecute"),
    (UNREACHABLE_TAINT, "NoSchedule"),
    (UNREACHABLE_TAINT, "NoExecute"),
    (UNSCHEDULABLE_TAINT, "NoSchedule"),
    *((key, "NoSchedule") for key, _ in _CONDITION_TAINTS.values()),
}


def _pods_on(ctx: Context, node: str) -> list[dict[str, Any]]:
    return [
        e.obj
        for e in ctx.store.list_entries(PODS, "", field_selector=f"spec.nodeName={node}").items
    ]


class NodeLifecycleController(Controller):
    name = "node-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.dirty: set[str] = set()
        self.unready: set[str] = set()  # nodes whose pods must be marked not ready

    def resync(self) -> None:
        self.dirty = {e.obj["metadata"]["name"] for e in self.store.list_entries(NODES, "").items}
        self.unready.clear()

    def observe(self, event: Event) -> None:
        if event.resource is not NODES or event.type == "DELETED":
            return
        name = event.key[1]
        self.dirty.add(name)
        before = node_ready_status(event.old.obj) if event.old is not None else ""
        after = node_ready_status(event.entry.obj)
        if after == "Unknown" and before != "Unknown":
            self.unready.add(name)

    def sync(self) -> None:
        dirty, self.dirty = self.dirty, set()
        self.each(dirty, self._taint, self.dirty.add)
        unready, self.unready = self.unready, set()
        self.each(unready, self._mark_pods_not_ready, self.unready.add)

    def _wanted(self, node: dict[str, Any]) -> set[tuple[str, str]]:
        wanted: set[tuple[str, str]] = set()
        ready = node_ready_status(node)
        if ready == "False":
            wanted |= {(NOT_READY_TAINT, "NoSchedule"), (NOT_READY_TAINT, "NoExecute")}
        elif ready == "Unknown":
            wanted |= {(UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")}
        elif ready == "" and any(
            t.get("key") == NOT_READY_TAINT and t.get("effect") == "NoSchedule"
            for t in (node.get("spec") or {}).get("taints") or ()
        ):
            wanted.add((NOT_READY_TAINT, "NoSchedule"))  # no status yet: keep admission's taint
        for type_, (key, value) in _CONDITION_TAINTS.items():
            cond = condition(node, type_)
            if cond is not None and cond.get("status") == value:
                wanted.add((key, "NoSchedule"))
        if (node.get("spec") or {}).get("unschedulable"):
            wanted.add((UNSCHEDULABLE_TAINT, "NoSchedule"))
        return wanted

    def _taint(self, name: str) -> None:
        entry = self.store.peek(NODES, "", name)
        if entry is None:
            return
        node = entry.obj
        taints = list((node.get("spec") or {}).get("taints") or ())
        wanted = self._wanted(node)
        kept = [
            t
            for t in taints
            if (t.get("key"), t.get("effect")) not in _MANAGED
            or (t.get("key"), t.get("effect")) in wanted
        ]
        present = {(t.get("key"), t.get("effect")) for t in kept}
        now = self.ctx.stamp()
        for key, effect in sorted(wanted - present):
            taint: dict[str, Any] = {"key": key, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = now
            kept.append(taint)
        if kept == taints:
            return
        updated = entry.copy()
        if kept:
            updated.setdefault("spec", {})["taints"] = kept
        else:
            updated.get("spec", {}).pop("taints", None)
        self.store.update(NODES, updated)

    def _mark_pods_not_ready(self, name: str) -> None:
        node = self.store.peek(NODES, "", name)
        if node is not None:
            self.ctx.events.record(
                node.obj,
                "Normal",
                "NodeNotReady",
                f"Node {name} status is now: NodeNotReady",
                self.name,
            )
        now = self.ctx.stamp()
        for pod in _pods_on(self.ctx, name):
            if is_terminal(pod) or condition(pod, "Ready") is None:
                continue
            entry = self.store.peek(PODS, *key_of(pod))
            if entry is None:
                continue
            updated = entry.copy()
            for cond in updated["status"].get("conditions") or ():
                if cond.get("type") == "Ready" and cond.get("status") != "False":
                    cond["status"] = "False"
                    cond["lastTransitionTime"] = now
            with contextlib.suppress(ApiError):  # changed or gone meanwhile: nothing to mark
                self.store.update(PODS, updated, subresource="status")


class TaintEvictionController(Controller):
    name = "taint-eviction-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.nodes: set[str] = set()  # nodes whose NoExecute taints changed
        self.pods: set[Key] = set()

    def resync(self) -> None:
        self.nodes = {e.obj["metadata"]["name"] for e in self.store.list_entries(NODES, "").items}
        self.pods.clear()

    @staticmethod
    def _no_execute(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
        if obj is None:
            return []
        taints = (obj.get("spec") or {}).get("taints") or ()
        return [t for t in taints if t.get("effect") == "NoExecute"]

    def observe(self, event: Event) -> None:
        if event.type == "DELETED":
            return
        if event.resource is NODES:
            old = event.old.obj if event.old is not None else None
            if self._no_execute(event.entry.obj) != self._no_execute(old):
                self.nodes.add(event.key[1])
        elif event.resource is PODS:
            pod, old = event.entry.obj, event.old.obj if event.old is not None else None
            spec = pod.get("spec") or {}
            old_spec = (old or {}).get("spec") or {}
            if spec.get("nodeName") and (
                old is None
                or spec.get("nodeName") != old_spec.get("nodeName")
                or spec.get("tolerations") != old_spec.get("tolerations")
            ):
                self.pods.add(event.key)

    def sync(self) -> None:
        nodes, self.nodes = self.nodes, set()
        pods, self.pods = self.pods, set()
        for name in sorted(nodes):
            for pod in _pods_on(self.ctx, name):
                pods.add(key_of(pod))
        self.each(pods, self._check, self.pods.add)

    def _check(self, key: Key) -> None:
        entry = self.store.peek(PODS, *key)
        if entry is None:
            return
        pod = entry.obj
        if is_terminal(pod) or pod["metadata"].get("deletionTimestamp"):
            return
        node = self.store.peek(NODES, "", (pod.get("spec") or {}).get("nodeName", ""))
        if node is None:
            return
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        due: float | None = None  # seconds from now
        now = self.ctx.now()
        for taint in self._no_execute(node.obj):
            matching = [t for t in tolerations if tolerates(t, taint)]
            if not matching:
                self._evict(entry)
                return
            limits = [
                int(t["tolerationSeconds"])
                for t in matching
                if t.get("tolerationSeconds") is not None
            ]
            if len(limits) < len(matching):
                continue  # tolerated forever
            added = taint.get("timeAdded")
            start = parse_stamp(added) if added else now
            left = (start + timedelta(seconds=min(limits)) - now).total_seconds()
            due = left if due is None else min(due, left)
        if due is None:
            return
        if due <= 0:
            self._evict(entry)
        else:
            self.ctx.timers.after(due, lambda: self.pods.add(key))

    def _evict(self, entry: Any) -> None:
        pod = entry.copy()
        now = self.ctx.stamp()
        set_condition(
            pod.setdefault("status", {}),
            "DisruptionTarget",
            "True",
            now,
            reason="DeletionByTaintManager",
            message="Taint manager: deleting due to NoExecute taint",
        )
        meta = pod["metadata"]
        self.store.update(PODS, pod, subresource="status")
        self.store.delete(PODS, meta["namespace"], meta["name"])
        self.ctx.events.record(
            pod,
            "Normal",
            "TaintManagerEviction",
            f"Marking for deletion Pod {meta['namespace']}/{meta['name']}",
            self.name,
        )


class PodGarbageCollector(Controller):
    name = "pod-garbage-collector"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.suspects: set[Key] = set()
        self.missing_since: dict[str, float] = {}  # node name → monotonic time first missed

    def resync(self) -> None:
        self.missing_since.clear()
        self.suspects = {
            key_of(e.obj)
            for e in self.store.list_entries(PODS, "").items
            if (e.obj.get("spec") or {}).get("nodeName")
        }

    def observe(self, event: Event) -> None:
        if event.resource is NODES:
            name = event.key[1]
            if event.type == "DELETED":
                self.missing_since.setdefault(name, time.monotonic())
                for pod in _pods_on(self.ctx, name):
                    self.suspects.add(key_of(pod))
            else:
                self.missing_since.pop(name, None)
        elif event.resource is PODS and event.type != "DELETED":
            node = (event.entry.obj.get("spec") or {}).get("nodeName")
            if node and self.store.peek(NODES, "", node) is None:
                self.suspects.add(event.key)

    def sync(self) -> None:
        suspects, self.suspects = self.suspects, set()
        self.each(suspects, self._check, self.suspects.add)

    def _check(self, key: Key) -> None:
        entry = self.store.peek(PODS, *key)
        if entry is None:
            return
        node = (entry.obj.get("spec") or {}).get("nodeName", "")
        if not node or self.store.peek(NODES, "", node) is not None:
            return
        since = self.missing_since.setdefault(node, time.monotonic())
        left = since + self.ctx.options.pod_gc_quarantine - time.monotonic()
        if left > 0:
            self.ctx.timers.after(left, lambda: self.suspects.add(key))
            return
        pod = entry.copy()
        meta = pod["metadata"]
        if not is_terminal(pod):
            status = pod.setdefault("status", {})
            status["phase"] = "Failed"
            set_condition(
                status,
                "DisruptionTarget",
                "True",
                self.ctx.stamp(),
                reason="DeletionByPodGC",
                message="PodGC: node no longer exists",
            )
            self.store.update(PODS, pod, subresource="status")
        self.store.delete(PODS, meta["namespace"], meta["name"], grace_period_seconds=0)
