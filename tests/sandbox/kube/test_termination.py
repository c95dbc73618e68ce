"""Pod termination takes its grace period, and needs a kubelet.

Kubernetes documentation: "Pod Lifecycle › Termination of Pods"
(https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination) and
"Garbage collection of Pods" (#pod-garbage-collection). These use simulator controls (the grace
scale, a Node's Ready condition written by hand), so they are ``simulator_only``.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, pod_manifest

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10


def _exists(kube: Kube, ns: str, name: str) -> bool:
    try:
        kube.core.read_namespaced_pod(name, ns, _request_timeout=TIMEOUT)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _gone_after(kube: Kube, ns: str, name: str, started: float, limit: float = 20) -> float:
    while time.monotonic() - started < limit:
        if not _exists(kube, ns, name):
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"pod {name} still there after {limit} s")


def _set_ready(kube: Kube, node: str, status: str) -> None:
    kube.core.patch_node_status(
        node,
        {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": status,
                        "reason": "NodeStatusUnknown" if status == "Unknown" else "KubeletReady",
                        "message": "Kubelet stopped posting node status."
                        if status == "Unknown"
                        else "kubelet is posting ready status",
                    }
                ]
            }
        },
        _request_timeout=TIMEOUT,
    )


def test_termination_takes_the_scaled_grace_period(kube: Kube) -> None:
    """terminationGracePeriodSeconds 30 at the tests' scale (0.01): 0.3 s, not at once."""
    assert kube.simulator is not None
    ns, node = kube.namespace(), kube.node()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", node_name=node, grace=30), _request_timeout=TIMEOUT
    )
    started = time.monotonic()
    kube.core.delete_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    took = _gone_after(kube, ns, "p", started)
    assert took >= 30 * kube.simulator.store.grace_scale


def test_termination_at_full_scale_takes_the_requested_grace_period(kube: Kube) -> None:
    """DeleteOptions.gracePeriodSeconds overrides the pod's own; at the real scale 1 s is 1 s."""
    assert kube.simulator is not None
    kube.simulator.store.grace_scale = 1.0
    ns, node = kube.namespace(), kube.node()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", node_name=node, grace=30), _request_timeout=TIMEOUT
    )
    started = time.monotonic()
    kube.core.delete_namespaced_pod("p", ns, grace_period_seconds=1, _request_timeout=TIMEOUT)
    time.sleep(0.5)
    pod = kube.core.read_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    assert pod.metadata.deletion_grace_period_seconds == 1
    took = _gone_after(kube, ns, "p", started)
    assert 1.0 <= took < 10


def test_a_pod_on_a_node_without_kubelet_stays_terminating_until_the_node_is_back(
    kube: Kube,
) -> None:
    """Only a kubelet finishes a termination: on a node whose kubelet stopped posting status
    (Ready Unknown) the pod stays Terminating past its grace period; when the node is back, it
    goes."""
    ns, node = kube.namespace(), kube.node()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", node_name=node, grace=1), _request_timeout=TIMEOUT
    )
    _set_ready(kube, node, "Unknown")
    kube.core.delete_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    time.sleep(0.5)  # 50 times the scaled grace period
    pod = kube.core.read_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    assert pod.metadata.deletion_timestamp is not None
    _set_ready(kube, node, "True")
    _gone_after(kube, ns, "p", time.monotonic(), limit=10)


def test_a_pod_on_a_deleted_node_is_removed_by_the_pod_gc(kube: Kube) -> None:
    """Garbage collection of Pods: a Terminating pod whose Node object is deleted is force
    deleted by the pod GC."""
    kube.controllers(pod_gc_quarantine=0.1)
    ns, node = kube.namespace(), kube.node()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", node_name=node, grace=1), _request_timeout=TIMEOUT
    )
    _set_ready(kube, node, "Unknown")
    kube.core.delete_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    time.sleep(0.3)
    assert _exists(kube, ns, "p")
    kube.core.delete_node(node, _request_timeout=TIMEOUT)
    _gone_after(kube, ns, "p", time.monotonic(), limit=10)
