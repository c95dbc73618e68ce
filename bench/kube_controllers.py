"""Benchmark of the simulator's controllers: scheduling throughput and a Deployment scale-up.

Run: ``.venv/bin/python bench/kube_controllers.py``. Prints figures and ratios; asserts nothing
about absolute times (machines differ).

- Scheduling: 500 pending pods over 50 Ready nodes (every pod with a node selector and
  requests; one in 25 also with a toleration and a GPU request, so every filter works), from
  starting the controllers to the last pod bound, against a floor: the same 500 bindings
  written directly with ``store.bind`` (validated writes, no decisions, no events). The
  ratio is what deciding, the cache and the Scheduled events cost on top of the writes.
- Unschedulable churn: the same 500 pods when no node fits, until every one has its
  FailedScheduling condition, against the same floor.
- Deployment: scale 0 -> 500 replicas (replicaset controller creates, scheduler binds, kubelet
  starts), until ``availableReplicas`` is 500, against the floor of creating 500 pods.

Objects are written through the store (validated), as the controllers' own writes are.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.kube import KubeSimulator  # noqa: E402
from sandbox.kube.resources import DEPLOYMENTS, NAMESPACES, NODES, PODS  # noqa: E402

NODES_COUNT = 50
PODS_COUNT = 500
NAMESPACE = "bench"
TIMINGS = {"pod_start_delay": 0.0, "pod_gc_quarantine": 0.0}


def node(i: int, *, fits: bool = True) -> dict[str, Any]:
    gpu = i % 10 == 0
    allocatable = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    if gpu:
        allocatable["nvidia.com/gpu"] = "4"
    labels = {"clusterweb.io/pool": "gpu" if gpu else "spark"}
    if not fits:
        labels = {"clusterweb.io/pool": "elsewhere"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"node-{i:03d}", "labels": labels},
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}
        if gpu
        else {},
        "status": {
            "capacity": allocatable,
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def pod(i: int) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    }
    spec: dict[str, Any] = {"containers": [container]}
    if i % 25 == 0:  # 20 GPU pods for the 5 GPU nodes' 20 GPUs
        container["resources"]["limits"] = {"nvidia.com/gpu": "1"}
        spec["nodeSelector"] = {"clusterweb.io/pool": "gpu"}
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    else:
        spec["nodeSelector"] = {"clusterweb.io/pool": "spark"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{i:04d}", "namespace": NAMESPACE},
        "spec": spec,
    }


def fresh(*, fits: bool = True) -> KubeSimulator:
    sim = KubeSimulator().start()
    store = sim.store
    store.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    for i in range(NODES_COUNT):
        store.create(NODES, node(i, fits=fits))
    return sim


def create_pods(sim: KubeSimulator) -> float:
    started = time.perf_counter()
    for i in range(PODS_COUNT):
        sim.store.create(PODS, pod(i))
    return time.perf_counter() - started


def wait(sim: KubeSimulator, done: Any, timeout: float = 300) -> float:
    """Seconds until ``done(store)`` holds, polled every 5 ms (outside the store's lock, so
    the check does not slow the controllers down)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while not done(sim.store):
        if time.monotonic() > deadline:
            raise TimeoutError("the controllers did not finish")
        time.sleep(0.005)
    return time.perf_counter() - started


def bound(store: Any) -> bool:
    return all(e.obj["spec"].get("nodeName") for e in store.list_entries(PODS, NAMESPACE).items)


def floor_bindings() -> float:
    """The same 500 bindings, written directly: what scheduling costs in writes alone."""
    sim = fresh()
    try:
        create_pods(sim)
        started = time.perf_counter()
        for i in range(PODS_COUNT):
            target = {"target": {"kind": "Node", "name": f"node-{i % NODES_COUNT:03d}"}}
            sim.store.bind(NAMESPACE, f"pod-{i:04d}", target)
        return time.perf_counter() - started
    finally:
        sim.stop()


def scheduling(floor: float) -> None:
    sim = fresh()
    try:
        create_pods(sim)
        started = time.perf_counter()
        sim.start_controllers(pod_start_delay=3600)  # bind only; the kubelet accepts, no more
        seconds = wait(sim, bound)
        total = time.perf_counter() - started
        placed = sorted(
            {e.obj["spec"]["nodeName"] for e in sim.store.list_entries(PODS, NAMESPACE).items}
        )
        assert not sim.bugs, sim.bugs
    finally:
        sim.stop()
    print(f"scheduling {PODS_COUNT} pending pods over {NODES_COUNT} nodes")
    print(f"  {f'floor: {PODS_COUNT} direct binds':<40}{floor * 1000:8.1f} ms")
    print(
        f"  {'scheduler, start to all bound':<40}{seconds * 1000:8.1f} ms"
        f"  (x floor: {seconds / floor:.2f}; {PODS_COUNT / total:.0f} pods/s; "
        f"{len(placed)} nodes used)"
    )


def unschedulable(floor: float) -> None:
    sim = fresh(fits=False)
    try:
        create_pods(sim)

        def parked(store: Any) -> bool:
            for entry in store.list_entries(PODS, NAMESPACE).items:
                conditions = entry.obj.get("status", {}).get("conditions") or ()
                if not any(c.get("reason") == "Unschedulable" for c in conditions):
                    return False
            return True

        sim.start_controllers(**TIMINGS)
        seconds = wait(sim, parked)
        assert not sim.bugs, sim.bugs
    finally:
        sim.stop()
    print(
        f"  {f'nothing fits: all {PODS_COUNT} FailedScheduling':<40}{seconds * 1000:8.1f} ms"
        f"  (x floor: {seconds / floor:.2f}; a status write and an event per pod)"
    )


def deployment() -> None:
    sim = fresh()
    try:
        floor_sim = fresh()
        try:
            floor = create_pods(floor_sim)
        finally:
            floor_sim.stop()
        template = pod(1)
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "wide", "namespace": NAMESPACE},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "wide"}},
                "template": {"metadata": {"labels": {"app": "wide"}}, "spec": template["spec"]},
            },
        }
        sim.store.create(DEPLOYMENTS, body)
        sim.start_controllers(**TIMINGS)
        sim.store.update_scale(NAMESPACE, "wide", {"spec": {"replicas": PODS_COUNT}})

        def available(store: Any) -> bool:
            status = store.peek(DEPLOYMENTS, NAMESPACE, "wide").obj.get("status") or {}
            return status.get("availableReplicas") == PODS_COUNT

        seconds = wait(sim, available)
        writes = sim.store.resource_version
        assert not sim.bugs, sim.bugs
    finally:
        sim.stop()
    print(f"deployment scaled 0 -> {PODS_COUNT} (replicaset, scheduler, kubelet)")
    print(f"  {f'floor: create {PODS_COUNT} pods directly':<40}{floor * 1000:8.1f} ms")
    print(
        f"  {f'until availableReplicas = {PODS_COUNT}':<40}{seconds * 1000:8.1f} ms"
        f"  (x floor: {seconds / floor:.2f}; {writes} writes in all)"
    )


def main() -> None:
    floor = floor_bindings()
    scheduling(floor)
    unschedulable(floor)
    deployment()


if __name__ == "__main__":
    main()
