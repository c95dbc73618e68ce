"""apps/v1 ReplicaSets as a served resource (what the deployment controller writes).

Kubernetes API reference: "ReplicaSet v1 apps" (spec, status, the scale subresource);
"ReplicaSet › Writing a ReplicaSet manifest" (the selector must match the template's labels);
"API Concepts › Standard API terminology". These run against a real cluster too: nothing here
needs the simulator's controllers (on a real cluster the pods they create are cleaned up with
the test namespace).
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, status_body

TIMEOUT = 10


def replica_set(name: str, *, replicas: int = 0, labels: dict[str, str] | None = None) -> dict:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }


def test_replicasets_are_discoverable_with_status_and_scale(kube: Kube) -> None:
    """API discovery lists replicasets, replicasets/status and replicasets/scale in apps/v1."""
    names = {r.name for r in kube.apps.get_api_resources(_request_timeout=TIMEOUT).resources}
    assert {"replicasets", "replicasets/status", "replicasets/scale"} <= names


def test_a_created_replicaset_gets_defaults_a_generation_and_a_zero_status(kube: Kube) -> None:
    """ReplicaSet v1: replicas defaults to 1; the server starts status at replicas 0 and
    tracks the spec's generation."""
    ns = kube.namespace()
    body: dict[str, Any] = replica_set("web")
    del body["spec"]["replicas"]
    created = kube.apps.create_namespaced_replica_set(ns, body, _request_timeout=TIMEOUT)
    assert created.spec.replicas == 1
    assert created.metadata.generation == 1
    assert created.status.replicas in (0, 1)  # a real cluster's controller may have counted
    assert created.spec.template.spec.restart_policy == "Always"


def test_the_scale_subresource_of_a_replicaset_moves_only_replicas(kube: Kube) -> None:
    """ReplicaSet v1 › scale: an autoscaling/v1 Scale with the selector in status."""
    ns = kube.namespace()
    kube.apps.create_namespaced_replica_set(ns, replica_set("web"), _request_timeout=TIMEOUT)
    scale = kube.apps.patch_namespaced_replica_set_scale(
        "web", ns, {"spec": {"replicas": 0}}, _request_timeout=TIMEOUT
    )
    assert scale.kind == "Scale"
    assert scale.status.selector == "app=web"
    live = kube.apps.read_namespaced_replica_set("web", ns, _request_timeout=TIMEOUT)
    assert live.spec.replicas == 0


def test_a_replicaset_selector_must_match_the_template_and_cannot_change(kube: Kube) -> None:
    """ReplicaSet › Pod Selector: the template's labels must match the selector (422), and
    apps/v1 selectors are immutable."""
    ns = kube.namespace()
    with pytest.raises(client.ApiException) as caught:
        kube.apps.create_namespaced_replica_set(
            ns, replica_set("web", labels={"app": "other"}), _request_timeout=TIMEOUT
        )
    assert caught.value.status == 422
    causes = {c["field"] for c in status_body(caught.value)["details"]["causes"]}
    assert "spec.template.metadata.labels" in causes
    kube.apps.create_namespaced_replica_set(ns, replica_set("web"), _request_timeout=TIMEOUT)
    patch = {
        "spec": {
            "selector": {"matchLabels": {"app": "web", "tier": "x"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "x"}}},
        }
    }
    with pytest.raises(client.ApiException) as caught:
        kube.apps.patch_namespaced_replica_set("web", ns, patch, _request_timeout=TIMEOUT)
    assert caught.value.status == 422
