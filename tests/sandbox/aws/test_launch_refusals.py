"""Launches AWS refuses and moto accepts: an instance type the region does not offer, a spot
MaxPrice under the spot price, and the capacity and limit errors a launch can meet, per
instance type and zone (only codes EC2 documents)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from sandbox.aws import AwsControl
from tests.sandbox.aws.conftest import instance_count, launch

SPOT = {"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "one-time"}}


def _spot(max_price: str) -> dict:
    return {**SPOT, "SpotOptions": {**SPOT["SpotOptions"], "MaxPrice": max_price}}


def _code(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = raised.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_an_instance_type_the_region_does_not_offer_is_an_invalid_parameter_value(ec2, image_id):
    with pytest.raises(ClientError) as raised:
        launch(ec2, image_id, "p3.2xlarge")  # not offered in eu-west-1 (moto's offerings)

    assert _code(raised) == (
        "InvalidParameterValue",
        "Invalid value 'p3.2xlarge' for InstanceType.",
        400,
    )
    assert instance_count(ec2) == 0


def test_a_spot_request_for_an_unoffered_type_is_refused_the_same_way(ec2, image_id):
    with pytest.raises(ClientError) as raised:
        ec2.request_spot_instances(
            InstanceCount=1, LaunchSpecification={"ImageId": image_id, "InstanceType": "t9.tiny"}
        )

    assert _code(raised)[:2] == (
        "InvalidParameterValue",
        "Invalid value 't9.tiny' for InstanceType.",
    )
    assert ec2.describe_spot_instance_requests()["SpotInstanceRequests"] == []


def test_a_type_offered_elsewhere_in_the_region_is_unsupported_in_the_zone(ec2, image_id):
    with pytest.raises(ClientError) as raised:
        launch(ec2, image_id, "a1.large", Placement={"AvailabilityZone": "eu-west-1a"})

    code, message, status = _code(raised)
    assert (code, status) == ("Unsupported", 400)
    assert "(a1.large) is not supported in your requested Availability Zone (eu-west-1a)" in message
    assert message.endswith("choosing eu-west-1b, eu-west-1c.")


def test_a_spot_max_price_under_the_zone_s_spot_price_is_refused(aws, ec2, image_id):
    aws.spot_price_set("g5.xlarge", "eu-west-1b", "0.4532")

    with pytest.raises(ClientError) as raised:
        launch(
            ec2,
            image_id,
            "g5.xlarge",
            Placement={"AvailabilityZone": "eu-west-1b"},
            InstanceMarketOptions=_spot("0.40"),
        )

    assert _code(raised) == (
        "SpotMaxPriceTooLow",
        "Your Spot request price of 0.40 is lower than the minimum required Spot request "
        "fulfillment price of 0.4532.",
        400,
    )
    assert instance_count(ec2) == 0


def test_a_max_price_at_the_spot_price_or_in_another_zone_launches(aws, ec2, image_id):
    aws.spot_price_set("g5.xlarge", "eu-west-1b", "0.4532")

    launch(
        ec2,
        image_id,
        "g5.xlarge",
        Placement={"AvailabilityZone": "eu-west-1b"},
        InstanceMarketOptions=_spot("0.4532"),
    )
    launch(
        ec2,
        image_id,
        "g5.xlarge",
        Placement={"AvailabilityZone": "eu-west-1c"},
        InstanceMarketOptions=_spot("0.40"),
    )

    assert instance_count(ec2) == 2


def test_the_max_price_of_a_launch_template_counts_too(aws, ec2, image_id):
    aws.spot_price_set("g4dn.xlarge", "eu-west-1a", "0.30")
    ec2.create_launch_template(
        LaunchTemplateName="gpu",
        LaunchTemplateData={
            "ImageId": image_id,
            "InstanceType": "g4dn.xlarge",
            "InstanceMarketOptions": _spot("0.20"),
        },
    )

    with pytest.raises(ClientError) as raised:
        ec2.run_instances(
            LaunchTemplate={"LaunchTemplateName": "gpu"},
            MinCount=1,
            MaxCount=1,
            Placement={"AvailabilityZone": "eu-west-1a"},
        )

    assert _code(raised)[0] == "SpotMaxPriceTooLow"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("InsufficientInstanceCapacity", 500),
        ("UnfulfillableCapacity", 400),
        ("MaxSpotInstanceCountExceeded", 400),
    ],
)
def test_capacity_faults_hit_one_instance_type_in_one_zone(aws, ec2, image_id, code, status):
    aws.fault_inject(
        "RunInstances",
        code,
        times=None,
        when={"InstanceType": "g5.xlarge", "AvailabilityZone": "eu-west-1b"},
    )

    def gpu_spot(zone: str) -> dict:
        return launch(
            ec2,
            image_id,
            "g5.xlarge",
            Placement={"AvailabilityZone": zone},
            InstanceMarketOptions=SPOT,
        )

    with pytest.raises(ClientError) as raised:
        gpu_spot("eu-west-1b")
    assert (_code(raised)[0], _code(raised)[2]) == (code, status)
    gpu_spot("eu-west-1a")  # the same type in another zone
    launch(ec2, image_id, "g4dn.xlarge", Placement={"AvailabilityZone": "eu-west-1b"})
    assert instance_count(ec2) == 2


def test_a_launch_fault_with_a_code_aws_never_sends_is_refused(aws):
    with pytest.raises(ValueError, match="not an error EC2 returns to RunInstances"):
        aws.fault_inject("RunInstances", "NoGpusToday")
    with pytest.raises(Exception, match="400"):
        AwsControl(aws.url).fault_inject("RequestSpotInstances", "SpotCapacityGone")
    assert aws.controls.faults() == []
