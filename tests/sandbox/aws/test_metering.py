"""The AWS layer meters what runs and what is kept as AWS does, from its own state transitions and
calls, and prices it with its own table by AWS's rules (sandbox/aws/metering.py, bill.py):
instances while running, per second with a 60-second minimum, spot at the spot price in force,
a spot instance EC2 interrupts in its first hour free; volumes by size over time; public IPv4
address-hours, idle Elastic IPs included; S3 by each day's size; EFS by the size in force at
each moment (GB-hours)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from sandbox.aws.bill import COMPUTE, EC2_OTHER, EFS, S3, VPC
from tests.sandbox.aws.conftest import IMAGE_ID

NOW = datetime(2027, 1, 20, 12, tzinfo=UTC)
GIB = 1024**3
MONTH = Decimal(31 * 86400)  # January's seconds
PRICES = {"gp2": "0.11", "gp3": "0.088"}  # per GB-month, eu-west-1


@pytest.fixture
def layer(aws, shared_clock):
    """The layer on 20 January 2027, noon (the shared clock), with instances passing through
    their transitional states in one second."""
    shared_clock.set_offset((NOW - datetime.now(UTC)).total_seconds())
    aws.delays_set(pending=1, stopping=1, shutting_down=1)
    return aws


def at(day: int, hour: float = 0) -> datetime:
    return datetime(2027, 1, day, tzinfo=UTC) + timedelta(hours=hour)


def run(instance_type: str = "t2.small", *, spot: bool = False, zone: str = "eu-west-1a"):
    params = {
        "ImageId": IMAGE_ID,
        "InstanceType": instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "Placement": {"AvailabilityZone": zone},
    }
    if spot:
        params["InstanceMarketOptions"] = {"MarketType": "spot"}
    return {"action": "RunInstances", "params": params}


def call(action: str, **params) -> dict:
    return {"action": action, "params": params}


def launched(result: dict) -> str:
    return result["Instances"][0]["InstanceId"]


def total(bill: dict, service: str) -> Decimal:
    return sum((day.get(service, Decimal(0)) for day in bill.values()), Decimal(0))


def close(a: Decimal, b: Decimal, cents: str = "0.0001") -> bool:
    return abs(a - b) <= Decimal(cents)


def test_an_instance_is_billed_per_second_while_running_and_not_while_booting(layer, ec2):
    [result] = layer.replay([{"at": at(3, 10), **run("t2.small")}])
    instance = launched(result)
    layer.replay([{"at": at(3, 12), **call("StopInstances", InstanceIds=[instance])}])

    bill = layer.bill(date(2027, 1, 1), date(2027, 1, 20))

    # Running from 10:00:01 (one second pending) to 12:00:00, at $0.025 an hour.
    assert [day for day, services in bill.items() if COMPUTE in services] == [date(2027, 1, 3)]
    assert close(bill[date(2027, 1, 3)][COMPUTE], Decimal("0.025") * (7199 / Decimal(3600)))
    # Its root volume is billed while the instance is stopped too.
    [root] = ec2.describe_volumes()["Volumes"]
    gb_day = Decimal(root["Size"]) * Decimal(PRICES[root["VolumeType"]]) * 86400 / MONTH
    assert close(bill[date(2027, 1, 10)][EC2_OTHER], gb_day)


def test_a_run_shorter_than_a_minute_is_billed_a_minute(layer):
    [result] = layer.replay([{"at": at(3, 10), **run("m5.xlarge")}])
    instance = launched(result)
    stop = at(3, 10) + timedelta(seconds=21)
    layer.replay([{"at": stop, **call("TerminateInstances", InstanceIds=[instance])}])

    bill = layer.bill(date(2027, 1, 3), date(2027, 1, 4))

    assert close(total(bill, COMPUTE), Decimal("0.214") * 60 / 3600)


def test_a_run_across_midnight_is_cut_into_days_and_an_open_run_counts_up_to_now(layer):
    layer.replay([{"at": at(18, 20), **run("t2.micro")}])

    bill = layer.bill(date(2027, 1, 18), date(2027, 1, 21))

    hour = Decimal("0.0126")
    assert close(bill[date(2027, 1, 18)][COMPUTE], hour * (4 - Decimal(1) / 3600))
    assert close(bill[date(2027, 1, 19)][COMPUTE], hour * 24)
    assert close(bill[date(2027, 1, 20)][COMPUTE], hour * 12, "0.001")  # until now, noon


def test_a_spot_instance_pays_the_spot_price_in_force_each_second(layer):
    price = {"instance_type": "m5.xlarge", "zone": "eu-west-1b"}
    [_, result, _] = layer.replay(
        [
            {"at": at(5), "control": "spot_price_set", "args": {**price, "price": "0.07"}},
            {"at": at(5, 6), **run("m5.xlarge", spot=True, zone="eu-west-1b")},
            {"at": at(5, 8), "control": "spot_price_set", "args": {**price, "price": "0.09"}},
        ]
    )
    instance = launched(result)
    layer.replay([{"at": at(5, 10), **call("TerminateInstances", InstanceIds=[instance])}])

    bill = layer.bill(date(2027, 1, 5), date(2027, 1, 6))

    expected = Decimal("0.07") * (7199 / Decimal(3600)) + Decimal("0.09") * 2
    assert close(bill[date(2027, 1, 5)][COMPUTE], expected)


def test_a_spot_instance_ec2_interrupts_in_its_first_hour_is_free_unless_the_rule_changes(layer):
    price = {"instance_type": "m5.2xlarge", "zone": "eu-west-1a", "price": "0.15"}
    [_, early, late] = layer.replay(
        [
            {"at": at(4), "control": "spot_price_set", "args": price},
            {"at": at(4, 8), **run("m5.2xlarge", spot=True)},
            {"at": at(4, 9), **run("m5.2xlarge", spot=True)},
        ]
    )
    layer.replay(
        [
            {"at": at(4, 8.7), "control": "spot_interrupt",
             "args": {"instance_id": launched(early)}},
            {"at": at(4, 11), "control": "spot_interrupt", "args": {"instance_id": launched(late)}},
        ]
    )  # fmt: skip

    charged = layer.bill(date(2027, 1, 4), date(2027, 1, 5))[date(2027, 1, 4)][COMPUTE]
    # Only the second one, which ran two hours (less its second of boot) before EC2 took it.
    assert close(charged, Decimal("0.15") * (7199 / Decimal(3600)))

    layer.bill_rules_set(spot_interrupted_first_hour_free=False)
    changed = layer.bill(date(2027, 1, 4), date(2027, 1, 5))[date(2027, 1, 4)][COMPUTE]
    assert close(changed - charged, Decimal("0.15") * (Decimal(42 * 60 - 1) / 3600))


def test_a_type_change_is_billed_from_the_restart_and_the_launch_time_moves(layer, ec2):
    [result] = layer.replay([{"at": at(2, 8), **run("t2.small")}])
    instance = launched(result)
    layer.replay(
        [
            {"at": at(2, 10), **call("StopInstances", InstanceIds=[instance])},
            {
                "at": at(2, 11),
                **call(
                    "ModifyInstanceAttribute",
                    InstanceId=instance,
                    InstanceType={"Value": "m5.4xlarge"},
                ),
            },
            {"at": at(2, 12), **call("StartInstances", InstanceIds=[instance])},
            {"at": at(2, 14), **call("StopInstances", InstanceIds=[instance])},
        ]
    )

    day = layer.bill(date(2027, 1, 2), date(2027, 1, 3))[date(2027, 1, 2)][COMPUTE]

    two_hours = 7199 / Decimal(3600)
    assert close(day, Decimal("0.025") * two_hours + Decimal("0.856") * two_hours)
    # EC2 sets LaunchTime again at each start (moto keeps the first; the layer moves it).
    described = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert described["LaunchTime"] == at(2, 12)


def test_a_volume_is_billed_by_its_size_over_time_and_a_resize_leaves_earlier_days(layer):
    [volume] = layer.replay(
        [
            {
                "at": at(1),
                **call("CreateVolume", AvailabilityZone="eu-west-1a", Size=100, VolumeType="gp3"),
            }
        ]
    )
    volume_id = volume["VolumeId"]
    layer.replay([{"at": at(11), **call("ModifyVolume", VolumeId=volume_id, Size=1000)}])
    layer.replay([{"at": at(15, 12), **call("DeleteVolume", VolumeId=volume_id)}])

    bill = layer.bill(date(2027, 1, 1), date(2027, 1, 20))

    gb_day = Decimal("0.088") * 86400 / MONTH
    assert close(bill[date(2027, 1, 10)][EC2_OTHER], 100 * gb_day)
    assert close(bill[date(2027, 1, 11)][EC2_OTHER], 1000 * gb_day)
    assert close(bill[date(2027, 1, 15)][EC2_OTHER], 500 * gb_day)  # deleted at noon
    assert date(2027, 1, 16) not in bill
    assert close(total(bill, EC2_OTHER), (10 * 100 + 4 * 1000 + 500) * gb_day)


def test_public_ipv4_is_billed_for_idle_elastic_ips_and_running_instances(layer):
    [address, result] = layer.replay(
        [
            {"at": at(6), **call("AllocateAddress", Domain="vpc")},
            {"at": at(6, 6), **run("t2.micro")},
        ]
    )
    instance = launched(result)
    layer.replay([{"at": at(6, 12), **call("TerminateInstances", InstanceIds=[instance])}])

    bill = layer.bill(date(2027, 1, 6), date(2027, 1, 8))

    # The Elastic IP all day though attached to nothing; the instance's address for six hours.
    assert close(bill[date(2027, 1, 6)][VPC], Decimal("0.005") * 30)
    assert close(bill[date(2027, 1, 7)][VPC], Decimal("0.005") * 24)
    layer.replay([{"at": at(7, 6), **call("ReleaseAddress", AllocationId=address["AllocationId"])}])
    after = layer.bill(date(2027, 1, 7), date(2027, 1, 9))
    assert close(after[date(2027, 1, 7)][VPC], Decimal("0.005") * 6)
    assert date(2027, 1, 8) not in after


def test_s3_and_efs_are_billed_by_each_day_s_size(layer):
    layer.replay(
        [
            {
                "at": at(1),
                "service": "s3",
                "action": "CreateBucket",
                "params": {
                    "Bucket": "data",
                    "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"},
                },
            },
            {"at": at(1), "service": "efs", "action": "CreateFileSystem",
             "params": {"CreationToken": "home"}},
        ]
    )  # fmt: skip
    [fs] = layer.controls.meter.snapshot().held["efs"]
    layer.replay(
        [
            {"at": at(1), "control": "s3_size_set", "args": {"bucket": "data", "bytes": 100 * GIB}},
            {"at": at(1), "control": "efs_size_set",
             "args": {"file_system_id": fs.key, "bytes": 10 * GIB}},
            {"at": at(3, 18), "control": "s3_size_set", "args": {"bucket": "data", "bytes": 0}},
            {"at": at(3, 18), "control": "efs_size_set",
             "args": {"file_system_id": fs.key, "bytes": 30 * GIB}},
        ]
    )  # fmt: skip

    bill = layer.bill(date(2027, 1, 1), date(2027, 1, 5))

    day = Decimal(86400) / MONTH
    assert close(bill[date(2027, 1, 2)][S3], 100 * day * Decimal("0.023"))
    # S3 measures once a day: day 3 has the size measured that day (nothing stored).
    assert S3 not in bill[date(2027, 1, 3)]
    assert close(bill[date(2027, 1, 2)][EFS], 10 * day * Decimal("0.33"))
    # EFS is billed by the hour (GB-hours: Amazon EFS pricing, "Your storage usage is measured
    # in GB-Hours"): day 3 holds 10 GiB for 18 hours and 30 GiB for 6, never 30 for the day.
    assert close(bill[date(2027, 1, 3)][EFS], (10 * 18 + 30 * 6) / Decimal(24) * day
                 * Decimal("0.33"))  # fmt: skip
    assert close(bill[date(2027, 1, 4)][EFS], 30 * day * Decimal("0.33"))


def test_efs_storage_bytes_is_sampled_every_15_minutes_so_a_day_s_average_is_what_it_held(
    layer, boto
):
    """AWS/EFS StorageBytes is emitted every 15 minutes (Amazon EFS user guide, "Amazon
    CloudWatch metrics for Amazon EFS"), so the daily Average the inventory reads is the size the
    file system held through the day, the figure AWS bills by the hour."""
    [created] = layer.replay([{"at": at(1), "service": "efs", "action": "CreateFileSystem",
                               "params": {"CreationToken": "home"}}])  # fmt: skip
    fs = created["FileSystemId"]
    layer.replay(
        [
            {"at": at(1), "control": "efs_size_set", "args": {"file_system_id": fs,
                                                               "bytes": 10 * GIB}},
            {"at": at(3, 18), "control": "efs_size_set", "args": {"file_system_id": fs,
                                                                   "bytes": 30 * GIB}},
        ]
    )  # fmt: skip

    daily = boto("cloudwatch").get_metric_statistics(
        Namespace="AWS/EFS",
        MetricName="StorageBytes",
        Dimensions=[
            {"Name": "FileSystemId", "Value": fs},
            {"Name": "StorageClass", "Value": "Total"},
        ],
        StartTime=at(1),
        EndTime=at(5),
        Period=86400,
        Statistics=["Average"],
    )["Datapoints"]

    averages = {p["Timestamp"].date(): p["Average"] / GIB for p in daily}
    assert averages == {
        date(2027, 1, 1): 10,
        date(2027, 1, 2): 10,
        date(2027, 1, 3): (10 * 18 + 30 * 6) / 24,
        date(2027, 1, 4): 30,
    }


def test_a_price_changed_in_the_layer_changes_its_bill(layer):
    [result] = layer.replay([{"at": at(3, 10), **run("t2.small")}])
    layer.replay([{"at": at(3, 14), **call("StopInstances", InstanceIds=[launched(result)])}])
    before = layer.bill(date(2027, 1, 3), date(2027, 1, 4))[date(2027, 1, 3)][COMPUTE]

    layer.bill_price_set("on-demand", "t2.small", "0.05")

    after = layer.bill(date(2027, 1, 3), date(2027, 1, 4))[date(2027, 1, 3)][COMPUTE]
    assert close(after, 2 * before)
    with pytest.raises(ValueError):
        layer.bill_price_set("discount", "t2.small", "0.01")


def test_an_elastic_ip_is_disassociated_when_its_instance_terminates_and_still_billed(layer, ec2):
    [address, result] = layer.replay(
        [
            {"at": at(8), **call("AllocateAddress", Domain="vpc")},
            {"at": at(8), **run("t2.micro")},
        ]
    )
    instance = launched(result)
    layer.replay(
        [
            {
                "at": at(8, 1),
                **call(
                    "AssociateAddress", AllocationId=address["AllocationId"], InstanceId=instance
                ),
            },
            {"at": at(8, 6), **call("TerminateInstances", InstanceIds=[instance])},
        ]
    )

    [described] = ec2.describe_addresses()["Addresses"]
    assert not described.get("InstanceId") and not described.get("AssociationId"), described
    bill = layer.bill(date(2027, 1, 9), date(2027, 1, 10))
    assert close(bill[date(2027, 1, 9)][VPC], Decimal("0.005") * 24)  # idle, still allocated


def test_the_bill_s_controls_work_over_http_for_other_processes(layer):
    from sandbox.aws import AwsControl, LayerControlError

    control = AwsControl(layer.url)
    [result] = control.replay([{"at": at(3, 10), **run("t2.small")}])
    control.replay([{"at": at(3, 14), **call("StopInstances", InstanceIds=[launched(result)])}])

    control.bill_price_set("on-demand", "t2.small", "0.05")
    rules = control.bill_rules_set(lag_hours=2, page_days=5)

    bill = control.bill(date(2027, 1, 3), date(2027, 1, 4))
    assert close(bill[date(2027, 1, 3)][COMPUTE], Decimal("0.05") * 14399 / 3600)
    assert (rules.lag_hours, rules.page_days, rules.spot_interrupted_first_hour_free) == (
        2, 5, True,
    )  # fmt: skip
    with pytest.raises(LayerControlError) as refused:
        control.bill_rules_set(discount=True)
    assert refused.value.status == 400
