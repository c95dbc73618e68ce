"""kube-scheduler, reduced to what a small cluster needs ("Kubernetes Scheduler", "Scheduling
Framework", "Pod Scheduling Readiness").

Pending pods of ``default-scheduler`` without a node are tried in priority order, then by age.
A pod that fits is bound through the ``binding`` subresource (which sets ``spec.nodeName`` and
``PodScheduled=True``) and gets a ``Scheduled`` event. A pod that fits nowhere stays Pending with
``PodScheduled=False``, reason ``Unschedulable``, and a ``FailedScheduling`` warning event with the
real message; it waits, as in the scheduler's unschedulable queue, until a node is added or
changes, or a bound pod goes away, and is then tried again. Nothing is preempted. Pods bound
meanwhile also move it back when it has topology spread constraints or the cluster has pods with
required anti-affinity (a new pod can change both).
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError
from ..resources import NAMESPACES, NODES, PODS
from ..store import Entry, Event, Key
from .base import Context, Controller, is_terminal, key_of, set_condition
from .scheduling import (
    InterPod,
    NodeInfo,
    PlacedPod,
    Resources,
    filter_node,
    fit_error,
    pod_requests,
    score_nodes,
)

SCHEDULER_NAME = "default-scheduler"


def _scheduling_view(info: NodeInfo) -> tuple[Any, ...]:
    """What of a node can make an unschedulable pod schedulable."""
    return (info.labels, info.taints, info.unschedulable, info.allocatable)


class Scheduler(Controller):
    name = SCHEDULER_NAME

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.nodes: dict[str, NodeInfo] = {}
        # Usage on nodes that do not exist (pods bound to a deleted or never-created node).
        self.ghosts: dict[str, NodeInfo] = {}
        # The scheduler cache: every bound, unfinished pod and what it takes from its node.
        self.bound: dict[Key, tuple[str, Resources, PlacedPod]] = {}
        self.anti_affinity_pods = 0  # bound pods with required anti-affinity terms
        self.active: set[Key] = set()  # to try in the next pass
        self.parked: set[Key] = set()  # unschedulable until something changes
        self.messages: dict[Key, str] = {}  # the FailedScheduling message last written

    # -- cache ---------------------------------------------------------------------------------

    def resync(self) -> None:
        self.nodes.clear()
        self.ghosts.clear()
        self.bound.clear()
        self.anti_affinity_pods = 0
        self.active.clear()
        self.parked.clear()
        self.messages.clear()
        for node in self.store.list_entries(NODES, "").items:
            self.nodes[node.obj["metadata"]["name"]] = NodeInfo.from_node(node.obj)
        for entry in self.store.list_entries(PODS, "").items:
            self._account(key_of(entry.obj), entry.obj)
            if self._wants(entry.obj):
                self.active.add(key_of(entry.obj))

    def _usage(self, name: str) -> NodeInfo:
        info = self.nodes.get(name)
        if info is None:
            info = self.ghosts.setdefault(name, NodeInfo(name=name))
        return info

    def _account(self, key: Key, pod: dict[str, Any] | None) -> None:
        """Make the cache's record of ``key`` match ``pod`` (None: gone)."""
        node_name = ((pod or {}).get("spec") or {}).get("nodeName", "") if pod else ""
        wanted = bool(pod) and bool(node_name) and not is_terminal(pod or {})
        previous = self.bound.pop(key, None)
        if previous is not None:
            old_node, requests, placed = previous
            self._usage(old_node).add(requests, key, placed, -1)
            self.anti_affinity_pods -= bool(placed.anti_terms)
        if wanted and pod is not None:
            requests = pod_requests(pod.get("spec") or {})
            placed = PlacedPod.of(pod)
            self.bound[key] = (node_name, requests, placed)
            self._usage(node_name).add(requests, key, placed)
            self.anti_affinity_pods += bool(placed.anti_terms)

    @staticmethod
    def _wants(pod: dict[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        return (
            not spec.get("nodeName")
            and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and not pod["metadata"].get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
            and not spec.get("schedulingGates")
        )

    def _inter_pod_waiting(self) -> bool:
        if self.anti_affinity_pods:
            return bool(self.parked)
        for key in self.parked:
            entry = self.store.peek(PODS, *key)
            spec = (entry.obj.get("spec") or {}) if entry is not None else {}
            if spec.get("topologySpreadConstraints") or spec.get("affinity"):
                return True
        return False

    def _namespace_labels(self, name: str) -> dict[str, str]:
        entry = self.store.peek(NAMESPACES, "", name)
        return dict(entry.obj["metadata"].get("labels") or {}) if entry is not None else {}

    def _flush(self) -> None:
        """Move every unschedulable pod back to the active queue (a cluster event)."""
        self.active |= self.parked
        self.parked.clear()

    # -- events --------------------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        if event.resource is PODS:
            self._observe_pod(event)
        elif event.resource is NODES:
            self._observe_node(event)

    def _observe_pod(self, event: Event) -> None:
        key = event.key
        pod = event.entry.obj
        freed = key in self.bound
        was_bound = self.bound.get(key)
        if event.type == "DELETED":
            self._account(key, None)
            self.active.discard(key)
            self.parked.discard(key)
            self.messages.pop(key, None)
            if freed:
                self._flush()
            return
        self._account(key, pod)
        if freed and key not in self.bound:
            self._flush()  # a bound pod finished: its resources are free again
        elif key in self.bound and self.bound[key] != was_bound and self._inter_pod_waiting():
            self._flush()  # a pod placed, relabelled or terminating: spreading may change
        if self._wants(pod):
            old = event.old.obj if event.old is not None else None
            if key in self.parked and old is not None and old.get("spec") == pod.get("spec"):
                return  # only our own status write, or labels: nothing new to try
            self.parked.discard(key)
            self.active.add(key)
        else:
            self.active.discard(key)
            self.parked.discard(key)
            self.messages.pop(key, None)

    def _observe_node(self, event: Event) -> None:
        name = event.key[1]
        if event.type == "DELETED":
            info = self.nodes.pop(name, None)
            if info is not None and info.pod_count:
                # Pods still bound there keep their accounting until the pod GC removes them.
                self.ghosts[name] = info
            return
        info = self.nodes.get(name)
        if info is not None and info.version and int(info.version) >= event.rv:
            return  # already caught up by _refresh_nodes
        self._update_node(event.entry.obj)

    def _refresh_nodes(self) -> None:
        """Catch up with node writes made earlier in this pass (the node lifecycle controller
        runs first): the informer cache of a scheduler in the same process is never behind."""
        for entry in self.store.list_entries(NODES, "").items:
            info = self.nodes.get(entry.obj["metadata"]["name"])
            if info is None or info.version != entry.obj["metadata"]["resourceVersion"]:
                self._update_node(entry.obj)

    def _update_node(self, node: dict[str, Any]) -> None:
        """Take a node's new state, keeping what bound pods use; a change that could let an
        unschedulable pod fit moves the unschedulable pods back to the active queue."""
        name = node["metadata"]["name"]
        fresh = NodeInfo.from_node(node)
        info = self.nodes.get(name)
        usage = info or self.ghosts.pop(name, None)
        if usage is not None:
            fresh.requested, fresh.pod_count, fresh.pods = (
                usage.requested,
                usage.pod_count,
                usage.pods,
            )
        self.nodes[name] = fresh
        if info is None or _scheduling_view(fresh) != _scheduling_view(info):
            self._flush()

    # -- scheduling ----------------------------------------------------------------------------

    def sync(self) -> None:
        self._refresh_nodes()
        if not self.active:
            return
        queue = []
        for key in self.active:
            entry = self.store.peek(PODS, *key)
            if entry is not None and self._wants(entry.obj):
                spec = entry.obj.get("spec") or {}
                created = entry.obj["metadata"].get("creationTimestamp", "")
                queue.append((-int(spec.get("priority", 0)), created, key, entry))
        self.active = set()
        queue.sort(key=lambda item: item[:3])
        candidates = sorted(self.nodes.values(), key=lambda info: info.name)
        for _, _, key, entry in queue:
            self._schedule(key, entry, candidates)

    def _schedule(self, key: Key, entry: Entry, candidates: list[NodeInfo]) -> None:
        pod = entry.obj
        spec = pod.get("spec") or {}
        requests = pod_requests(spec)
        feasible: list[NodeInfo] = []
        failures: dict[str, tuple[list[str], bool]] = {}
        inter_pod = InterPod(
            pod, candidates, self._namespace_labels, any_anti_affinity=self.anti_affinity_pods > 0
        )
        for node in candidates:
            reasons, helpable = filter_node(node, spec, requests)
            if not reasons:
                reasons, helpable = inter_pod.check(node)
            if reasons:
                failures[node.name] = (reasons, helpable)
            else:
                feasible.append(node)
        if feasible:
            chosen = score_nodes(feasible, spec, requests)
            self._bind(key, pod, chosen, requests)
        else:
            self._park(key, entry, fit_error(len(candidates), failures))

    def _bind(self, key: Key, pod: dict[str, Any], node: NodeInfo, requests: Resources) -> None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": key[1], "namespace": key[0]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node.name},
        }
        try:
            self.store.bind(key[0], key[1], binding)
        except ApiError:
            return  # deleted or bound by someone else meanwhile: the event will tell
        # Account now: the next pod of this pass must see this one's requests.
        placed = PlacedPod.of(pod)
        self.bound[key] = (node.name, requests, placed)
        node.add(requests, key, placed)
        self.anti_affinity_pods += bool(placed.anti_terms)
        self.messages.pop(key, None)
        self.ctx.events.record(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {key[0]}/{key[1]} to {node.name}",
            SCHEDULER_NAME,
        )

    def _park(self, key: Key, entry: Entry, message: str) -> None:
        self.parked.add(key)
        if self.messages.get(key) == message:
            return  # nothing new to say: no write, no event
        pod = entry.obj
        updated = entry.copy()
        updated.setdefault("status", {})
        set_condition(
            updated["status"],
            "PodScheduled",
            "False",
            self.ctx.stamp(),
            reason="Unschedulable",
            message=message,
        )
        try:
            self.store.update(PODS, updated, subresource="status")
        except ApiError as exc:
            if exc.code == 409:  # changed meanwhile: look again soon
                self.parked.discard(key)
                self.retry(lambda: self.active.add(key))
            return
        self.messages[key] = message
        self.ctx.events.record(pod, "Warning", "FailedScheduling", message, SCHEDULER_NAME)


__all__ = ["SCHEDULER_NAME", "Scheduler"]
