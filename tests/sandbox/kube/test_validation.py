"""Validation beyond the OpenAPI schema, and the simulator's own schema checking.

Kubernetes API reference: "Object Names and IDs", "Labels and Selectors › Syntax and character
set", "Taints and Tolerations", "Deployments", "Pod Lifecycle", "Resource Management for Pods and
Containers".
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from kubernetes import client

from sandbox.kube import KUBERNETES_VERSION, SimulatorBug
from tests.fixtures.kube import Kube, deployment_manifest, pod_manifest, status_body

TIMEOUT = 10


def _causes(exc: client.ApiException) -> dict[str, str]:
    assert exc.status == 422, exc.body
    return {c["field"]: c["message"] for c in status_body(exc)["details"]["causes"]}


def test_object_names_must_be_dns_subdomains(kube: Kube) -> None:
    """Object Names and IDs › DNS Subdomain Names (pods, deployments, nodes)."""
    ns = kube.namespace()
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(ns, pod_manifest("Not_A_Name"), _request_timeout=TIMEOUT)
    assert "metadata.name" in _causes(caught.value)


def test_namespace_names_must_be_rfc_1123_labels(kube: Kube) -> None:
    """Object Names and IDs › RFC 1123 Label Names: no dots in a namespace name."""
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespace({"metadata": {"name": "a.b"}}, _request_timeout=TIMEOUT)
    assert "metadata.name" in _causes(caught.value)


def test_service_names_must_be_rfc_1035_labels(kube: Kube) -> None:
    """Object Names and IDs › RFC 1035 Label Names: a Service name starts with a letter."""
    ns = kube.namespace()
    body = {"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_service(ns, body, _request_timeout=TIMEOUT)
    assert "metadata.name" in _causes(caught.value)


def test_label_keys_and_values_must_follow_the_label_syntax(kube: Kube) -> None:
    """Labels and Selectors › Syntax and character set."""
    ns = kube.namespace()
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(
            ns, pod_manifest("p", labels={"app": "has space"}), _request_timeout=TIMEOUT
        )
    assert "metadata.labels" in _causes(caught.value)


def test_taint_effect_must_be_one_of_the_three_effects(kube: Kube) -> None:
    """Taints and Tolerations: NoSchedule, PreferNoSchedule or NoExecute."""
    name = kube.unique("cw-node")
    body = {"metadata": {"name": name}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_node(body, _request_timeout=TIMEOUT)
    message = _causes(caught.value)["spec.taints[0].effect"]
    assert message.startswith('Unsupported value: "Sometimes"')


def test_taints_must_be_unique_by_key_and_effect(kube: Kube) -> None:
    """NodeSpec validation: one taint per key and effect."""
    name = kube.unique("cw-node")
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    body = {"metadata": {"name": name}, "spec": {"taints": [taint, dict(taint, value="w")]}}
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_node(body, _request_timeout=TIMEOUT)
    assert "spec.taints[1]" in _causes(caught.value)


def test_a_deployment_template_must_restart_always(kube: Kube) -> None:
    """Deployments › Pod Template: only a restartPolicy of Always is allowed."""
    ns = kube.namespace()
    body = deployment_manifest("web")
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    with pytest.raises(client.ApiException) as caught:
        kube.apps.create_namespaced_deployment(ns, body, _request_timeout=TIMEOUT)
    assert "spec.template.spec.restartPolicy" in _causes(caught.value)


def test_a_deployment_needs_a_selector(kube: Kube) -> None:
    """Deployments › Selector: .spec.selector is required for apps/v1."""
    ns = kube.namespace()
    body = deployment_manifest("web")
    del body["spec"]["selector"]
    status, _, result = kube.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body)
    assert status == 422
    assert "spec.selector" in {c["field"] for c in result["details"]["causes"]}


def test_a_deployment_selector_cannot_change(kube: Kube) -> None:
    """Deployments › Label selector updates: immutable in apps/v1."""
    ns = kube.namespace()
    kube.apps.create_namespaced_deployment(ns, deployment_manifest("web"), _request_timeout=TIMEOUT)
    patch = {
        "spec": {
            "selector": {"matchLabels": {"app": "web", "v": "2"}},
            "template": {"metadata": {"labels": {"app": "web", "v": "2"}}},
        }
    }
    with pytest.raises(client.ApiException) as caught:
        kube.apps.patch_namespaced_deployment("web", ns, patch, _request_timeout=TIMEOUT)
    assert _causes(caught.value)["spec.selector"].endswith("field is immutable")


def test_a_pod_spec_may_change_only_its_images(kube: Kube) -> None:
    """Pod Lifecycle: a running pod's spec is immutable apart from images and a few fields."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    newer = {"spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}}
    got = kube.core.patch_namespaced_pod("p", ns, newer, _request_timeout=TIMEOUT)
    assert got.spec.containers[0].image == "registry.k8s.io/pause:3.9"
    other = {"spec": {"containers": [{"name": "main", "workingDir": "/tmp"}]}}
    with pytest.raises(client.ApiException) as caught:
        kube.core.patch_namespaced_pod("p", ns, other, _request_timeout=TIMEOUT)
    assert "spec" in _causes(caught.value)


def test_requests_may_not_exceed_limits(kube: Kube) -> None:
    """Resource Management for Pods and Containers: a request is at most its limit."""
    ns = kube.namespace()
    resources = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(
            ns, pod_manifest("p", resources=resources), _request_timeout=TIMEOUT
        )
    assert "spec.containers[0].resources.requests" in _causes(caught.value)


def test_extended_resources_are_whole_numbers(kube: Kube) -> None:
    """Resource Management › Extended resources: no fractions of a GPU."""
    ns = kube.namespace()
    gpus = {"requests": {"nvidia.com/gpu": "500m"}, "limits": {"nvidia.com/gpu": "500m"}}
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(
            ns, pod_manifest("p", resources=gpus), _request_timeout=TIMEOUT
        )
    assert any("nvidia.com/gpu" in field for field in _causes(caught.value))


@pytest.mark.simulator_only
def test_pod_phase_must_be_a_known_phase(kube: Kube) -> None:
    """Pod Lifecycle › Pod phase: Pending, Running, Succeeded, Failed or Unknown."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    with pytest.raises(client.ApiException) as caught:
        kube.core.patch_namespaced_pod_status(
            "p", ns, {"status": {"phase": "Exploded"}}, _request_timeout=TIMEOUT
        )
    assert "status.phase" in _causes(caught.value)


@pytest.mark.simulator_only
def test_cached_schemas_agree_with_kubernetes_validate(kube: Kube) -> None:
    """The simulator's cached validators judge objects as kubernetes_validate.validate does."""
    assert kube.simulator is not None
    schemas = kube.simulator.schemas
    good = deployment_manifest("web")
    good["metadata"]["namespace"] = "default"
    bad = copy.deepcopy(good)
    bad["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    missing = copy.deepcopy(good)
    del missing["spec"]["template"]["spec"]["containers"][0]["name"]
    for obj in (good, bad, missing):
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            expected_valid = True
        except kubernetes_validate.ValidationError:
            expected_valid = False
        assert (schemas.errors(obj) == []) is expected_valid
    assert schemas.errors(good) == []


@pytest.mark.simulator_only
def test_an_invalid_object_written_by_the_simulator_fails_loudly(kube: Kube) -> None:
    """Controllers' writes are validated too, and a refusal is a SimulatorBug, not an error
    response: the simulator must only ever hold objects a real cluster could hold."""
    assert kube.simulator is not None
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    store = kube.simulator.store
    pod = store.get("pods", ns, "p")
    pod["status"]["phase"] = "Exploded"
    with pytest.raises(SimulatorBug):
        store.update("pods", pod, subresource="status")
    assert store.bugs  # the fixture would fail the test for this; this test expects it
    store.bugs.clear()
