"""The three patch formats, for the fields Clusterweb changes.

Kubernetes API reference: "Update API Objects in Place Using kubectl patch" (strategic merge,
JSON merge and JSON patches), "API Concepts › Patch requests", and the patch strategies recorded
in the OpenAPI schema (``x-kubernetes-patch-strategy``/``x-kubernetes-patch-merge-key``; a
NodeSpec's ``taints`` has none: it is an atomic list).
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, deployment_manifest, pod_manifest, status_body

TIMEOUT = 10
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


@pytest.fixture
def web(kube: Kube) -> str:
    """A namespace with a Deployment "web" of two containers, main and sidecar."""
    ns = kube.namespace()
    body = deployment_manifest("web")
    body["spec"]["template"]["spec"]["containers"].append(
        {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "inf"]}
    )
    kube.apps.create_namespaced_deployment(ns, body, _request_timeout=TIMEOUT)
    return ns


def _containers(kube: Kube, ns: str) -> dict[str, object]:
    got = kube.apps.read_namespaced_deployment("web", ns, _request_timeout=TIMEOUT)
    return {c.name: c for c in got.spec.template.spec.containers}


def test_a_json_patch_adds_a_label(kube: Kube) -> None:
    """JSON patch (RFC 6902): a list of operations."""
    node = kube.node(labels={"a": "1"})
    ops = [{"op": "add", "path": "/metadata/labels/clusterweb.io~1pool", "value": "spark"}]
    got = kube.core.patch_node(node, ops, _request_timeout=TIMEOUT)
    assert got.metadata.labels["clusterweb.io/pool"] == "spark"
    assert got.metadata.labels["a"] == "1"


def test_a_failed_json_patch_test_operation_is_422(kube: Kube) -> None:
    """A ``test`` operation guards a JSON patch; when it fails nothing changes."""
    node = kube.node()
    live = kube.core.read_node(node, _request_timeout=TIMEOUT)
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "add", "path": "/spec/unschedulable", "value": True},
    ]
    with pytest.raises(client.ApiException) as caught:
        kube.core.patch_node(node, ops, _request_timeout=TIMEOUT)
    assert caught.value.status == 422
    after = kube.core.read_node(node, _request_timeout=TIMEOUT)
    assert after.metadata.resource_version == live.metadata.resource_version


def test_a_merge_patch_null_removes_a_label(kube: Kube) -> None:
    """JSON merge patch (RFC 7386): null deletes a key, other keys stay."""
    node = kube.node(labels={"keep": "1", "drop": "1"})
    got = kube.core.patch_node(
        node,
        {"metadata": {"labels": {"drop": None}}},
        _content_type=MERGE_PATCH,
        _request_timeout=TIMEOUT,
    )
    assert "drop" not in got.metadata.labels
    assert got.metadata.labels["keep"] == "1"


def test_a_merge_patch_replaces_lists_whole(kube: Kube, web: str) -> None:
    """Use a JSON merge patch: a list in the patch replaces the list."""
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1"}]}}}}
    kube.apps.patch_namespaced_deployment(
        "web", web, patch, _content_type=MERGE_PATCH, _request_timeout=TIMEOUT
    )
    assert list(_containers(kube, web)) == ["main"]


def test_a_strategic_merge_patch_merges_containers_by_name(kube: Kube, web: str) -> None:
    """Notes on the strategic merge patch: containers merge on their ``name`` key."""
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}}
    kube.apps.patch_namespaced_deployment("web", web, patch, _request_timeout=TIMEOUT)
    containers = _containers(kube, web)
    assert list(containers) == ["main", "sidecar"]
    assert containers["main"].image == "nginx:2"
    assert containers["sidecar"].args == ["sleep", "inf"]


def test_a_strategic_merge_patch_can_delete_a_container_by_name(kube: Kube, web: str) -> None:
    """``$patch: delete`` on a list element removes the element with that merge key."""
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}
    }
    kube.apps.patch_namespaced_deployment("web", web, patch, _request_timeout=TIMEOUT)
    assert list(_containers(kube, web)) == ["main"]


def test_a_strategic_merge_patch_replaces_node_taints_whole(kube: Kube) -> None:
    """NodeSpec ``taints`` is ``listType=atomic`` with no patch merge key: a strategic merge
    patch replaces the whole list (adding a taint means sending all of them)."""
    node = kube.node(
        taints=[
            {"key": "a", "value": "1", "effect": "NoSchedule"},
            {"key": "b", "value": "1", "effect": "NoSchedule"},
        ]
    )
    patch = {"spec": {"taints": [{"key": "c", "value": "1", "effect": "NoExecute"}]}}
    got = kube.core.patch_node(node, patch, _request_timeout=TIMEOUT)
    assert [(t.key, t.effect) for t in got.spec.taints] == [("c", "NoExecute")]


def test_cordoning_sets_and_clears_unschedulable(kube: Kube) -> None:
    """Nodes › Manual node administration: ``spec.unschedulable``."""
    node = kube.node()
    got = kube.core.patch_node(node, {"spec": {"unschedulable": True}}, _request_timeout=TIMEOUT)
    assert got.spec.unschedulable is True
    got = kube.core.patch_node(
        node, {"spec": {"unschedulable": None}}, _content_type=MERGE_PATCH, _request_timeout=TIMEOUT
    )
    assert not got.spec.unschedulable


def test_retain_keys_drops_fields_not_listed(kube: Kube, web: str) -> None:
    """``$retainKeys`` (DeploymentSpec.strategy has patch strategy retainKeys): switching to
    Recreate must drop rollingUpdate, which is invalid with Recreate."""
    without = {"spec": {"strategy": {"type": "Recreate"}}}
    with pytest.raises(client.ApiException) as caught:
        kube.apps.patch_namespaced_deployment("web", web, without, _request_timeout=TIMEOUT)
    assert caught.value.status == 422
    retained = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    got = kube.apps.patch_namespaced_deployment("web", web, retained, _request_timeout=TIMEOUT)
    assert got.spec.strategy.type == "Recreate"
    assert got.spec.strategy.rolling_update is None


def test_delete_from_primitive_list_removes_one_finalizer(kube: Kube) -> None:
    """``$deleteFromPrimitiveList`` on a merging list of strings (metadata.finalizers)."""
    ns = kube.namespace()
    service = {
        "metadata": {"name": "svc", "finalizers": ["example.com/a", "example.com/b"]},
        "spec": {"ports": [{"port": 80}]},
    }
    kube.core.create_namespaced_service(ns, service, _request_timeout=TIMEOUT)
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}
    got = kube.core.patch_namespaced_service("svc", ns, patch, _request_timeout=TIMEOUT)
    assert got.metadata.finalizers == ["example.com/b"]
    kube.core.patch_namespaced_service(
        "svc",
        ns,
        {"metadata": {"finalizers": None}},
        _content_type=MERGE_PATCH,
        _request_timeout=TIMEOUT,
    )


def test_a_patch_carrying_a_stale_resource_version_is_409_conflict(kube: Kube) -> None:
    """A resourceVersion in a patch is a precondition ("API Concepts › Patch requests")."""
    node = kube.node()
    stale = kube.core.read_node(node, _request_timeout=TIMEOUT).metadata.resource_version
    kube.core.patch_node(node, {"metadata": {"labels": {"x": "1"}}}, _request_timeout=TIMEOUT)
    patch = {"metadata": {"resourceVersion": stale}, "spec": {"unschedulable": True}}
    with pytest.raises(client.ApiException) as caught:
        kube.core.patch_node(node, patch, _content_type=MERGE_PATCH, _request_timeout=TIMEOUT)
    assert (caught.value.status, status_body(caught.value)["reason"]) == (409, "Conflict")


def test_status_patched_through_the_main_resource_is_ignored(kube: Kube) -> None:
    """API Concepts › Subresources: status changes only through ``/status``."""
    node = kube.node(ready=True)
    not_ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    got = kube.core.patch_node(node, not_ready, _request_timeout=TIMEOUT)
    assert [c.status for c in got.status.conditions if c.type == "Ready"] == ["True"]
    got = kube.core.patch_node_status(node, not_ready, _request_timeout=TIMEOUT)
    assert [c.status for c in got.status.conditions if c.type == "Ready"] == ["False"]


def test_a_patch_of_a_missing_object_is_404(kube: Kube) -> None:
    """API Concepts › Patch requests: a patch never creates; a missing object is 404 NotFound."""
    with pytest.raises(client.ApiException) as caught:
        kube.core.patch_node(
            kube.unique("missing"), {"spec": {"unschedulable": True}}, _request_timeout=TIMEOUT
        )
    assert caught.value.status == 404


def test_scaling_with_a_patch_on_replicas(kube: Kube) -> None:
    """A strategic merge patch of spec.replicas, as ``kubectl scale`` would do without /scale."""
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(ns, deployment_manifest("web"), _request_timeout=TIMEOUT)
    got = kube.apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"replicas": 0}}, _request_timeout=TIMEOUT
    )
    assert got.spec.replicas == 0


def test_pod_labels_and_annotations_merge(kube: Kube) -> None:
    """Notes on the strategic merge patch: maps (labels, annotations) merge key by key."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", labels={"a": "1"}), _request_timeout=TIMEOUT
    )
    got = kube.core.patch_namespaced_pod(
        "p",
        ns,
        {"metadata": {"labels": {"b": "2"}, "annotations": {"note": "x"}}},
        _request_timeout=TIMEOUT,
    )
    assert got.metadata.labels == {"a": "1", "b": "2"}
    assert got.metadata.annotations == {"note": "x"}
