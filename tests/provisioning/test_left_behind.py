"""Nothing left behind uncounted (issue 19, finding 2): an untagged EBS volume or Elastic IP seen
with one of the cluster's instances stays tracked after that instance terminates, until EC2 no
longer reports it, flagged *left behind* with the instance and owner it belonged to; the cost
refresh keeps counting it (AWS keeps billing it) and the Nodes page shows it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.costs.services import cost_rows_refresh
from billing.models import CostRow
from clusterweb import clock
from clusterweb.integrations import aws as adapter
from provisioning import inventory
from provisioning.models import ElasticAddress, Volume

pytestmark = pytest.mark.django_db


def leftovers(cloud, owner: str = "bob") -> tuple[str, str, dict]:
    """A running cluster instance of ``owner`` with an untagged data volume (kept on
    termination, EC2's default for an attached volume) and an untagged Elastic IP."""
    [instance] = cloud.launch(zone="eu-west-1a", owner=owner)
    ec2 = adapter.client("ec2")
    data = ec2.create_volume(Size=50, VolumeType="gp3", AvailabilityZone="eu-west-1a")["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=instance, Device="/dev/sdf")
    address = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=address["AllocationId"], InstanceId=instance)
    return instance, data, address


def synced() -> None:
    result = inventory.inventory_sync()
    assert result.parts["ec2"].ok, result.errors


def test_a_volume_and_an_address_left_by_a_terminated_instance_stay_tracked(cloud):
    instance, data, address = leftovers(cloud)
    synced()
    assert Volume.objects.get(volume_id=data).left_behind_at is None

    cloud.terminate(instance)
    synced()

    volume = Volume.objects.get(volume_id=data)
    assert volume.deleted_at is None and volume.left_behind_at is not None
    assert (volume.node.instance_id, volume.node.owner) == (instance, "bob")
    eip = ElasticAddress.objects.get(allocation_id=address["AllocationId"])
    assert eip.released_at is None and eip.left_behind_at is not None
    assert (eip.node.instance_id, eip.node.owner) == (instance, "bob")
    assert inventory.inventory_sync().parts["ec2"].summary["left_behind"] == 2

    # Until AWS says they are gone.
    ec2 = adapter.client("ec2")
    ec2.delete_volume(VolumeId=data)
    ec2.release_address(AllocationId=address["AllocationId"])
    synced()
    assert Volume.objects.get(volume_id=data).deleted_at is not None
    assert ElasticAddress.objects.get(allocation_id=address["AllocationId"]).released_at


def test_what_an_instance_left_behind_is_counted_to_its_owner_until_it_is_gone(cloud, shared_clock):
    instance, data, address = leftovers(cloud)
    synced()
    cloud.terminate(instance)
    synced()
    shared_clock.advance(3 * 3600)
    synced()

    cost_rows_refresh(now=clock.now())

    volume_rows = CostRow.objects.filter(resource_kind="volume", resource_id=data)
    after = clock.now() - timedelta(hours=2)
    assert volume_rows.filter(end__gt=after).exists()  # billed hours after the termination
    assert {row.owner for row in volume_rows} == {"bob"}
    assert "left behind" in volume_rows.latest("end").label
    eip_rows = CostRow.objects.filter(
        resource_kind="elastic-ip", resource_id=address["AllocationId"]
    )
    assert {row.owner for row in eip_rows} == {"bob"}
    assert sum(row.usage for row in eip_rows) >= Decimal(3)  # address-hours, idle included


def test_the_nodes_page_shows_what_was_left_behind_to_admins_and_to_its_owner(
    cloud, as_alice, as_bob
):
    mine, data, address = leftovers(cloud, owner="bob")
    theirs, other_data, _ = leftovers(cloud, owner="erin")
    synced()
    cloud.terminate(mine, theirs)
    synced()

    page = as_alice.get("/nodes/").content.decode()
    assert "Left behind: 4 still billed" in page
    assert data in page and other_data in page and address["PublicIp"] in page

    page = as_bob.get("/nodes/").content.decode()
    assert "Left behind: 2 still billed" in page
    assert data in page and address["PublicIp"] in page and mine in page
    assert other_data not in page
