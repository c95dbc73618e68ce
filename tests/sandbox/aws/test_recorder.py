"""moto's request recorder runs for the whole session, and the layer lists the (service, action)
pairs called, so Clusterweb's IAM policy can be derived from what the suite used."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from sandbox.aws import AwsControl
from tests.sandbox.aws.conftest import NO_RETRIES


def test_the_layer_lists_the_actions_called_by_iam_service_prefix(aws, ec2, boto):
    now = datetime.now(UTC)
    ec2.describe_instance_types(InstanceTypes=["m5.xlarge"])
    boto("cloudwatch").get_metric_statistics(
        Namespace="AWS/EFS",
        MetricName="StorageBytes",
        StartTime=now - timedelta(days=1),
        EndTime=now,
        Period=3600,
        Statistics=["Average"],
    )
    boto("efs").describe_file_systems()
    boto("s3").list_buckets()
    aws.fault_inject("GetCostAndUsage", "LimitExceededException")
    with pytest.raises(ClientError):  # answered by the layer, never reaching moto: still called
        boto("ce").get_cost_and_usage(
            TimePeriod={"Start": "2026-11-01", "End": "2026-11-02"},
            Granularity="DAILY",
            Metrics=["UnblendedCost"],
        )

    actions = set(aws.recorded_actions())

    assert {
        ("ec2", "DescribeInstanceTypes"),
        ("cloudwatch", "GetMetricStatistics"),  # IAM's prefix, not the signing name "monitoring"
        ("elasticfilesystem", "DescribeFileSystems"),
        ("s3", "ListBuckets"),
        ("ce", "GetCostAndUsage"),
    } <= actions


def test_the_recording_outlives_a_reset(aws, ec2):
    ec2.describe_spot_price_history(InstanceTypes=["g5.xlarge"])
    aws.reset()

    assert ("ec2", "DescribeSpotPriceHistory") in aws.recorded_actions()


def test_the_actions_can_be_read_over_http(aws, ec2):
    ec2.describe_availability_zones()

    assert ("ec2", "DescribeAvailabilityZones") in AwsControl(aws.url).recorded_actions()


def test_moto_s_own_recorder_endpoint_has_the_requests(aws, ec2):
    ec2.describe_key_pairs()

    answer = requests.get(f"{aws.url}/moto-api/recorder/download-recording", timeout=10)
    entries = [json.loads(line) for line in answer.text.splitlines()]

    bodies = [base64.b64decode(e["body"]) for e in entries if e.get("body_encoded")]
    assert any(body.startswith(b"Action=DescribeKeyPairs&") for body in bodies)


def test_calls_are_recorded_per_access_key(aws, boto):
    product = boto("ec2")
    setup = boto3.client(
        "ec2",
        region_name="eu-west-1",
        aws_access_key_id=aws.SETUP_ACCESS_KEY,
        aws_secret_access_key=aws.SETUP_ACCESS_KEY,
        config=NO_RETRIES,
    )
    setup.describe_internet_gateways()
    product.describe_availability_zones()
    aws.fault_inject("DescribeRegions", "RequestLimitExceeded")
    with pytest.raises(ClientError):  # answered by the layer: still filed under its key
        setup.describe_regions()

    mine = set(aws.recorded_actions("testing"))
    theirs = set(aws.recorded_actions(aws.SETUP_ACCESS_KEY))

    assert ("ec2", "DescribeAvailabilityZones") in mine
    assert ("ec2", "DescribeInternetGateways") not in mine
    assert {("ec2", "DescribeInternetGateways"), ("ec2", "DescribeRegions")} <= theirs
    assert ("testing", "ec2", "DescribeAvailabilityZones") in aws.recorded_calls()
    over_http = AwsControl(aws.url)
    assert set(over_http.recorded_actions(aws.SETUP_ACCESS_KEY)) == theirs
    assert set(over_http.recorded_calls()) == set(aws.recorded_calls())
