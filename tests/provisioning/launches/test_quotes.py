"""The quote: the hourly price now and its source, the expected cost (hourly x count x hours), the
maximum at the on-demand ceiling, the owner's month so far, the forecast with the launch added."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.costs import costing
from billing.costs import selectors as costs
from billing.money import amount
from provisioning.launches import quotes, services
from provisioning.launches.models import LaunchRequest
from tests.provisioning.launches.conftest import ON_DEMAND, SPOT_HIGHEST

pytestmark = pytest.mark.django_db


def quote(pool, **kwargs):
    values = {
        "instance_type": "m5.xlarge",
        "count": 4,
        "hours": 10,
        "capacity_type": "spot",
        "owner": "bob",
    }
    return quotes.launch_quote(pool=pool, **{**values, **kwargs})


def test_a_spot_quote_uses_the_highest_spot_price_of_the_pools_zones(pools, spot_prices):
    q = quote(pools["spark"])

    assert q.hourly == SPOT_HIGHEST and q.hourly_kind == "spot" and q.zone == "eu-west-1b"
    assert "spot price eu-west-1b" in q.hourly_source
    assert q.expected_cost == Decimal("3.20")  # 0.08 x 4 x 10
    assert q.max_cost == amount(ON_DEMAND * 40) == Decimal("8.56")  # spot may rise to on-demand
    assert q.as_json()["hourly"] == "0.08" and q.as_json()["max_cost"] == "8.56"


def test_a_spot_quote_is_taken_in_the_pools_zone_only(pools, spot_prices):
    pool = pools["spark"]
    pool.zones = ["eu-west-1a"]

    q = quote(pool)

    assert q.hourly == Decimal("0.07") and q.zone == "eu-west-1a"


def test_an_on_demand_quote_has_its_maximum_equal_to_its_expected_cost(pools, spot_prices):
    q = quote(pools["spark"], capacity_type="on-demand")

    assert q.hourly == ON_DEMAND and q.hourly_kind == "on-demand"
    assert q.expected_cost == q.max_cost == Decimal("8.56")


def test_with_fallback_the_maximum_is_still_the_on_demand_ceiling(pools, spot_prices):
    q = quote(pools["spark"], fallback=True, count=10, hours=48)

    assert q.expected_cost == Decimal("38.40")  # 0.08 x 480
    assert q.max_cost == Decimal("102.72")  # 0.214 x 480: what a fallback would cost


def test_without_a_recent_spot_price_the_on_demand_price_is_quoted_and_said(pools):
    q = quote(pools["spark"])

    assert q.hourly == ON_DEMAND and q.hourly_kind == "on-demand"
    assert "spot price unknown" in q.notice
    assert q.max_cost == q.expected_cost == Decimal("8.56")


def test_a_type_without_any_price_has_unknown_costs(pools, spot_prices):
    pool = pools["spark"]
    pool.instance_types = [*pool.instance_types, "zz9.huge"]

    q = quote(pool, instance_type="zz9.huge")

    assert q.hourly is None and q.expected_cost is None and q.max_cost is None
    assert not q.known and q.forecast_with_launch is None


def test_the_forecast_with_the_launch_adds_its_cost_to_the_month(pools, spot_prices):
    q = quote(pools["spark"], hours=1)

    # One hour of 4 x 0.08 fits in the month, unless the test runs in its last hour (then a part).
    added = q.forecast_with_launch - q.forecast
    if costing.month_after(costing.month_start(q.at)) - q.at >= timedelta(hours=1):
        assert added == Decimal("0.32")
    else:
        assert Decimal("0.00") < added <= Decimal("0.32")
    assert q.owner_month_to_date == Decimal("0.00")


def test_the_forecast_counts_approved_launches_not_yet_started(pools, spot_prices, alice_user):
    start = costs.month_estimate(costs.costing.month_start(quote(pools["spark"]).at))
    before = costs.month_forecast(start, now=quote(pools["spark"]).at).total

    launch = services.request_launch(
        requested_by=alice_user,
        owner=alice_user,
        kind="spark",
        pool="spark",
        instance_type="m5.xlarge",
        count=2,
        hours=1,
        capacity_type="spot",
    )
    assert launch.state == "approved"
    after = costs.month_forecast(start, now=launch.created_at)

    assert [line.label for line in after.lines if line.group == "planned"] == [
        f"launch {launch.pk}: 2 x m5.xlarge spot"
    ]
    added = after.total - before
    left = costing.month_after(costing.month_start(launch.created_at)) - launch.created_at
    if left >= timedelta(hours=1):
        assert added == Decimal("0.16")  # 2 x 0.08 for the hour
    else:  # the month's last hour: the part of it left
        assert Decimal("0.00") < added <= Decimal("0.16")


def test_the_live_quote_takes_as_many_queries_however_many_launches_are_approved(
    pools, spot_prices, alice_user
):
    """The page re-quotes at each change of a field: its cost does not grow with the approved
    launches the forecast counts."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def approve_one() -> None:
        services.request_launch(
            requested_by=alice_user,
            owner=alice_user,
            kind="spark",
            pool="spark",
            instance_type="m5.xlarge",
            count=1,
            hours=1,
            capacity_type="spot",
        )

    counts = []
    for launches in (1, 4):
        while LaunchRequest.objects.count() < launches:
            approve_one()
        with CaptureQueriesContext(connection) as captured:
            quote(pools["spark"])
        counts.append(len(captured))

    assert counts[0] == counts[1] and counts[0] < 50
