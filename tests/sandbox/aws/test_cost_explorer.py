"""Cost Explorer's GetCostAndUsage answered by the AWS layer from its own bill
(sandbox/aws/bill.py): daily by service, the latest day lagging, days estimated until their
month is final, pages with NextPageToken, every request billed, requests it does not simulate
refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from tests.sandbox.aws.test_metering import at, call, close, launched, run

NOW = datetime(2027, 1, 20, 6, tzinfo=UTC)
COMPUTE = "Amazon Elastic Compute Cloud - Compute"


@pytest.fixture
def layer(aws, shared_clock):
    shared_clock.set_offset((NOW - datetime.now(UTC)).total_seconds())
    aws.delays_set(pending=1, stopping=1, shutting_down=1)
    return aws


@pytest.fixture
def ce(boto):
    return boto("ce", region="us-east-1")


def daily(ce, start: str, end: str, **extra) -> dict:
    return ce.get_cost_and_usage(
        TimePeriod={"Start": start, "End": end},
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
        **extra,
    )


def by_day(answer: dict) -> dict[str, dict[str, Decimal]]:
    return {
        result["TimePeriod"]["Start"]: {
            group["Keys"][0]: Decimal(group["Metrics"]["UnblendedCost"]["Amount"])
            for group in result["Groups"]
        }
        for result in answer["ResultsByTime"]
    }


def test_it_answers_daily_by_service_from_the_layer_s_bill_with_the_latest_day_lagging(layer, ce):
    # A t2.micro up since 30 December: across a month end, and still running now (20 Jan 06:00).
    layer.replay([{"at": datetime(2026, 12, 30, tzinfo=UTC), **run("t2.micro")}])

    answer = daily(ce, "2026-12-30", "2027-01-21")

    days = by_day(answer)
    assert min(days) == "2026-12-30" and max(days) == "2027-01-20"  # not tomorrow
    assert close(days["2027-01-05"][COMPUTE], Decimal("0.0126") * 24)
    assert close(days["2026-12-31"][COMPUTE], Decimal("0.0126") * 24)
    # Usage is known up to 12 hours ago (19 Jan 18:00): the 19th is partial, the 20th empty.
    assert close(days["2027-01-19"][COMPUTE], Decimal("0.0126") * 18)
    assert days["2027-01-20"] == {}
    # December is final three days after it ended; January is not.
    estimated = {r["TimePeriod"]["Start"]: r["Estimated"] for r in answer["ResultsByTime"]}
    assert estimated["2026-12-31"] is False and estimated["2027-01-01"] is True
    assert set(days["2027-01-05"]) == {COMPUTE, "EC2 - Other", "Amazon Virtual Private Cloud"}
    assert answer["GroupDefinitions"] == [{"Type": "DIMENSION", "Key": "SERVICE"}]


def test_every_request_is_billed_under_cost_explorer(layer, ce, shared_clock):
    for _ in range(3):
        daily(ce, "2027-01-01", "2027-01-20")
    shared_clock.set_offset((NOW + timedelta(days=1) - datetime.now(UTC)).total_seconds())

    days = by_day(daily(ce, "2027-01-20", "2027-01-21"))

    assert days["2027-01-20"]["AWS Cost Explorer"] == Decimal("0.03")


def test_pages_follow_next_page_token_and_a_token_of_other_parameters_is_refused(layer, ce):
    layer.replay([{"at": at(1), **run("t2.micro")}])
    layer.bill_rules_set(page_days=7)

    first = daily(ce, "2027-01-01", "2027-01-20")
    second = daily(ce, "2027-01-01", "2027-01-20", NextPageToken=first["NextPageToken"])
    third = daily(ce, "2027-01-01", "2027-01-20", NextPageToken=second["NextPageToken"])

    assert [len(page["ResultsByTime"]) for page in (first, second, third)] == [7, 7, 5]
    assert "NextPageToken" not in third
    assert third["ResultsByTime"][-1]["TimePeriod"]["Start"] == "2027-01-19"
    with pytest.raises(ClientError) as changed:
        daily(ce, "2027-01-02", "2027-01-20", NextPageToken=first["NextPageToken"])
    assert changed.value.response["Error"]["Code"] == "RequestChangedException"
    with pytest.raises(ClientError) as forged:
        daily(ce, "2027-01-01", "2027-01-20", NextPageToken="bm90LWEtdG9rZW4=")
    assert forged.value.response["Error"]["Code"] == "InvalidNextTokenException"


def test_without_grouping_it_gives_the_day_s_total_and_monthly_gives_months(layer, ce):
    [result] = layer.replay([{"at": at(3, 10), **run("t2.small")}])
    layer.replay([{"at": at(3, 14), **call("TerminateInstances", InstanceIds=[launched(result)])}])

    monthly = ce.get_cost_and_usage(
        TimePeriod={"Start": "2026-12-01", "End": "2027-02-01"},
        Granularity="MONTHLY",
        Metrics=["UnblendedCost"],
    )

    [december, january] = monthly["ResultsByTime"]
    assert december["Total"]["UnblendedCost"]["Amount"] == "0.0000000000"
    bill = layer.bill(date(2027, 1, 1), date(2027, 2, 1), cutoff=NOW - timedelta(hours=12))
    everything = sum((sum(services.values()) for services in bill.values()), Decimal(0))
    assert Decimal(january["Total"]["UnblendedCost"]["Amount"]) == round(everything, 10)
    assert everything > Decimal("0.025") * 4  # four hours of t2.small, its volume and address
    assert (january["TimePeriod"]["Start"], january["TimePeriod"]["End"]) == (
        "2027-01-01", "2027-02-01",
    )  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"TimePeriod": {"Start": "2027-01-05", "End": "2027-01-05"}},
        {"Granularity": "HOURLY"},
        {"Metrics": ["UsageQuantity"]},
        {"GroupBy": [{"Type": "DIMENSION", "Key": "REGION"}]},
        {"Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Simple Storage Service"]}}},
    ],
)
def test_requests_it_does_not_simulate_are_refused_not_guessed(layer, ce, change):
    request = {
        "TimePeriod": {"Start": "2027-01-01", "End": "2027-01-05"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
        **change,
    }

    with pytest.raises(ClientError) as refused:
        ce.get_cost_and_usage(**request)

    assert refused.value.response["Error"]["Code"] == "ValidationException"
