"""Spot interruptions, which moto cannot produce (it records every termination as the user's):
the layer reclaims a spot instance with AWS's state reason, optionally after sending the
EventBridge interruption warning to an SQS queue."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from sandbox.aws import AwsControl, Conflict, LayerControlError, NotFound
from tests.sandbox.aws.conftest import launch

SPOT = {"MarketType": "spot"}


def _instance(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def _wait_for_state(ec2, instance_id: str, state: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        instance = _instance(ec2, instance_id)
        if instance["State"]["Name"] == state or time.monotonic() > deadline:
            return instance
        time.sleep(0.05)


def _spot(ec2, image_id: str) -> str:
    """A running spot instance (it boots first: pending, then running)."""
    answer = launch(ec2, image_id, "m5.xlarge", InstanceMarketOptions=SPOT)
    instance_id = answer["Instances"][0]["InstanceId"]
    _wait_for_state(ec2, instance_id, "running")
    return instance_id


def test_an_interrupted_spot_instance_ends_terminated_with_the_spot_reason(aws, ec2, image_id):
    instance_id = _spot(ec2, image_id)

    aws.spot_interrupt(instance_id)

    assert _instance(ec2, instance_id)["State"] == {"Code": 32, "Name": "shutting-down"}
    instance = _wait_for_state(ec2, instance_id, "terminated")
    assert instance["State"] == {"Code": 48, "Name": "terminated"}
    assert instance["StateReason"] == {
        "Code": "Server.SpotInstanceTermination",
        "Message": "Server.SpotInstanceTermination: Spot instance termination",
    }
    assert instance["StateTransitionReason"].startswith("Service initiated (")


def test_the_warning_reaches_the_queue_before_the_instance_goes(aws, ec2, boto, image_id):
    sqs = boto("sqs")
    queue_url = sqs.create_queue(QueueName="spot-interruptions")["QueueUrl"]
    instance_id = _spot(ec2, image_id)

    interruption = aws.spot_interrupt(instance_id, warning_queue_url=queue_url, warning_seconds=0.5)

    message = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)["Messages"][0]
    event = json.loads(message["Body"])
    assert event["detail-type"] == "EC2 Spot Instance Interruption Warning"
    assert event["source"] == "aws.ec2"
    assert event["detail"] == {"instance-id": instance_id, "instance-action": "terminate"}
    assert event["region"] == "eu-west-1"
    assert event["resources"] == [
        f"arn:aws:ec2:eu-west-1:{event['account']}:instance/{instance_id}"
    ]
    assert event["time"].endswith("Z")
    assert _instance(ec2, instance_id)["State"]["Name"] == "running"

    instance = _wait_for_state(ec2, instance_id, "terminated")

    assert instance["StateReason"]["Code"] == "Server.SpotInstanceTermination"
    assert interruption.terminates_at - interruption.warned_at == timedelta(seconds=0.5)


def test_with_a_queue_the_notice_is_two_minutes_by_default(aws, ec2, boto, image_id):
    queue_url = boto("sqs").create_queue(QueueName="spot-interruptions")["QueueUrl"]
    instance_id = _spot(ec2, image_id)

    interruption = aws.spot_interrupt(instance_id, warning_queue_url=queue_url)

    assert interruption.terminates_at - interruption.warned_at == timedelta(minutes=2)
    assert _instance(ec2, instance_id)["State"]["Name"] == "running"
    # The aws fixture's reset at the next test cancels the pending termination.


def test_the_one_time_spot_request_of_a_reclaimed_instance_is_closed(aws, ec2, image_id):
    request = ec2.request_spot_instances(
        InstanceCount=1, LaunchSpecification={"ImageId": image_id, "InstanceType": "m5.xlarge"}
    )["SpotInstanceRequests"][0]
    instance_id = ec2.describe_spot_instance_requests(
        SpotInstanceRequestIds=[request["SpotInstanceRequestId"]]
    )["SpotInstanceRequests"][0]["InstanceId"]

    aws.spot_interrupt(instance_id)

    after = ec2.describe_spot_instance_requests()["SpotInstanceRequests"][0]
    assert after["State"] == "closed"
    assert after["Status"]["Code"] == "instance-terminated-no-capacity"


def test_an_on_demand_instance_is_never_reclaimed(aws, ec2, image_id):
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    _wait_for_state(ec2, instance_id, "running")

    with pytest.raises(Conflict):
        aws.spot_interrupt(instance_id)

    assert _instance(ec2, instance_id)["State"]["Name"] == "running"


def test_a_terminated_instance_cannot_be_reclaimed_again(aws, ec2, image_id):
    instance_id = _spot(ec2, image_id)
    ec2.terminate_instances(InstanceIds=[instance_id])

    with pytest.raises(Conflict):
        aws.spot_interrupt(instance_id)

    assert _instance(ec2, instance_id)["StateReason"]["Code"] == "Client.UserInitiatedShutdown"


def test_an_unknown_instance_is_not_found(aws):
    with pytest.raises(NotFound):
        aws.spot_interrupt("i-0123456789abcdef0")


def test_another_process_interrupts_over_http(aws, ec2, image_id):
    control = AwsControl(aws.url)
    spot_id = _spot(ec2, image_id)
    on_demand_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]

    interruption = control.spot_interrupt(spot_id)

    assert interruption.instance_id == spot_id
    assert interruption.warned_at is None
    assert _instance(ec2, spot_id)["StateReason"]["Code"] == "Server.SpotInstanceTermination"
    with pytest.raises(LayerControlError) as conflict:
        control.spot_interrupt(on_demand_id)
    assert conflict.value.status == 409
    with pytest.raises(LayerControlError) as missing:
        control.spot_interrupt("i-0123456789abcdef0")
    assert missing.value.status == 404


def test_an_instance_already_warned_is_not_interrupted_twice(aws, ec2, boto, image_id):
    queue_url = boto("sqs").create_queue(QueueName="spot-interruptions")["QueueUrl"]
    instance_id = _spot(ec2, image_id)
    aws.spot_interrupt(instance_id, warning_queue_url=queue_url)

    with pytest.raises(Conflict, match="already being interrupted"):
        aws.spot_interrupt(instance_id, warning_queue_url=queue_url)
