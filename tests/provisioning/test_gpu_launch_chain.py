"""Issue 12's chain, end to end with objects it makes itself: boto3 launches a GPU spot
instance from the gpu pool's launch template with a join script (the product's generator) and a
freshly minted bootstrap token → the cloud bridge registers a tainted, labelled node with its
provider ID → the NVIDIA device plugin's DaemonSet makes its GPU allocatable → a GPU pod with the
right toleration schedules there → terminating the instance removes the node."""

from __future__ import annotations

import time

import pytest

from clusterweb.integrations import aws as adapter
from provisioning.models import Pool
from sandbox.kube.cluster import system_daemonsets
from sandbox.pools import sandbox_pools_seed
from tests.fixtures.kube import pod_manifest, wait_until

pytestmark = [pytest.mark.django_db, pytest.mark.simulator_only]

TIMEOUT = 10


def _unschedulable(name: str):
    def check(pods: dict) -> bool:
        conditions = pods.get(name, {}).get("status", {}).get("conditions", ())
        return any(c.get("reason") == "Unschedulable" for c in conditions)

    return check


def test_a_gpu_spot_instance_joins_gets_its_gpu_runs_a_gpu_pod_and_leaves(cloud) -> None:
    kube = cloud.kube
    assert kube.simulator is not None
    kube.controllers()
    sandbox_pools_seed()
    pool = Pool.objects.get(slug="gpu")
    ns = kube.namespace()
    gpu_pod = pod_manifest("train", resources={"limits": {"nvidia.com/gpu": "1"}})
    gpu_pod["spec"]["tolerations"] = [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    gpu_pod["spec"]["nodeSelector"] = {"clusterweb.io/pool": "gpu"}
    kube.core.create_namespaced_pod(ns, gpu_pod, _request_timeout=TIMEOUT)

    # A fresh token and the pool's join script override the template's user data.
    script = kube.join_script(pool.labels, pool.taints)
    answer = adapter.client("ec2").run_instances(
        LaunchTemplate={"LaunchTemplateId": pool.launch_template_id},
        InstanceType="g4dn.xlarge",
        MinCount=1,
        MaxCount=1,
        UserData=script,
        InstanceMarketOptions={"MarketType": "spot"},
        Placement={"AvailabilityZone": "eu-west-1b"},
    )
    instance = answer["Instances"][0]
    instance_id = instance["InstanceId"]
    bridge = kube.cloud_bridge("sandbox", aws_env=cloud.aws.env())
    report = bridge.wait_ready(TIMEOUT)
    assert bridge.problems == {}
    described = adapter.client("ec2").describe_instances(InstanceIds=[instance_id])
    name = described["Reservations"][0]["Instances"][0]["PrivateDnsName"]
    assert name in report.ready or name in bridge.members().values()

    node = kube.core.read_node(name, _request_timeout=TIMEOUT)
    assert node.spec.provider_id == f"aws:///eu-west-1b/{instance_id}"
    labels = node.metadata.labels
    assert labels["clusterweb.io/pool"] == "gpu"
    assert labels["clusterweb.io/capacity-type"] == "spot"
    assert labels["node.kubernetes.io/instance-type"] == "g4dn.xlarge"
    assert labels["topology.kubernetes.io/zone"] == "eu-west-1b"
    assert [(t.key, t.value, t.effect) for t in node.spec.taints or ()] == [
        ("nvidia.com/gpu", "present", "NoSchedule")
    ]
    assert "nvidia.com/gpu" not in node.status.allocatable

    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: (
            _unschedulable("train")(p)
            and "Insufficient nvidia.com/gpu" in str(p["train"]["status"]["conditions"])
        ),
    )
    assert pods["train"]["spec"].get("nodeName") is None

    plugin = next(d for d in system_daemonsets() if "nvidia" in d["metadata"]["name"])
    kube.apps.create_namespaced_daemon_set("kube-system", plugin, _request_timeout=TIMEOUT)
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: p.get("train", {}).get("status", {}).get("phase") == "Running",
    )
    assert pods["train"]["spec"]["nodeName"] == name
    assert kube.core.read_node(name).status.allocatable["nvidia.com/gpu"] == "1"

    adapter.client("ec2").terminate_instances(InstanceIds=[instance_id])
    # shutting-down, then terminated: the cloud controller manager deletes the Node.
    deadline = time.monotonic() + TIMEOUT
    while name in bridge.members().values() and time.monotonic() < deadline:
        bridge.sync_once()
        time.sleep(0.1)
    assert name not in {n.metadata.name for n in kube.core.list_node().items}
