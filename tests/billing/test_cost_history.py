"""History that never rewrites itself (issue 19, finding 1): a month is run through the AWS layer
with the inventory sync after each scripted step, as the 60 s sync would have run, and the cost
refresh prices each piece of time with the size, type and stored bytes in force then. The three
cases an outside review measured (in us-east-1; the same shapes are priced here in eu-west-1):

- 5 TiB deleted from S3 on day 28: the month's S3 cost went from $102.57 to $0.00;
- a gp3 volume resized from 100 to 1000 GiB on day 28: the 27 earlier days went from $6.97 to
  $69.68 (eu-west-1, $0.088/GB-month: $7.66 and $76.65);
- a stopped t2.small changed to m5.4xlarge and restarted: $10.49 became $350.85 (eu-west-1, 456
  hours: $11.40 and $390.34).

Each must leave the earlier days' rows exactly as they were.

eu-west-1 list prices (the bundled catalog): S3 Standard 0.023 and gp3 0.088 per GB-month,
t2.small 0.025/h, m5.4xlarge 0.856/h. March 2027 has 31 days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing.costs.services import cost_rows_refresh
from billing.models import CostMonth, CostRow
from billing.money import amount
from billing.prices.services import price_override_add
from provisioning import inventory
from provisioning.models import Node, NodeEvent, StoredSize, VolumeSpec
from tests.billing.conftest import spot_point, spot_record
from tests.fixtures.personas import user_for
from tests.provisioning.conftest import (
    CLUSTER,
    IMAGE_ID,
    cloud,  # noqa: F401 - the simulated AWS and Kubernetes
    node_make,
    sync_ok,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

TIB = 1024**4
S3, GP3 = Decimal("0.023"), Decimal("0.088")
T2_SMALL, M5_4XL = Decimal("0.025"), Decimal("0.856")


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2027, 3, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def month(cloud, clock_at, settings):  # noqa: F811
    """The cloud with the shared clock after the month, so every step of it can be replayed."""
    clock_at(datetime(2027, 4, 2, tzinfo=UTC))
    settings.S3_BUCKETS = ["lab-data"]
    return cloud


def synced(now: datetime) -> None:
    """The inventory sync at ``now``, as the 60 s sync would have run then."""
    result = inventory.inventory_sync(now=now)
    assert result.parts["ec2"].ok and result.parts["storage"].ok, result.errors


def days_of(resource_id: str, kind: str, before: date) -> dict[tuple[date, datetime], Decimal]:
    """The stored cost of each piece of the resource's days before ``before``."""
    return {
        (row.day, row.start): row.cost
        for row in CostRow.objects.filter(
            resource_kind=kind, resource_id__startswith=resource_id, day__lt=before
        )
    }


def tagged(resource_type: str) -> list[dict]:
    tags = [{"Key": "clusterweb:cluster", "Value": CLUSTER}]
    return [{"ResourceType": resource_type, "Tags": tags}]


def test_deleting_s3_data_on_day_28_leaves_the_27_earlier_days_as_they_were(month):
    size = {"control": "s3_size_set", "args": {"bucket": "lab-data", "bytes": 5 * TIB}}
    month.aws.replay([{"at": at(1)} | size])
    synced(at(1))
    for day in range(2, 28):  # S3 publishes the bucket's size once a day
        month.aws.replay([{"at": at(day, 0, 5)} | size])
    synced(at(27, 23))
    cost_rows_refresh(now=at(28))
    before = days_of("lab-data", "s3", at(28).date())
    assert amount(sum(before.values())) == Decimal("102.57")  # 5120 GB x 0.023 x 27/31

    month.aws.replay(
        [{"at": at(28, 6), "control": "s3_size_set", "args": {"bucket": "lab-data", "bytes": 0}}]
    )
    synced(at(28, 6, 1))
    cost_rows_refresh(now=at(28, 12))

    assert days_of("lab-data", "s3", at(28).date()) == before
    today = CostRow.objects.filter(resource_kind="s3", day=at(28).date())
    assert sum(row.cost for row in today) == 0  # the day's point says the bucket is empty
    assert StoredSize.objects.filter(stored__resource="lab-data").count() == 28


def test_resizing_a_gp3_volume_on_day_28_leaves_the_27_earlier_days_as_they_were(month):
    [created] = month.aws.replay(
        [
            {
                "at": at(1),
                "action": "CreateVolume",
                "params": {
                    "AvailabilityZone": "eu-west-1a",
                    "Size": 100,
                    "VolumeType": "gp3",
                    "TagSpecifications": tagged("volume"),
                },
            }
        ]
    )
    volume_id = created["VolumeId"]
    synced(at(1, 0, 1))
    cost_rows_refresh(now=at(28))
    before = days_of(volume_id, "volume", at(28).date())
    assert amount(sum(before.values())) == Decimal("7.66")  # 100 GiB x 0.088 x 27/31

    month.aws.replay(
        [
            {
                "at": at(28, 3),
                "action": "ModifyVolume",
                "params": {"VolumeId": volume_id, "Size": 1000},
            }
        ]
    )
    synced(at(28, 3, 1))
    cost_rows_refresh(now=at(29))

    assert days_of(volume_id, "volume", at(28).date()) == before
    day_28 = CostRow.objects.filter(resource_id=volume_id, day=at(28).date())
    # 3 hours at 100 GiB, then 21 at 1000 GiB, dated at the modification's StartTime.
    expected = (100 * 3 + 1000 * 21) * GP3 / (31 * 24)
    assert amount(sum(row.cost for row in day_28)) == amount(expected)
    assert list(
        VolumeSpec.objects.filter(volume__volume_id=volume_id).values_list(
            "since", "size_gib", "source"
        )
    ) == [(at(1), 100, "created"), (at(28, 3), 1000, "modification")]


def test_a_stopped_t2_small_restarted_as_m5_4xlarge_keeps_its_earlier_days(month):
    [launched] = month.aws.replay(
        [
            {
                "at": at(1),
                "action": "RunInstances",
                "params": {
                    "ImageId": IMAGE_ID,
                    "InstanceType": "t2.small",
                    "MinCount": 1,
                    "MaxCount": 1,
                    "Placement": {"AvailabilityZone": "eu-west-1a"},
                    "TagSpecifications": tagged("instance"),
                },
            }
        ]
    )
    instance_id = launched["Instances"][0]["InstanceId"]
    synced(at(1, 0, 1))
    month.aws.replay(
        [{"at": at(20), "action": "StopInstances", "params": {"InstanceIds": [instance_id]}}]
    )
    synced(at(20, 0, 1))
    month.aws.replay(
        [
            {
                "at": at(27, 12),
                "action": "ModifyInstanceAttribute",
                "params": {"InstanceId": instance_id, "InstanceType": {"Value": "m5.4xlarge"}},
            }
        ]
    )
    synced(at(27, 12, 1))
    cost_rows_refresh(now=at(28))
    before = days_of(instance_id, "node", at(28).date())
    assert amount(sum(before.values())) == Decimal("11.40")  # 456 hours of t2.small

    month.aws.replay(
        [{"at": at(28, 9), "action": "StartInstances", "params": {"InstanceIds": [instance_id]}}]
    )
    synced(at(28, 9, 1))
    cost_rows_refresh(now=at(29))

    assert days_of(instance_id, "node", at(28).date()) == before
    day_28 = CostRow.objects.filter(
        resource_kind="node", resource_id=instance_id, day=at(28).date()
    )
    assert {row.price for row in day_28} == {M5_4XL}
    node = Node.objects.get(instance_id=instance_id)
    assert node.instance_type == "m5.4xlarge"
    started = NodeEvent.objects.filter(node=node, from_state="stopped").get()
    assert started.instance_type == "m5.4xlarge"


def test_a_node_s_public_address_is_counted_for_its_run_though_no_refresh_ran_while_it_ran(
    month,
):
    """Found by i19b's replayed month: EC2 drops an auto-assigned address on a stop or a
    termination, and the address-hours of a run were counted only if a cost refresh happened
    to run while it ran."""
    [launched] = month.aws.replay(
        [
            {
                "at": at(3, 9),
                "action": "RunInstances",
                "params": {
                    "ImageId": IMAGE_ID,
                    "InstanceType": "m5.xlarge",
                    "MinCount": 1,
                    "MaxCount": 1,
                    "Placement": {"AvailabilityZone": "eu-west-1a"},
                    "TagSpecifications": tagged("instance"),
                },
            }
        ]
    )
    instance_id = launched["Instances"][0]["InstanceId"]
    synced(at(3, 9, 2))
    assert Node.objects.get(instance_id=instance_id).public_ipv4  # auto-assigned
    month.aws.replay(
        [
            {
                "at": at(3, 13),
                "action": "TerminateInstances",
                "params": {"InstanceIds": [instance_id]},
            }
        ]
    )
    synced(at(3, 13, 2))
    assert Node.objects.get(instance_id=instance_id).public_ipv4 is None  # EC2 dropped it

    cost_rows_refresh(now=at(4))

    address = CostRow.objects.filter(resource_kind="node-ipv4", resource_id=instance_id)
    assert sum(row.usage for row in address) == 4  # address-hours of its one run


# --- Closed days: which late changes may reopen them ---------------------------------------------
def day_costs(resource_id: str) -> dict[date, Decimal]:
    found: dict[date, Decimal] = {}
    for row in CostRow.objects.filter(resource_kind="node", resource_id=resource_id):
        found[row.day] = found.get(row.day, Decimal(0)) + row.cost
    return found


def test_a_day_closes_two_days_after_it_ended_once_the_inventory_has_synced_since(clock_at):
    now = clock_at(at(10, 6))
    node = node_make(launched_at=at(1))
    cost_rows_refresh(now=now)
    assert CostMonth.objects.get(month=at(1).date()).closed_through is None  # never synced

    sync_ok(at(10, 5))
    cost_rows_refresh(now=now)

    assert CostMonth.objects.get(month=at(1).date()).closed_through == at(8)
    assert set(day_costs(node.instance_id)) == {at(day).date() for day in range(1, 11)}


def test_a_closed_day_keeps_its_rows_when_a_spot_price_point_arrives_for_it_late(clock_at):
    now = clock_at(at(10, 6))
    spot_record(spot_point("m5.xlarge", "0.0700", at(1)), synced_at=now)
    node = node_make(capacity_type="spot", zone="eu-west-1a", launched_at=at(1))
    sync_ok(at(10, 5))
    cost_rows_refresh(now=now)
    before = day_costs(node.instance_id)

    later = clock_at(at(10, 7))
    spot_record(
        spot_point("m5.xlarge", "0.0900", at(5)),  # backfilled into a closed day
        spot_point("m5.xlarge", "0.0900", at(9)),  # and into an open one
        synced_at=later,
    )
    sync_ok(at(10, 7))
    cost_rows_refresh(now=later)

    after = day_costs(node.instance_id)
    closed = [at(day).date() for day in range(1, 8)]
    assert {day: after[day] for day in closed} == {day: before[day] for day in closed}
    # The open days take the late points (the 5th's is in force until the 9th's).
    assert after[at(8).date()] == after[at(9).date()] == 24 * Decimal("0.09")


def test_an_admin_override_with_a_past_start_reopens_the_closed_days_from_that_start(
    clock_at, alice
):
    now = clock_at(at(10, 6))
    node = node_make(launched_at=at(1))
    sync_ok(at(10, 5))
    cost_rows_refresh(now=now)
    before = day_costs(node.instance_id)

    clock_at(at(10, 7))
    price_override_add(
        actor=user_for(alice), kind="on-demand", region="eu-west-1", item="m5.xlarge",
        price="0.2000", note="negotiated from the 4th", effective_from=at(4),
    )  # fmt: skip
    result = cost_rows_refresh(now=at(10, 8))

    after = day_costs(node.instance_id)
    untouched = [at(day).date() for day in (1, 2, 3)]
    assert [after[day] for day in untouched] == [before[day] for day in untouched]
    assert [after[at(day).date()] for day in (4, 5, 9)] == [24 * Decimal("0.2")] * 3
    month = CostMonth.objects.get(month=at(1).date())
    assert month.closed_through == at(8)  # closed again, with the correction
    assert result.months[-1].updated > 0

    # An override seen once does not reopen them again.
    CostRow.objects.filter(resource_id=node.instance_id, day=at(5).date()).update(cost=0)
    cost_rows_refresh(now=at(10, 9))
    assert day_costs(node.instance_id)[at(5).date()] == 0


def test_a_refresh_on_a_month_with_closed_days_counts_their_rows_too(clock_at):
    now = clock_at(at(10, 6))
    node_make(launched_at=at(1))
    sync_ok(at(10, 5))
    cost_rows_refresh(now=now)

    result = cost_rows_refresh(now=at(10, 7))

    assert result.months[-1].rows == CostRow.objects.filter(month=at(1).date()).count()
    assert result.months[-1].created == 0 and result.months[-1].deleted == 0
