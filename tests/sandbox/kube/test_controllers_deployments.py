"""The simulated deployment and replicaset controllers.

Kubernetes documentation: "Deployments" (Creating, Updating, Scaling a Deployment; Strategy:
Recreate and Rolling Update; Deployment status; Failed Deployment), "ReplicaSet" (How a
ReplicaSet works), "Garbage Collection › Owners and dependents", "Labels and Selectors".
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.kube import Kube, collect_events, deployment_manifest, wait_until

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10


def ready_pods(pods: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        p
        for p in pods.values()
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", ())
        )
    ]


def deployment_settled(name: str, replicas: int):
    """The rollout is complete: what ``kubectl rollout status`` waits for."""

    def check(deployments: dict[str, Any]) -> bool:
        d = deployments.get(name)
        if d is None:
            return False
        status = d.get("status", {})
        return (
            status.get("observedGeneration") == d["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
        )

    return check


def test_a_deployment_creates_a_replicaset_whose_pods_carry_the_template_hash(
    kube: Kube,
) -> None:
    """Deployments › Creating a Deployment and ReplicaSet › How a ReplicaSet works: the
    Deployment owns a ReplicaSet named <deployment>-<pod-template-hash>, which owns the pods;
    both carry the pod-template-hash label, and the status counts replicas."""
    kube.controllers()
    kube.node()
    ns = kube.namespace()
    created = kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=3), _request_timeout=TIMEOUT
    )
    deployments = wait_until(
        kube.apps.list_namespaced_deployment, ns, until=deployment_settled("web", 3)
    )
    status = deployments["web"]["status"]
    assert status["readyReplicas"] == 3
    assert status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Available"]["status"], conditions["Available"]["reason"]) == (
        "True",
        "MinimumReplicasAvailable",
    )
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"

    (rs,) = kube.apps.list_namespaced_replica_set(ns, _request_timeout=TIMEOUT).items
    template_hash = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{template_hash}"
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": template_hash}
    (owner,) = rs.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Deployment",
        "web",
        created.metadata.uid,
        True,
    )
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert (rs.status.replicas, rs.status.ready_replicas, rs.status.available_replicas) == (3, 3, 3)

    pods = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).items
    assert len(pods) == 3
    for pod in pods:
        assert pod.metadata.name.startswith(f"{rs.metadata.name}-")
        assert pod.metadata.labels == {"app": "web", "pod-template-hash": template_hash}
        (pod_owner,) = pod.metadata.owner_references
        assert (pod_owner.kind, pod_owner.uid, pod_owner.block_owner_deletion) == (
            "ReplicaSet",
            rs.metadata.uid,
            True,
        )


def test_scaling_a_deployment_creates_and_deletes_pods(kube: Kube) -> None:
    """Deployments › Scaling a Deployment (through the scale subresource): scaling up adds
    pods, scaling down deletes them (gracefully), down to none."""
    kube.controllers()
    kube.node()
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=1), _request_timeout=TIMEOUT
    )
    wait_until(kube.apps.list_namespaced_deployment, ns, until=deployment_settled("web", 1))
    for replicas in (4, 2, 0):
        kube.apps.patch_namespaced_deployment_scale(
            "web", ns, {"spec": {"replicas": replicas}}, _request_timeout=TIMEOUT
        )
        deployments = wait_until(
            kube.apps.list_namespaced_deployment, ns, until=deployment_settled("web", replicas)
        )
        pods = wait_until(
            kube.core.list_namespaced_pod, ns, until=lambda p, n=replicas: len(p) == n
        )
        assert len(ready_pods(pods)) == replicas
    assert "replicas" not in deployments["web"]["status"]  # omitempty: 0 is not sent
    events = kube.core.list_namespaced_event(
        ns, field_selector="reason=ScalingReplicaSet", _request_timeout=TIMEOUT
    ).items
    messages = {e.message.split(" replica set ")[0] for e in events}
    assert messages == {"Scaled up", "Scaled down"}


def test_a_template_change_rolls_pods_over_to_a_new_replicaset(kube: Kube) -> None:
    """Deployments › Updating a Deployment (RollingUpdate): a new ReplicaSet (revision 2)
    takes over and the old one is scaled to zero but kept for rollback."""
    kube.controllers()
    kube.node()
    kube.node()
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=4), _request_timeout=TIMEOUT
    )
    wait_until(kube.apps.list_namespaced_deployment, ns, until=deployment_settled("web", 4))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}}
    updated = kube.apps.patch_namespaced_deployment("web", ns, patch, _request_timeout=TIMEOUT)
    assert updated.metadata.generation == 2
    wait_until(kube.apps.list_namespaced_deployment, ns, until=deployment_settled("web", 4))
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: (
            len(p) == 4
            and all(x["spec"]["containers"][0]["image"] == "nginx:2" for x in p.values())
        ),
    )
    assert len(ready_pods(pods)) == 4
    replica_sets = {
        rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs
        for rs in kube.apps.list_namespaced_replica_set(ns, _request_timeout=TIMEOUT).items
    }
    assert replica_sets["1"].spec.replicas == 0
    assert replica_sets["2"].spec.replicas == 4
    new_hash = replica_sets["2"].metadata.labels["pod-template-hash"]
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods.values()} == {new_hash}


def test_the_recreate_strategy_removes_every_old_pod_before_creating_new_ones(
    kube: Kube,
) -> None:
    """Deployments › Strategy › Recreate: "All existing Pods are killed before new ones are
    created": no new pod appears while an old one still exists."""
    kube.controllers()
    kube.node()
    ns = kube.namespace()
    body = deployment_manifest("db", replicas=2)
    body["spec"]["strategy"] = {"type": "Recreate"}
    kube.apps.create_namespaced_deployment(ns, body, _request_timeout=TIMEOUT)
    wait_until(kube.apps.list_namespaced_deployment, ns, until=deployment_settled("db", 2))
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    old = {p.metadata.name for p in kube.core.list_namespaced_pod(ns).items}
    kube.apps.patch_namespaced_deployment(
        "db",
        ns,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "db:2"}]}}}},
        _request_timeout=TIMEOUT,
    )

    def done(events: list[tuple[str, dict[str, Any]]]) -> bool:
        latest = {obj["metadata"]["name"]: (kind, obj) for kind, obj in events}
        new = {n: o for n, (k, o) in latest.items() if n not in old and k != "DELETED"}
        return len(ready_pods(new)) == 2

    events = collect_events(
        kube.core.list_namespaced_pod, ns, resource_version=start, until=done, timeout_seconds=10
    )
    assert done(events)
    alive = set(old)
    for kind, obj in events:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            alive.discard(name)
        elif kind == "ADDED":
            assert not alive, f"{name} was created while {sorted(alive)} still existed"


def test_deleting_a_deployment_deletes_its_replicasets_and_pods(kube: Kube) -> None:
    """Garbage Collection › Cascading deletion: the Deployment's ReplicaSets and their pods
    follow it (background propagation)."""
    kube.controllers()
    kube.node()
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=2), _request_timeout=TIMEOUT
    )
    wait_until(kube.apps.list_namespaced_deployment, ns, until=deployment_settled("web", 2))
    kube.apps.delete_namespaced_deployment("web", ns, _request_timeout=TIMEOUT)
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: not p)
    assert kube.apps.list_namespaced_replica_set(ns, _request_timeout=TIMEOUT).items == []


def test_a_deployment_whose_pods_cannot_be_scheduled_is_unavailable_then_times_out(
    kube: Kube,
) -> None:
    """Deployments › Deployment status › Failed Deployment: without minimum availability the
    Available condition is False; after progressDeadlineSeconds without progress,
    Progressing turns False with reason ProgressDeadlineExceeded."""
    kube.controllers()
    kube.node(labels={"clusterweb.io/pool": "admin"})
    ns = kube.namespace()
    body = deployment_manifest("gpu-job", replicas=1)
    body["spec"]["progressDeadlineSeconds"] = 1
    body["spec"]["template"]["spec"]["nodeSelector"] = {"clusterweb.io/pool": "gpu"}
    kube.apps.create_namespaced_deployment(ns, body, _request_timeout=TIMEOUT)

    def timed_out(deployments: dict[str, Any]) -> bool:
        conditions = {
            c["type"]: c for c in deployments["gpu-job"].get("status", {}).get("conditions", ())
        }
        return conditions.get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded"

    deployments = wait_until(kube.apps.list_namespaced_deployment, ns, until=timed_out)
    status = deployments["gpu-job"]["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Available"]["status"], conditions["Available"]["reason"]) == (
        "False",
        "MinimumReplicasUnavailable",
    )
    assert conditions["Progressing"]["status"] == "False"
    assert status["unavailableReplicas"] == 1
    assert "availableReplicas" not in status


def test_a_replicaset_replaces_a_pod_that_failed(kube: Kube) -> None:
    """ReplicaSet › How a ReplicaSet works: failed pods do not count; a new one is created."""
    kube.controllers()
    kube.node()
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=1), _request_timeout=TIMEOUT
    )
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: len(ready_pods(p)) == 1)
    (first,) = pods
    kube.core.patch_namespaced_pod_status(
        first, ns, {"status": {"phase": "Failed"}}, _request_timeout=TIMEOUT
    )
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: len([n for n in ready_pods(p) if n["metadata"]["name"] != first]) == 1,
    )
    assert pods[first]["status"]["phase"] == "Failed"  # kept: the pod GC's threshold is far
