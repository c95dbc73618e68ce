"""Deletion: what DELETE answers, graceful pod termination, namespaces, collections, and
garbage collection.

Kubernetes API reference: "Pod Lifecycle › Termination of Pods", "Namespaces", "Garbage
Collection › Cascading deletion", "API Concepts › Deletion", "DeleteOptions".
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, collect_events, deployment_manifest, pod_manifest

TIMEOUT = 10
GONE_WITHIN = 60  # seconds a real cluster's controllers may take; the simulator takes none


def _eventually(check: Callable[[], bool]) -> bool:
    """Poll until ``check`` holds (controllers on a real cluster act asynchronously)."""
    deadline = time.monotonic() + GONE_WITHIN
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def _missing(read: Callable[[], object]) -> bool:
    try:
        read()
    except client.ApiException as exc:
        return exc.status == 404
    return False


def test_deleting_an_unscheduled_pod_removes_it_at_once_and_returns_it(kube: Kube) -> None:
    """Termination of Pods: a pod no kubelet runs has nothing to wait for. The response is the
    Pod itself."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    got = kube.core.delete_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    assert got.kind == "Pod"
    assert got.metadata.name == "p"
    assert _eventually(
        lambda: _missing(lambda: kube.core.read_namespaced_pod("p", ns, _request_timeout=TIMEOUT))
    )


def test_deleting_a_scheduled_pod_marks_it_terminating(kube: Kube) -> None:
    """Termination of Pods: deletionTimestamp and deletionGracePeriodSeconds are set and the
    pod lingers while its kubelet stops it."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", node_name="node-a", grace=30), _request_timeout=TIMEOUT
    )
    got = kube.core.delete_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    assert got.metadata.deletion_timestamp is not None
    assert got.metadata.deletion_grace_period_seconds == 30
    kube.core.delete_namespaced_pod("p", ns, grace_period_seconds=0, _request_timeout=TIMEOUT)


@pytest.mark.simulator_only
def test_the_simulated_kubelet_removes_a_terminating_pod(kube: Kube) -> None:
    """The stand-in kubelet finishes a graceful deletion as a kubelet does: a final delete with
    a grace of 0 (MODIFIED), then the pod is gone (DELETED). It needs the pod's Node (where the
    kubelet is)."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", node_name=kube.node()), _request_timeout=TIMEOUT
    )
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    kube.core.delete_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    events = collect_events(
        kube.core.list_namespaced_pod, ns, resource_version=start, until=lambda evs: len(evs) == 3
    )
    assert [kind for kind, _ in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert [obj["metadata"]["deletionGracePeriodSeconds"] for _, obj in events] == [30, 0, 0]


def test_a_zero_grace_period_removes_a_scheduled_pod_at_once(kube: Kube) -> None:
    """DeleteOptions › gracePeriodSeconds: 0 means delete immediately (force)."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", node_name="node-a"), _request_timeout=TIMEOUT
    )
    kube.core.delete_namespaced_pod("p", ns, grace_period_seconds=0, _request_timeout=TIMEOUT)
    assert _missing(lambda: kube.core.read_namespaced_pod("p", ns, _request_timeout=TIMEOUT))


def test_deleting_a_deployment_answers_a_success_status(kube: Kube) -> None:
    """Status: resources that do not return the deleted object answer Status Success with
    the name, group, kind (resource) and uid."""
    ns = kube.namespace()
    created = kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web"), _request_timeout=TIMEOUT
    )
    got = kube.apps.delete_namespaced_deployment("web", ns, _request_timeout=TIMEOUT)
    assert (got["kind"], got["status"]) == ("Status", "Success")
    assert got["details"] == {
        "name": "web",
        "group": "apps",
        "kind": "deployments",
        "uid": created.metadata.uid,
    }


def test_delete_with_a_uid_precondition_that_does_not_hold_is_409(kube: Kube) -> None:
    """DeleteOptions › preconditions: delete only the object with this uid."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-this-one"))
    with pytest.raises(client.ApiException) as caught:
        kube.core.delete_namespaced_pod("p", ns, body=options, _request_timeout=TIMEOUT)
    assert caught.value.status == 409


def test_deleting_a_namespace_terminates_it_and_its_contents(kube: Kube) -> None:
    """Namespaces: deletion moves it to Terminating, removes what it holds, then it goes."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    kube.apps.create_namespaced_deployment(ns, deployment_manifest("web"), _request_timeout=TIMEOUT)
    got = kube.core.delete_namespace(ns, _request_timeout=TIMEOUT)
    assert got["status"]["phase"] == "Terminating"
    assert got["metadata"]["deletionTimestamp"]
    assert _eventually(
        lambda: _missing(lambda: kube.core.read_namespace(ns, _request_timeout=TIMEOUT))
    )
    assert _missing(lambda: kube.core.read_namespaced_pod("p", ns, _request_timeout=TIMEOUT))


def test_the_default_namespace_cannot_be_deleted(kube: Kube) -> None:
    """Namespaces › Initial namespaces: default, kube-system and kube-public are protected (403)."""
    with pytest.raises(client.ApiException) as caught:
        kube.core.delete_namespace("default", dry_run="All", _request_timeout=TIMEOUT)
    assert caught.value.status == 403


def test_delete_collection_removes_only_what_the_selector_matches(kube: Kube) -> None:
    """API Concepts › Deletion of a collection, filtered like a list."""
    ns = kube.namespace()
    for name, role in (("a", "batch"), ("b", "batch"), ("c", "web")):
        kube.core.create_namespaced_pod(
            ns, pod_manifest(name, labels={"role": role}), _request_timeout=TIMEOUT
        )
    kube.core.delete_collection_namespaced_pod(
        ns, label_selector="role=batch", _request_timeout=TIMEOUT
    )
    left = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT)
    assert [p.metadata.name for p in left.items] == ["c"]


def _owned_pod(name: str, owner: client.V1Deployment) -> dict:
    body = pod_manifest(name)
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": owner.metadata.name,
            "uid": owner.metadata.uid,
        }
    ]
    return body


def test_dependents_are_deleted_with_their_owner(kube: Kube) -> None:
    """Garbage Collection › Cascading deletion: background propagation removes objects whose
    ownerReferences name the deleted owner."""
    ns = kube.namespace()
    owner = kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web"), _request_timeout=TIMEOUT
    )
    kube.core.create_namespaced_pod(ns, _owned_pod("child", owner), _request_timeout=TIMEOUT)
    kube.apps.delete_namespaced_deployment(
        "web", ns, propagation_policy="Background", _request_timeout=TIMEOUT
    )
    assert _eventually(
        lambda: _missing(
            lambda: kube.core.read_namespaced_pod("child", ns, _request_timeout=TIMEOUT)
        )
    )


def test_orphan_propagation_keeps_dependents_without_the_owner_reference(kube: Kube) -> None:
    """Garbage Collection › Orphaned dependents."""
    ns = kube.namespace()
    owner = kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web"), _request_timeout=TIMEOUT
    )
    kube.core.create_namespaced_pod(ns, _owned_pod("child", owner), _request_timeout=TIMEOUT)
    kube.apps.delete_namespaced_deployment(
        "web", ns, propagation_policy="Orphan", _request_timeout=TIMEOUT
    )

    def orphaned() -> bool:
        pod = kube.core.read_namespaced_pod("child", ns, _request_timeout=TIMEOUT)
        return not pod.metadata.owner_references

    assert _eventually(orphaned)
