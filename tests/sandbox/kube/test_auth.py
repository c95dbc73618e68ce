"""Identities and SelfSubjectAccessReview ("Using RBAC Authorization"; "Authorization ›
Checking API access": ``kubectl auth can-i`` sends a SelfSubjectAccessReview).

The simulator issues one token per identity (the product, the hub, the admin that tests and the
cloud bridge use); a SelfSubjectAccessReview answers for the caller from its role's rules, with
the RBAC authorizer's reason, and the verb recorder keeps each identity's requests apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config

from sandbox.kube import Access
from sandbox.kube.auth import PRODUCT_RULES
from tests.fixtures.kube import Kube, status_body

TIMEOUT = 10


def _review(api: client.ApiClient, **attributes: str) -> client.V1SubjectAccessReviewStatus:
    if "path" in attributes:
        spec = client.V1SelfSubjectAccessReviewSpec(
            non_resource_attributes=client.V1NonResourceAttributes(**attributes)
        )
    else:
        spec = client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(**attributes)
        )
    body = client.V1SelfSubjectAccessReview(spec=spec)
    answer = client.AuthorizationV1Api(api).create_self_subject_access_review(
        body, _request_timeout=TIMEOUT
    )
    assert answer.kind == "SelfSubjectAccessReview"
    assert answer.spec == spec
    return answer.status


def _api(kube: Kube, identity: str, tmp_path: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kube.kubeconfig_for(identity, tmp_path)))


def test_the_admin_may_do_anything(kube: Kube) -> None:
    """The kubeconfig tests use is the cluster admin's (system:masters)."""
    status = _review(kube.api_client, verb="delete", resource="nodes")
    assert status.allowed is True
    status = _review(kube.api_client, verb="get", path="/healthz")
    assert status.allowed is True


def test_self_subject_access_review_is_discovered(kube: Kube) -> None:
    resources = client.AuthorizationV1Api(kube.api_client).get_api_resources(
        _request_timeout=TIMEOUT
    )
    ssar = next(r for r in resources.resources if r.name == "selfsubjectaccessreviews")
    assert ssar.kind == "SelfSubjectAccessReview" and "create" in ssar.verbs


def test_a_review_needs_exactly_one_kind_of_attributes(kube: Kube) -> None:
    """pkg/apis/authorization/validation: neither or both is 422 Invalid."""
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
    status, _, answer = kube.request("POST", path, {**body, "spec": {}})
    assert status == 422, answer
    assert answer["reason"] == "Invalid"
    assert answer["details"]["causes"][0]["field"] == "spec.resourceAttributes"
    both = {
        "resourceAttributes": {"verb": "get", "resource": "pods"},
        "nonResourceAttributes": {"verb": "get", "path": "/version"},
    }
    status, _, answer = kube.request("POST", path, {**body, "spec": both})
    assert status == 422, answer
    assert "cannot be specified in combination" in answer["message"]


@pytest.mark.simulator_only
def test_the_product_may_do_what_its_role_allows_and_nothing_else(
    kube: Kube, tmp_path: Path
) -> None:
    api = _api(kube, "clusterweb", tmp_path)
    try:
        allowed = _review(api, verb="patch", resource="nodes")
        assert allowed.allowed is True
        assert allowed.reason == (
            'RBAC: allowed by ClusterRoleBinding "clusterweb" of ClusterRole "clusterweb" '
            'to ServiceAccount "clusterweb/clusterweb"'
        )
        evict = _review(api, verb="create", resource="pods", subresource="eviction", namespace="x")
        assert evict.allowed is True
        scale = _review(
            api, verb="patch", group="apps", resource="deployments", subresource="scale"
        )
        assert scale.allowed is True
        for denied in (
            {"verb": "delete", "resource": "nodes"},
            {"verb": "create", "resource": "pods", "namespace": "spark"},
            {"verb": "get", "resource": "secrets", "namespace": "kube-system"},
            {"verb": "patch", "group": "apps", "resource": "deployments"},
        ):
            status = _review(api, **denied)
            assert status.allowed is False, denied
            assert not status.reason
    finally:
        api.close()


@pytest.mark.simulator_only
def test_the_hub_may_manage_pods_only_in_its_namespace(kube: Kube, tmp_path: Path) -> None:
    api = _api(kube, "jupyterhub", tmp_path)
    try:
        inside = _review(api, verb="create", resource="pods", namespace="jupyter")
        assert inside.allowed is True
        assert inside.reason == (
            'RBAC: allowed by RoleBinding "hub/jupyter" of Role "hub" '
            'to ServiceAccount "hub/jupyter"'
        )
        assert _review(api, verb="create", resource="pods", namespace="spark").allowed is False
        assert _review(api, verb="list", resource="pods").allowed is False  # all namespaces
        # The shipped hub configuration's hook reads a launch's nodes, and nothing more of them.
        nodes = _review(api, verb="list", resource="nodes")
        assert nodes.allowed is True
        assert nodes.reason == (
            'RBAC: allowed by ClusterRoleBinding "hub-nodes" of ClusterRole "hub-nodes" '
            'to ServiceAccount "hub/jupyter"'
        )
        assert _review(api, verb="patch", resource="nodes").allowed is False
    finally:
        api.close()


@pytest.mark.simulator_only
def test_the_recorder_keeps_each_identity_apart(kube: Kube, tmp_path: Path) -> None:
    assert kube.simulator is not None
    ns = kube.namespace()
    kube.recorder.reset()
    product = _api(kube, "clusterweb", tmp_path)
    try:
        client.CoreV1Api(product).list_node(_request_timeout=TIMEOUT)
    finally:
        product.close()
    kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT)
    assert kube.recorder.accesses("clusterweb") == [Access("list", "", "nodes", "")]
    assert kube.recorder.accesses("admin") == [Access("list", "", "pods", ns)]
    assert kube.recorder.identities() == ["admin", "clusterweb"]
    assert kube.recorder.rules("clusterweb") == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}
    ]
    status, _, body = kube.request(
        "GET", "/_simulator/accesses", query=[("identity", "clusterweb")]
    )
    assert status == 200
    assert body["accesses"] == [{"verb": "list", "group": "", "resource": "nodes", "namespace": ""}]


@pytest.mark.simulator_only
def test_each_identity_has_its_own_token_and_a_wrong_one_is_401(kube: Kube, tmp_path: Path) -> None:
    assert kube.simulator is not None
    tokens = {
        name: kube.simulator.token_for(name) for name in ("admin", "clusterweb", "jupyterhub")
    }
    assert len(set(tokens.values())) == 3
    assert kube.simulator.token == tokens["admin"]
    status, _, _ = kube.request("GET", "/api/v1/nodes")
    assert status == 200
    api = client.ApiClient(
        client.Configuration(
            host=kube.simulator.url, api_key={"authorization": "Bearer not-a-token"}
        )
    )
    try:
        with pytest.raises(client.ApiException) as caught:
            client.CoreV1Api(api).list_node(_request_timeout=TIMEOUT)
        assert caught.value.status == 401
        assert status_body(caught.value)["reason"] == "Unauthorized"
    finally:
        api.close()


def test_product_rules_name_only_served_verbs() -> None:
    """Every verb in the product's role is one RBAC knows (a typo would allow nothing)."""
    verbs = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
    for rule in PRODUCT_RULES:
        assert set(rule["verbs"]) <= verbs, rule
