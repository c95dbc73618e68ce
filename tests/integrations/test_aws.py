"""The AWS adapter against the AWS layer over real HTTP: clients configured from settings,
domain reads across pages, and every kind of AWS failure sorted into permanent and transient."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from clusterweb.errors import PermanentError, TransientError
from clusterweb.integrations import aws as adapter
from clusterweb.integrations.aws import AuthError, CapacityError, LimitError, ThrottledError
from sandbox.services.base import free_port
from tests.fixtures.services import instances_wait

IMAGE_ID = "ami-12c6146b"  # one of moto's built-in Amazon images
GIB = 1024**3


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    # Each test gets new clients: a throttled call must not slow the next test's rate limiter.
    adapter.clients_clear()
    yield
    adapter.clients_clear()


@pytest.fixture
def one_attempt(settings) -> None:
    """No retries: an injected error reaches the adapter from the first call."""
    settings.AWS_MAX_ATTEMPTS = 1


def launch(
    cluster: str | None = "sandbox",
    *,
    spot: bool = False,
    instance_type: str = "t2.micro",
    pool: str = "spark",
    count: int = 1,
    wait: bool = True,
) -> list[str]:
    tags = [{"Key": "clusterweb:pool", "Value": pool}, {"Key": "clusterweb:owner", "Value": "bob"}]
    if cluster is not None:
        tags.append({"Key": "clusterweb:cluster", "Value": cluster})
    answer = adapter.client("ec2").run_instances(
        ImageId=IMAGE_ID,
        InstanceType=instance_type,
        MinCount=count,
        MaxCount=count,
        Placement={"AvailabilityZone": "eu-west-1b"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        **({"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}),
    )
    instance_ids = [i["InstanceId"] for i in answer["Instances"]]
    if wait:
        instances_wait(adapter.client("ec2"), instance_ids, "running")  # booted, as on EC2
    return instance_ids


# --- clients -------------------------------------------------------------------------------------
def test_clients_have_explicit_timeouts_adaptive_retries_and_the_region(aws, settings):
    settings.AWS_CONNECT_TIMEOUT = 2.5
    settings.AWS_READ_TIMEOUT = 7.0
    settings.AWS_MAX_ATTEMPTS = 3

    ec2 = adapter.client("ec2")

    assert ec2.meta.config.connect_timeout == 2.5
    assert ec2.meta.config.read_timeout == 7.0
    assert ec2.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 3}
    assert ec2.meta.region_name == settings.AWS_REGION
    assert ec2.meta.endpoint_url == aws.url  # from AWS_ENDPOINT_URL, read by boto3 itself


def test_without_aws_endpoint_url_a_client_talks_to_aws(monkeypatch, settings):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings.AWS_REGION = "eu-central-1"

    assert adapter.client("ec2").meta.endpoint_url == "https://ec2.eu-central-1.amazonaws.com"


def test_a_client_is_built_once_per_configuration(aws, settings):
    first = adapter.client("ec2")
    assert adapter.client("ec2") is first

    settings.AWS_READ_TIMEOUT = 3.0

    assert adapter.client("ec2") is not first
    assert adapter.client("ec2").meta.config.read_timeout == 3.0


# --- instances -----------------------------------------------------------------------------------
def test_instances_describe_finds_the_cluster_s_members_only(aws):
    (member,) = launch("sandbox")
    launch("another-cluster")
    launch(None)

    (instance,) = adapter.instances_describe("sandbox")

    assert instance.instance_id == member
    assert instance.instance_type == "t2.micro"
    assert instance.state == "running"
    assert instance.lifecycle == "on-demand"
    assert instance.zone == "eu-west-1b"
    assert (instance.pool, instance.owner) == ("spark", "bob")
    assert instance.launch_time.tzinfo is not None
    assert not instance.spot_interrupted


def test_the_lifecycle_filter_is_applied_client_side(aws):
    spot = set(launch(spot=True, count=2))
    on_demand = set(launch())

    assert {i.instance_id for i in adapter.instances_describe("sandbox", lifecycle="spot")} == spot
    assert {
        i.instance_id for i in adapter.instances_describe("sandbox", lifecycle="on-demand")
    } == on_demand
    assert len(adapter.instances_describe("sandbox")) == 3


def test_an_unknown_lifecycle_is_refused():
    with pytest.raises(ValueError, match="spot or on-demand"):
        adapter.instances_describe("sandbox", lifecycle="reserved")


def test_instances_describe_reads_every_page(aws):
    # One reservation per launch, one more than a page holds.
    for _ in range(adapter._PAGE_SIZE + 1):
        launch(wait=False)  # pending or running, each is listed

    assert len(adapter.instances_describe("sandbox")) == adapter._PAGE_SIZE + 1


def test_states_are_slugs_both_ways(aws):
    running, gone = launch(count=2)
    adapter.client("ec2").terminate_instances(InstanceIds=[gone])
    instances_wait(adapter.client("ec2"), [gone], "terminated")  # past shutting-down

    (alive,) = adapter.instances_describe("sandbox", states=["running", "shutting_down"])
    (dead,) = adapter.instances_describe("sandbox", states=["terminated"])

    assert (alive.instance_id, dead.instance_id) == (running, gone)
    assert dead.state_reason_code == "Client.UserInitiatedShutdown"


def test_a_reclaimed_spot_instance_says_it_was_interrupted(aws):
    (instance_id,) = launch(spot=True)

    aws.spot_interrupt(instance_id)
    instances_wait(adapter.client("ec2"), [instance_id], "terminated")

    (instance,) = adapter.instances_describe("sandbox")
    assert instance.state == "terminated"
    assert instance.spot_interrupted
    assert instance.state_reason_code == "Server.SpotInstanceTermination"


# --- instance types, spot prices, metrics --------------------------------------------------------
def test_instance_types_describe_gives_vcpus_memory_and_gpus(aws):
    types = adapter.instance_types_describe(["g4dn.xlarge", "m5.xlarge", "g4dn.xlarge"])

    assert set(types) == {"g4dn.xlarge", "m5.xlarge"}
    assert (types["g4dn.xlarge"].vcpus, types["g4dn.xlarge"].gpus) == (4, 1)
    assert types["g4dn.xlarge"].gpu_memory_mib == 16384
    assert (types["m5.xlarge"].vcpus, types["m5.xlarge"].memory_mib) == (4, 16384)
    assert types["m5.xlarge"].gpus == 0
    assert adapter.instance_types_describe([]) == {}


def test_an_unknown_instance_type_is_a_permanent_error(aws, one_attempt):
    with pytest.raises(PermanentError) as raised:
        adapter.instance_types_describe(["p3.2xlarge"])  # not in moto's catalogue

    assert raised.value.code == "InvalidInstanceType"


def test_spot_price_history_gives_decimal_prices_per_type_and_zone(aws):
    since = datetime.now(UTC) - timedelta(days=1)

    prices = adapter.spot_price_history(["g5.xlarge", "m5.xlarge"], since)

    assert {p.instance_type for p in prices} == {"g5.xlarge", "m5.xlarge"}
    assert all(isinstance(p.price, Decimal) for p in prices)
    assert {p.zone for p in prices} >= {"eu-west-1a", "eu-west-1b"}
    assert adapter.spot_price_history([], since) == []


def efs_size_latest(file_system_id: str) -> adapter.MetricPoint | None:
    dimensions = {"FileSystemId": file_system_id, "StorageClass": "Total"}
    since = datetime.now(UTC) - timedelta(days=2)
    return adapter.metric_latest("AWS/EFS", "StorageBytes", dimensions, since)


def test_metric_latest_reads_an_efs_size(aws):
    aws.efs_size_set("fs-0123456789abcdef0", 120 * GIB)

    point = efs_size_latest("fs-0123456789abcdef0")

    assert point is not None
    assert (point.value, point.unit) == (120 * GIB, "Bytes")


def test_metric_latest_includes_a_datapoint_stamped_this_second_or_just_ahead(aws):
    # CloudWatch's EndTime is exclusive and compared to the second; a point EFS published at
    # this very second (or a moment ahead of our clock) is still the newest one.
    ahead = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    aws.efs_size_set("fs-0123456789abcdef0", 7 * GIB, at=ahead)

    point = efs_size_latest("fs-0123456789abcdef0")

    assert point is not None
    assert (point.at, point.value) == (ahead, 7 * GIB)


def test_metric_latest_reads_today_s_s3_size_over_two_days(aws):
    aws.s3_size_set("clusterweb-data", 3 * GIB, at=datetime.now(UTC) - timedelta(days=1))
    aws.s3_size_set("clusterweb-data", 4 * GIB)
    dimensions = {"BucketName": "clusterweb-data", "StorageType": "StandardStorage"}

    point = adapter.metric_latest(
        "AWS/S3", "BucketSizeBytes", dimensions, datetime.now(UTC) - timedelta(days=2)
    )

    assert point is not None
    assert point.value == 4 * GIB
    assert point.at == datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def test_metric_latest_is_none_without_datapoints(aws):
    since = datetime.now(UTC) - timedelta(days=2)

    assert adapter.metric_latest("AWS/EFS", "StorageBytes", {"FileSystemId": "fs-x"}, since) is None
    assert (
        adapter.metric_latest("AWS/EFS", "StorageBytes", {}, datetime.now(UTC) + timedelta(1))
        is None
    )


@pytest.mark.parametrize(
    ("age", "span", "period"),
    [
        (timedelta(days=2), timedelta(days=2), 120),  # 1440 points at most per call
        (timedelta(hours=1), timedelta(hours=1), 60),
        (timedelta(days=30), timedelta(days=30), 1800),  # 5-minute data only after 15 days
        (timedelta(days=90), timedelta(days=1), 3600),  # hourly data only after 63 days
    ],
)
def test_the_metric_period_is_one_cloudwatch_accepts(age, span, period):
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)

    assert adapter._period(now - age, now - age + span, now) == period


# --- errors --------------------------------------------------------------------------------------
def _run_instances() -> None:
    launch()


def _request_spot() -> None:
    adapter.client("ec2").request_spot_instances(
        InstanceCount=1, LaunchSpecification={"ImageId": IMAGE_ID, "InstanceType": "g5.xlarge"}
    )


def _cost() -> None:
    adapter.client("ce").get_cost_and_usage(
        TimePeriod={"Start": "2026-11-01", "End": "2026-11-02"},
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
    )


def _metrics() -> None:
    adapter.metric_latest("AWS/EFS", "StorageBytes", {}, datetime.now(UTC) - timedelta(days=1))


def _describe() -> None:
    adapter.instances_describe("sandbox")


@pytest.mark.parametrize(
    ("action", "code", "call", "expected"),
    [
        ("RunInstances", "InsufficientInstanceCapacity", _run_instances, CapacityError),
        ("RunInstances", "InsufficientCapacity", _run_instances, CapacityError),
        ("RequestSpotInstances", "InsufficientInstanceCapacity", _request_spot, CapacityError),
        ("RequestSpotInstances", "MaxSpotInstanceCountExceeded", _request_spot, LimitError),
        ("RunInstances", "VcpuLimitExceeded", _run_instances, LimitError),
        ("RunInstances", "InstanceLimitExceeded", _run_instances, LimitError),
        ("DescribeInstances", "RequestLimitExceeded", _describe, ThrottledError),
        ("GetMetricStatistics", "Throttling", _metrics, ThrottledError),
        ("GetCostAndUsage", "ThrottlingException", _cost, ThrottledError),
        ("DescribeInstances", "AuthFailure", _describe, AuthError),
        ("RunInstances", "UnauthorizedOperation", _run_instances, AuthError),
        ("GetCostAndUsage", "AccessDeniedException", _cost, AuthError),
        ("GetCostAndUsage", "ExpiredTokenException", _cost, AuthError),
        ("RunInstances", "InvalidParameterValue", _run_instances, PermanentError),
        ("DescribeInstances", "InternalError", _describe, TransientError),
        ("DescribeInstances", "Unavailable", _describe, TransientError),
    ],
)
def test_aws_errors_are_sorted_into_permanent_and_transient(
    aws, one_attempt, action, code, call: Callable[[], None], expected
):
    aws.fault_inject(action, code)

    with pytest.raises(expected) as raised, adapter.translated():
        call()

    error = raised.value
    assert type(error) is expected
    assert error.code == code
    assert error.system == "aws"
    assert error.permanent == issubclass(expected, PermanentError)
    assert isinstance(error.__cause__, ClientError)


def test_capacity_errors_are_transient_so_a_launch_can_try_elsewhere():
    assert issubclass(CapacityError, TransientError)
    assert issubclass(LimitError, PermanentError)


def test_a_reused_client_token_with_other_parameters_is_permanent(aws, one_attempt):
    ec2 = adapter.client("ec2")
    call = {"ImageId": IMAGE_ID, "MinCount": 1, "MaxCount": 1, "ClientToken": "request-7"}
    ec2.run_instances(InstanceType="t2.micro", **call)

    with pytest.raises(PermanentError) as raised, adapter.translated():
        ec2.run_instances(InstanceType="g5.xlarge", **call)

    assert raised.value.code == "IdempotentParameterMismatch"


def test_bad_parameters_are_permanent_before_any_call(aws):
    with pytest.raises(PermanentError) as raised, adapter.translated():
        adapter.client("ec2").run_instances(ImageId=IMAGE_ID)  # no MinCount/MaxCount

    assert raised.value.code == "ParamValidationError"


def test_missing_credentials_are_an_auth_error(aws, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    adapter.clients_clear(sessions=True)  # a session keeps the credentials it found

    with pytest.raises(AuthError) as raised:
        adapter.instances_describe("sandbox")

    assert raised.value.code == "NoCredentialsError"


def test_an_unreachable_endpoint_is_transient(monkeypatch, settings, one_attempt):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    with pytest.raises(TransientError) as raised:
        adapter.instances_describe("sandbox")

    assert raised.value.code == "EndpointConnectionError"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for conn in accepted:
        conn.close()
    listener.close()


def test_an_answer_that_never_comes_is_a_transient_timeout(
    monkeypatch, settings, one_attempt, silent_server
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.AWS_READ_TIMEOUT = 0.3

    with pytest.raises(TransientError) as raised:
        adapter.instances_describe("sandbox")

    assert raised.value.code == "ReadTimeoutError"


def test_an_answer_that_is_not_aws_s_is_transient(aws, one_attempt):
    launch()

    with pytest.raises(TransientError) as raised, adapter.translated():
        # moto answers this filter with an HTML error page (HTTP 500).
        adapter.client("ec2").describe_instances(
            Filters=[{"Name": "instance-lifecycle", "Values": ["spot"]}]
        )

    assert raised.value.code == "ResponseParserError"


def test_a_transient_error_is_retried_within_aws_max_attempts(aws, settings):
    settings.AWS_MAX_ATTEMPTS = 3
    launch()
    aws.fault_inject("DescribeInstances", "InternalError", times=2)

    assert len(adapter.instances_describe("sandbox")) == 1
    assert aws.controls.faults() == []


def test_retries_stop_at_aws_max_attempts(aws, settings):
    settings.AWS_MAX_ATTEMPTS = 2
    aws.fault_inject("DescribeInstances", "InternalError", times=5)

    with pytest.raises(TransientError):
        adapter.instances_describe("sandbox")

    assert [f.times for f in aws.controls.faults()] == [3]  # two attempts used two


def test_translated_is_also_a_decorator(aws, one_attempt):
    aws.fault_inject("DescribeInstances", "UnauthorizedOperation")

    @adapter.translated()
    def read() -> None:
        adapter.client("ec2").describe_instances()

    with pytest.raises(AuthError):
        read()
