"""The simulator's own controls: the verb recorder, reset, seeding, the kubeconfig and the
standalone entry point. None of these exist on a real cluster.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from sandbox.kube import Access
from tests.fixtures.kube import Kube, collect_events, pod_manifest

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10
ROOT = Path(__file__).resolve().parents[3]


def test_the_recorder_lists_every_verb_a_test_used(kube: Kube) -> None:
    """Each served request is recorded with RBAC's verb, group, resource and namespace."""
    ns = kube.namespace()
    kube.recorder.reset()
    kube.core.list_node(_request_timeout=TIMEOUT)
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    kube.core.patch_namespaced_pod(
        "p", ns, {"metadata": {"labels": {"a": "b"}}}, _request_timeout=TIMEOUT
    )
    collect_events(
        kube.core.list_namespaced_pod, ns, timeout_seconds=1, until=lambda evs: len(evs) == 1
    )
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="p", namespace=ns))
    kube.core.create_namespaced_pod_eviction("p", ns, eviction, _request_timeout=TIMEOUT)
    kube.apps.list_deployment_for_all_namespaces(_request_timeout=TIMEOUT)
    # The session's JupyterHub (KubeSpawner's reflectors, identity jupyterhub) may list and watch
    # its namespace at any time: count only this test's own identity.
    assert kube.recorder.accesses("admin") == sorted(
        [
            Access("list", "", "nodes", ""),
            Access("create", "", "pods", ns),
            Access("patch", "", "pods", ns),
            Access("watch", "", "pods", ns),
            Access("create", "", "pods/eviction", ns),
            Access("list", "apps", "deployments", ""),
        ]
    )
    assert kube.recorder.rules("admin") == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "patch", "watch"]},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
    ]


def test_discovery_is_recorded_as_non_resource_urls(kube: Kube) -> None:
    """Using RBAC Authorization › Referring to resources: discovery is nonResourceURLs."""
    client.VersionApi(kube.api_client).get_code(_request_timeout=TIMEOUT)
    assert kube.recorder.non_resource_urls() == [("get", "/version")]
    assert kube.recorder.rules("admin")[-1] == {"nonResourceURLs": ["/version"], "verbs": ["get"]}


def test_reset_forgets_objects_and_recorded_accesses(kube: Kube) -> None:
    """A reset gives a fresh cluster: only the initial namespaces (Namespaces › Initial
    namespaces)."""
    assert kube.simulator is not None
    ns = kube.namespace()
    kube.simulator.reset()
    assert kube.recorder.accesses() == []
    names = [n.metadata.name for n in kube.core.list_namespace(_request_timeout=TIMEOUT).items]
    assert ns not in names
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_seeding_keeps_the_status_it_is_given(kube: Kube) -> None:
    """A seeded object stands for one that has lived a while: its status is kept (written
    through /status, as a kubelet would)."""
    assert kube.simulator is not None
    pod = pod_manifest("p", node_name="node-a")
    pod["metadata"]["namespace"] = "default"
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    kube.simulator.seed(pod)
    got = kube.core.read_namespaced_pod("p", "default", _request_timeout=TIMEOUT)
    assert got.status.phase == "Running"
    assert got.spec.service_account_name == "default"  # still defaulted like any create


def test_bulk_seeding_skips_validation_but_still_lists_and_watches(kube: Kube) -> None:
    """Benchmarks seed without validation; lists and watches still see the objects."""
    assert kube.simulator is not None
    start = kube.core.list_node(_request_timeout=TIMEOUT).metadata.resource_version
    count = kube.simulator.bulk_seed(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"bulk-{i}"}} for i in range(3)
    )
    assert count == 3
    listed = kube.core.list_node(_request_timeout=TIMEOUT)
    assert [n.metadata.name for n in listed.items] == ["bulk-0", "bulk-1", "bulk-2"]
    events = collect_events(
        kube.core.list_node, resource_version=start, until=lambda evs: len(evs) == 3
    )
    assert [kind for kind, _ in events] == ["ADDED"] * 3


def test_the_http_control_api_needs_the_token_and_resets(kube: Kube) -> None:
    """The same controls over HTTP, for processes other than the test's (a Celery worker)."""
    ns = kube.namespace()
    status, _, body = kube.request("GET", "/_simulator/accesses")
    assert status == 200
    assert {"verb": "create", "group": "", "resource": "namespaces", "namespace": ""} in body[
        "accesses"
    ]
    status, _, _ = kube.request("POST", "/_simulator/reset")
    assert status == 200
    names = [n.metadata.name for n in kube.core.list_namespace(_request_timeout=TIMEOUT).items]
    assert ns not in names


def test_the_kubeconfig_points_at_loopback_with_a_bearer_token(kube: Kube) -> None:
    """Organizing Cluster Access Using kubeconfig Files: a cluster, a token user, a context."""
    config = yaml.safe_load(kube.kubeconfig_path.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    assert server.startswith("http://127.0.0.1:")
    assert config["users"][0]["user"]["token"]


def test_the_standalone_module_prints_its_port_and_serves(tmp_path: Path) -> None:
    """``python -m sandbox.kube --port 0 --kubeconfig PATH``: prints the port, then serves."""
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.kube", "--port", "0", "--kubeconfig", str(kubeconfig)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/namespaces/default",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            assert response.status == 200
    finally:
        process.terminate()
        assert process.wait(TIMEOUT) == 0
