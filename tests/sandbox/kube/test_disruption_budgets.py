"""policy/v1 PodDisruptionBudgets and the eviction API that honours them.

Kubernetes documentation: "Specifying a Disruption Budget for your Application", "Disruptions ›
Pod disruption budgets", "API-initiated Eviction"; source: pkg/apis/policy/validation,
pkg/controller/disruption/disruption.go, pkg/registry/core/pod/storage/eviction.go. These hold
on a real cluster: in the simulator ``somewhere_to_run`` starts the controllers and adds a node.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, pod_manifest, status_body, wait_until

TIMEOUT = 10
LABELS = {"app": "db"}


def budget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": LABELS}, **spec},
    }


def replica_set(name: str, replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": pod_manifest("x")["spec"],
            },
        },
    }


def status_of(name: str, **wanted: int):
    def check(budgets: dict[str, Any]) -> bool:
        status = budgets.get(name, {}).get("status", {})
        return all(status.get(key) == value for key, value in wanted.items())

    return check


def evict(kube: Kube, ns: str, name: str) -> None:
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
    kube.core.create_namespaced_pod_eviction(name, ns, eviction, _request_timeout=TIMEOUT)


def test_a_budget_is_created_with_an_empty_status_and_validated(kube: Kube) -> None:
    """PodDisruptionBudget v1: CRUD; the status is the controller's (zero on create whatever
    the client sends); minAvailable and maxUnavailable are exclusive, non-negative, at most
    100%."""
    ns = kube.namespace()
    body = budget("db", minAvailable="50%")
    body["status"] = {
        "disruptionsAllowed": 5,
        "currentHealthy": 5,
        "desiredHealthy": 0,
        "expectedPods": 5,
    }
    created = kube.policy.create_namespaced_pod_disruption_budget(
        ns, body, _request_timeout=TIMEOUT
    )
    assert created.metadata.generation == 1
    assert created.status.disruptions_allowed == 0
    assert created.status.current_healthy == 0
    listed = kube.policy.list_namespaced_pod_disruption_budget(ns, _request_timeout=TIMEOUT)
    assert [b.metadata.name for b in listed.items] == ["db"]
    patched = kube.policy.patch_namespaced_pod_disruption_budget(
        "db", ns, {"spec": {"minAvailable": 2}}, _request_timeout=TIMEOUT
    )
    assert (patched.spec.min_available, patched.metadata.generation) == (2, 2)
    for spec, field, message in (
        ({"minAvailable": 1, "maxUnavailable": 1}, "spec", "cannot be both set"),
        ({"maxUnavailable": "150%"}, "spec.maxUnavailable", "must not be greater than 100%"),
        ({"minAvailable": -1}, "spec.minAvailable", "must be greater than or equal to 0"),
    ):
        with pytest.raises(client.ApiException) as caught:
            kube.policy.create_namespaced_pod_disruption_budget(
                ns, budget("bad", **spec), _request_timeout=TIMEOUT
            )
        body = status_body(caught.value)
        assert caught.value.status == 422, body
        assert [c["field"] for c in body["details"]["causes"]] == [field]
        assert message in body["details"]["causes"][0]["message"]
    kube.policy.delete_namespaced_pod_disruption_budget("db", ns, _request_timeout=TIMEOUT)
    listed = kube.policy.list_namespaced_pod_disruption_budget(ns, _request_timeout=TIMEOUT)
    assert listed.items == []


def test_the_status_counts_healthy_pods_against_the_budget(kube: Kube) -> None:
    """Disruptions › Pod disruption budgets: with an integer minAvailable, expectedPods is the
    number of matching pods; with maxUnavailable (or a percentage) it is the scale of their
    controller; disruptionsAllowed = currentHealthy - desiredHealthy."""
    kube.somewhere_to_run()
    ns = kube.namespace()
    kube.apps.create_namespaced_replica_set(ns, replica_set("db", 3), _request_timeout=TIMEOUT)
    kube.policy.create_namespaced_pod_disruption_budget(
        ns, budget("min", minAvailable=2), _request_timeout=TIMEOUT
    )
    budgets = wait_until(
        kube.policy.list_namespaced_pod_disruption_budget,
        ns,
        until=status_of("min", currentHealthy=3),
    )
    status = budgets["min"]["status"]
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (
        3,
        2,
        1,
    )
    assert status["observedGeneration"] == 1
    allowed = next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")
    assert (allowed["status"], allowed["reason"]) == ("True", "SufficientPods")
    kube.policy.delete_namespaced_pod_disruption_budget("min", ns, _request_timeout=TIMEOUT)
    kube.policy.create_namespaced_pod_disruption_budget(
        ns, budget("max", maxUnavailable="34%"), _request_timeout=TIMEOUT
    )
    budgets = wait_until(
        kube.policy.list_namespaced_pod_disruption_budget,
        ns,
        until=status_of("max", currentHealthy=3),
    )
    status = budgets["max"]["status"]
    # 34% of 3 rounded up is 2 unavailable: 1 must stay healthy.
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (
        3,
        1,
        2,
    )


def test_evictions_take_the_allowed_disruptions_then_answer_429(kube: Kube) -> None:
    """API-initiated Eviction: an eviction the budget allows deletes the pod and takes one
    disruption (``disruptedPods``); while none is left the answer is 429 with "Cannot evict pod
    as it would violate the pod's disruption budget." and a DisruptionBudget cause, and the pod
    stays; once another matching pod is Ready, the budget allows one again."""
    kube.somewhere_to_run()
    ns = kube.namespace()
    for name in ("a", "b"):
        kube.core.create_namespaced_pod(
            ns, pod_manifest(name, labels=LABELS), _request_timeout=TIMEOUT
        )
    kube.policy.create_namespaced_pod_disruption_budget(
        ns, budget("db", minAvailable=1), _request_timeout=TIMEOUT
    )
    wait_until(
        kube.policy.list_namespaced_pod_disruption_budget,
        ns,
        until=status_of("db", currentHealthy=2, disruptionsAllowed=1),
    )
    evict(kube, ns, "a")
    after = kube.policy.read_namespaced_pod_disruption_budget("db", ns, _request_timeout=TIMEOUT)
    assert after.status.disruptions_allowed == 0
    assert list(after.status.disrupted_pods or {}) in (["a"], [])
    with pytest.raises(client.ApiException) as caught:
        evict(kube, ns, "b")
    body = status_body(caught.value)
    assert (caught.value.status, body["reason"]) == (429, "TooManyRequests")
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert body["details"]["causes"][0]["message"].startswith(
        "The disruption budget db needs 1 healthy pods and has "
    )
    assert kube.core.read_namespaced_pod("b", ns, _request_timeout=TIMEOUT).metadata.name == "b"
    kube.core.create_namespaced_pod(ns, pod_manifest("c", labels=LABELS), _request_timeout=TIMEOUT)
    wait_until(
        kube.policy.list_namespaced_pod_disruption_budget,
        ns,
        until=status_of("db", currentHealthy=2, disruptionsAllowed=1),
        timeout=20,
    )
    evict(kube, ns, "b")


def test_a_pending_pod_is_evicted_whatever_the_budget_says(kube: Kube) -> None:
    """eviction.go canIgnorePDB: a Pending pod (here: no node matches it) is deleted even
    though a budget selecting it allows no disruption."""
    ns = kube.namespace()
    kube.policy.create_namespaced_pod_disruption_budget(
        ns, budget("db", maxUnavailable=0), _request_timeout=TIMEOUT
    )
    manifest = pod_manifest("p", labels=LABELS)
    manifest["spec"]["nodeSelector"] = {"clusterweb.io/nowhere": "true"}
    kube.core.create_namespaced_pod(ns, manifest, _request_timeout=TIMEOUT)
    evict(kube, ns, "p")
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda pods: "p" not in pods)
