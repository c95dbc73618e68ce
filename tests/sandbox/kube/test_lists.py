"""Lists: label and field selectors, chunking, resource versions.

Kubernetes API reference: "Labels and Selectors › Label selectors", "Field Selectors",
"API Concepts › Retrieving large results sets in chunks", "API Concepts › Resource versions".
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, pod_manifest, status_body

TIMEOUT = 10


def _names(items: list) -> list[str]:
    return sorted(i.metadata.name for i in items)


@pytest.fixture
def labelled(kube: Kube) -> str:
    """Four pods: a (env=prod, tier=web), b (env=dev, tier=web), c (env=prod), d (no labels)."""
    ns = kube.namespace()
    for name, labels in (
        ("a", {"env": "prod", "tier": "web"}),
        ("b", {"env": "dev", "tier": "web"}),
        ("c", {"env": "prod"}),
        ("d", {}),
    ):
        kube.core.create_namespaced_pod(
            ns, pod_manifest(name, labels=labels), _request_timeout=TIMEOUT
        )
    return ns


def _select(kube: Kube, ns: str, selector: str) -> list[str]:
    found = kube.core.list_namespaced_pod(ns, label_selector=selector, _request_timeout=TIMEOUT)
    return _names(found.items)


def test_equality_based_label_selectors(kube: Kube, labelled: str) -> None:
    """Label selectors › Equality-based requirement: =, == and != (!= also matches pods
    without the label)."""
    assert _select(kube, labelled, "env=prod") == ["a", "c"]
    assert _select(kube, labelled, "env==prod") == ["a", "c"]
    assert _select(kube, labelled, "env!=prod") == ["b", "d"]
    assert _select(kube, labelled, "env=prod,tier=web") == ["a"]


def test_set_based_label_selectors(kube: Kube, labelled: str) -> None:
    """Label selectors › Set-based requirement: in, notin, exists and !exists."""
    assert _select(kube, labelled, "env in (prod, dev)") == ["a", "b", "c"]
    assert _select(kube, labelled, "env notin (prod)") == ["b", "d"]
    assert _select(kube, labelled, "tier") == ["a", "b"]
    assert _select(kube, labelled, "!tier") == ["c", "d"]
    assert _select(kube, labelled, "env in (prod),!tier") == ["c"]


def test_a_malformed_label_selector_is_400_bad_request(kube: Kube, labelled: str) -> None:
    """Labels and Selectors › Set-based requirement: a set needs parentheses; else 400."""
    with pytest.raises(client.ApiException) as caught:
        kube.core.list_namespaced_pod(
            labelled, label_selector="env in prod", _request_timeout=TIMEOUT
        )
    assert caught.value.status == 400
    assert status_body(caught.value)["reason"] == "BadRequest"


def test_field_selectors_on_name_namespace_node_and_phase(kube: Kube) -> None:
    """Field Selectors › Supported fields: metadata.name, metadata.namespace, and for pods
    spec.nodeName and status.phase."""
    ns = kube.namespace()
    other = kube.namespace()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("x", node_name="node-1"), _request_timeout=TIMEOUT
    )
    kube.core.create_namespaced_pod(ns, pod_manifest("y"), _request_timeout=TIMEOUT)
    kube.core.create_namespaced_pod(other, pod_manifest("x"), _request_timeout=TIMEOUT)

    def names(selector: str) -> list[str]:
        found = kube.core.list_pod_for_all_namespaces(
            field_selector=selector, label_selector="", _request_timeout=TIMEOUT
        )
        return sorted(
            f"{p.metadata.namespace}/{p.metadata.name}"
            for p in found.items
            if p.metadata.namespace in (ns, other)
        )

    assert names("metadata.name=x") == sorted([f"{ns}/x", f"{other}/x"])
    assert names(f"metadata.namespace={ns}") == [f"{ns}/x", f"{ns}/y"]
    assert names("spec.nodeName=node-1") == [f"{ns}/x"]
    assert names(f"metadata.namespace=={ns},spec.nodeName=") == [f"{ns}/y"]
    assert f"{ns}/y" in names("status.phase=Pending")


def test_field_selector_not_equal(kube: Kube) -> None:
    """Field Selectors › Supported operators: =, == and !=."""
    ns = kube.namespace()
    for name in ("a", "b"):
        kube.core.create_namespaced_pod(ns, pod_manifest(name), _request_timeout=TIMEOUT)
    found = kube.core.list_namespaced_pod(
        ns, field_selector="metadata.name!=a", _request_timeout=TIMEOUT
    )
    assert _names(found.items) == ["b"]


def test_node_field_selector_on_unschedulable(kube: Kube) -> None:
    """Nodes support spec.unschedulable as a field selector."""
    cordoned = kube.node(unschedulable=True)
    open_node = kube.node()
    found = kube.core.list_node(field_selector="spec.unschedulable=true", _request_timeout=TIMEOUT)
    names = _names(found.items)
    assert cordoned in names
    assert open_node not in names


def test_an_unsupported_field_selector_is_400_bad_request(kube: Kube) -> None:
    """Field Selectors: an unsupported field is an error."""
    ns = kube.namespace()
    with pytest.raises(client.ApiException) as caught:
        kube.core.list_namespaced_pod(
            ns, field_selector="spec.color=blue", _request_timeout=TIMEOUT
        )
    assert caught.value.status == 400
    assert "field label not supported" in status_body(caught.value)["message"]


def test_a_list_carries_the_resource_version_it_was_read_at(kube: Kube) -> None:
    """API Concepts › Resource versions: list metadata.resourceVersion, for a later watch."""
    ns = kube.namespace()
    listed = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT)
    assert listed.metadata.resource_version
    assert listed.kind == "PodList"
    assert listed.api_version == "v1"


def test_limit_and_continue_page_through_a_consistent_snapshot(kube: Kube) -> None:
    """Retrieving large results sets in chunks: pages of ``limit`` items, an opaque continue
    token, remainingItemCount, and later pages served from the first page's snapshot."""
    ns = kube.namespace()
    for name in ("p1", "p2", "p3", "p4", "p5"):
        kube.core.create_namespaced_pod(ns, pod_manifest(name), _request_timeout=TIMEOUT)
    first = kube.core.list_namespaced_pod(ns, limit=2, _request_timeout=TIMEOUT)
    assert _names(first.items) == ["p1", "p2"]
    assert first.metadata._continue
    assert first.metadata.remaining_item_count == 3
    kube.core.create_namespaced_pod(ns, pod_manifest("p3a"), _request_timeout=TIMEOUT)
    kube.core.delete_namespaced_pod("p4", ns, grace_period_seconds=0, _request_timeout=TIMEOUT)
    second = kube.core.list_namespaced_pod(
        ns, limit=2, _continue=first.metadata._continue, _request_timeout=TIMEOUT
    )
    assert _names(second.items) == ["p3", "p4"]
    assert second.metadata.resource_version == first.metadata.resource_version
    third = kube.core.list_namespaced_pod(
        ns, limit=2, _continue=second.metadata._continue, _request_timeout=TIMEOUT
    )
    assert _names(third.items) == ["p5"]
    assert not third.metadata._continue


def test_listing_across_namespaces(kube: Kube) -> None:
    """GET /api/v1/pods lists every namespace's pods."""
    one, two = kube.namespace(), kube.namespace()
    kube.core.create_namespaced_pod(one, pod_manifest("a"), _request_timeout=TIMEOUT)
    kube.core.create_namespaced_pod(two, pod_manifest("b"), _request_timeout=TIMEOUT)
    found = kube.core.list_pod_for_all_namespaces(_request_timeout=TIMEOUT)
    seen = {(p.metadata.namespace, p.metadata.name) for p in found.items}
    assert {(one, "a"), (two, "b")} <= seen
