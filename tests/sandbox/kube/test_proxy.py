"""The API server's proxy subresources: ``services/NAME[:PORT]/proxy/PATH`` and
``pods/NAME[:PORT]/proxy/PATH``, what Clusterweb uses to read the Spark master's JSON status from
outside the cluster.

Kubernetes documentation: "Access Services Running on Clusters › Manually constructing apiserver
proxy URLs" (``[https:]NAME[:PORT_NAME]``, the port by name or number), "Using RBAC
Authorization" (the ``services/proxy`` subresource); kube-apiserver's service REST
``ResourceLocation`` (503 "no endpoints available for service", a random ready endpoint). Driven
by the official client's ``connect_get_namespaced_*_proxy_with_path``. The backends are the
simulator's stand-ins: simulator_only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.kube import Access
from sandbox.kube.cluster import spark_master_manifests
from tests.fixtures.kube import Kube, status_body, wait_until

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or ()
    )


def spark_master(kube: Kube) -> tuple[str, str]:
    """The sandbox's Spark master (Deployment and Service) in a new namespace, Ready; returns
    (namespace, pod name)."""
    kube.controllers()
    kube.node()
    ns = kube.namespace()
    deployment, service = spark_master_manifests(ns)
    del deployment["spec"]["template"]["spec"]["nodeSelector"]
    kube.apps.create_namespaced_deployment(ns, deployment, _request_timeout=TIMEOUT)
    kube.core.create_namespaced_service(ns, service, _request_timeout=TIMEOUT)
    pods = wait_until(
        kube.core.list_namespaced_pod, ns, until=lambda p: any(is_ready(x) for x in p.values())
    )
    return ns, next(iter(pods))


@pytest.mark.parametrize("port", ["http", "8080"])
def test_the_service_proxy_reads_the_spark_masters_json_by_port_name_or_number(
    kube: Kube, port: str
) -> None:
    ns, pod = spark_master(kube)
    ip = kube.core.read_namespaced_pod(pod, ns, _request_timeout=TIMEOUT).status.pod_ip

    # _preload_content=False: with it on, the client parses the JSON and returns str() of the
    # dict (the method's declared type is str), also against a real API server.
    response = kube.core.connect_get_namespaced_service_proxy_with_path(
        f"spark-master:{port}", ns, "json/", _preload_content=False, _request_timeout=TIMEOUT
    )

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    status = json.loads(response.data)
    assert status["url"] == f"spark://{ip}:7077"
    assert status["status"] == "ALIVE"
    assert status["aliveworkers"] == 0


def test_the_pod_proxy_reaches_the_pod_on_the_port_given(kube: Kube) -> None:
    ns, pod = spark_master(kube)

    response = kube.core.connect_get_namespaced_pod_proxy_with_path(
        f"{pod}:8080", ns, "json", _preload_content=False, _request_timeout=TIMEOUT
    )

    assert json.loads(response.data)["status"] == "ALIVE"


def test_the_backends_own_status_comes_back_unchanged(kube: Kube) -> None:
    ns, _ = spark_master(kube)

    with pytest.raises(ApiException) as raised:
        kube.core.connect_get_namespaced_service_proxy_with_path(
            "spark-master:http", ns, "no/such/page", _request_timeout=TIMEOUT
        )

    assert raised.value.status == 404
    assert raised.value.body == "Not Found"  # the master's answer, not a Status


def test_no_ready_endpoint_is_503_and_a_missing_service_404(kube: Kube) -> None:
    ns, _ = spark_master(kube)
    kube.apps.patch_namespaced_deployment_scale(
        "spark-master", ns, {"spec": {"replicas": 0}}, _request_timeout=TIMEOUT
    )
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda pods: not pods)

    with pytest.raises(ApiException) as raised:
        kube.core.connect_get_namespaced_service_proxy_with_path(
            "spark-master:http", ns, "json/", _request_timeout=TIMEOUT
        )
    assert raised.value.status == 503
    status = status_body(raised.value)
    assert (status["reason"], status["message"]) == (
        "ServiceUnavailable",
        'no endpoints available for service "spark-master"',
    )

    with pytest.raises(ApiException) as raised:
        kube.core.connect_get_namespaced_service_proxy_with_path(
            "spark-master:9999", ns, "json/", _request_timeout=TIMEOUT
        )
    assert raised.value.status == 503
    assert status_body(raised.value)["message"] == (
        'no service port 9999 found for service "spark-master"'
    )

    with pytest.raises(ApiException) as raised:
        kube.core.connect_get_namespaced_service_proxy_with_path(
            "nothing:http", ns, "json/", _request_timeout=TIMEOUT
        )
    assert raised.value.status == 404


def test_a_service_with_named_ports_needs_the_port_in_the_proxy_url(kube: Kube) -> None:
    ns, _ = spark_master(kube)

    with pytest.raises(ApiException) as raised:
        kube.core.connect_get_namespaced_service_proxy_with_path(
            "spark-master", ns, "json/", _request_timeout=TIMEOUT
        )

    assert raised.value.status == 503


def test_the_proxy_is_recorded_as_the_services_proxy_subresource_of_its_caller(
    kube: Kube, tmp_path: Path
) -> None:
    ns, _ = spark_master(kube)
    kube.recorder.reset()
    config = client.Configuration()
    kubeconfig = kube.kubeconfig_for("clusterweb", tmp_path)
    from kubernetes import config as kube_config

    kube_config.load_kube_config(str(kubeconfig), client_configuration=config)
    product = client.ApiClient(config)
    try:
        client.CoreV1Api(product).connect_get_namespaced_service_proxy_with_path(
            "spark-master:http", ns, "json/", _request_timeout=TIMEOUT
        )
        review = client.AuthorizationV1Api(product).create_self_subject_access_review(
            {
                "spec": {
                    "resourceAttributes": {
                        "verb": "get",
                        "resource": "services",
                        "subresource": "proxy",
                        "namespace": ns,
                    }
                }
            },
            _request_timeout=TIMEOUT,
        )
    finally:
        product.close()

    assert Access("get", "", "services/proxy", ns) in kube.recorder.accesses("clusterweb")
    # The product's role grants it (issue 18: launches read the Spark master's status this way).
    assert review.status.allowed is True
