"""Inventory tests: the simulated AWS (the ``aws`` fixture's layer, over HTTP) and the Kubernetes
simulator (``kube``), with Clusterweb's adapters pointed at both; helpers that launch tagged
instances and register their nodes as a kubelet (or the cloud bridge) would; the price catalog
present (transactional tests elsewhere flush it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from clusterweb import clock
from clusterweb.integrations import aws as adapter
from clusterweb.integrations import k8s
from provisioning.models import Node, NodeState, SyncPart
from sandbox.aws import AwsLayer
from sandbox.services.base import free_port
from tests.billing.conftest import bundled_catalog_ensure
from tests.fixtures.kube import Kube
from tests.fixtures.services import instances_wait

IMAGE_ID = "ami-12c6146b"  # one of moto's built-in Amazon images
CLUSTER = "sandbox"


@pytest.fixture(autouse=True)
def _catalog(request):
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    bundled_catalog_ensure()


@dataclass
class Cloud:
    """The simulated AWS and Kubernetes the sync reads, with helpers."""

    aws: AwsLayer
    kube: Kube

    def launch(
        self,
        *,
        pool: str = "spark",
        instance_type: str = "m5.xlarge",
        spot: bool = False,
        zone: str = "eu-west-1b",
        owner: str | None = "bob",
        cluster: str | None = CLUSTER,
        count: int = 1,
        name: str = "",
        wait: bool = True,
    ) -> list[str]:
        """Launch instances; with ``wait``, return once they are running (they boot first)."""
        tags = [{"Key": "clusterweb:pool", "Value": pool}]
        if owner:
            tags.append({"Key": "clusterweb:owner", "Value": owner})
        if cluster:
            tags.append({"Key": "clusterweb:cluster", "Value": cluster})
        if name:
            tags.append({"Key": "Name", "Value": name})
        answer = adapter.client("ec2").run_instances(
            ImageId=IMAGE_ID,
            InstanceType=instance_type,
            MinCount=count,
            MaxCount=count,
            Placement={"AvailabilityZone": zone},
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
            **({"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}),
        )
        instance_ids = [i["InstanceId"] for i in answer["Instances"]]
        if wait:
            instances_wait(adapter.client("ec2"), instance_ids, "running")
        return instance_ids

    def terminate(self, *instance_ids: str, wait: bool = True) -> None:
        """Terminate; with ``wait``, return once they are terminated (past shutting-down)."""
        adapter.client("ec2").terminate_instances(InstanceIds=list(instance_ids))
        if wait:
            self.settle(*instance_ids, state="terminated")

    def settle(self, *instance_ids: str, state: str) -> None:
        instances_wait(adapter.client("ec2"), list(instance_ids), state)

    def register(
        self,
        instance_id: str,
        *,
        zone: str = "eu-west-1b",
        pool: str = "spark",
        ready: bool = True,
        cpu: str = "3920m",
        memory: str = "15896768Ki",
        gpus: int = 0,
    ) -> str:
        """A Node for the instance, as the cloud bridge registers one (providerID
        ``aws:///ZONE/INSTANCE_ID``); returns its name."""
        allocatable = {"cpu": cpu, "memory": memory, "pods": "29"}
        if gpus:
            allocatable["nvidia.com/gpu"] = str(gpus)
        return self.kube.node(
            "ip-10-0-1",
            labels={"clusterweb.io/pool": pool, "topology.kubernetes.io/zone": zone},
            ready=ready,
            allocatable=allocatable,
            provider_id=f"aws:///{zone}/{instance_id}",
        )

    def set_ready(self, name: str, ready: bool) -> None:
        node = self.kube.core.read_node(name)
        for condition in node.status.conditions:
            if condition.type == "Ready":
                condition.status = "True" if ready else "False"
        self.kube.core.replace_node_status(name, node)


@pytest.fixture
def cloud(aws: AwsLayer, kube: Kube, settings) -> Iterator[Cloud]:
    settings.CLUSTER_NAME = CLUSTER
    settings.KUBE_CONFIG_PATH = str(kube.kubeconfig_path)
    settings.KUBE_REQUEST_TIMEOUT = 5.0
    settings.S3_BUCKETS = []
    adapter.clients_clear()
    k8s.reset_client()
    yield Cloud(aws, kube)
    k8s.reset_client()
    adapter.clients_clear()


def kubeconfig_to_nowhere(cloud: Cloud, folder: Path) -> Path:
    """A copy of the simulator's kubeconfig naming a loopback port nothing listens on."""
    text = cloud.kube.kubeconfig_path.read_text()
    server = re.search(r"server: (\S+)", text).group(1)
    path = folder / "kubeconfig-nowhere"
    path.write_text(text.replace(server, f"http://127.0.0.1:{free_port()}"))
    return path


@pytest.fixture
def one_attempt(settings) -> None:
    """No boto3 retries: an injected error reaches the adapter from the first call."""
    settings.AWS_MAX_ATTEMPTS = 1
    adapter.clients_clear()


# --- Rows for page and command tests (the database is all pages read) ----------------------------
_counter = iter(range(1, 10**6))


def node_make(**fields: Any) -> Node:
    """A node record as the sync leaves it; running on-demand m5.xlarge by default."""
    number = next(_counter)
    now = clock.now()
    values: dict[str, Any] = {
        "instance_id": f"i-{number:017x}",
        "node_name": f"ip-10-0-0-{number}.eu-west-1.compute.internal",
        "pool": "spark",
        "instance_type": "m5.xlarge",
        "capacity_type": "on-demand",
        "zone": "eu-west-1a",
        "state": NodeState.RUNNING,
        "ready": True,
        "cpu": Decimal("3.92"),
        "memory_bytes": 16 * 1024**3,
        "gpus": 0,
        "launched_at": now,
        "owner": "bob",
        "first_seen_at": now,
    }
    values.update(fields)
    return Node.objects.create(**values)


def sync_ok(at: datetime | None = None, **errors: str) -> None:
    """Record the inventory parts as last succeeding at ``at`` (``part="error"`` adds a newer
    failure)."""
    at = at or clock.now()
    for name in ("ec2", "kubernetes", "storage"):
        SyncPart.objects.update_or_create(name=name, defaults={"last_ok_at": at, "last_error": ""})
    for name, error in errors.items():
        SyncPart.objects.filter(name=name).update(last_error=error, last_error_at=clock.now())
