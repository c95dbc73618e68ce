"""Storage sizes, which moto gets wrong (EFS reports 0, its S3 estimate averages into whatever is
published): the layer publishes them to CloudWatch where the product reads them, with the
timestamps AWS uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandbox.aws import AwsControl

GIB = 1024**3


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _efs_points(cloudwatch, file_system_id: str, period: int = 300) -> list[dict]:
    now = datetime.now(UTC)
    return cloudwatch.get_metric_statistics(
        Namespace="AWS/EFS",
        MetricName="StorageBytes",
        Dimensions=[
            {"Name": "FileSystemId", "Value": file_system_id},
            {"Name": "StorageClass", "Value": "Total"},
        ],
        StartTime=now - timedelta(days=2),
        EndTime=now + timedelta(minutes=1),
        Period=period,
        Statistics=["Average"],
    )["Datapoints"]


def _s3_points(cloudwatch, bucket: str, period: int = 86400) -> list[dict]:
    now = datetime.now(UTC)
    return cloudwatch.get_metric_statistics(
        Namespace="AWS/S3",
        MetricName="BucketSizeBytes",
        Dimensions=[
            {"Name": "BucketName", "Value": bucket},
            {"Name": "StorageType", "Value": "StandardStorage"},
        ],
        StartTime=now - timedelta(days=2),
        EndTime=now,
        Period=period,
        Statistics=["Average"],
    )["Datapoints"]


@pytest.fixture
def cloudwatch(boto):
    return boto("cloudwatch")


@pytest.fixture
def bucket(boto) -> str:
    s3 = boto("s3")
    s3.create_bucket(
        Bucket="clusterweb-data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    # Something in it, so moto computes a size of its own (the keys' bytes) for the bucket.
    s3.put_object(Bucket="clusterweb-data", Key="notebook.ipynb", Body=b"x" * 1000)
    return "clusterweb-data"


def test_an_efs_size_is_published_as_storage_bytes(aws, boto, cloudwatch):
    efs = boto("efs")
    file_system_id = efs.create_file_system(CreationToken="home")["FileSystemId"]

    aws.efs_size_set(file_system_id, 300 * GIB)

    points = _efs_points(cloudwatch, file_system_id)
    assert [p["Average"] for p in points] == [300 * GIB]
    assert points[0]["Unit"] == "Bytes"
    described = efs.describe_file_systems(FileSystemId=file_system_id)["FileSystems"][0]
    assert described["SizeInBytes"]["Value"] == 300 * GIB


def test_an_s3_size_is_one_datapoint_a_day_at_midnight_utc(aws, cloudwatch, bucket):
    aws.s3_size_set(bucket, 2 * GIB)

    for period in (86400, 300):  # a daily read, and a finer one, over the last two days
        points = _s3_points(cloudwatch, bucket, period)
        assert [p["Average"] for p in points] == [2 * GIB]
        assert points[0]["Timestamp"] == _midnight(datetime.now(UTC))


def test_moto_s_own_bucket_estimate_does_not_average_into_a_set_size(aws, cloudwatch, bucket):
    # Without the layer, moto's 1000-byte estimate at the same midnight halves the average.
    aws.s3_size_set(bucket, 5 * GIB)

    assert [p["Average"] for p in _s3_points(cloudwatch, bucket)] == [5 * GIB]


def test_setting_a_size_again_the_same_day_replaces_it(aws, cloudwatch, bucket):
    aws.s3_size_set(bucket, 5 * GIB)
    aws.s3_size_set(bucket, 7 * GIB)

    assert [p["Average"] for p in _s3_points(cloudwatch, bucket)] == [7 * GIB]


def test_yesterday_s_size_and_today_s_are_two_datapoints(aws, cloudwatch, bucket):
    yesterday = datetime.now(UTC) - timedelta(days=1)
    aws.s3_size_set(bucket, 4 * GIB, at=yesterday)
    aws.s3_size_set(bucket, 6 * GIB)

    points = sorted(_s3_points(cloudwatch, bucket), key=lambda p: p["Timestamp"])

    assert [p["Average"] for p in points] == [4 * GIB, 6 * GIB]
    assert points[0]["Timestamp"] == _midnight(yesterday)


def test_a_reset_gives_the_bucket_back_to_moto_s_estimate(aws, boto, cloudwatch, bucket):
    aws.s3_size_set(bucket, 5 * GIB)
    aws.reset()
    s3 = boto("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 10)

    (point,) = _s3_points(cloudwatch, bucket)
    assert 0 < point["Average"] < 1000  # moto's estimate (its own byte count), not 5 GiB


def test_sizes_can_be_set_over_http(aws, cloudwatch, bucket):
    control = AwsControl(aws.url)

    control.s3_size_set(bucket, 3 * GIB)
    control.efs_size_set("fs-0123456789abcdef0", 9 * GIB)

    assert [p["Average"] for p in _s3_points(cloudwatch, bucket)] == [3 * GIB]
    assert [p["Average"] for p in _efs_points(cloudwatch, "fs-0123456789abcdef0")] == [9 * GIB]
