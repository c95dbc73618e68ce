"""The Kubernetes adapter against the API simulator (or a real cluster via
KUBE_CONTRACT_KUBECONFIG): domain words in, the API's documented behaviour out, errors sorted
into permanent and transient."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from clusterweb.errors import PermanentError, TransientError
from clusterweb.integrations import k8s
from clusterweb.integrations.k8s import Taint
from tests.fixtures.kube import Kube, deployment_manifest, pod_manifest, wait_until

TIMEOUT = 10
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster(kube: Kube):
    adapter = k8s.connect(str(kube.kubeconfig_path), request_timeout=5)
    yield adapter
    adapter.close()


def _gpu_node(kube: Kube) -> str:
    return kube.node(
        "gpu",
        labels={
            "clusterweb.io/pool": "gpu",
            "clusterweb.io/capacity-type": "spot",
            "node.kubernetes.io/instance-type": "g4dn.xlarge",
            "topology.kubernetes.io/zone": "eu-west-1a",
        },
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        allocatable={"cpu": "3920m", "memory": "15896768Ki", "nvidia.com/gpu": "1", "pods": "29"},
        provider_id="aws:///eu-west-1a/i-0123456789abcdef0",
    )


# -- nodes ---------------------------------------------------------------------------------------


def test_nodes_list_reads_pool_capacity_and_allocatable(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    name = _gpu_node(kube)
    node = next(n for n in cluster.nodes_list() if n.name == name)
    assert node.pool == "gpu"
    assert node.capacity_type == "spot"
    assert node.instance_type == "g4dn.xlarge"
    assert node.zone == "eu-west-1a"
    assert node.provider_id == "aws:///eu-west-1a/i-0123456789abcdef0"
    assert node.ready is True
    assert node.unschedulable is False
    assert node.cpu == Decimal("3.92")
    assert node.memory == 15896768 * 1024
    assert node.gpu == 1
    assert node.taints == (Taint("nvidia.com/gpu", "NoSchedule", "present"),)
    assert node.labels["clusterweb.io/pool"] == "gpu"


def test_nodes_list_filters_by_label_and_reports_not_ready(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    spark = kube.node("spark", labels={"clusterweb.io/pool": "spark"}, ready=False)
    kube.node("other", labels={"clusterweb.io/pool": "jupyter"})
    nodes = cluster.nodes_list("clusterweb.io/pool=spark")
    assert [(n.name, n.ready, n.gpu) for n in nodes] == [(spark, False, 0)]


@pytest.mark.simulator_only
def test_nodes_list_pages_through_a_large_cluster(kube: Kube, cluster: k8s.Kubernetes) -> None:
    assert kube.simulator is not None
    kube.simulator.bulk_seed(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n-{i:04d}"}}
        for i in range(1100)
    )
    kube.recorder.reset()
    nodes = cluster.nodes_list()
    assert len(nodes) == 1100
    assert nodes[0].name == "n-0000"


def test_node_label_sets_and_removes_labels(kube: Kube, cluster: k8s.Kubernetes) -> None:
    name = kube.node(labels={"old": "1", "keep": "1"})
    node = cluster.node_label(name, {"clusterweb.io/owner": "alice", "old": None})
    assert node.labels["clusterweb.io/owner"] == "alice"
    assert "old" not in node.labels
    assert node.labels["keep"] == "1"


def test_node_taint_adds_replaces_and_is_idempotent(kube: Kube, cluster: k8s.Kubernetes) -> None:
    name = _gpu_node(kube)
    request = Taint.parse("clusterweb.io/request=42:NoSchedule")
    node = cluster.node_taint(name, request)
    assert set(node.taints) == {Taint("nvidia.com/gpu", "NoSchedule", "present"), request}
    version = kube.core.read_node(name, _request_timeout=TIMEOUT).metadata.resource_version
    cluster.node_taint(name, request)
    again = kube.core.read_node(name, _request_timeout=TIMEOUT).metadata.resource_version
    assert again == version  # nothing written the second time
    replaced = cluster.node_taint(name, Taint("clusterweb.io/request", "NoSchedule", "43"))
    assert Taint("clusterweb.io/request", "NoSchedule", "43") in replaced.taints
    assert request not in replaced.taints


def test_node_untaint_removes_only_the_named_taint(kube: Kube, cluster: k8s.Kubernetes) -> None:
    name = _gpu_node(kube)
    cluster.node_taint(name, Taint("clusterweb.io/request", "NoSchedule", "7"))
    node = cluster.node_untaint(name, "clusterweb.io/request")
    assert node.taints == (Taint("nvidia.com/gpu", "NoSchedule", "present"),)
    assert cluster.node_untaint(name, "not-there").taints == node.taints
    assert cluster.node_untaint(name, "nvidia.com/gpu", "NoSchedule").taints == ()


def test_cordon_and_uncordon(kube: Kube, cluster: k8s.Kubernetes) -> None:
    name = kube.node()
    assert cluster.node_cordon(name).unschedulable is True
    assert cluster.node_cordon(name).unschedulable is True
    assert cluster.node_uncordon(name).unschedulable is False


def test_a_missing_node_is_a_permanent_not_found(cluster: k8s.Kubernetes) -> None:
    with pytest.raises(PermanentError) as caught:
        cluster.node_cordon("no-such-node")
    assert caught.value.code == "NotFound"
    assert caught.value.system == "kubernetes"
    assert 'nodes "no-such-node" not found' in str(caught.value)


def test_an_invalid_taint_is_refused_as_permanent(kube: Kube, cluster: k8s.Kubernetes) -> None:
    name = kube.node()
    with pytest.raises(PermanentError) as caught:
        cluster.node_taint(name, Taint("bad key!", "NoSchedule", "x"))
    assert caught.value.code == "Invalid"


# -- deployments ---------------------------------------------------------------------------------


def _spark_manifest(image: str = "apache/spark:3.5.1", cpu: str = "1000m") -> dict:
    manifest = deployment_manifest("spark-worker", replicas=2, image=image)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": cpu, "memory": "1024Mi"}
    }
    return manifest


def test_deployment_apply_creates_then_does_nothing_then_updates(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    ns = kube.namespace()
    created = cluster.deployment_apply(ns, _spark_manifest())
    assert (created.action, created.generation) == ("created", 1)
    version = kube.apps.read_namespaced_deployment(
        "spark-worker", ns, _request_timeout=TIMEOUT
    ).metadata.resource_version
    # Same spec, though the server stored "1000m" as "1" and "1024Mi" as "1Gi" and added defaults.
    unchanged = cluster.deployment_apply(ns, _spark_manifest())
    assert unchanged.action == "unchanged"
    after = kube.apps.read_namespaced_deployment("spark-worker", ns, _request_timeout=TIMEOUT)
    assert after.metadata.resource_version == version
    updated = cluster.deployment_apply(ns, _spark_manifest(image="apache/spark:3.5.2"))
    assert (updated.action, updated.generation) == ("updated", 2)
    live = kube.apps.read_namespaced_deployment("spark-worker", ns, _request_timeout=TIMEOUT)
    assert live.spec.template.spec.containers[0].image == "apache/spark:3.5.2"


def test_deployment_apply_keeps_what_others_annotated(kube: Kube, cluster: k8s.Kubernetes) -> None:
    ns = kube.namespace()
    cluster.deployment_apply(ns, _spark_manifest())
    kube.apps.patch_namespaced_deployment(
        "spark-worker",
        ns,
        {"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}}},
        _request_timeout=TIMEOUT,
    )
    cluster.deployment_apply(ns, _spark_manifest(cpu="2"))
    live = kube.apps.read_namespaced_deployment("spark-worker", ns, _request_timeout=TIMEOUT)
    assert live.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert live.spec.template.spec.containers[0].resources.requests["cpu"] == "2"


def test_deployment_apply_of_an_invalid_manifest_is_permanent(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    ns = kube.namespace()
    manifest = _spark_manifest()
    manifest["spec"]["selector"] = {"matchLabels": {"app": "something-else"}}
    with pytest.raises(PermanentError) as caught:
        cluster.deployment_apply(ns, manifest)
    assert caught.value.code == "Invalid"
    assert "`selector` does not match template `labels`" in str(caught.value)


def test_a_manifest_the_client_cannot_send_is_permanent(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    ns = kube.namespace()
    manifest = _spark_manifest()
    manifest["spec"]["replicas"] = "three"
    with pytest.raises(PermanentError) as caught:
        cluster.deployment_apply(ns, manifest)
    assert caught.value.code == "invalid_request"


def test_deployment_scale_sets_the_replica_count(kube: Kube, cluster: k8s.Kubernetes) -> None:
    ns = kube.namespace()
    cluster.deployment_apply(ns, _spark_manifest())
    assert cluster.deployment_scale(ns, "spark-worker", 5) == 5
    live = kube.apps.read_namespaced_deployment("spark-worker", ns, _request_timeout=TIMEOUT)
    assert live.spec.replicas == 5
    with pytest.raises(PermanentError) as caught:
        cluster.deployment_scale(ns, "missing", 1)
    assert caught.value.code == "NotFound"


def test_deployment_delete_is_idempotent(kube: Kube, cluster: k8s.Kubernetes) -> None:
    ns = kube.namespace()
    cluster.deployment_apply(ns, _spark_manifest())
    assert cluster.deployment_delete(ns, "spark-worker") is True
    assert cluster.deployment_delete(ns, "spark-worker") is False


# -- pods ----------------------------------------------------------------------------------------


def _mark_ready(kube: Kube, ns: str, name: str) -> None:
    """What a kubelet reports for a started pod."""
    status = {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
            ],
        }
    }
    kube.core.patch_namespaced_pod_status(name, ns, status, _request_timeout=TIMEOUT)


def test_pods_wait_ready_returns_once_enough_pods_are_ready(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    ns = kube.namespace()
    for name in ("w-1", "w-2", "other"):
        labels = {"app": "worker"} if name.startswith("w") else {"app": "other"}
        kube.core.create_namespaced_pod(
            ns, pod_manifest(name, labels=labels, node_name="node-a"), _request_timeout=TIMEOUT
        )
    _mark_ready(kube, ns, "w-1")

    def kubelet() -> None:
        time.sleep(0.3)
        _mark_ready(kube, ns, "other")
        _mark_ready(kube, ns, "w-2")

    thread = threading.Thread(target=kubelet)
    thread.start()
    pods = cluster.pods_wait_ready(ns, "app=worker", 2, timeout=8)
    thread.join(TIMEOUT)
    assert [(p.name, p.ready, p.phase, p.node_name) for p in pods] == [
        ("w-1", True, "Running", "node-a"),
        ("w-2", True, "Running", "node-a"),
    ]


def test_pods_wait_ready_gives_up_with_a_transient_error(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("w-1", labels={"app": "worker"}), _request_timeout=TIMEOUT
    )
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        cluster.pods_wait_ready(ns, "app=worker", 1, timeout=1)
    assert caught.value.code == "timeout"
    assert time.monotonic() - started < TIMEOUT  # bounded, not hung


@pytest.mark.simulator_only
@pytest.mark.parametrize(
    ("fault", "restart_policy", "code", "detail"),
    [
        ("ErrImagePull", "Always", "ImagePullBackOff", 'Back-off pulling image "'),
        ("CrashLoopBackOff", "Always", "CrashLoopBackOff", "last exit code 2 (Error)"),
        ("OOMKilled", "Always", "CrashLoopBackOff", "last exit code 137 (OOMKilled)"),
        ("OOMKilled", "Never", "OOMKilled", "exited with code 137 (OOMKilled)"),
    ],
)
def test_pods_wait_ready_names_a_container_that_will_not_start(
    kube: Kube, cluster: k8s.Kubernetes, fault: str, restart_policy: str, code: str, detail: str
) -> None:
    """A pod stuck in ImagePullBackOff or CrashLoopBackOff, or Failed, ends the wait at once
    with PermanentError naming the kubelet's reason, not a silent timeout."""
    assert kube.simulator is not None
    kube.somewhere_to_run()
    image = "registry.example.com/clusterweb/worker:broken"
    kube.simulator.fail_containers(fault, image=image, exit_code=2)
    ns = kube.namespace()
    manifest = pod_manifest("w", labels={"app": "worker"}, image=image)
    manifest["spec"]["restartPolicy"] = restart_policy
    kube.core.create_namespaced_pod(ns, manifest, _request_timeout=TIMEOUT)
    started = time.monotonic()
    with pytest.raises(PermanentError) as caught:
        cluster.pods_wait_ready(ns, "app=worker", 1, timeout=60)
    assert time.monotonic() - started < 30
    assert caught.value.code == code
    assert "pod w " in str(caught.value)
    assert detail in str(caught.value)


def test_pod_evict_removes_the_pod_and_tolerates_a_missing_one(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    assert cluster.pod_evict(ns, "p") is True
    assert cluster.pod_evict(ns, "p") is False


def test_pod_evict_blocked_by_a_disruption_budget_is_transient(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    kube.somewhere_to_run()
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("db", labels={"app": "db"}), _request_timeout=TIMEOUT
    )
    kube.policy.create_namespaced_pod_disruption_budget(
        ns,
        {
            "metadata": {"name": "db"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
        },
        _request_timeout=TIMEOUT,
    )
    cluster.pods_wait_ready(ns, "app=db", 1, timeout=TIMEOUT)
    wait_until(
        kube.policy.list_namespaced_pod_disruption_budget,
        ns,
        until=lambda budgets: budgets.get("db", {}).get("status", {}).get("currentHealthy") == 1,
    )
    with pytest.raises(TransientError) as caught:
        cluster.pod_evict(ns, "db")
    assert caught.value.code == "TooManyRequests"
    assert "disruption budget" in str(caught.value)


@pytest.mark.simulator_only
def test_the_adapter_uses_only_the_verbs_it_should(kube: Kube, cluster: k8s.Kubernetes) -> None:
    """What the product's RBAC Role must allow for these operations (from the recorder)."""
    ns = kube.namespace()
    name = kube.node()
    kube.recorder.reset()
    cluster.nodes_list()
    cluster.node_taint(name, Taint("a", "NoSchedule"))
    cluster.deployment_apply(ns, _spark_manifest())
    cluster.deployment_scale(ns, "spark-worker", 1)
    assert {(a.verb, a.resource) for a in kube.recorder.accesses()} == {
        ("list", "nodes"),
        ("get", "nodes"),
        ("patch", "nodes"),
        ("create", "deployments"),
        ("patch", "deployments/scale"),
    }


@pytest.mark.simulator_only
def test_the_product_role_is_exactly_what_the_adapter_uses(kube: Kube, tmp_path: Path) -> None:
    """Run every adapter operation as the product's identity: each request is one its
    ClusterRole allows (the simulator's SelfSubjectAccessReview says so), and every rule of the
    role is used (nothing granted that the adapter does not need)."""
    assert kube.simulator is not None
    from sandbox.kube.auth import PRODUCT_RULES, authorize

    ns = kube.namespace()
    name = kube.node()
    kube.controllers(pod_start_delay=0.3)  # the wait below lists, then watches
    kube.recorder.reset()
    product = k8s.connect(str(kube.kubeconfig_for("clusterweb", tmp_path)), request_timeout=5)
    try:
        product.nodes_list()
        product.deployment_apply(ns, _spark_manifest(cpu="10m"))
        product.deployment_apply(ns, _spark_manifest(image="apache/spark:3.5.2", cpu="10m"))
        product.deployment_scale(ns, "spark-worker", 1)
        pods = product.pods_wait_ready(ns, "app=spark-worker", 1, timeout=8)
        product.pod_evict(ns, pods[0].name)
        product.deployment_delete(ns, "spark-worker")
        product.node_taint(name, Taint("a", "NoSchedule"))
        # Launches: a bootstrap token, and a Service's answer through the service proxy (here
        # the simulator's 503: no ready endpoint behind it, which is still a proxy GET).
        product.bootstrap_token_create("abc123.0123456789abcdef", datetime(2031, 1, 1, tzinfo=UTC))
        product.bootstrap_token_delete("abc123")
        kube.core.create_namespaced_service(
            ns, {"metadata": {"name": "nothing"}, "spec": {"ports": [{"port": 80}]}}
        )
        with pytest.raises(TransientError):
            product.service_proxy_json(ns, "nothing", "80", "json/")
    finally:
        product.close()
    identity = kube.simulator.identities["clusterweb"]
    used = kube.recorder.accesses("clusterweb")
    for access in used:
        resource, _, sub = access.resource.partition("/")
        attributes = {"verb": access.verb, "group": access.group, "resource": resource}
        attributes.update(subresource=sub, namespace=access.namespace)
        assert authorize(identity, attributes)[0], access
    granted = {
        (group, resource, verb)
        for rule in PRODUCT_RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert {(a.group, a.resource, a.verb) for a in used} == granted


# -- errors and configuration --------------------------------------------------------------------


def test_a_wrong_token_is_a_permanent_unauthorized(kube: Kube, tmp_path: Path) -> None:
    config = yaml.safe_load(kube.kubeconfig_path.read_text())
    config["users"][0]["user"] = {"token": "wrong"}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    adapter = k8s.connect(str(path), request_timeout=5)
    with pytest.raises(PermanentError) as caught:
        adapter.nodes_list()
    assert caught.value.code == "Unauthorized"


def _kubeconfig_for(port: int, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_unreachable_server_is_transient(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    adapter = k8s.connect(str(_kubeconfig_for(port, tmp_path / "kc")), request_timeout=2)
    with pytest.raises(TransientError) as caught:
        adapter.nodes_list()
    assert caught.value.code == "unreachable"


def test_a_server_that_does_not_answer_in_time_is_transient(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        adapter = k8s.connect(str(_kubeconfig_for(port, tmp_path / "kc")), request_timeout=0.5)
        with pytest.raises(TransientError) as caught:
            adapter.node_cordon("n")
    assert caught.value.code == "unreachable"


def test_a_missing_kubeconfig_is_permanent_and_named(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as caught:
        k8s.connect(str(tmp_path / "nope"))
    assert caught.value.code == "config"
    assert "nope" in str(caught.value)


def test_in_cluster_configuration_outside_a_cluster_is_permanent() -> None:
    with pytest.raises(PermanentError) as caught:
        k8s.connect("")
    assert "in-cluster" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "reason", "transient"),
    [
        (400, "BadRequest", False),
        (401, "Unauthorized", False),
        (403, "Forbidden", False),
        (404, "NotFound", False),
        (405, "MethodNotAllowed", False),
        (409, "AlreadyExists", False),
        (409, "Conflict", True),
        (410, "Expired", True),
        (422, "Invalid", False),
        (429, "TooManyRequests", True),
        (500, "InternalError", True),
        (503, "ServiceUnavailable", True),
    ],
)
def test_api_errors_are_sorted_by_status_and_reason(
    status: int, reason: str, transient: bool
) -> None:
    body = json.dumps(
        {
            "kind": "Status",
            "status": "Failure",
            "reason": reason,
            "message": f"it was {reason}",
            "code": status,
        }
    )
    error = k8s.translate(client.ApiException(status=status, reason="x", body=body), "do thing")
    assert isinstance(error, TransientError if transient else PermanentError)
    assert error.code == reason
    assert f"it was {reason}" in str(error)
    assert str(error).startswith("do thing: ")


def test_the_adapter_imports_without_django_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import clusterweb.integrations.k8s"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr


def test_client_from_settings_reads_the_kubeconfig_setting(kube: Kube) -> None:
    from django.conf import settings
    from django.test import override_settings

    assert settings.configured
    with override_settings(KUBE_CONFIG_PATH=str(kube.kubeconfig_path), KUBE_REQUEST_TIMEOUT=3):
        k8s.reset_client()
        try:
            adapter = k8s.client_from_settings()
            assert adapter is k8s.client_from_settings()
            assert adapter.request_timeout == 3
            assert isinstance(adapter.nodes_list(), list)
        finally:
            k8s.reset_client()


@pytest.mark.simulator_only
def test_pods_wait_ready_lists_again_when_its_version_has_expired(
    kube: Kube, cluster: k8s.Kubernetes
) -> None:
    """API Concepts › 410 Gone responses: the adapter's watch ends (as kube-apiserver ends
    watches); by then its resourceVersion is older than the server's window (kept short here),
    so the new watch is 410 Gone and the adapter must list again, which finds the pod."""
    assert kube.simulator is not None
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns,
        pod_manifest("w-1", labels={"app": "worker"}, node_name="node-a"),
        _request_timeout=TIMEOUT,
    )
    kube.simulator.store.history_window = 0.3
    kube.recorder.reset()
    got: dict[str, object] = {}

    def wait() -> None:
        try:
            got["pods"] = cluster.pods_wait_ready(ns, "app=worker", 1, timeout=20)
        except Exception as exc:  # reported below
            got["error"] = exc

    def calls(verb: str) -> int:
        return kube.recorder.count(verb, "", "pods", ns)

    thread = threading.Thread(target=wait)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while calls("watch") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    # Writes the adapter's watch does not select; the first leaves the window before it ends.
    kube.core.create_namespaced_pod(
        ns, pod_manifest("other-1", labels={"app": "other"}), _request_timeout=TIMEOUT
    )
    time.sleep(0.5)
    kube.core.create_namespaced_pod(
        ns, pod_manifest("other-2", labels={"app": "other"}), _request_timeout=TIMEOUT
    )
    kube.simulator.end_watches()
    while calls("list") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    _mark_ready(kube, ns, "w-1")
    thread.join(30)
    assert "error" not in got, got.get("error")
    assert [p.name for p in got["pods"]] == ["w-1"]  # type: ignore[attr-defined]
    assert calls("list") == 2
