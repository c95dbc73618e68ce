"""Metadata and defaults the server sets.

Kubernetes API reference: "Common Definitions › ObjectMeta", "API Concepts › Resource versions",
"Object Names and IDs › UIDs", "Namespaces › Automatic labelling".
"""

from __future__ import annotations

import uuid
from datetime import UTC

import pytest

from tests.fixtures.kube import Kube, deployment_manifest, pod_manifest

TIMEOUT = 10


def test_create_sets_uid_resource_version_and_creation_timestamp(kube: Kube) -> None:
    """ObjectMeta: uid, resourceVersion and creationTimestamp are set by the system."""
    ns = kube.namespace()
    pod = kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    assert uuid.UUID(pod.metadata.uid)
    assert isinstance(pod.metadata.resource_version, str)
    assert pod.metadata.resource_version
    assert pod.metadata.creation_timestamp.utcoffset() == UTC.utcoffset(None)
    assert pod.metadata.namespace == ns


def test_every_write_changes_the_resource_version(kube: Kube) -> None:
    """API Concepts › Resource versions: changes on every modification of the object."""
    ns = kube.namespace()
    first = kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    second = kube.core.patch_namespaced_pod(
        "p", ns, {"metadata": {"labels": {"v": "2"}}}, _request_timeout=TIMEOUT
    )
    assert second.metadata.resource_version != first.metadata.resource_version


@pytest.mark.simulator_only
def test_resource_versions_come_from_one_rising_counter(kube: Kube) -> None:
    """The API calls resourceVersion opaque; the simulator's is a global rising integer."""
    ns = kube.namespace()
    a = kube.core.create_namespaced_pod(ns, pod_manifest("a"), _request_timeout=TIMEOUT)
    b = kube.core.create_namespaced_pod(ns, pod_manifest("b"), _request_timeout=TIMEOUT)
    listed = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT)
    assert int(a.metadata.resource_version) < int(b.metadata.resource_version)
    assert int(b.metadata.resource_version) <= int(listed.metadata.resource_version)


def test_an_update_that_changes_nothing_keeps_the_resource_version(kube: Kube) -> None:
    """etcd is not written when the object would not change (no new version, no event)."""
    ns = kube.namespace()
    pod = kube.core.create_namespaced_pod(
        ns, pod_manifest("p", labels={"a": "1"}), _request_timeout=TIMEOUT
    )
    again = kube.core.patch_namespaced_pod(
        "p", ns, {"metadata": {"labels": {"a": "1"}}}, _request_timeout=TIMEOUT
    )
    assert again.metadata.resource_version == pod.metadata.resource_version


def test_generate_name_gets_a_random_suffix(kube: Kube) -> None:
    """ObjectMeta › generateName: a unique name from the prefix plus a random suffix."""
    ns = kube.namespace()
    body = pod_manifest("")
    body["metadata"] = {"generateName": "worker-"}
    first = kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    second = kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    assert first.metadata.name.startswith("worker-")
    assert len(first.metadata.name) == len("worker-") + 5
    assert first.metadata.name != second.metadata.name


def test_deployment_generation_counts_spec_and_annotation_changes_only(kube: Kube) -> None:
    """ObjectMeta › generation: bumped by changes to the desired state, not to labels or
    status (a Deployment also counts annotations, which it copies to its ReplicaSets)."""
    ns = kube.namespace()
    created = kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web"), _request_timeout=TIMEOUT
    )
    assert created.metadata.generation == 1
    labelled = kube.apps.patch_namespaced_deployment(
        "web", ns, {"metadata": {"labels": {"tier": "front"}}}, _request_timeout=TIMEOUT
    )
    assert labelled.metadata.generation == 1
    scaled = kube.apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"replicas": 3}}, _request_timeout=TIMEOUT
    )
    assert scaled.metadata.generation == 2
    status = kube.apps.patch_namespaced_deployment_status(
        "web", ns, {"status": {"observedGeneration": 2}}, _request_timeout=TIMEOUT
    )
    assert status.metadata.generation == 2
    annotated = kube.apps.patch_namespaced_deployment(
        "web", ns, {"metadata": {"annotations": {"why": "test"}}}, _request_timeout=TIMEOUT
    )
    assert annotated.metadata.generation == 3


def test_namespaces_get_their_name_as_a_label_and_start_active(kube: Kube) -> None:
    """Namespaces › Automatic labelling (kubernetes.io/metadata.name) and phase Active."""
    ns = kube.namespace()
    got = kube.core.read_namespace(ns, _request_timeout=TIMEOUT)
    assert got.metadata.labels["kubernetes.io/metadata.name"] == ns
    assert got.status.phase == "Active"
    assert "kubernetes" in got.spec.finalizers


def test_deployments_get_their_documented_defaults(kube: Kube) -> None:
    """Deployments reference: strategy RollingUpdate 25%/25%, revisionHistoryLimit 10,
    progressDeadlineSeconds 600, and pod template defaults."""
    ns = kube.namespace()
    body = deployment_manifest("web")
    del body["spec"]["replicas"]
    got = kube.apps.create_namespaced_deployment(ns, body, _request_timeout=TIMEOUT)
    spec = got.spec
    assert spec.replicas == 1
    assert spec.strategy.type == "RollingUpdate"
    assert (
        spec.strategy.rolling_update.max_surge,
        spec.strategy.rolling_update.max_unavailable,
    ) == (
        "25%",
        "25%",
    )
    assert spec.revision_history_limit == 10
    assert spec.progress_deadline_seconds == 600
    template = spec.template.spec
    assert template.restart_policy == "Always"
    assert template.dns_policy == "ClusterFirst"
    assert template.termination_grace_period_seconds == 30
    assert template.containers[0].image_pull_policy == "IfNotPresent"
    assert template.containers[0].termination_message_path == "/dev/termination-log"


def test_new_pods_are_pending_with_a_qos_class_and_admission_defaults(kube: Kube) -> None:
    """Pod Lifecycle › Pod phase (Pending), Pod Quality of Service Classes, and the
    ServiceAccount and DefaultTolerationSeconds admission plugins."""
    ns = kube.namespace()
    limits = {"cpu": "500m", "memory": "128Mi"}
    pod = kube.core.create_namespaced_pod(
        ns,
        pod_manifest("p", image="nginx", resources={"limits": limits}),
        _request_timeout=TIMEOUT,
    )
    assert pod.status.phase == "Pending"
    assert pod.status.qos_class == "Guaranteed"
    assert pod.spec.containers[0].resources.requests == limits
    assert pod.spec.containers[0].image_pull_policy == "Always"
    assert pod.spec.service_account_name == "default"
    tolerated = {(t.key, t.effect, t.toleration_seconds) for t in pod.spec.tolerations}
    assert ("node.kubernetes.io/not-ready", "NoExecute", 300) in tolerated
    assert ("node.kubernetes.io/unreachable", "NoExecute", 300) in tolerated


def test_quantities_are_returned_in_canonical_form(kube: Kube) -> None:
    """Common Definitions › Quantity: serialized in canonical form, whatever was sent."""
    ns = kube.namespace()
    resources = {"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"cpu": "2.0"}}
    pod = kube.core.create_namespaced_pod(
        ns, pod_manifest("p", resources=resources), _request_timeout=TIMEOUT
    )
    got = pod.spec.containers[0].resources
    assert got.requests == {"cpu": "1", "memory": "1Gi"}
    assert got.limits == {"cpu": "2"}
