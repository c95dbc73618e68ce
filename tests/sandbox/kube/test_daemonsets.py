"""DaemonSets ("DaemonSet", "Taints and Tolerations"), the system DaemonSets of the sandbox
cluster, GPUs that appear only once the NVIDIA device plugin runs ("Device Plugins", "Schedule
GPUs"), and the API's refusal of an extended-resource request without a limit ("Resource
Management for Pods and Containers › Extended resources")."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from sandbox.kube.cluster import FLANNEL_NAMESPACE, system_daemonsets
from tests.fixtures.kube import Kube, pod_manifest, status_body, wait_until

TIMEOUT = 10
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _daemonset(name: str, spec_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                    **(spec_extra or {}),
                },
            },
        },
    }


def _running_on(pods: dict[str, Any]) -> set[str]:
    return {
        p["spec"].get("nodeName", "")
        for p in pods.values()
        if p.get("status", {}).get("phase") == "Running"
    }


def test_apps_v1_serves_daemonsets_with_defaults(kube: Kube) -> None:
    ns = kube.namespace()
    created = kube.apps.create_namespaced_daemon_set(
        ns, _daemonset("agent"), _request_timeout=TIMEOUT
    )
    assert created.spec.update_strategy.type == "RollingUpdate"
    assert created.spec.update_strategy.rolling_update.max_unavailable == 1
    assert created.spec.revision_history_limit == 10
    assert created.metadata.generation == 1
    listed = kube.apps.list_daemon_set_for_all_namespaces(_request_timeout=TIMEOUT)
    assert [d.metadata.name for d in listed.items] == ["agent"]
    bad = _daemonset("bad")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(client.ApiException) as caught:
        kube.apps.create_namespaced_daemon_set(ns, bad, _request_timeout=TIMEOUT)
    assert caught.value.status == 422
    assert "`selector` does not match template `labels`" in status_body(caught.value)["message"]


@pytest.mark.simulator_only
def test_one_pod_per_matching_node_tolerations_honoured(kube: Kube) -> None:
    """A pod on every node the selector matches whose taints it tolerates; a new node gets
    one too, a node that stops matching loses it."""
    kube.controllers()
    ns = kube.namespace()
    plain = kube.node("plain", labels={"disk": "ssd"})
    gpu = kube.node("gpu", labels={"disk": "ssd"}, taints=[GPU_TAINT])
    kube.node("hdd", labels={"disk": "hdd"})
    kube.apps.create_namespaced_daemon_set(
        ns, _daemonset("agent", {"nodeSelector": {"disk": "ssd"}}), _request_timeout=TIMEOUT
    )
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: _running_on(p) == {plain})
    (pod,) = pods.values()
    affinity = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert affinity["nodeSelectorTerms"][0]["matchFields"][0]["values"] == [plain]
    keys = {(t.get("key"), t.get("effect")) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    assert gpu not in _running_on(pods)

    tolerant = _daemonset(
        "gpu-agent", {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}
    )
    kube.apps.create_namespaced_daemon_set(ns, tolerant, _request_timeout=TIMEOUT)
    wait_until(
        kube.core.list_namespaced_pod,
        ns,
        label_selector="app=gpu-agent",
        until=lambda p: len(_running_on(p) & {plain, gpu}) == 2,
    )
    later = kube.node("later", labels={"disk": "ssd"})
    wait_until(
        kube.core.list_namespaced_pod,
        ns,
        label_selector="app=agent",
        until=lambda p: _running_on(p) == {plain, later},
    )
    kube.core.patch_node(plain, {"metadata": {"labels": {"disk": "hdd"}}}, _request_timeout=TIMEOUT)
    wait_until(
        kube.core.list_namespaced_pod,
        ns,
        label_selector="app=agent",
        until=lambda p: _running_on(p) == {later} and len(p) == 1,
    )
    status = kube.apps.read_namespaced_daemon_set_status("agent", ns, _request_timeout=TIMEOUT)
    assert status.status.desired_number_scheduled == 1


@pytest.mark.simulator_only
def test_system_daemonsets_take_cpu_and_memory_on_every_node(kube: Kube) -> None:
    """Flannel's 100m/50Mi is on every node: a pod that would fit an empty node does not."""
    kube.controllers()
    node = kube.node(
        labels={"kubernetes.io/os": "linux"},
        allocatable={"cpu": "1", "memory": "1Gi", "pods": "10"},
    )
    kube.core.create_namespace({"metadata": {"name": FLANNEL_NAMESPACE}}, _request_timeout=TIMEOUT)
    try:
        for body in system_daemonsets():
            kube.apps.create_namespaced_daemon_set(
                body["metadata"]["namespace"], body, _request_timeout=TIMEOUT
            )
        wait_until(
            kube.core.list_pod_for_all_namespaces,
            until=lambda p: (
                len(_running_on(p)) == 1
                and sum(1 for x in p.values() if x["status"].get("phase") == "Running") == 3
            ),
        )
        ns = kube.namespace()
        big = pod_manifest("big", resources={"requests": {"cpu": "950m"}})
        kube.core.create_namespaced_pod(ns, big, _request_timeout=TIMEOUT)
        pods = wait_until(
            kube.core.list_namespaced_pod,
            ns,
            until=lambda p: any(
                c.get("reason") == "Unschedulable"
                for c in p.get("big", {}).get("status", {}).get("conditions", ())
            ),
        )
        message = next(
            c["message"] for c in pods["big"]["status"]["conditions"] if c["type"] == "PodScheduled"
        )
        assert "1 Insufficient cpu" in message
        assert node
    finally:
        kube.core.delete_namespace(FLANNEL_NAMESPACE, _request_timeout=TIMEOUT)


@pytest.mark.simulator_only
def test_gpus_appear_only_once_the_device_plugin_runs(kube: Kube) -> None:
    """A GPU node registers without nvidia.com/gpu; a GPU pod first meets "Insufficient
    nvidia.com/gpu"; the device plugin's DaemonSet pod runs there, the kubelet advertises the
    GPU, and the pod is scheduled; without the plugin the GPU is no longer allocatable."""
    assert kube.simulator is not None
    kube.controllers()
    gpu = kube.node("gpu", taints=[GPU_TAINT])
    kube.simulator.store.devices[gpu] = {"nvidia.com/gpu": 1}  # what the host has
    ns = kube.namespace()
    body = pod_manifest("train", resources={"limits": {"nvidia.com/gpu": "1"}})
    body["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: any(
            c.get("reason") == "Unschedulable"
            for c in p.get("train", {}).get("status", {}).get("conditions", ())
        ),
    )
    message = next(
        c["message"] for c in pods["train"]["status"]["conditions"] if c["type"] == "PodScheduled"
    )
    assert message.startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    plugin = next(d for d in system_daemonsets() if "nvidia" in d["metadata"]["name"])
    kube.apps.create_namespaced_daemon_set("kube-system", plugin, _request_timeout=TIMEOUT)
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: _running_on(p) == {gpu})
    node = kube.core.read_node(gpu, _request_timeout=TIMEOUT)
    assert node.status.allocatable["nvidia.com/gpu"] == "1"
    kube.apps.delete_namespaced_daemon_set(
        plugin["metadata"]["name"], "kube-system", _request_timeout=TIMEOUT
    )
    wait_until(
        kube.core.list_node,
        until=lambda n: n[gpu]["status"]["allocatable"].get("nvidia.com/gpu") == "0",
    )


@pytest.mark.simulator_only
def test_the_device_plugin_runs_on_a_launchs_own_gpu_node(kube: Kube) -> None:
    """A GPU node of one launch also carries clusterweb.io/request=ID:NoSchedule
    (CONVENTIONS.md): the device plugin must tolerate it, or the node's GPU never becomes
    allocatable and the launch's GPU pod waits for ever."""
    assert kube.simulator is not None
    kube.controllers()
    request_taint = {"key": "clusterweb.io/request", "value": "42", "effect": "NoSchedule"}
    gpu = kube.node("gpu", taints=[GPU_TAINT, request_taint])
    kube.simulator.store.devices[gpu] = {"nvidia.com/gpu": 1}
    plugin = next(d for d in system_daemonsets() if "nvidia" in d["metadata"]["name"])

    kube.apps.create_namespaced_daemon_set("kube-system", plugin, _request_timeout=TIMEOUT)

    wait_until(kube.core.list_namespaced_pod, "kube-system", until=lambda p: gpu in _running_on(p))
    wait_until(
        kube.core.list_node,
        until=lambda n: n[gpu]["status"]["allocatable"].get("nvidia.com/gpu") == "1",
    )
    kube.apps.delete_namespaced_daemon_set(
        plugin["metadata"]["name"], "kube-system", _request_timeout=TIMEOUT
    )


def test_an_extended_resource_request_without_a_limit_is_422(kube: Kube) -> None:
    """ValidateResourceRequirements: nvidia.com/gpu is not overcommitable, so it needs a limit."""
    ns = kube.namespace()
    body = pod_manifest("gpu", resources={"requests": {"nvidia.com/gpu": "1"}})
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    assert caught.value.status == 422
    status = status_body(caught.value)
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value: Limit must be set for non overcommitable resources",
            "field": "spec.containers[0].resources.limits",
        }
    ]
    fine = pod_manifest("gpu", resources={"limits": {"nvidia.com/gpu": "1"}})
    created = kube.core.create_namespaced_pod(ns, fine, _request_timeout=TIMEOUT)
    assert created.spec.containers[0].resources.requests == {"nvidia.com/gpu": "1"}
