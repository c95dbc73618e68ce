"""The sandbox's cluster as ``make run`` starts it: the always-on instances as Ready nodes, the
control node marked as kubeadm marks a control plane, the system DaemonSets (the Flannel CNI,
kube-proxy, the NVIDIA device plugin), the ``spark`` and ``jupyter`` namespaces, and a Spark
master (Deployment and Service) on the admin nodes.

    sim = KubeSimulator().start()
    cluster = bootstrap(sim, cluster="sandbox", aws_env=moto.env())
    ...
    cluster.stop()  # or sim.stop(), which stops the bridge and the controllers too
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .bridge import CloudBridge
from .controllers import ControllerOptions, Controllers
from .controllers.base import controller_of, is_ready
from .errors import ApiError
from .resources import DAEMONSETS, DEPLOYMENTS, NAMESPACES, NODES, PODS, SERVICES
from .server import KubeSimulator

SPARK_NAMESPACE = "spark"
JUPYTER_NAMESPACE = "jupyter"
POOL_LABEL = "clusterweb.io/pool"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
SPARK_IMAGE = "docker.io/apache/spark:3.5.3"
SPARK_LABELS = {
    "app.kubernetes.io/name": "spark",
    "app.kubernetes.io/component": "master",
    "app.kubernetes.io/part-of": "clusterweb",
}


@dataclass
class Cluster:
    """The running pieces: stop it (or the simulator) to stop them."""

    simulator: KubeSimulator
    controllers: Controllers
    bridge: CloudBridge

    def stop(self) -> None:
        self.bridge.stop()
        self.simulator.stop_controllers()


def spark_master_manifests(namespace: str = SPARK_NAMESPACE) -> tuple[dict, dict]:
    """The Spark master's Deployment (one replica, Recreate: two masters must never run at
    once) pinned to the admin pool, and its ClusterIP Service (7077 for workers and drivers,
    8080 for the web UI)."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "spark-master", "namespace": namespace, "labels": SPARK_LABELS},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {
                "matchLabels": {
                    k: SPARK_LABELS[k]
                    for k in ("app.kubernetes.io/name", "app.kubernetes.io/component")
                }
            },
            "template": {
                "metadata": {"labels": dict(SPARK_LABELS)},
                "spec": {
                    "nodeSelector": {POOL_LABEL: "admin"},
                    "containers": [
                        {
                            "name": "spark-master",
                            "image": SPARK_IMAGE,
                            "command": ["/opt/spark/bin/spark-class"],
                            "args": ["org.apache.spark.deploy.master.Master"],
                            "env": [{"name": "SPARK_NO_DAEMONIZE", "value": "true"}],
                            "ports": [
                                {"name": "spark", "containerPort": 7077},
                                {"name": "http", "containerPort": 8080},
                            ],
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "512Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "readinessProbe": {"tcpSocket": {"port": 7077}},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "spark-master", "namespace": namespace, "labels": SPARK_LABELS},
        "spec": {
            "selector": dict(deployment["spec"]["selector"]["matchLabels"]),
            "ports": [
                {"name": "spark", "port": 7077, "targetPort": "spark"},
                {"name": "http", "port": 8080, "targetPort": "http"},
            ],
        },
    }
    return deployment, service


def _daemonset(
    namespace: str, name: str, labels: dict[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": spec},
        },
    }


FLANNEL_NAMESPACE = "kube-flannel"


def system_daemonsets() -> list[dict[str, Any]]:
    """The DaemonSets every node of a kubeadm cluster runs, from their upstream manifests
    (trimmed to what the simulator uses):

    - ``kube-flannel/kube-flannel-ds`` (kube-flannel.yml): the CNI; tolerates every NoSchedule
      taint, requests 100m CPU and 50Mi memory on every node;
    - ``kube-system/kube-proxy`` (kubeadm's addon): tolerates everything, no requests (it still
      takes a pod slot);
    - ``kube-system/nvidia-device-plugin-daemonset`` (NVIDIA's nvidia-device-plugin.yml):
      tolerates ``nvidia.com/gpu`` and, unlike upstream, ``clusterweb.io/request`` (a launch's
      own GPU node); on a GPU node it makes ``nvidia.com/gpu`` allocatable.
    """
    linux = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}
                        ]
                    }
                ]
            }
        }
    }
    flannel = _daemonset(
        FLANNEL_NAMESPACE,
        "kube-flannel-ds",
        {"app": "flannel", "tier": "node"},
        {
            "affinity": linux,
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {
                    "name": "kube-flannel",
                    "image": "ghcr.io/flannel-io/flannel:v0.26.7",
                    "command": ["/opt/bin/flanneld"],
                    "args": ["--ip-masq", "--kube-subnet-mgr"],
                    "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}},
                }
            ],
        },
    )
    proxy = _daemonset(
        "kube-system",
        "kube-proxy",
        {"k8s-app": "kube-proxy"},
        {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "kube-proxy",
                    "image": "registry.k8s.io/kube-proxy:v1.33.0",
                    "command": [
                        "/usr/local/bin/kube-proxy",
                        "--config=/var/lib/kube-proxy/config.conf",
                        "--hostname-override=$(NODE_NAME)",
                    ],
                }
            ],
        },
    )
    device_plugin = _daemonset(
        "kube-system",
        "nvidia-device-plugin-daemonset",
        {"name": "nvidia-device-plugin-ds"},
        {
            "priorityClassName": "system-node-critical",
            # NVIDIA's manifest tolerates nvidia.com/gpu only; a GPU node of one launch also
            # carries clusterweb.io/request=ID:NoSchedule (CONVENTIONS.md), and without the
            # plugin there its GPU never becomes allocatable. Clusterweb deploys it with both.
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "clusterweb.io/request", "operator": "Exists", "effect": "NoSchedule"},
            ],
            "containers": [
                {
                    "name": "nvidia-device-plugin-ctr",
                    "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.1",
                    "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                }
            ],
        },
    )
    return [flannel, proxy, device_plugin]


def system_daemonsets_create(sim: KubeSimulator) -> None:
    """Create the system DaemonSets (and Flannel's namespace); safe to run twice."""
    _create(
        sim,
        NAMESPACES,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FLANNEL_NAMESPACE}},
    )
    for body in system_daemonsets():
        _create(sim, DAEMONSETS, body)


def _create(sim: KubeSimulator, resource: Any, body: dict[str, Any]) -> None:
    try:
        sim.store.create(resource, copy.deepcopy(body))
    except ApiError as exc:
        if exc.code != 409:  # already there: bootstrap is safe to run twice
            raise


def mark_control_plane(sim: KubeSimulator, node_name: str) -> None:
    """kubeadm's mark-control-plane phase: the role label and the NoSchedule taint."""
    for _ in range(10):
        entry = sim.store.peek(NODES, "", node_name)
        if entry is None:
            return
        node = entry.copy()
        node["metadata"].setdefault("labels", {})[CONTROL_PLANE] = ""
        taints = node.setdefault("spec", {}).setdefault("taints", [])
        if not any(t.get("key") == CONTROL_PLANE for t in taints):
            taints.append({"key": CONTROL_PLANE, "effect": "NoSchedule"})
        try:
            sim.store.update(NODES, node)
            return
        except ApiError as exc:
            if exc.code != 409:  # the node lifecycle controller wrote meanwhile: again
                raise


def bootstrap(
    sim: KubeSimulator,
    *,
    cluster: str,
    aws_env: Mapping[str, str] | None = None,
    region: str | None = None,
    timeout: float = 60.0,
    interval: float = 5.0,
    ready_delay: float = 2.0,
    controller_options: ControllerOptions | None = None,
) -> Cluster:
    """Start the controllers and the cloud bridge on ``sim`` and set up the sandbox's cluster.

    Returns once every running instance tagged ``clusterweb:cluster=<cluster>`` is a Ready node
    and the Spark master pod is Running and Ready on an admin node; raises TimeoutError after
    ``timeout`` seconds otherwise. ``aws_env`` is what reaches the AWS side
    (``AWS_ENDPOINT_URL`` and credentials; default: this process's environment). Safe to run
    again on the same simulator.
    """
    deadline = time.monotonic() + timeout
    controllers = sim.start_controllers(controller_options)
    system_daemonsets_create(sim)
    bridge = CloudBridge(
        sim, cluster, aws_env=aws_env, region=region, interval=interval, ready_delay=ready_delay
    )
    bridge.wait_ready(timeout)
    for node in sim.store.list(NODES, label_selector=f"{POOL_LABEL}=control"):
        mark_control_plane(sim, node["metadata"]["name"])
    bridge.start()
    for name in (SPARK_NAMESPACE, JUPYTER_NAMESPACE):
        _create(
            sim, NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
    deployment, service = spark_master_manifests()
    _create(sim, DEPLOYMENTS, deployment)
    _create(sim, SERVICES, service)
    _wait_for_spark_master(sim, deadline)
    return Cluster(sim, controllers, bridge)


def _wait_for_spark_master(sim: KubeSimulator, deadline: float) -> None:
    selector = ",".join(
        f"{k}={v}"
        for k, v in SPARK_LABELS.items()
        if k in ("app.kubernetes.io/name", "app.kubernetes.io/component")
    )
    while True:
        for entry in sim.store.list_entries(PODS, SPARK_NAMESPACE, label_selector=selector).items:
            if is_ready(entry.obj) and controller_of(entry.obj) is not None:
                return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pods = sim.store.list(PODS, SPARK_NAMESPACE)
            conditions = [
                (p["metadata"]["name"], (p.get("status") or {}).get("conditions")) for p in pods
            ]
            raise TimeoutError(f"the Spark master is not Ready: {conditions}")
        with sim.store.lock:  # sleep until the next write (or 0.5 s)
            sim.store.changed.wait(min(remaining, 0.5))
