"""Nodes going away or out of service, and the controllers themselves.

Kubernetes documentation: "Safely Drain a Node" (cordon, then evict), "API-initiated Eviction",
"Nodes › Node status" and "› Node controller", "Pod Lifecycle › Pod garbage collection" and
"› Pod disruption conditions", "Pod Lifecycle › Termination of Pods".
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client

from sandbox.kube import KubeSimulator
from sandbox.kube.controllers import kubelet
from tests.fixtures.kube import Kube, collect_events, deployment_manifest, wait_until

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10


def ready(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", ())
    )


def live(pods: dict[str, Any]) -> dict[str, Any]:
    return {n: p for n, p in pods.items() if not p["metadata"].get("deletionTimestamp")}


def test_evicted_pods_are_replaced_and_never_scheduled_onto_the_cordoned_node(
    kube: Kube,
) -> None:
    """Safely Drain a Node: after ``kubectl cordon`` the drain evicts the node's pods; their
    Deployment recreates them, and the scheduler puts none on the cordoned node."""
    kube.controllers()
    first, second = kube.node(), kube.node()
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=4), _request_timeout=TIMEOUT
    )
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: len([x for x in p.values() if ready(x)]) == 4,
    )
    on_first = [n for n, p in pods.items() if p["spec"]["nodeName"] == first]
    assert on_first, "the scheduler spreads a Deployment's pods over both nodes"
    kube.core.patch_node(first, {"spec": {"unschedulable": True}}, _request_timeout=TIMEOUT)
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    for name in on_first:
        eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
        kube.core.create_namespaced_pod_eviction(name, ns, eviction, _request_timeout=TIMEOUT)

    def drained(events: list[tuple[str, dict[str, Any]]]) -> bool:
        latest: dict[str, tuple[str, dict[str, Any]]] = {}
        for kind, obj in events:
            latest[obj["metadata"]["name"]] = (kind, obj)
        current = {n: o for n, (k, o) in latest.items() if k != "DELETED"}
        gone = all(latest.get(n, ("",))[0] == "DELETED" for n in on_first)
        replacements = [o for n, o in current.items() if n not in pods and ready(o)]
        return gone and len(replacements) == len(on_first)

    events = collect_events(
        kube.core.list_namespaced_pod, ns, resource_version=start, until=drained, timeout_seconds=10
    )
    assert drained(events)
    bound_after_cordon = {
        obj["metadata"]["name"]: obj["spec"].get("nodeName")
        for _, obj in events
        if obj["metadata"]["name"] not in pods
    }
    assert set(bound_after_cordon.values()) <= {second, None}


def test_pods_of_a_deleted_node_are_failed_deleted_and_replaced(kube: Kube) -> None:
    """Pod garbage collection: pods bound to a Node that no longer exists are marked Failed
    with a DisruptionTarget condition (DeletionByPodGC) and deleted; their ReplicaSet
    replaces them on a node that exists."""
    kube.controllers()
    doomed = kube.node()
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=2), _request_timeout=TIMEOUT
    )
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: len([x for x in p.values() if ready(x)]) == 2,
    )
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    survivor = kube.node()
    kube.core.delete_node(doomed, _request_timeout=TIMEOUT)
    events = collect_events(
        kube.core.list_namespaced_pod,
        ns,
        resource_version=start,
        until=lambda evs: (
            len({o["metadata"]["name"] for k, o in evs if k == "DELETED"} & set(pods)) == 2
            and len(
                {
                    o["metadata"]["name"]
                    for k, o in evs
                    if ready(o) and o["metadata"]["name"] not in pods
                }
            )
            == 2
        ),
        timeout_seconds=10,
    )
    for name in pods:
        failed = next(o for k, o in events if o["metadata"]["name"] == name and k == "MODIFIED")
        assert failed["status"]["phase"] == "Failed"
        disruption = {c["type"]: c for c in failed["status"]["conditions"]}["DisruptionTarget"]
        assert (disruption["status"], disruption["reason"], disruption["message"]) == (
            "True",
            "DeletionByPodGC",
            "PodGC: node no longer exists",
        )
    replacements = {
        o["metadata"]["name"]: o["spec"]["nodeName"]
        for k, o in events
        if ready(o) and o["metadata"]["name"] not in pods
    }
    assert set(replacements.values()) == {survivor}


def test_a_node_whose_kubelet_stops_reporting_marks_its_pods_not_ready(kube: Kube) -> None:
    """Nodes › Node controller: a node whose Ready condition is Unknown gets the unreachable
    taints and its pods' Ready condition turns False, so the Deployment counts them
    unavailable."""
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=1), _request_timeout=TIMEOUT
    )
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: any(ready(x) for x in p.values()))
    live_node = kube.core.read_node_status(node, _request_timeout=TIMEOUT)
    live_node.status.conditions[0].status = "Unknown"
    live_node.status.conditions[0].reason = "NodeStatusUnknown"
    kube.core.replace_node_status(node, live_node, _request_timeout=TIMEOUT)
    pods = wait_until(
        kube.core.list_namespaced_pod, ns, until=lambda p: not any(ready(x) for x in p.values())
    )
    assert all(p["status"]["phase"] == "Running" for p in pods.values())
    taints = {
        (t.key, t.effect) for t in kube.core.read_node(node, _request_timeout=TIMEOUT).spec.taints
    }
    assert taints == {
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    }
    deployments = wait_until(
        kube.apps.list_namespaced_deployment,
        ns,
        until=lambda d: "availableReplicas" not in d["web"].get("status", {}),
    )
    assert deployments["web"]["status"]["unavailableReplicas"] == 1


def test_a_deleted_running_pod_passes_through_terminating(kube: Kube) -> None:
    """Pod Lifecycle › Termination of Pods: the pod first gets deletionTimestamp (Terminating),
    then disappears once its kubelet is done; the controllers do not bring it back."""
    kube.controllers()
    kube.node()
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "pause"}]}},
        _request_timeout=TIMEOUT,
    )
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: "p" in p and ready(p["p"]))
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    kube.core.delete_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    events = collect_events(
        kube.core.list_namespaced_pod,
        ns,
        resource_version=start,
        until=lambda evs: evs[-1][0] == "DELETED",
    )
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "MODIFIED" and kinds[-1] == "DELETED"
    assert events[0][1]["metadata"]["deletionTimestamp"]
    assert events[0][1]["metadata"]["deletionGracePeriodSeconds"] == 30


def test_the_controllers_stop_with_the_simulator_and_their_thread_is_joined() -> None:
    """The simulator's own lifecycle: ``stop()`` ends the controllers' thread (no leak)."""
    sim = KubeSimulator().start()
    controllers = sim.start_controllers(pod_start_delay=0.01)
    assert controllers.running
    assert sim.store.taint_new_nodes  # TaintNodesByCondition admission comes with them
    sim.stop()
    assert not controllers.running
    assert "kube-controllers" not in [t.name for t in threading.enumerate()]
    assert not sim.store.taint_new_nodes


def test_a_wake_that_lands_before_the_observer_waits_is_not_lost() -> None:
    """``Store.wake()`` (a stop, or the kubelet's runtime reporting a stand-in that became ready
    or exited) between the controllers' last pass and their wait must end that wait at once;
    a lost wake-up left a pod Running but not Ready until the next timer (up to 30 s)."""
    sim = KubeSimulator().start()
    try:
        store = sim.store
        cursor, epoch = store.resource_version, store.epoch

        store.wake()
        began = time.monotonic()
        got = store.changes(cursor, epoch, 5.0)
        took = time.monotonic() - began

        assert got == (cursor, [])
        assert took < 1.0, f"the wake-up was lost: waited {took:.1f} s"
        # Consumed: the next wait with nothing new waits (briefly) again.
        began = time.monotonic()
        store.changes(cursor, epoch, 0.3)
        assert time.monotonic() - began >= 0.25
    finally:
        sim.stop()


def test_a_stop_that_lands_just_before_the_loop_waits_still_wakes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``stop()`` sets the stop flag and wakes the store; the loop looks at the flag, then waits
    on the store. A stop landing between the two must not be lost: the thread would sleep until
    its next timer (``idle_wakeup``, 30 s) and ``stop()`` would give up ("the controllers did not
    stop within 10 s", seen once at teardown in a loaded full-suite run)."""
    sim = KubeSimulator().start()
    store = sim.store
    real_changes = store.changes
    waiting = threading.Event()
    go_on = threading.Event()

    def changes(*args: Any, **kwargs: Any) -> Any:
        # A scheduling point, not a stand-in: the first wait of the loop is held here (after it
        # looked at the stop flag) until stop() has set the flag and woken the store; then the
        # store's real method runs.
        if not waiting.is_set():
            waiting.set()
            go_on.wait(5)
        return real_changes(*args, **kwargs)

    monkeypatch.setattr(store, "changes", changes)
    try:
        controllers = sim.start_controllers()
        assert waiting.wait(5)
        stopper = threading.Thread(target=controllers.stop, kwargs={"timeout": 3.0})
        began = time.monotonic()
        stopper.start()
        deadline = time.monotonic() + 5
        while not controllers._stopping.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # stop() wakes the store right after setting the flag
        go_on.set()
        stopper.join(10)
        took = time.monotonic() - began
        assert not controllers.running
        assert not [bug for bug in store.bugs if "did not stop" in bug]
        assert took < 2.5, f"stop() took {took:.1f} s"
    finally:
        go_on.set()
        sim.stop()


def test_an_invalid_object_written_by_a_controller_is_a_simulator_bug(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's contract: its own writes are validated like a client's, and one a real
    server would refuse is recorded as a bug (which fails the test that caused it)."""
    assert kube.simulator is not None

    def broken_accept(self: Any, pod: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
        pod["status"]["phase"] = "Sleeping"  # not a pod phase
        return self.store.update("pods", pod, subresource="status")

    monkeypatch.setattr(kubelet.Kubelet, "_accept", broken_accept)
    kube.controllers()
    kube.node()
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "pause"}]}},
        _request_timeout=TIMEOUT,
    )
    deadline = time.monotonic() + TIMEOUT
    while not kube.simulator.bugs and time.monotonic() < deadline:
        time.sleep(0.01)  # bugs are not API objects: poll, with a deadline
    kube.simulator.stop_controllers()
    bugs = kube.simulator.bugs
    assert any("status.phase" in bug and "Sleeping" in bug for bug in bugs), bugs
    kube.simulator.store.bugs.clear()  # expected here: let the fixture pass
