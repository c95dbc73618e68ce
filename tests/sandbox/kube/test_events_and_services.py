"""Core/v1 Events and Services, the other resource types the simulator serves.

Kubernetes API reference: "Event v1 (core)", "Field Selectors" (events), "Service v1",
"Service › Defining a Service".
"""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, pod_manifest

TIMEOUT = 10


def _event(name: str, ns: str, pod: client.V1Pod, reason: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {
            "kind": "Pod",
            "namespace": ns,
            "name": pod.metadata.name,
            "uid": pod.metadata.uid,
            "apiVersion": "v1",
        },
        "reason": reason,
        "message": f"{reason} happened",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": "2025-01-01T00:00:00Z",
        "lastTimestamp": "2025-01-01T00:00:00Z",
        "source": {"component": "clusterweb"},
    }


def test_events_are_listed_by_involved_object_and_reason(kube: Kube) -> None:
    """Field Selectors: events support involvedObject.* and reason."""
    ns = kube.namespace()
    a = kube.core.create_namespaced_pod(ns, pod_manifest("a"), _request_timeout=TIMEOUT)
    b = kube.core.create_namespaced_pod(ns, pod_manifest("b"), _request_timeout=TIMEOUT)
    kube.core.create_namespaced_event(
        ns, _event("a.1", ns, a, "Scheduled"), _request_timeout=TIMEOUT
    )
    kube.core.create_namespaced_event(ns, _event("a.2", ns, a, "Pulled"), _request_timeout=TIMEOUT)
    kube.core.create_namespaced_event(
        ns, _event("b.1", ns, b, "Scheduled"), _request_timeout=TIMEOUT
    )
    about_a = kube.core.list_namespaced_event(
        ns, field_selector="involvedObject.kind=Pod,involvedObject.name=a", _request_timeout=TIMEOUT
    )
    assert sorted(e.metadata.name for e in about_a.items) == ["a.1", "a.2"]
    scheduled = kube.core.list_namespaced_event(
        ns, field_selector="reason=Scheduled", _request_timeout=TIMEOUT
    )
    assert sorted(e.metadata.name for e in scheduled.items) == ["a.1", "b.1"]


def test_an_event_must_live_in_its_objects_namespace(kube: Kube) -> None:
    """Event validation: involvedObject.namespace must match the event's namespace."""
    ns = kube.namespace()
    other = kube.namespace()
    pod = kube.core.create_namespaced_pod(ns, pod_manifest("a"), _request_timeout=TIMEOUT)
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_event(
            other,
            _event("a.1", other, pod, "Scheduled")
            | {"involvedObject": {"kind": "Pod", "namespace": ns, "name": "a"}},
            _request_timeout=TIMEOUT,
        )
    assert caught.value.status == 422


def test_a_service_gets_a_cluster_ip_and_port_defaults(kube: Kube) -> None:
    """Service v1: type ClusterIP, an allocated clusterIP, protocol TCP, targetPort = port."""
    ns = kube.namespace()
    body = {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
    }
    got = kube.core.create_namespaced_service(ns, body, _request_timeout=TIMEOUT)
    assert got.spec.type == "ClusterIP"
    assert ipaddress.ip_address(got.spec.cluster_ip)
    assert got.spec.cluster_ips == [got.spec.cluster_ip]
    assert got.spec.session_affinity == "None"
    port = got.spec.ports[0]
    assert (port.protocol, port.target_port) == ("TCP", 80)


def test_a_service_cluster_ip_cannot_change(kube: Kube) -> None:
    """Service v1 › ServiceSpec clusterIP: immutable once allocated (422 field is immutable)."""
    ns = kube.namespace()
    body = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    kube.core.create_namespaced_service(ns, body, _request_timeout=TIMEOUT)
    with pytest.raises(client.ApiException) as caught:
        kube.core.patch_namespaced_service(
            "web", ns, {"spec": {"clusterIP": "10.96.200.200"}}, _request_timeout=TIMEOUT
        )
    assert caught.value.status == 422


def test_a_service_with_several_ports_must_name_them(kube: Kube) -> None:
    """Service › Multi-port Services: every port needs a name."""
    ns = kube.namespace()
    body = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}, {"port": 443}]}}
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_service(ns, body, _request_timeout=TIMEOUT)
    assert caught.value.status == 422
