"""Failures come back as ``Status`` objects with the documented reasons and codes.

Kubernetes API reference: "Common Definitions › Status", "API Concepts › Resource versions"
(optimistic concurrency), "API Concepts › Field validation".
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, deployment_manifest, pod_manifest, status_body

TIMEOUT = 10


def test_get_of_a_missing_object_is_404_not_found_naming_it(kube: Kube) -> None:
    """Status: reason NotFound, details name and kind (the resource), group for apps."""
    ns = kube.namespace()
    with pytest.raises(client.ApiException) as caught:
        kube.apps.read_namespaced_deployment("nope", ns, _request_timeout=TIMEOUT)
    body = status_body(caught.value)
    assert caught.value.status == 404
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["reason"] == "NotFound"
    assert body["code"] == 404
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    assert body["message"] == 'deployments.apps "nope" not found'


def test_create_of_an_existing_name_is_409_already_exists(kube: Kube) -> None:
    """Status reason AlreadyExists: names are unique per resource and namespace."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    body = status_body(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "AlreadyExists")
    assert body["details"] == {"name": "p", "kind": "pods"}
    assert body["message"] == 'pods "p" already exists'


def test_update_with_a_stale_resource_version_is_409_conflict(kube: Kube) -> None:
    """API Concepts › Resource versions: a PUT carrying an old resourceVersion is refused."""
    ns = kube.namespace()
    stale = kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web"), _request_timeout=TIMEOUT
    )
    kube.apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"replicas": 2}}, _request_timeout=TIMEOUT
    )
    stale.spec.replicas = 5
    with pytest.raises(client.ApiException) as caught:
        kube.apps.replace_namespaced_deployment("web", ns, stale, _request_timeout=TIMEOUT)
    body = status_body(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    fresh = kube.apps.read_namespaced_deployment("web", ns, _request_timeout=TIMEOUT)
    assert fresh.spec.replicas == 2


def test_an_update_without_a_resource_version_is_unconditional(kube: Kube) -> None:
    """API Concepts › Resource versions: types that allow it accept an unconditional PUT."""
    ns = kube.namespace()
    live = kube.apps.create_namespaced_deployment(
        ns, deployment_manifest("web"), _request_timeout=TIMEOUT
    )
    live.metadata.resource_version = None
    live.spec.replicas = 4
    got = kube.apps.replace_namespaced_deployment("web", ns, live, _request_timeout=TIMEOUT)
    assert got.spec.replicas == 4


def test_invalid_deployment_is_422_invalid_with_a_cause_per_field(kube: Kube) -> None:
    """Status reason Invalid: details.causes name each field (here the selector must match
    the template's labels, "Deployments › Selector")."""
    ns = kube.namespace()
    body = deployment_manifest("web")
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(client.ApiException) as caught:
        kube.apps.create_namespaced_deployment(ns, body, _request_timeout=TIMEOUT)
    status = status_body(caught.value)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Deployment"
    assert status["details"]["group"] == "apps"
    assert status["details"]["name"] == "web"
    causes = status["details"]["causes"]
    assert [c["field"] for c in causes] == ["spec.template.metadata.labels"]
    assert causes[0]["reason"] == "FieldValueInvalid"
    assert "`selector` does not match template `labels`" in causes[0]["message"]
    assert status["message"].startswith('Deployment.apps "web" is invalid: ')


def test_several_invalid_fields_are_reported_together(kube: Kube) -> None:
    """All validation errors come back in one response, one cause each."""
    ns = kube.namespace()
    body = pod_manifest("p")
    body["spec"]["containers"] = [
        {"name": "Bad_Name", "image": "x"},
        {"name": "ok", "image": "x", "ports": [{"containerPort": 70000}]},
    ]
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    fields = {c["field"] for c in status_body(caught.value)["details"]["causes"]}
    assert {"spec.containers[0].name", "spec.containers[1].ports[0].containerPort"} <= fields


def test_unknown_fields_are_dropped_with_a_warning_by_default(kube: Kube) -> None:
    """API Concepts › Field validation: fieldValidation defaults to Warn."""
    ns = kube.namespace()
    body = deployment_manifest("web")
    body["spec"]["bogus"] = True
    status, headers, created = kube.request(
        "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body
    )
    assert status == 201
    assert 'unknown field \\"spec.bogus\\"' in headers.get("Warning", "")
    assert "bogus" not in created["spec"]


def test_unknown_fields_with_strict_validation_are_400_bad_request(kube: Kube) -> None:
    """API Concepts › Field validation: Strict fails the request on an unknown field."""
    ns = kube.namespace()
    body = deployment_manifest("web")
    body["spec"]["bogus"] = True
    status, _, result = kube.request(
        "POST",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        body,
        query=[("fieldValidation", "Strict")],
    )
    assert status == 400
    assert result["reason"] == "BadRequest"
    assert 'unknown field "spec.bogus"' in result["message"]


def test_a_malformed_quantity_is_400_bad_request(kube: Kube) -> None:
    """Common Definitions › Quantity: a value that does not parse cannot be decoded."""
    ns = kube.namespace()
    body = pod_manifest("p", resources={"limits": {"cpu": "two"}})
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    assert caught.value.status == 400
    assert status_body(caught.value)["reason"] == "BadRequest"


def test_creating_in_a_missing_namespace_is_404_for_the_namespace(kube: Kube) -> None:
    """NamespaceLifecycle admission: the namespace must exist."""
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod("no-such-ns", pod_manifest("p"), _request_timeout=TIMEOUT)
    body = status_body(caught.value)
    assert caught.value.status == 404
    assert body["details"] == {"name": "no-such-ns", "kind": "namespaces"}


def test_a_body_namespace_other_than_the_path_namespace_is_400(kube: Kube) -> None:
    """The namespace in the object must match the one in the URL."""
    ns = kube.namespace()
    body = pod_manifest("p")
    body["metadata"]["namespace"] = "default"
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    assert caught.value.status == 400
    assert "does not match the namespace" in status_body(caught.value)["message"]


def test_a_dry_run_create_validates_but_stores_nothing(kube: Kube) -> None:
    """API Concepts › Dry-run: the response is what would be stored; nothing is."""
    ns = kube.namespace()
    got = kube.core.create_namespaced_pod(
        ns, pod_manifest("p"), dry_run="All", _request_timeout=TIMEOUT
    )
    assert got.metadata.name == "p"
    with pytest.raises(client.ApiException) as caught:
        kube.core.read_namespaced_pod("p", ns, _request_timeout=TIMEOUT)
    assert caught.value.status == 404
