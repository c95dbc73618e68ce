"""One clock: the AWS layer, moto included, reads the product's clock (the shared test offset),
and the replay control applies scripted actions at explicit past timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clusterweb import clock
from sandbox.aws import AwsControl, LayerControlError
from tests.sandbox.aws.conftest import IMAGE_ID, launch

DAY = 24 * 3600


def _instance(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def test_launch_times_follow_the_test_clock(aws, ec2, image_id, shared_clock):
    shared_clock.advance(3 * DAY)

    answer = launch(ec2, image_id)

    launched = answer["Instances"][0]["LaunchTime"]
    assert abs(launched - clock.now()) < timedelta(minutes=1)


def test_state_transition_times_follow_the_test_clock(aws, ec2, image_id, shared_clock):
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    shared_clock.advance(40 * DAY)

    ec2.terminate_instances(InstanceIds=[instance_id])

    reason = _instance(ec2, instance_id)["StateTransitionReason"]
    assert clock.now().strftime("%Y-%m-%d") in reason


def test_cloudwatch_sizes_are_stamped_by_the_test_clock(aws, boto, shared_clock):
    shared_clock.advance(10 * DAY)
    aws.efs_size_set("fs-0123456789abcdef0", 5 * 2**30)

    now = clock.now()
    points = boto("cloudwatch").get_metric_statistics(
        Namespace="AWS/EFS",
        MetricName="StorageBytes",
        Dimensions=[
            {"Name": "FileSystemId", "Value": "fs-0123456789abcdef0"},
            {"Name": "StorageClass", "Value": "Total"},
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]

    assert [p["Maximum"] for p in points] == [5 * 2**30]
    assert abs(points[0]["Timestamp"] - now) < timedelta(minutes=2)


def test_spot_price_history_is_stamped_by_the_layer_s_clock(aws, ec2, shared_clock):
    shared_clock.advance(5 * DAY)
    aws.spot_price_set("m5.xlarge", "eu-west-1a", "0.0712")

    history = ec2.describe_spot_price_history(
        InstanceTypes=["m5.xlarge"],
        Filters=[{"Name": "availability-zone", "Values": ["eu-west-1a"]}],
        StartTime=clock.now() - timedelta(hours=1),
    )["SpotPriceHistory"]

    newest = history[0]
    assert newest["SpotPrice"] == "0.0712"
    assert abs(newest["Timestamp"] - clock.now()) < timedelta(minutes=1)
    assert all(entry["Timestamp"].year > 2006 for entry in history)  # not moto's constant


def test_a_replay_applies_each_step_at_its_own_past_moment(aws, ec2):
    start = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0)
    aws.delays_set(pending=60, shutting_down=60)

    run = {
        "ImageId": IMAGE_ID,
        "InstanceType": "m5.xlarge",
        "MinCount": 1,
        "MaxCount": 1,
        "InstanceMarketOptions": {"MarketType": "spot"},
    }
    price = {"instance_type": "m5.xlarge", "zone": "eu-west-1a", "price": "0.08"}

    [launched, _] = aws.replay(
        [
            {"at": start, "action": "RunInstances", "params": run},
            {"at": start + timedelta(days=1), "control": "spot_price_set", "args": price},
        ]
    )
    instance_id = launched["Instances"][0]["InstanceId"]
    aws.replay(
        [
            {
                "at": start + timedelta(days=2),
                "action": "TerminateInstances",
                "params": {"InstanceIds": [instance_id]},
            }
        ]
    )

    instance = _instance(ec2, instance_id)
    assert instance["LaunchTime"] == start
    assert instance["State"]["Name"] == "terminated"  # its shutdown ended long ago
    assert (start + timedelta(days=2)).strftime("%Y-%m-%d %H:%M") in instance[
        "StateTransitionReason"
    ]
    history = ec2.describe_spot_price_history(
        InstanceTypes=["m5.xlarge"],
        Filters=[{"Name": "availability-zone", "Values": ["eu-west-1a"]}],
        StartTime=start - timedelta(days=1),
    )["SpotPriceHistory"]
    assert ("0.08", start + timedelta(days=1)) in {
        (e["SpotPrice"], e["Timestamp"]) for e in history
    }


def test_a_replayed_instance_was_pending_then_running_at_the_time(aws):
    start = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    aws.delays_set(pending=60)
    run = {"ImageId": IMAGE_ID, "InstanceType": "t2.micro", "MinCount": 1, "MaxCount": 1}

    [launched, soon, later] = aws.replay(
        [
            {"at": start, "action": "RunInstances", "params": run},
            {"at": start + timedelta(seconds=30), "action": "DescribeInstances"},
            {"at": start + timedelta(seconds=61), "action": "DescribeInstances"},
        ]
    )

    def state(answer: dict) -> str:
        return answer["Reservations"][0]["Instances"][0]["State"]["Name"]

    assert launched["Instances"][0]["State"]["Name"] == "pending"
    assert (state(soon), state(later)) == ("pending", "running")


def test_a_replay_refuses_the_future_and_steps_out_of_order(aws):
    now = datetime.now(UTC)
    describe = {"action": "DescribeInstances"}

    with pytest.raises(ValueError, match="future"):
        aws.replay([{**describe, "at": now + timedelta(hours=1)}])
    with pytest.raises(ValueError, match="time order"):
        aws.replay(
            [
                {**describe, "at": now - timedelta(hours=1)},
                {**describe, "at": now - timedelta(hours=2)},
            ]
        )
    with pytest.raises(ValueError, match="time zone"):
        aws.replay([{**describe, "at": datetime(2026, 11, 1)}])


def test_a_replay_runs_over_http_and_is_filed_under_the_set_up_key(aws):
    at = datetime.now(UTC) - timedelta(days=1)
    control = AwsControl(aws.url)
    run = {"ImageId": IMAGE_ID, "InstanceType": "t2.small", "MinCount": 1, "MaxCount": 1}

    [launched] = control.replay([{"at": at, "action": "RunInstances", "params": run}])

    assert datetime.fromisoformat(launched["Instances"][0]["LaunchTime"]) - at < timedelta(
        seconds=1
    )
    assert ("ec2", "RunInstances") in aws.recorded_actions(aws.SETUP_ACCESS_KEY)
    with pytest.raises(LayerControlError) as raised:  # AWS's refusal comes back whole
        control.replay(
            [{"at": at, "action": "RunInstances", "params": {**run, "InstanceType": "p3.2xlarge"}}]
        )
    assert raised.value.status == 422 and "InvalidParameterValue" in str(raised.value)
