"""The inventory sync against the simulated AWS and Kubernetes over real HTTP: every tagged
instance becomes a node record merged with its Kubernetes node by providerID; transitions, spot
interruptions, volumes, Elastic IPs and storage sizes are recorded; history is never deleted; a
second run changes nothing; each part succeeds or fails on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.forms.models import model_to_dict

from clusterweb import clock
from clusterweb.integrations import aws as adapter
from clusterweb.integrations import k8s
from provisioning import inventory
from provisioning.models import (
    ElasticAddress,
    Node,
    NodeEvent,
    StoredData,
    SyncPart,
    Volume,
)
from tests.provisioning.conftest import kubeconfig_to_nowhere

pytestmark = pytest.mark.django_db
GIB = 1024**3


def test_every_tagged_instance_becomes_a_node_record_with_its_ec2_facts(cloud):
    [spot] = cloud.launch(spot=True, instance_type="m5.xlarge", zone="eu-west-1b", owner="bob")
    [base] = cloud.launch(pool="admin", instance_type="t2.small", zone="eu-west-1a", owner=None)
    cloud.launch(cluster="someone-else")
    cloud.launch(cluster=None)

    result = inventory.inventory_sync()

    assert result.parts["ec2"].ok and result.parts["ec2"].summary["created"] == 2
    node = Node.objects.get(instance_id=spot)
    assert (node.pool, node.instance_type, node.capacity_type, node.zone, node.state) == (
        "spark", "m5.xlarge", "spot", "eu-west-1b", "running",
    )  # fmt: skip
    assert node.owner == "bob" and node.public_ipv4 and node.launched_at.tzinfo is not None
    assert node.ready is None  # no Kubernetes node registered for it (yet)
    assert Node.objects.get(instance_id=base).capacity_type == "on-demand"
    assert Node.objects.count() == 2  # members only: the tag decides
    first = NodeEvent.objects.get(node=node)
    assert (first.from_state, first.to_state, first.at) == ("", "running", node.launched_at)


def test_a_kubernetes_node_is_merged_into_its_instance_by_provider_id(cloud):
    [gpu] = cloud.launch(pool="gpu", instance_type="g4dn.xlarge", spot=True, zone="eu-west-1a")
    name = cloud.register(gpu, zone="eu-west-1a", pool="gpu", cpu="3920m", memory="15Gi", gpus=1)
    stranger = cloud.kube.node("ip-10-9-9", provider_id="aws:///eu-west-1a/i-0000000000000dead")

    result = inventory.inventory_sync()

    node = Node.objects.get(instance_id=gpu)
    assert node.node_name == name and node.ready is True
    assert (node.cpu, node.memory_bytes, node.gpus) == (Decimal("3.92"), 15 * GIB, 1)
    summary = result.parts["kubernetes"].summary
    assert summary["merged"] == 1 and stranger in summary["unmatched"]
    event = NodeEvent.objects.get(node=node, kind="kubernetes")
    assert (event.from_state, event.to_state) == ("absent", "ready")

    cloud.set_ready(name, False)
    inventory.inventory_sync()
    node.refresh_from_db()
    assert node.ready is False
    assert NodeEvent.objects.filter(node=node, kind="kubernetes").last().to_state == "not_ready"


def test_volumes_elastic_ips_and_public_ipv4_addresses_are_recorded(cloud):
    [instance] = cloud.launch(zone="eu-west-1a")
    ec2 = adapter.client("ec2")
    tag = [{"Key": "clusterweb:cluster", "Value": "sandbox"}]
    data = ec2.create_volume(
        Size=500, VolumeType="gp3", AvailabilityZone="eu-west-1a",
        TagSpecifications=[{"ResourceType": "volume", "Tags": tag}],
    )["VolumeId"]  # fmt: skip
    idle = ec2.allocate_address(
        Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": tag}]
    )
    ec2.allocate_address(Domain="vpc")  # not ours

    inventory.inventory_sync()

    root = Volume.objects.get(instance_id=instance)
    assert root.node.instance_id == instance and root.size_gib == 8 and root.deleted_at is None
    assert Volume.objects.get(volume_id=data).size_gib == 500
    assert Volume.objects.count() == 2
    address = ElasticAddress.objects.get()
    assert address.public_ip == idle["PublicIp"] and address.instance_id == ""
    assert Node.objects.get(instance_id=instance).public_ipv4

    ec2.release_address(AllocationId=idle["AllocationId"])
    ec2.delete_volume(VolumeId=data)
    inventory.inventory_sync()
    assert ElasticAddress.objects.get().released_at is not None
    assert Volume.objects.get(volume_id=data).deleted_at is not None  # kept, marked gone


def test_efs_and_s3_sizes_come_from_cloudwatch(cloud, settings):
    tag = {"Key": "clusterweb:cluster", "Value": "sandbox"}
    efs = adapter.client("efs")
    fs = efs.create_file_system(CreationToken="home", Tags=[tag, {"Key": "Name", "Value": "home"}])
    efs.create_file_system(CreationToken="other")
    s3 = adapter.client("s3")
    location = {"LocationConstraint": "eu-west-1"}
    for bucket in ("cw-data", "cw-logs", "unrelated"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
    s3.put_bucket_tagging(Bucket="cw-data", Tagging={"TagSet": [tag]})
    cloud.aws.efs_size_set(fs["FileSystemId"], 3 * GIB)
    cloud.aws.s3_size_set("cw-data", 5 * GIB)
    cloud.aws.s3_size_set("cw-logs", 2 * GIB)

    result = inventory.inventory_sync()

    assert result.parts["storage"].ok, result.parts["storage"].error
    sizes = {(r.service, r.resource): r.size_bytes for r in StoredData.objects.all()}
    assert sizes == {("efs", fs["FileSystemId"]): 3 * GIB, ("s3", "cw-data"): 5 * GIB}
    s3_row = StoredData.objects.get(service="s3")
    midnight = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    assert s3_row.measured_at == midnight  # S3 publishes once a day

    settings.S3_BUCKETS = ["cw-logs"]  # named buckets replace the tag search
    inventory.inventory_sync()
    assert StoredData.objects.get(resource="cw-logs").size_bytes == 2 * GIB
    assert StoredData.objects.get(resource="cw-data").gone_at is not None


def test_a_spot_interruption_is_recorded_from_the_state_reason(cloud):
    [instance] = cloud.launch(spot=True)
    name = cloud.register(instance)
    inventory.inventory_sync()

    cloud.aws.spot_interrupt(instance)
    cloud.settle(instance, state="terminated")
    cloud.kube.core.delete_node(name)
    inventory.inventory_sync()

    node = Node.objects.get(instance_id=instance)
    assert node.state == "terminated" and node.state_reason == "Server.SpotInstanceTermination"
    # EC2's StateTransitionReason "Service initiated (YYYY-MM-DD HH:MM:SS GMT)" dates it.
    assert node.terminated_at == inventory.transition_time(node.state_transition_reason)
    assert node.spot_interrupted_at == node.terminated_at
    assert node.ready is None and node.node_name == name  # left the cluster, name kept
    kinds = list(NodeEvent.objects.filter(node=node).values_list("kind", "from_state", "to_state"))
    assert ("state", "running", "terminated") in kinds
    assert ("spot_interruption", "running", "terminated") in kinds
    interruption = NodeEvent.objects.get(node=node, kind="spot_interruption")
    assert "Server.SpotInstanceTermination" in interruption.reason


def test_a_terminated_node_keeps_its_record_and_lifetime(cloud):
    [instance] = cloud.launch()
    inventory.inventory_sync()
    cloud.terminate(instance)
    inventory.inventory_sync()

    node = Node.objects.get(instance_id=instance)
    assert node.state == "terminated" and node.terminated_at is not None
    assert node.state_reason == "Client.UserInitiatedShutdown"
    assert node.uptime(clock.now() + timedelta(days=3)) == node.terminated_at - node.launched_at


def test_an_instance_ec2_no_longer_reports_is_marked_terminated_not_deleted(cloud):
    [instance] = cloud.launch()
    inventory.inventory_sync()
    cloud.aws.reset()  # gone from describe_instances, as terminated instances are after an hour

    inventory.inventory_sync()

    node = Node.objects.get(instance_id=instance)
    assert node.state == "terminated" and node.terminated_at is not None
    assert NodeEvent.objects.filter(node=node).last().reason == inventory.VANISHED_REASON


def test_terminated_time_comes_from_the_transition_reason():
    reason = "User initiated (2026-11-29 07:02:39 GMT)"
    assert inventory.transition_time(reason) == datetime(2026, 11, 29, 7, 2, 39, tzinfo=UTC)
    assert inventory.transition_time("") is None


def _snapshot() -> dict:
    return {
        "nodes": [model_to_dict(n) for n in Node.objects.order_by("pk")],
        "events": list(NodeEvent.objects.order_by("pk").values()),
        "volumes": list(Volume.objects.order_by("pk").values()),
        "addresses": list(ElasticAddress.objects.order_by("pk").values()),
        "stored": list(StoredData.objects.order_by("pk").values()),
    }


def test_running_the_sync_twice_changes_nothing_the_second_time(cloud):
    [spot] = cloud.launch(spot=True)
    [gone] = cloud.launch(pool="jupyter")
    cloud.register(spot)
    adapter.client("efs").create_file_system(
        CreationToken="home", Tags=[{"Key": "clusterweb:cluster", "Value": "sandbox"}]
    )
    cloud.terminate(gone)
    inventory.inventory_sync()
    before = _snapshot()

    second = inventory.inventory_sync()

    assert second.ok
    assert second.parts["ec2"].summary["unchanged"] == 2
    assert second.parts["kubernetes"].summary["changed"] == 0
    assert _snapshot() == before


def test_kubernetes_down_does_not_stop_the_ec2_part(cloud, settings, tmp_path):
    cloud.launch()
    inventory.inventory_sync()
    kube_ok = SyncPart.objects.get(name="kubernetes").last_ok_at
    settings.KUBE_CONFIG_PATH = str(kubeconfig_to_nowhere(cloud, tmp_path))
    k8s.reset_client()
    cloud.launch(pool="gpu", instance_type="g4dn.xlarge")

    result = inventory.inventory_sync(now=clock.now() + timedelta(seconds=60))

    assert result.parts["ec2"].ok and result.parts["storage"].ok
    assert not result.parts["kubernetes"].ok and result.parts["kubernetes"].transient
    assert Node.objects.count() == 2
    parts = {p.name: p for p in SyncPart.objects.all()}
    assert parts["ec2"].last_ok_at > kube_ok
    assert parts["kubernetes"].last_ok_at == kube_ok and parts["kubernetes"].failing
    assert parts["kubernetes"].last_error.startswith("kubernetes unreachable: list nodes")


def test_aws_throttling_fails_the_ec2_part_only_and_keeps_the_last_known_state(cloud, one_attempt):
    [instance] = cloud.launch()
    inventory.inventory_sync()
    ec2_ok = SyncPart.objects.get(name="ec2").last_ok_at
    cloud.aws.fault_inject("DescribeInstances", "RequestLimitExceeded", times=None)

    result = inventory.inventory_sync(now=clock.now() + timedelta(seconds=60))

    assert not result.parts["ec2"].ok and result.parts["ec2"].transient
    assert result.parts["ec2"].error.startswith("aws RequestLimitExceeded")
    assert result.parts["kubernetes"].ok
    part = SyncPart.objects.get(name="ec2")
    assert part.last_ok_at == ec2_ok and part.failing
    assert Node.objects.get(instance_id=instance).state == "running"  # last known state


@pytest.mark.simulator_only
def test_nodes_the_cloud_bridge_registers_are_merged_and_their_end_recorded(cloud):
    script = cloud.kube.join_script({"clusterweb.io/pool": "spark"})  # docs/node-join.md
    [spot] = cloud.launch(spot=True, zone="eu-west-1c", owner="bob", user_data=script)
    bridge = cloud.kube.cloud_bridge("sandbox", aws_env=cloud.aws.env())
    bridge.wait_ready(10)

    inventory.inventory_sync()

    node = Node.objects.get(instance_id=spot)
    assert node.ready is True and node.node_name.endswith(".compute.internal")
    assert node.cpu > 0 and node.memory_bytes > 0 and node.gpus == 0

    cloud.aws.spot_interrupt(spot)
    cloud.settle(spot, state="terminated")
    bridge.sync_once()  # the cloud controller manager deletes the Node of a gone instance
    inventory.inventory_sync()

    node.refresh_from_db()
    assert (node.state, node.ready) == ("terminated", None)
    assert node.spot_interrupted_at is not None
    readiness = NodeEvent.objects.filter(node=node, kind="kubernetes").values_list(
        "to_state", flat=True
    )
    assert list(readiness) == ["ready", "absent"]


def test_volumes_carry_their_provisioned_iops_and_throughput_and_a_modification(cloud):
    """Issue 14 finding 5: EC2's Iops and Throughput (describe_volumes) are stored, and the
    figures a modified volume reports replace them at the next sync."""
    ec2 = adapter.client("ec2")
    tag = [{"Key": "clusterweb:cluster", "Value": "sandbox"}]
    spec = {"AvailabilityZone": "eu-west-1a",
            "TagSpecifications": [{"ResourceType": "volume", "Tags": tag}]}  # fmt: skip
    io2 = ec2.create_volume(Size=100, VolumeType="io2", Iops=10_000, **spec)["VolumeId"]
    gp3 = ec2.create_volume(Size=100, VolumeType="gp3", Iops=6_000, Throughput=250, **spec)
    magnetic = ec2.create_volume(Size=100, VolumeType="standard", **spec)["VolumeId"]

    inventory.inventory_sync()

    assert (
        Volume.objects.get(volume_id=io2).iops,
        Volume.objects.get(volume_id=io2).volume_type,
    ) == (10_000, "io2")
    fast = Volume.objects.get(volume_id=gp3["VolumeId"])
    assert (fast.iops, fast.throughput) == (6_000, 250)
    assert Volume.objects.get(volume_id=magnetic).throughput is None

    ec2.modify_volume(VolumeId=gp3["VolumeId"], Iops=3_000, Throughput=125)
    inventory.inventory_sync()

    fast.refresh_from_db()
    assert (fast.iops, fast.throughput) == (3_000, 125)
