"""The cloud bridge: EC2 instances launched through boto3 (real HTTP to the AWS layer) join the
simulated cluster as Nodes, which the official Kubernetes client then sees.

Instances join through the join script of docs/node-join.md (``kubeadm join`` with a bootstrap
token; tests/sandbox/test_node_join.py has the refusals). Kubernetes documentation: "Nodes ›
Self-registration of Nodes" (kubelet ``--node-labels``, ``--register-with-taints``),
"Well-Known Labels, Annotations and Taints", "Cloud Controller Manager › Node controller"
(providerID, deleting Nodes of deleted instances),
"Reserve Compute Resources for System Daemons", "Schedule GPUs", "Pod Lifecycle › Pod garbage
collection". AWS: the EKS AMI's max-pods and kube-reserved formulas.
"""

from __future__ import annotations

import base64
import gzip
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sandbox.kube import ControllerOptions, bootstrap
from sandbox.kube.bridge import UserDataError, kubelet_flags, node_resources, parse_user_data
from tests.fixtures.kube import Kube, deployment_manifest, wait_until
from tests.fixtures.services import instances_wait

pytestmark = pytest.mark.simulator_only

REGION = "eu-west-1"
CLUSTER = "cw-test"
TIMEOUT = 10
GPU_LABELS = {
    "clusterweb.io/pool": "gpu",
    "clusterweb.io/owner": "bob",
    "clusterweb.io/request": "42",
    "clusterweb.io/capacity-type": "spot",
    "clusterweb.io/profile": "gpu",
}
GPU_TAINTS = ["nvidia.com/gpu=present:NoSchedule", "clusterweb.io/request=42:NoSchedule"]


@pytest.fixture
def ec2(aws) -> Any:
    return boto3.client("ec2", region_name=REGION, config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def image_id(moto_server) -> str:
    """moto's stock AMIs survive its resets: look one up once (it takes moto ~0.5 s)."""
    client = boto3.client("ec2", region_name=REGION)
    return client.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def launch(
    ec2: Any,
    image_id: str,
    instance_type: str = "t2.small",
    *,
    tags: dict[str, str] | None = None,
    spot: bool = False,
    user_data: str = "",
    zone: str = "eu-west-1a",
    wait: bool = True,
) -> str:
    """Launch one instance; with ``wait``, return once it runs: the bridge (as a kubelet) acts
    only on a running instance, and a pending one is merely waited for."""
    tags = {"clusterweb:cluster": CLUSTER, **(tags or {})}
    extra: dict[str, Any] = {}
    if spot:
        extra["InstanceMarketOptions"] = {"MarketType": "spot"}
    if user_data:
        extra["UserData"] = user_data
    answer = ec2.run_instances(
        ImageId=image_id,
        InstanceType=instance_type,
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": zone},
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
        **extra,
    )
    instance_id = answer["Instances"][0]["InstanceId"]
    if wait:
        instances_wait(ec2, [instance_id], "running")
    return instance_id


def describe(ec2: Any, instance_id: str) -> dict[str, Any]:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def node_ready(name: str):
    def check(nodes: dict[str, Any]) -> bool:
        conditions = nodes.get(name, {}).get("status", {}).get("conditions", ())
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    return check


def test_a_tagged_gpu_spot_instance_joins_as_a_tainted_node_then_becomes_ready(
    kube: Kube, aws, ec2, image_id
) -> None:
    """Self-registration of Nodes and the cloud node controller: a running g4dn.xlarge with the
    cluster tag becomes a Node named by its private DNS name, with providerID
    aws:///ZONE/ID, the well-known and Clusterweb labels, capacity and allocatable from its
    instance type (no GPU yet: the device plugin is not running), and its
    --register-with-taints taints from the first moment, while it is still NotReady (tainted
    not-ready); it is Ready after the kubelet's start-up."""
    kube.controllers()
    instance_id = launch(
        ec2,
        image_id,
        "g4dn.xlarge",
        spot=True,
        zone="eu-west-1b",
        user_data=kube.join_script(GPU_LABELS, GPU_TAINTS),
        tags={"clusterweb:pool": "gpu", "clusterweb:owner": "bob", "clusterweb:request": "42"},
    )
    instance = describe(ec2, instance_id)
    name = instance["PrivateDnsName"]
    start = kube.core.list_node(_request_timeout=TIMEOUT).metadata.resource_version
    kube.cloud_bridge(CLUSTER, aws_env=aws.env(), ready_delay=0.3, interval=0.05).start()

    # Every state the node goes through, from a watch: (Ready status, taints).
    history: list[tuple[str, tuple[tuple[str, str], ...]]] = []

    def settled(seen: dict[str, Any]) -> bool:
        got = seen.get(name)
        if got:
            ready = next(c["status"] for c in got["status"]["conditions"] if c["type"] == "Ready")
            keys = tuple(sorted((t["key"], t["effect"]) for t in got["spec"].get("taints", ())))
            if not history or history[-1] != (ready, keys):
                history.append((ready, keys))
        return bool(history) and history[-1][0] == "True" and "not-ready" not in str(history[-1])

    node = wait_until(kube.core.list_node, until=settled, since=start)[name]
    gpu = ("nvidia.com/gpu", "NoSchedule")
    request = ("clusterweb.io/request", "NoSchedule")
    assert history[0] == (
        "False",
        tuple(sorted([gpu, request, ("node.kubernetes.io/not-ready", "NoSchedule")])),
    )
    assert history[-1] == ("True", (request, gpu))

    labels = node["metadata"]["labels"]
    assert {k: labels[k] for k in labels if not k.startswith("beta.")} == {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "g4dn.xlarge",
        "topology.kubernetes.io/zone": "eu-west-1b",
        **GPU_LABELS,
    }
    assert node["spec"]["providerID"] == f"aws:///eu-west-1b/{instance_id}"
    assert node["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
        {"key": "clusterweb.io/request", "value": "42", "effect": "NoSchedule"},
    ]
    capacity, allocatable = node["status"]["capacity"], node["status"]["allocatable"]
    assert (capacity["cpu"], capacity["pods"]) == ("4", "29")
    # No GPU until the NVIDIA device plugin runs there (test_daemonsets.py).
    assert "nvidia.com/gpu" not in capacity and "nvidia.com/gpu" not in allocatable
    assert allocatable["cpu"] == "3920m"  # 80m kube-reserved for 4 cores
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == instance["PrivateIpAddress"]


def test_instances_without_the_cluster_tag_or_not_running_do_not_join(
    kube: Kube, aws, ec2, image_id
) -> None:
    """Cluster membership is the ``clusterweb:cluster`` tag (CONVENTIONS.md): instances of
    another cluster, untagged ones and stopped ones get no Node."""
    script = kube.join_script({"clusterweb.io/capacity-type": "on-demand"})
    launch(ec2, image_id, tags={"clusterweb:cluster": "other"}, user_data=script)
    ec2.run_instances(ImageId=image_id, InstanceType="t2.micro", MinCount=1, MaxCount=1)
    stopped = launch(ec2, image_id, user_data=script)  # running: EC2 refuses to stop a pending one
    ec2.stop_instances(InstanceIds=[stopped])
    member = launch(ec2, image_id, "t2.micro", user_data=script)
    bridge = kube.cloud_bridge(CLUSTER, aws_env=aws.env())
    report = bridge.sync_once()
    names = [n.metadata.name for n in kube.core.list_node(_request_timeout=TIMEOUT).items]
    assert names == [describe(ec2, member)["PrivateDnsName"]]
    assert report.registered == names
    node = kube.core.read_node(names[0], _request_timeout=TIMEOUT)
    assert node.metadata.labels["clusterweb.io/capacity-type"] == "on-demand"
    # t2.micro: 2 ENIs x (2 - 1) + 2 pods; 1 GiB less kernel, kube-reserved and eviction.
    assert node.status.capacity["pods"] == "4"
    assert node.status.allocatable["memory"] == "587571Ki"
    assert "nvidia.com/gpu" not in node.status.capacity


def test_kubelet_flags_a_kubelet_would_refuse_keep_the_instance_out(
    kube: Kube, aws, ec2, image_id
) -> None:
    """Well-Known Labels › NodeRestriction: a kubelet may not label itself in kubernetes.io
    outside the allowed set; it refuses to start, so the instance never becomes a Node."""
    refused = launch(ec2, image_id, user_data=kube.join_script({"kubernetes.io/x": "y"}))
    bridge = kube.cloud_bridge(CLUSTER, aws_env=aws.env())
    bridge.sync_once()
    assert kube.core.list_node(_request_timeout=TIMEOUT).items == []
    assert "unknown 'kubernetes.io' or 'k8s.io' labels" in bridge.problems[refused]


def test_a_terminated_instance_s_node_is_removed_and_its_pods_fail_and_are_replaced(
    kube: Kube, aws, ec2, image_id
) -> None:
    """Cloud Controller Manager › Node controller deletes the Node of an instance that is gone
    (here a spot interruption); Pod garbage collection then fails and deletes its pods
    (DeletionByPodGC), and the Deployment's replacement runs on the node that remains."""
    kube.controllers()
    spark = kube.join_script({"clusterweb.io/pool": "spark"})
    spot = launch(ec2, image_id, "m5.xlarge", spot=True, user_data=spark)
    bridge = kube.cloud_bridge(CLUSTER, aws_env=aws.env())
    bridge.sync_once()
    spot_node = describe(ec2, spot)["PrivateDnsName"]
    ns = kube.namespace()
    body = deployment_manifest("worker", replicas=1)
    body["spec"]["template"]["spec"]["nodeSelector"] = {"clusterweb.io/pool": "spark"}
    kube.apps.create_namespaced_deployment(ns, body, _request_timeout=TIMEOUT)
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: any(x["status"].get("phase") == "Running" for x in p.values()),
    )
    (first,) = pods
    assert pods[first]["spec"]["nodeName"] == spot_node
    on_demand = launch(ec2, image_id, "m5.xlarge", user_data=spark)
    bridge.sync_once()

    interruption = aws.spot_interrupt(spot)
    assert interruption.instance_id == spot
    instances_wait(ec2, [spot], "terminated")  # shutting-down first, as on EC2
    assert describe(ec2, spot)["StateReason"]["Code"] == "Server.SpotInstanceTermination"
    report = bridge.sync_once()
    assert report.removed == [spot_node]
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: (
            first not in p and any(x["status"].get("phase") == "Running" for x in p.values())
        ),
    )
    (replacement,) = pods.values()
    assert replacement["spec"]["nodeName"] == describe(ec2, on_demand)["PrivateDnsName"]
    events = kube.core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={spot_node}", _request_timeout=TIMEOUT
    ).items
    assert "DeletingNode" in {e.reason for e in events}


def test_a_stopped_instance_s_node_stays_unknown_and_shut_down_until_it_starts_again(
    kube: Kube, aws, ec2, image_id
) -> None:
    """Cloud Controller Manager: the Node of a stopped (not terminated) instance stays, with
    its conditions Unknown and the node.cloudprovider.kubernetes.io/shutdown taint; it is
    Ready again after the instance starts."""
    kube.controllers()
    instance_id = launch(ec2, image_id, user_data=kube.join_script())
    bridge = kube.cloud_bridge(CLUSTER, aws_env=aws.env())
    bridge.sync_once()
    name = describe(ec2, instance_id)["PrivateDnsName"]
    ec2.stop_instances(InstanceIds=[instance_id])
    instances_wait(ec2, [instance_id], "stopped")  # stopping first, as on EC2
    bridge.sync_once()
    node = kube.core.read_node(name, _request_timeout=TIMEOUT)
    assert {c.status for c in node.status.conditions} == {"Unknown"}
    assert {"node.cloudprovider.kubernetes.io/shutdown"} <= {t.key for t in node.spec.taints}
    ec2.start_instances(InstanceIds=[instance_id])
    report = bridge.sync_once()  # pending, or running and back NotReady first
    assert name not in report.ready
    bridge.wait_ready(TIMEOUT)
    wait_until(
        kube.core.list_node,
        until=lambda n: (
            node_ready(name)(n)
            and not any(t["key"].startswith("node.") for t in n[name]["spec"].get("taints", ()))
        ),
    )


def test_bootstrap_brings_up_the_sandbox_cluster(kube: Kube, aws, ec2, image_id) -> None:
    """What ``make run`` shows: the always-on instances as Ready nodes (the control node
    marked as a kubeadm control plane), the spark and jupyter namespaces, and the Spark master
    Deployment and Service, its pod running on an admin node."""
    assert kube.simulator is not None
    control = kube.join_script({"clusterweb.io/pool": "control"})
    launch(ec2, image_id, "t2.micro", user_data=control)
    admin_script = kube.join_script({"clusterweb.io/pool": "admin"})
    admin = {launch(ec2, image_id, "t2.small", user_data=admin_script) for _ in "ab"}
    admin_nodes = {describe(ec2, i)["PrivateDnsName"] for i in admin}
    cluster = bootstrap(
        kube.simulator,
        cluster=CLUSTER,
        aws_env=aws.env(),
        ready_delay=0.05,
        interval=0.2,
        controller_options=ControllerOptions(pod_start_delay=0.02),
        timeout=20,
    )
    try:
        nodes = kube.core.list_node(_request_timeout=TIMEOUT).items
        assert len(nodes) == 3
        assert all(
            any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
            for n in nodes
        )
        (control,) = [n for n in nodes if n.metadata.labels["clusterweb.io/pool"] == "control"]
        assert "node-role.kubernetes.io/control-plane" in control.metadata.labels
        assert [(t.key, t.effect) for t in control.spec.taints] == [
            ("node-role.kubernetes.io/control-plane", "NoSchedule")
        ]
        namespaces = {n.metadata.name for n in kube.core.list_namespace().items}
        assert {"spark", "jupyter"} <= namespaces
        service = kube.core.read_namespaced_service("spark-master", "spark")
        assert {p.port for p in service.spec.ports} == {7077, 8080}
        (pod,) = kube.core.list_namespaced_pod(
            "spark", label_selector="app.kubernetes.io/component=master"
        ).items
        assert pod.status.phase == "Running"
        assert pod.spec.node_name in admin_nodes
        assert cluster.bridge.running
    finally:
        cluster.stop()
    assert not cluster.bridge.running


# -- the launch contract, as pure functions ------------------------------------------------------


def test_kubelet_flags_give_labels_and_taints() -> None:
    flags = {
        "node-labels": "clusterweb.io/pool=jupyter,clusterweb.io/owner=alice",
        "register-with-taints": "clusterweb.io/request=7:NoSchedule,dedicated:NoExecute",
    }
    assert kubelet_flags(flags) == (
        {"clusterweb.io/pool": "jupyter", "clusterweb.io/owner": "alice"},
        [
            {"key": "clusterweb.io/request", "value": "7", "effect": "NoSchedule"},
            {"key": "dedicated", "effect": "NoExecute"},
        ],
    )
    assert kubelet_flags({}) == ({}, [])


@pytest.mark.parametrize(
    "flags",
    [
        {"node-labels": "node-restriction.kubernetes.io/x=y"},
        {"node-labels": "node-role.kubernetes.io/worker="},
        {"node-labels": "bad/key/x=1"},
        {"node-labels": "novalue"},
        {"register-with-taints": "k=v:Sometimes"},
        {"register-with-taints": "novalue"},
        {"register-with-taints": "a:NoSchedule,a=b:NoSchedule"},
    ],
)
def test_kubelet_flags_a_kubelet_refuses_are_errors(flags: dict[str, str]) -> None:
    with pytest.raises(UserDataError):
        kubelet_flags(flags)


def test_user_data_may_be_gzipped() -> None:
    """cloud-init accepts gzip-compressed user data; the API returns it base64-encoded."""
    script = "#!/bin/bash\necho hello\n"
    raw = base64.b64encode(gzip.compress(script.encode())).decode()
    assert parse_user_data(raw) == script


def test_allocatable_follows_the_eks_ami_reservations() -> None:
    """Reserve Compute Resources for System Daemons, with the EKS AMI's kube-reserved:
    CPU 6% of the first core, 1% of the second, 0.5% of cores 3-4; memory 255 MiB + 11 MiB per
    pod; plus the 100 MiB hard eviction threshold."""
    m5_xlarge = {
        "VCpuInfo": {"DefaultVCpus": 4},
        "MemoryInfo": {"SizeInMiB": 16384},
        "NetworkInfo": {"MaximumNetworkInterfaces": 4, "Ipv4AddressesPerInterface": 15},
    }
    capacity, allocatable = node_resources(m5_xlarge)
    assert capacity["pods"] == allocatable["pods"] == "58"
    assert allocatable["cpu"] == "3920m"
    memory_ki = int(16384 * 1024 * 0.95)
    assert capacity["memory"] == f"{memory_ki}Ki"
    assert allocatable["memory"] == f"{memory_ki - (255 + 11 * 58 + 100) * 1024}Ki"
