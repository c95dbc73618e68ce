"""Discovery, authentication and routing, as the official client sees them.

Kubernetes API reference: "The Kubernetes API › API discovery", "Controlling Access to the
Kubernetes API › Authentication", "API Concepts › Standard API terminology".
"""

from __future__ import annotations

import pytest
from kubernetes import client, config

from tests.fixtures.kube import Kube, status_body

TIMEOUT = 10


def test_discovery_lists_the_core_version_and_the_apps_group(kube: Kube) -> None:
    """API discovery › Unaggregated discovery: /api and /apis."""
    versions = client.CoreApi(kube.api_client).get_api_versions(_request_timeout=TIMEOUT)
    assert "v1" in versions.versions
    groups = client.ApisApi(kube.api_client).get_api_versions(_request_timeout=TIMEOUT)
    apps = next(g for g in groups.groups if g.name == "apps")
    assert apps.preferred_version.group_version == "apps/v1"


def test_resource_lists_give_scope_verbs_and_subresources(kube: Kube) -> None:
    """API discovery: /api/v1 and /apis/apps/v1 APIResourceLists, subresources included."""
    core = {r.name: r for r in kube.core.get_api_resources(_request_timeout=TIMEOUT).resources}
    assert {"namespaces", "nodes", "pods", "services", "events"} <= set(core)
    assert core["pods"].namespaced and not core["nodes"].namespaced
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(
        core["pods"].verbs
    )
    assert core["pods/eviction"].kind == "Eviction"
    assert core["pods/eviction"].group == "policy"
    assert core["pods/binding"].verbs == ["create"]
    assert {"get", "patch", "update"} <= set(core["nodes/status"].verbs)
    apps = {r.name: r for r in kube.apps.get_api_resources(_request_timeout=TIMEOUT).resources}
    assert apps["deployments"].kind == "Deployment"
    assert apps["deployments/scale"].kind == "Scale"
    assert apps["deployments/scale"].group == "autoscaling"


def test_version_names_a_supported_kubernetes_release(kube: Kube) -> None:
    """Kubernetes API Reference › /version: major and minor of the server's release."""
    info = client.VersionApi(kube.api_client).get_code(_request_timeout=TIMEOUT)
    assert info.major == "1"
    assert int(info.minor.rstrip("+")) >= 31
    assert info.git_version.startswith("v1.")


def test_a_request_with_a_wrong_bearer_token_is_401_unauthorized(kube: Kube) -> None:
    """Authenticating › Putting a bearer token in a request: a rejected token is 401."""
    real = client.Configuration()
    config.load_kube_config(
        config_file=str(kube.kubeconfig_path), client_configuration=real, persist_config=False
    )
    configuration = client.Configuration(host=real.host)
    configuration.ssl_ca_cert, configuration.verify_ssl = real.ssl_ca_cert, real.verify_ssl
    configuration.api_key = {"BearerToken": "Bearer not-the-token"}
    with client.ApiClient(configuration) as stranger, pytest.raises(client.ApiException) as caught:
        client.CoreV1Api(stranger).list_namespace(_request_timeout=TIMEOUT)
    assert caught.value.status == 401
    body = status_body(caught.value)
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status",
        "Failure",
        "Unauthorized",
        401,
    )


def test_a_method_the_path_does_not_serve_is_405_method_not_allowed(kube: Kube) -> None:
    """API Concepts › Standard API terminology: POST goes to a collection, not an item."""
    status, _, body = kube.request("POST", "/api/v1/namespaces/default", {})
    assert status == 405
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "MethodNotAllowed", 405)


def test_an_unknown_path_is_404_not_found(kube: Kube) -> None:
    """A resource type the server does not serve is a 404 Status."""
    status, _, body = kube.request("GET", "/api/v1/widgets")
    assert status == 404
    assert (body["kind"], body["reason"]) == ("Status", "NotFound")
