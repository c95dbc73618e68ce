"""The DaemonSet controller ("DaemonSet", "Taints and Tolerations"; pkg/controller/daemon).

One pod per node that should run it: the node matches the template's ``nodeSelector`` and
required node affinity, and the pod (with the tolerations the controller adds to every daemon
pod) tolerates the node's NoSchedule and NoExecute taints. Each pod targets its node through a
required node affinity on ``metadata.name`` (``matchFields``) and is bound by the default
scheduler, as since Kubernetes 1.12, so it needs room on the node like any pod. A pod on a node
that should no longer run it is deleted; a deleted one is replaced. Status counts follow
DaemonSetStatus. Not modelled: rolling updates of a changed template (existing pods keep the
template they were made from, as with ``OnDelete``), ``minReadySeconds``, surge, history
(ControllerRevisions).
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import ApiError
from ..resources import DAEMONSETS, NODES, PODS
from ..store import Entry, Event, Key
from .base import OwnerController, controller_of, is_active, is_ready, owner_reference
from .scheduling import node_affinity_matches, tolerated

# util.AddOrUpdateDaemonPodTolerations: what every daemon pod tolerates.
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
_HOST_NETWORK_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}
GENERATION_LABEL = "pod-template-generation"


def daemon_tolerations(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    tolerations = [dict(t) for t in pod_spec.get("tolerations") or ()]
    extra = list(DAEMON_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        extra.append(_HOST_NETWORK_TOLERATION)
    for toleration in extra:
        if not any(
            t.get("key") == toleration["key"] and t.get("effect") == toleration["effect"]
            for t in tolerations
        ):
            tolerations.append(dict(toleration))
    return tolerations


def should_run(pod_spec: dict[str, Any], node: dict[str, Any]) -> bool:
    """NodeShouldRunDaemonPod: selector and affinity match, every NoSchedule/NoExecute taint
    tolerated (with the daemon tolerations)."""
    labels = node["metadata"].get("labels") or {}
    name = node["metadata"]["name"]
    selector = pod_spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    if not node_affinity_matches(pod_spec, labels, name):
        return False
    tolerations = daemon_tolerations(pod_spec)
    for taint in (node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(tolerations, taint):
            return False
    return True


def _target(pod: dict[str, Any]) -> str:
    """The node a daemon pod is for: where it is bound, else its matchFields affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or ():
        for field in term.get("matchFields") or ():
            if field.get("key") == "metadata.name" and field.get("values"):
                return field["values"][0]
    return ""


class DaemonSetController(OwnerController):
    name = "daemonset-controller"
    resource, child, owner_kind = DAEMONSETS, PODS, "DaemonSet"

    def observe(self, event: Event) -> None:
        super().observe(event)
        if event.resource is NODES:
            # A node that comes, goes or changes labels or taints may need a daemon pod or lose one.
            old = event.old.obj if event.old is not None else None
            new = event.entry.obj
            if (
                event.type != "MODIFIED"
                or old is None
                or old["metadata"].get("labels") != new["metadata"].get("labels")
                or (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints")
            ):
                self.resync()

    def _sync(self, key: Key) -> None:
        entry = self.store.peek(DAEMONSETS, *key)
        if entry is None or entry.obj["metadata"].get("deletionTimestamp"):
            return
        ds = entry.obj
        uid = ds["metadata"]["uid"]
        template = (ds.get("spec") or {}).get("template") or {}
        pod_spec = template.get("spec") or {}
        pods: dict[str, list[Entry]] = {}
        for pod in self.store.list_entries(PODS, key[0]).items:
            ref = controller_of(pod.obj)
            if ref is None or ref.get("uid") != uid or not is_active(pod.obj):
                continue
            pods.setdefault(_target(pod.obj), []).append(pod)
        nodes = {n.obj["metadata"]["name"]: n.obj for n in self.store.list_entries(NODES, "").items}
        wanted = {name for name, node in nodes.items() if should_run(pod_spec, node)}
        created = False
        for name in sorted(wanted):
            if not pods.get(name):
                self._create(ds, name)
                created = True
        for name, on_node in pods.items():
            extra = on_node if name not in wanted else on_node[1:]
            for pod in extra:
                self._delete(ds, pod)
        if not created:
            self._write_status(entry, wanted, pods)

    def _create(self, ds: dict[str, Any], node: str) -> None:
        namespace, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
        template = (ds.get("spec") or {}).get("template") or {}
        template_meta = template.get("metadata") or {}
        spec = copy.deepcopy(template.get("spec") or {})
        spec["tolerations"] = daemon_tolerations(spec)
        # ReplaceDaemonSetPodNodeNameNodeAffinity: the pod's required affinity names its node.
        affinity = spec.setdefault("affinity", {})
        node_affinity = affinity.setdefault("nodeAffinity", {})
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            ]
        }
        labels = dict(template_meta.get("labels") or {})
        labels[GENERATION_LABEL] = str(ds["metadata"].get("generation", 1))
        meta: dict[str, Any] = {
            "generateName": f"{name}-",
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(ds)],
        }
        if template_meta.get("annotations"):
            meta["annotations"] = dict(template_meta["annotations"])
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        try:
            created = self.store.create(PODS, pod)
        except ApiError as exc:
            if exc.code == 409:
                raise
            self.ctx.events.record(
                ds, "Warning", "FailedCreate", f"Error creating: {exc.message}", self.name
            )
            return
        self.ctx.events.record(
            ds,
            "Normal",
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            self.name,
        )

    def _write_status(self, entry: Entry, wanted: set[str], pods: dict[str, list[Entry]]) -> None:
        ds = entry.obj
        generation = str(ds["metadata"].get("generation", 1))
        scheduled = {
            n for n, p in pods.items() if p and (p[0].obj.get("spec") or {}).get("nodeName")
        }
        ready = sum(1 for n in wanted if pods.get(n) and is_ready(pods[n][0].obj))
        updated = sum(
            1
            for n in scheduled & wanted
            if (pods[n][0].obj["metadata"].get("labels") or {}).get(GENERATION_LABEL) == generation
        )
        status: dict[str, Any] = {
            "currentNumberScheduled": len(scheduled & wanted),
            "numberMisscheduled": len(scheduled - wanted),
            "desiredNumberScheduled": len(wanted),
            "numberReady": ready,
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        if updated:
            status["updatedNumberScheduled"] = updated
        if ready:
            status["numberAvailable"] = ready
        if len(wanted) - ready:
            status["numberUnavailable"] = len(wanted) - ready
        if status == (ds.get("status") or {}):
            return
        copy_ = entry.copy()
        copy_["status"] = status
        self.store.update(DAEMONSETS, copy_, subresource="status")
