"""Instance states take time, as on EC2: pending before running, stopping before stopped,
shutting-down before terminated. The delays are settings of the layer, and the test clock
moves them."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from sandbox.aws import AwsControl
from tests.sandbox.aws.conftest import launch


def _state(ec2, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def _wait_for(ec2, instance_id: str, state: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while _state(ec2, instance_id) != state:
        assert time.monotonic() < deadline, f"{instance_id} never became {state}"
        time.sleep(0.05)


@pytest.fixture
def slow(aws):
    """Transitions long enough to see even on a loaded machine, short enough to wait for."""
    aws.delays_set(pending=2.0, stopping=2.0, shutting_down=2.0)
    return aws


def test_a_new_instance_is_pending_then_running(slow, ec2, image_id):
    answer = launch(ec2, image_id)
    instance_id = answer["Instances"][0]["InstanceId"]

    assert answer["Instances"][0]["State"] == {"Code": 0, "Name": "pending"}
    assert _state(ec2, instance_id) == "pending"
    _wait_for(ec2, instance_id, "running")


def test_a_terminated_instance_shuts_down_first(slow, ec2, image_id):
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    _wait_for(ec2, instance_id, "running")

    answer = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"][0]

    assert answer["CurrentState"]["Name"] == "shutting-down"
    assert _state(ec2, instance_id) == "shutting-down"
    _wait_for(ec2, instance_id, "terminated")


def test_a_stopped_instance_is_stopping_first_and_pending_when_started(slow, ec2, image_id):
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    _wait_for(ec2, instance_id, "running")

    ec2.stop_instances(InstanceIds=[instance_id])
    assert _state(ec2, instance_id) == "stopping"
    _wait_for(ec2, instance_id, "stopped")

    ec2.start_instances(InstanceIds=[instance_id])
    assert _state(ec2, instance_id) == "pending"
    _wait_for(ec2, instance_id, "running")


def test_an_instance_terminated_while_pending_never_runs(slow, ec2, image_id):
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]

    ec2.terminate_instances(InstanceIds=[instance_id])
    time.sleep(0.6)  # past the end of its boot

    assert _state(ec2, instance_id) in ("shutting-down", "terminated")
    _wait_for(ec2, instance_id, "terminated")


def test_the_delays_are_settings_changed_over_http(aws, ec2, image_id):
    control = AwsControl(aws.url)

    delays = control.delays_set(pending=3600)

    assert control.delays().pending == delays.pending == 3600
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    time.sleep(0.3)
    assert _state(ec2, instance_id) == "pending"  # an hour to boot
    aws.reset()  # a reset restores the session's delays
    assert control.delays().pending < 3600


def test_the_test_clock_moves_the_cloud(aws, ec2, image_id, shared_clock):
    aws.delays_set(pending=90, shutting_down=60)
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    assert _state(ec2, instance_id) == "pending"

    shared_clock.advance(91)
    assert _state(ec2, instance_id) == "running"

    ec2.terminate_instances(InstanceIds=[instance_id])
    shared_clock.advance(30)
    assert _state(ec2, instance_id) == "shutting-down"
    shared_clock.advance(31)
    assert _state(ec2, instance_id) == "terminated"


def test_negative_delays_are_refused(aws):
    with pytest.raises(ValueError, match="negative"):
        aws.delays_set(stopping=-1)


def test_a_pending_instance_cannot_be_stopped_yet(slow, ec2, image_id):
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]

    with pytest.raises(ClientError) as refused:
        ec2.stop_instances(InstanceIds=[instance_id])

    assert refused.value.response["Error"]["Code"] == "IncorrectInstanceState"
    assert instance_id in refused.value.response["Error"]["Message"]
    assert _state(ec2, instance_id) == "pending"
    _wait_for(ec2, instance_id, "running")


def test_a_stopping_instance_cannot_be_started_until_it_is_stopped(slow, ec2, image_id):
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    _wait_for(ec2, instance_id, "running")
    ec2.stop_instances(InstanceIds=[instance_id])

    with pytest.raises(ClientError) as refused:
        ec2.start_instances(InstanceIds=[instance_id])

    assert refused.value.response["Error"]["Code"] == "IncorrectInstanceState"
    _wait_for(ec2, instance_id, "stopped")
    ec2.start_instances(InstanceIds=[instance_id])
    assert _state(ec2, instance_id) == "pending"


def test_a_terminated_instance_can_neither_be_started_nor_stopped(slow, ec2, image_id):
    instance_id = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[instance_id])
    _wait_for(ec2, instance_id, "terminated")

    for call in (ec2.start_instances, ec2.stop_instances):
        with pytest.raises(ClientError) as refused:
            call(InstanceIds=[instance_id])
        assert refused.value.response["Error"]["Code"] == "IncorrectInstanceState"


def test_a_user_s_stop_and_termination_are_dated_in_gmt_as_ec2_words_them(aws, ec2, image_id):
    stopped = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    ended = launch(ec2, image_id)["Instances"][0]["InstanceId"]
    _wait_for(ec2, stopped, "running")
    _wait_for(ec2, ended, "running")

    ec2.stop_instances(InstanceIds=[stopped])
    ec2.terminate_instances(InstanceIds=[ended])

    for instance_id in (stopped, ended):
        [reservation] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        reason = reservation["Instances"][0]["StateTransitionReason"]
        assert reason.startswith("User initiated (") and reason.endswith(" GMT)"), reason
