"""The Spark backend of a launch: the per-request worker Deployment and the check that its workers
registered with the cluster's Spark master.

The master runs in namespace ``spark`` behind the Service ``spark-master`` (7077 for workers and
drivers, 8080 for its web UI and JSON status). Each launch gets its own Deployment
``spark-worker-<id>`` with **one worker per node**: a required pod anti-affinity on
``kubernetes.io/hostname`` against its own pods, a nodeSelector on the request's node label and a
toleration for the request's taint, so its workers run on its nodes only and nothing else does
("Assigning Pods to Nodes", "Taints and Tolerations"). A worker started with the master's URL
registers itself (Spark "Spark Standalone Mode › Starting a Cluster Manually").

The master's ``/json/`` is Spark's MasterWebUI JSON (``org.apache.spark.deploy.JsonProtocol``:
``workers`` with ``id``, ``host``, ``port``, ``state``...); Clusterweb reads it through the API
server's service proxy, from inside or outside the cluster alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NAMESPACE = "spark"
MASTER_SERVICE = "spark-master"
MASTER_URL = f"spark://{MASTER_SERVICE}.{NAMESPACE}.svc.cluster.local:7077"
MASTER_HTTP_PORT = "http"
UI_PORT = 8003  # CONVENTIONS: the Spark master UI at the tunnel's local end
IMAGE = "docker.io/apache/spark:3.5.3"  # the master's image (sandbox/kube/cluster.py, deploy/)
REQUEST_LABEL = "clusterweb.io/request"
HOSTNAME_KEY = "kubernetes.io/hostname"
WORKER_LABELS = {"app.kubernetes.io/name": "spark", "app.kubernetes.io/component": "worker"}


def worker_name(request_id: int | str) -> str:
    return f"spark-worker-{request_id}"


def worker_selector(request_id: int | str) -> dict[str, str]:
    return {**WORKER_LABELS, REQUEST_LABEL: str(request_id)}


def worker_label_selector(request_id: int | str) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(worker_selector(request_id).items()))


def worker_deployment(request_id: int | str, count: int) -> dict[str, Any]:
    """The launch's worker Deployment: ``count`` replicas, at most one per node, only on the
    request's nodes, each registering with the master Service."""
    selector = worker_selector(request_id)
    labels = {**selector, "app.kubernetes.io/part-of": "clusterweb"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": worker_name(request_id), "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": count,
            "selector": {"matchLabels": selector},
            # A new worker may only start where an old one left: a rolling update would need a
            # node with no worker on it (surge 0, one unavailable at a time).
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {REQUEST_LABEL: str(request_id)},
                    "tolerations": [
                        {
                            "key": REQUEST_LABEL,
                            "operator": "Equal",
                            "value": str(request_id),
                            "effect": "NoSchedule",
                        }
                    ],
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "labelSelector": {"matchLabels": selector},
                                    "topologyKey": HOSTNAME_KEY,
                                }
                            ]
                        }
                    },
                    "containers": [
                        {
                            "name": "spark-worker",
                            "image": IMAGE,
                            "command": ["/opt/spark/bin/spark-class"],
                            "args": ["org.apache.spark.deploy.worker.Worker", MASTER_URL],
                            "env": [{"name": "SPARK_NO_DAEMONIZE", "value": "true"}],
                            "ports": [{"name": "http", "containerPort": 8081}],
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                        }
                    ],
                },
            },
        },
    }


@dataclass(frozen=True)
class Registration:
    """How many of the launch's workers the master lists as ALIVE."""

    alive: int
    wanted: int
    hosts: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return self.alive >= self.wanted


def registration(
    status: Mapping[str, Any], worker_hosts: Sequence[str], wanted: int
) -> Registration:
    """Count the master's ALIVE workers whose host is one of ``worker_hosts`` (the launch's worker
    pods' IPs or names): another launch's workers do not count."""
    hosts = {h for h in worker_hosts if h}
    alive = sorted(
        {
            str(w.get("host"))
            for w in status.get("workers") or []
            if isinstance(w, Mapping) and w.get("state") == "ALIVE" and str(w.get("host")) in hosts
        }
    )
    return Registration(alive=len(alive), wanted=wanted, hosts=tuple(alive))


def usage_snippet(master_url: str = MASTER_URL) -> str:
    """How to use the workers from a Jupyter server inside the cluster (executors must reach the
    driver, so the driver runs in the cluster, not on a laptop at the tunnel's end)."""
    return (
        "from pyspark.sql import SparkSession\n"
        "spark = (\n"
        '    SparkSession.builder.master("' + master_url + '")\n'
        '    .appName("my-job")\n'
        "    .getOrCreate()\n"
        ")\n"
        "# or: spark-submit --master " + master_url + " job.py"
    )
