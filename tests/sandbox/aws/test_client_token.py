"""EC2's ClientToken idempotency, which moto stores but does not honour: the layer returns the
first reservation again for the same token and parameters, and AWS's
IdempotentParameterMismatch for the same token with other parameters."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError

from tests.sandbox.aws.conftest import instance_count, launch


def test_the_same_client_token_twice_gives_one_reservation(ec2, image_id):
    first = launch(ec2, image_id, ClientToken="launch-request-41")
    second = launch(ec2, image_id, ClientToken="launch-request-41")

    assert second["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in second["Instances"]] == [
        i["InstanceId"] for i in first["Instances"]
    ]
    assert instance_count(ec2) == 1
    # A new request, so a new request id, as from AWS.
    assert second["ResponseMetadata"]["RequestId"] != first["ResponseMetadata"]["RequestId"]


def test_the_same_token_with_other_parameters_is_an_idempotent_parameter_mismatch(ec2, image_id):
    launch(ec2, image_id, "t2.micro", ClientToken="launch-request-42")

    with pytest.raises(ClientError) as raised:
        launch(ec2, image_id, "t2.small", ClientToken="launch-request-42")

    error = raised.value.response
    assert error["Error"]["Code"] == "IdempotentParameterMismatch"
    assert "inconsistent with arguments used in previous request" in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["RequestId"]
    assert instance_count(ec2) == 1


def test_different_tokens_launch_different_instances(ec2, image_id):
    launch(ec2, image_id, ClientToken="launch-request-43")
    launch(ec2, image_id, ClientToken="launch-request-44")

    assert instance_count(ec2) == 2


def test_tokens_are_kept_per_region(boto, image_id):
    ireland = boto("ec2", "eu-west-1")
    virginia = boto("ec2", "us-east-1")

    here = launch(ireland, image_id, ClientToken="launch-request-45")
    there = launch(virginia, image_id, ClientToken="launch-request-45")

    assert here["ReservationId"] != there["ReservationId"]
    assert instance_count(ireland) == instance_count(virginia) == 1


def test_tokens_are_kept_per_account(boto, image_id):
    default_account = boto("ec2")
    other_account = boto("ec2")

    def to_other_account(request, **_):
        # moto files a request under the account this header names.
        request.headers["x-moto-account-id"] = "111122223333"

    other_account.meta.events.register("before-sign.ec2.RunInstances", to_other_account)
    other_account.meta.events.register("before-sign.ec2.DescribeInstances", to_other_account)
    mine = launch(default_account, image_id, ClientToken="launch-request-46")
    theirs = launch(other_account, image_id, ClientToken="launch-request-46")

    assert mine["ReservationId"] != theirs["ReservationId"]
    assert instance_count(other_account) == 1


def test_a_failed_launch_does_not_use_up_its_token(aws, ec2, image_id):
    aws.fault_inject("RunInstances", "InsufficientInstanceCapacity")
    with pytest.raises(ClientError):
        launch(ec2, image_id, ClientToken="launch-request-47")

    retried = launch(ec2, image_id, ClientToken="launch-request-47")
    again = launch(ec2, image_id, ClientToken="launch-request-47")

    assert again["ReservationId"] == retried["ReservationId"]
    assert instance_count(ec2) == 1


def test_concurrent_calls_with_one_token_launch_once(boto, image_id):
    clients = [boto("ec2") for _ in range(4)]
    reservations: list[str] = []

    def call(client):
        reservations.append(
            launch(client, image_id, ClientToken="launch-request-48")["ReservationId"]
        )

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert len(reservations) == 4
    assert len(set(reservations)) == 1
    assert instance_count(clients[0]) == 1


def test_request_spot_instances_honours_its_token_too(ec2, image_id):
    spec = {"ImageId": image_id, "InstanceType": "m5.xlarge"}
    first = ec2.request_spot_instances(
        InstanceCount=1, LaunchSpecification=spec, ClientToken="spot-request-49"
    )
    second = ec2.request_spot_instances(
        InstanceCount=1, LaunchSpecification=spec, ClientToken="spot-request-49"
    )

    ids = [r["SpotInstanceRequestId"] for r in first["SpotInstanceRequests"]]
    assert [r["SpotInstanceRequestId"] for r in second["SpotInstanceRequests"]] == ids
    assert len(ec2.describe_spot_instance_requests()["SpotInstanceRequests"]) == 1


def test_a_reset_forgets_the_tokens(aws, ec2, image_id):
    launch(ec2, image_id, "t2.micro", ClientToken="launch-request-50")
    aws.reset()

    # Another launch with the token is a new request against an empty account.
    launch(ec2, image_id, "t2.small", ClientToken="launch-request-50")

    assert instance_count(ec2) == 1


def test_a_retry_of_a_launch_that_succeeded_is_answered_even_while_a_fault_is_armed(
    aws, ec2, image_id
):
    # AWS checks the token before anything else: a retry gets its reservation back even when
    # a new launch would now meet a capacity error. Faults apply to new launches only.
    first = launch(ec2, image_id, "g5.xlarge", ClientToken="launch-request-51")
    aws.fault_inject("RunInstances", "InsufficientInstanceCapacity", times=None)

    again = launch(ec2, image_id, "g5.xlarge", ClientToken="launch-request-51")

    assert again["ReservationId"] == first["ReservationId"]
    with pytest.raises(ClientError) as raised:  # a new launch still meets the fault
        launch(ec2, image_id, "g5.xlarge", ClientToken="launch-request-52")
    assert raised.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
    assert instance_count(ec2) == 1


def test_a_client_token_over_64_characters_is_refused(aws, ec2, image_id):
    launch(ec2, image_id, ClientToken="t" * 64)  # the longest AWS accepts

    with pytest.raises(ClientError) as raised:
        launch(ec2, image_id, ClientToken="t" * 65)

    assert raised.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "64" in raised.value.response["Error"]["Message"]
    assert instance_count(ec2) == 1


def test_the_same_tags_in_another_order_are_the_same_request(ec2, image_id):
    tags = [{"Key": "clusterweb:pool", "Value": "gpu"}, {"Key": "clusterweb:owner", "Value": "bob"}]

    def with_tags(order: list[dict[str, str]]) -> dict:
        specs = [{"ResourceType": "instance", "Tags": order}]
        return launch(ec2, image_id, ClientToken="launch-request-53", TagSpecifications=specs)

    first = with_tags(tags)
    second = with_tags(list(reversed(tags)))

    assert second["ReservationId"] == first["ReservationId"]
    assert instance_count(ec2) == 1
    with pytest.raises(ClientError) as raised:  # other tag values are other parameters
        with_tags([{**tags[0], "Value": "spark"}, tags[1]])
    assert raised.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
