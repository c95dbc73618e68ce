"""Fault injection: the layer answers named actions with AWS's own error responses, in each
service's protocol, so boto3 raises exactly what it raises against AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sandbox.aws import AwsControl
from tests.sandbox.aws.conftest import instance_count, launch


def _error(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = raised.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_an_injected_capacity_error_reaches_boto3_as_aws_sends_it(aws, ec2, image_id):
    aws.fault_inject("RunInstances", "InsufficientInstanceCapacity")

    with pytest.raises(ClientError) as raised:
        launch(ec2, image_id, "g5.xlarge", Placement={"AvailabilityZone": "eu-west-1b"})

    code, message, status = _error(raised)
    assert code == "InsufficientInstanceCapacity"
    assert message.startswith(
        "We currently do not have sufficient g5.xlarge capacity in the Availability Zone you "
        "requested (eu-west-1b)."
    )
    assert status == 500  # EC2 lists capacity errors among its server errors
    assert raised.value.response["ResponseMetadata"]["RequestId"]  # EC2's <RequestID>
    assert raised.value.operation_name == "RunInstances"
    assert instance_count(ec2) == 0


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("MaxSpotInstanceCountExceeded", 400),
        ("RequestLimitExceeded", 503),
        ("VcpuLimitExceeded", 400),
        ("UnauthorizedOperation", 403),
        ("AuthFailure", 401),
    ],
)
def test_ec2_errors_carry_aws_s_code_and_status(aws, ec2, image_id, code, status):
    aws.fault_inject("RequestSpotInstances", code)

    with pytest.raises(ClientError) as raised:
        ec2.request_spot_instances(
            InstanceCount=1, LaunchSpecification={"ImageId": image_id, "InstanceType": "m5.large"}
        )

    assert _error(raised)[0] == code
    assert _error(raised)[2] == status


def test_a_fault_fires_the_given_number_of_times_then_calls_succeed(aws, ec2):
    aws.fault_inject("DescribeInstances", "RequestLimitExceeded", times=2)

    for _ in range(2):
        with pytest.raises(ClientError):
            ec2.describe_instances()

    assert ec2.describe_instances()["Reservations"] == []


def test_a_fault_without_a_count_fires_until_the_layer_is_reset(aws, ec2):
    aws.fault_inject("DescribeInstances", "Unavailable", times=None)
    for _ in range(3):
        with pytest.raises(ClientError):
            ec2.describe_instances()

    aws.reset()

    assert ec2.describe_instances()["Reservations"] == []


def test_a_fault_with_when_only_hits_calls_with_that_parameter(aws, ec2, image_id):
    aws.fault_inject(
        "RunInstances", "InsufficientInstanceCapacity", when={"InstanceType": "g5.xlarge"}
    )

    launch(ec2, image_id, "g4dn.xlarge")
    with pytest.raises(ClientError) as raised:
        launch(ec2, image_id, "g5.xlarge")

    assert _error(raised)[0] == "InsufficientInstanceCapacity"
    assert instance_count(ec2) == 1


def test_when_finds_the_instance_type_inside_a_spot_launch_specification(aws, ec2, image_id):
    aws.fault_inject(
        "RequestSpotInstances", "InsufficientInstanceCapacity", when={"InstanceType": "g5.xlarge"}
    )

    with pytest.raises(ClientError):
        ec2.request_spot_instances(
            InstanceCount=1, LaunchSpecification={"ImageId": image_id, "InstanceType": "g5.xlarge"}
        )


def test_a_fault_qualified_by_service_spares_other_services(aws, ec2):
    aws.fault_inject("cloudwatch:DescribeInstances", "RequestLimitExceeded")

    assert ec2.describe_instances()["Reservations"] == []


def test_cost_explorer_errors_use_the_json_protocol_s_type(aws, boto):
    ce = boto("ce")
    aws.fault_inject("GetCostAndUsage", "LimitExceededException")
    aws.fault_inject("GetCostAndUsage", "AccessDeniedException")
    call = {
        "TimePeriod": {"Start": "2026-11-01", "End": "2026-11-02"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
    }

    with pytest.raises(ce.exceptions.LimitExceededException) as throttled:
        ce.get_cost_and_usage(**call)
    with pytest.raises(ClientError) as denied:
        ce.get_cost_and_usage(**call)

    assert _error(throttled)[0] == "LimitExceededException"
    assert _error(throttled)[2] == 400
    assert throttled.value.response["ResponseMetadata"]["RequestId"]
    code, message, _ = _error(denied)
    assert code == "AccessDeniedException"
    assert message.endswith("is not authorized to perform: ce:GetCostAndUsage")


def test_a_fault_can_match_a_json_parameter(aws, boto):
    ce = boto("ce")
    aws.fault_inject("GetCostAndUsage", "DataUnavailableException", when={"Granularity": "HOURLY"})
    period = {"Start": "2026-11-01", "End": "2026-11-02"}

    ce.get_cost_and_usage(TimePeriod=period, Granularity="DAILY", Metrics=["UnblendedCost"])
    with pytest.raises(ce.exceptions.DataUnavailableException):
        ce.get_cost_and_usage(TimePeriod=period, Granularity="HOURLY", Metrics=["UnblendedCost"])


def test_cloudwatch_errors_come_back_in_cbor_with_the_query_error_code(aws, boto):
    cloudwatch = boto("cloudwatch")
    aws.fault_inject("GetMetricStatistics", "Throttling")
    now = datetime.now(UTC)

    with pytest.raises(ClientError) as raised:
        cloudwatch.get_metric_statistics(
            Namespace="AWS/EFS",
            MetricName="StorageBytes",
            StartTime=now - timedelta(days=2),
            EndTime=now,
            Period=300,
            Statistics=["Average"],
        )

    assert _error(raised)[:2] == ("Throttling", "Rate exceeded")


def test_rest_json_errors_name_the_code_in_the_header(aws, boto):
    efs = boto("efs")
    aws.fault_inject("DescribeFileSystems", "ThrottlingException")

    with pytest.raises(ClientError) as raised:
        efs.describe_file_systems()

    assert _error(raised)[0] == "ThrottlingException"


def test_s3_errors_are_rest_xml(aws, boto):
    s3 = boto("s3")
    s3.create_bucket(
        Bucket="clusterweb-data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    aws.fault_inject("ListObjectsV2", "SlowDown", status=503, message="Please reduce your rate.")

    with pytest.raises(ClientError) as raised:
        s3.list_objects_v2(Bucket="clusterweb-data")

    assert _error(raised) == ("SlowDown", "Please reduce your rate.", 503)


def test_boto3_retries_a_throttled_call_as_it_would_against_aws(aws, boto):
    ec2 = boto("ec2", config=Config(retries={"mode": "standard", "total_max_attempts": 2}))
    aws.fault_inject("DescribeInstances", "RequestLimitExceeded")

    answer = ec2.describe_instances()

    assert answer["ResponseMetadata"]["RetryAttempts"] == 1


def test_faults_can_be_armed_listed_and_cleared_over_http(aws, ec2):
    control = AwsControl(aws.url)

    fault = control.fault_inject("DescribeInstances", "RequestLimitExceeded", times=3)
    assert fault.times == 3
    assert [f.code for f in control.faults()] == ["RequestLimitExceeded"]
    with pytest.raises(ClientError):
        ec2.describe_instances()
    assert control.faults()[0].times == 2

    control.faults_clear()

    assert control.faults() == []
    assert ec2.describe_instances()["Reservations"] == []
