"""Issue 15's chain, end to end with objects it made itself: boto3 launches a GPU spot instance
from the gpu pool's launch template with a join script → the node registers tainted and labelled
→ the NVIDIA device plugin makes its GPU allocatable → Clusterweb's JupyterHub adapter starts bob's
`gpu` server pinned to that launch through the shipped hub configuration → the real KubeSpawner
creates the pod, the single-user stand-in answers at the pod's address, the hub reports the server
ready and its URL opens after a hub login, through the hub's proxy → stopping the server and
terminating the instance remove the pod and the node.

The hub's proxy listens on a free port here (make run puts it on 127.0.0.1:8002)."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from django.test import override_settings

from clusterweb.integrations.jupyterhub import JupyterHub
from provisioning.services import pool_spec_clean
from sandbox.kube.cluster import system_daemonsets
from sandbox.pools import launch_template_ensure, sandbox_pool_data
from tests.fixtures.jupyterhub import hub_login
from tests.fixtures.kube import wait_until
from tests.fixtures.services import instances_wait

pytestmark = pytest.mark.simulator_only

REGION = "eu-west-1"
CLUSTER = "cw-chain"
TIMEOUT = 10
REQUEST = "42"
# What the launch's join script registers (CONVENTIONS.md: labels and taints come only from it).
LAUNCH_LABELS = {
    "clusterweb.io/pool": "gpu",
    "clusterweb.io/owner": "bob",
    "clusterweb.io/request": REQUEST,
    "clusterweb.io/capacity-type": "spot",
}
LAUNCH_TAINTS = ["nvidia.com/gpu=present:NoSchedule", f"clusterweb.io/request={REQUEST}:NoSchedule"]


def device_plugin() -> dict[str, Any]:
    """NVIDIA's device plugin DaemonSet as the sandbox cluster runs it. A launch's GPU node carries
    `clusterweb.io/request=ID:NoSchedule`: a plugin that does not tolerate it (NVIDIA's manifest
    alone) never runs there, so the GPU never becomes allocatable (found by this test; the
    deployment's plugin must carry the same toleration)."""
    plugin = next(d for d in system_daemonsets() if "nvidia" in d["metadata"]["name"])
    launch_toleration = {
        "key": "clusterweb.io/request",
        "operator": "Exists",
        "effect": "NoSchedule",
    }
    assert launch_toleration in plugin["spec"]["template"]["spec"]["tolerations"]
    return plugin


def test_a_gpu_launch_hosts_bobs_server_from_instance_to_open_notebook_and_back(
    aws, kube, jupyterhub
):
    ec2 = boto3.client("ec2", region_name=REGION, config=Config(retries={"max_attempts": 1}))
    kube.apps.create_namespaced_daemon_set("kube-system", device_plugin(), _request_timeout=TIMEOUT)

    # 1. boto3: a GPU spot instance from the gpu pool's launch template, with the launch's join
    #    script as its user data.
    gpu_pool = pool_spec_clean(next(p for p in sandbox_pool_data(REGION) if p["slug"] == "gpu"))
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    with override_settings(CLUSTER_NAME=CLUSTER, AWS_REGION=REGION):
        template_id = launch_template_ensure(gpu_pool, image_id)
    tags = {"clusterweb:cluster": CLUSTER, "clusterweb:pool": "gpu", "clusterweb:owner": "bob"}
    tags["clusterweb:request"] = REQUEST
    user_data = kube.join_script(LAUNCH_LABELS, LAUNCH_TAINTS)
    instance_id = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": template_id},
        InstanceType="g4dn.xlarge",
        MinCount=1,
        MaxCount=1,
        InstanceMarketOptions={"MarketType": "spot"},
        UserData=user_data,  # boto3 base64-encodes it
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )["Instances"][0]["InstanceId"]
    instances_wait(ec2, [instance_id], "running")
    kube.cloud_bridge(CLUSTER, aws_env=aws.env(), ready_delay=0.3, interval=0.05).start()

    # 2. The node registers tainted and labelled; 3. the device plugin makes its GPU allocatable.
    def gpu_node(nodes: dict[str, Any]) -> bool:
        return any(
            n["metadata"]["labels"].get("clusterweb.io/request") == REQUEST
            and n["status"].get("allocatable", {}).get("nvidia.com/gpu") == "1"
            for n in nodes.values()
        )

    nodes = wait_until(kube.core.list_node, until=gpu_node, timeout=30)
    (node,) = [n for n in nodes.values() if n["spec"].get("providerID", "").endswith(instance_id)]
    node_name = node["metadata"]["name"]
    assert {k: node["metadata"]["labels"][k] for k in LAUNCH_LABELS} == LAUNCH_LABELS
    assert {(t["key"], t.get("value")) for t in node["spec"]["taints"]} >= {
        ("nvidia.com/gpu", "present"),
        ("clusterweb.io/request", REQUEST),
    }

    # 4. Clusterweb's adapter starts bob's gpu server pinned to the launch.
    hub = JupyterHub(jupyterhub.url, jupyterhub.token, timeout=5)
    try:
        status = hub.server_start("bob", profile="gpu", request_id=REQUEST, wait_timeout=60)

        # 5. KubeSpawner's pod runs on the launch's node, at its own loopback address, and the
        #    stand-in answers there: the hub says ready, and the URL opens after a hub login.
        assert (status.state, status.profile) == ("ready", "gpu")
        assert status.url == f"{jupyterhub.url}/user/bob/"
        pod = kube.core.read_namespaced_pod("jupyter-bob", "jupyter", _request_timeout=TIMEOUT)
        assert pod.spec.node_name == node_name
        assert pod.spec.node_selector == {
            "clusterweb.io/pool": "gpu",
            "clusterweb.io/request": REQUEST,
        }
        assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
        assert ipaddress.ip_address(pod.status.pod_ip).is_loopback
        assert requests.get(status.url, timeout=TIMEOUT, allow_redirects=False).status_code in (
            302,
            303,
        ), "the server must not open without a hub login"
        opened = hub_login(jupyterhub.url, "bob").get(status.url, timeout=TIMEOUT)
        assert opened.status_code == 200, opened.text[:300]
        assert opened.url.startswith(status.url)

        # 6. Stopping the server removes its pod; terminating the instance removes the node.
        hub.server_stop("bob")
    finally:
        hub.close()
    assert kube.core.list_namespaced_pod("jupyter", _request_timeout=TIMEOUT).items == []
    ec2.terminate_instances(InstanceIds=[instance_id])
    instances_wait(ec2, [instance_id], "terminated")
    deadline = time.monotonic() + 30
    while node_name in {n.metadata.name for n in kube.core.list_node().items}:
        assert time.monotonic() < deadline, "the terminated instance's node is still there"
        time.sleep(0.1)
