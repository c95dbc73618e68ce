"""Subresources: status, binding, eviction and scale.

Kubernetes API reference: "API Concepts › Subresources", "Pod v1 › binding", "API-initiated
Eviction", "Deployment v1 › scale" (autoscaling/v1 Scale).
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, deployment_manifest, pod_manifest, status_body, wait_until

TIMEOUT = 10


def test_a_status_write_changes_only_status(kube: Kube) -> None:
    """Subresources › status: PUT to /status ignores changes to spec and metadata."""
    node = kube.node(ready=True)
    live = kube.core.read_node(node, _request_timeout=TIMEOUT)
    live.spec.unschedulable = True
    live.status.conditions[0].status = "False"
    got = kube.core.replace_node_status(node, live, _request_timeout=TIMEOUT)
    assert got.status.conditions[0].status == "False"
    assert not got.spec.unschedulable


def test_a_main_resource_write_leaves_status_alone(kube: Kube) -> None:
    """Subresources › status: PUT to the object ignores changes to status."""
    node = kube.node(ready=True)
    live = kube.core.read_node(node, _request_timeout=TIMEOUT)
    live.spec.unschedulable = True
    live.status.conditions[0].status = "False"
    got = kube.core.replace_node(node, live, _request_timeout=TIMEOUT)
    assert got.spec.unschedulable is True
    assert got.status.conditions[0].status == "True"


def test_a_binding_assigns_a_pod_to_a_node_exactly_once(kube: Kube) -> None:
    """Pod v1 › create binding (what the scheduler does): sets spec.nodeName; a pod already
    bound is 409 Conflict. The server answers with a Status, which the client's V1Binding model
    cannot hold, hence ``_preload_content=False``."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    binding = client.V1Binding(
        metadata=client.V1ObjectMeta(name="p"),
        target=client.V1ObjectReference(kind="Node", name="node-a"),
    )
    response = kube.core.create_namespaced_pod_binding(
        "p", ns, binding, _preload_content=False, _request_timeout=TIMEOUT
    )
    assert response.status == 201
    pod = kube.core.read_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    assert pod.spec.node_name == "node-a"
    scheduled = [c for c in pod.status.conditions if c.type == "PodScheduled"]
    assert [c.status for c in scheduled] == ["True"]
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod_binding("p", ns, binding, _request_timeout=TIMEOUT)
    assert caught.value.status == 409


def test_an_eviction_deletes_the_pod(kube: Kube) -> None:
    """API-initiated Eviction: POST an Eviction to pods/NAME/eviction; 201 when allowed."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="p", namespace=ns))
    kube.core.create_namespaced_pod_eviction("p", ns, eviction, _request_timeout=TIMEOUT)
    with pytest.raises(client.ApiException) as caught:
        kube.core.read_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    assert caught.value.status == 404


def test_an_eviction_of_a_missing_pod_is_404(kube: Kube) -> None:
    """API-initiated Eviction: the pod must exist (404 NotFound otherwise)."""
    ns = kube.namespace()
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="ghost", namespace=ns))
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod_eviction("ghost", ns, eviction, _request_timeout=TIMEOUT)
    assert caught.value.status == 404


def test_an_eviction_a_disruption_budget_forbids_is_429(kube: Kube) -> None:
    """API-initiated Eviction › How API-initiated eviction works: 429 Too Many Requests while
    a PodDisruptionBudget allows no disruption, with the message and the DisruptionBudget cause
    of pkg/registry/core/pod/storage/eviction.go; the pod stays."""
    kube.somewhere_to_run()
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", labels={"app": "db"}), _request_timeout=TIMEOUT
    )
    kube.policy.create_namespaced_pod_disruption_budget(
        ns,
        {
            "metadata": {"name": "db"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
        },
        _request_timeout=TIMEOUT,
    )
    wait_until(
        kube.policy.list_namespaced_pod_disruption_budget,
        ns,
        until=lambda budgets: budgets.get("db", {}).get("status", {}).get("currentHealthy") == 1,
    )
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="p", namespace=ns))
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod_eviction("p", ns, eviction, _request_timeout=TIMEOUT)
    body = status_body(caught.value)
    assert (caught.value.status, body["reason"]) == (429, "TooManyRequests")
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget db needs 1 healthy pods and has 1 currently",
        }
    ]
    assert kube.core.read_namespaced_pod("p", ns, _request_timeout=TIMEOUT).metadata.name == "p"


def test_the_scale_subresource_reads_and_sets_replicas(kube: Kube) -> None:
    """Deployment v1 › scale: an autoscaling/v1 Scale with spec.replicas and the selector."""
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=2), _request_timeout=TIMEOUT
    )
    scale = kube.apps.read_namespaced_deployment_scale("web", ns, _request_timeout=TIMEOUT)
    assert scale.kind == "Scale"
    assert scale.spec.replicas == 2
    assert scale.status.selector == "app=web"
    scale.spec.replicas = 3
    replaced = kube.apps.replace_namespaced_deployment_scale(
        "web", ns, scale, _request_timeout=TIMEOUT
    )
    assert replaced.spec.replicas == 3
    patched = kube.apps.patch_namespaced_deployment_scale(
        "web", ns, {"spec": {"replicas": 5}}, _request_timeout=TIMEOUT
    )
    assert patched.spec.replicas == 5
    deployment = kube.apps.read_namespaced_deployment("web", ns, _request_timeout=TIMEOUT)
    assert deployment.spec.replicas == 5
    assert deployment.metadata.generation == 3


def test_scaling_below_zero_is_422_invalid(kube: Kube) -> None:
    """Deployment v1 › scale: spec.replicas must be at least 0 (422 Invalid on the Scale)."""
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(ns, deployment_manifest("web"), _request_timeout=TIMEOUT)
    with pytest.raises(client.ApiException) as caught:
        kube.apps.patch_namespaced_deployment_scale(
            "web", ns, {"spec": {"replicas": -1}}, _request_timeout=TIMEOUT
        )
    assert caught.value.status == 422
    assert status_body(caught.value)["details"]["causes"][0]["field"] == "spec.replicas"


def test_deployment_status_is_written_through_its_subresource(kube: Kube) -> None:
    """What the deployment controller does: report replicas through /status."""
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web", replicas=2), _request_timeout=TIMEOUT
    )
    status = {
        "status": {
            "replicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "observedGeneration": 1,
        }
    }
    got = kube.apps.patch_namespaced_deployment_status("web", ns, status, _request_timeout=TIMEOUT)
    assert got.status.ready_replicas == 2
    assert got.spec.replicas == 2
    scale = kube.apps.read_namespaced_deployment_scale("web", ns, _request_timeout=TIMEOUT)
    assert scale.status.replicas == 2
