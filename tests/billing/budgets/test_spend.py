"""Actual spend is the larger of the live estimate and the bill through its last day present in
full plus the estimate since; a later bill that lowers the figure sends nothing again."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from billing.budgets import selectors, services
from billing.budgets.services import budget_evaluate
from billing.models import BilledCost, BilledDay, CostExplorerRead
from billing.money import amount
from tests.billing.budgets.conftest import at, base_node, costs_at, spark_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def month(clock_at, pools, people):
    now = clock_at(at(1, 15, 10))
    base_node(at(1, 1))
    spark_node(at(1, 1))
    costs_at(now)
    return now


def bill(per_day: str, days: int = 14) -> None:
    """Cost Explorer's answer for Jan 1..``days`` (the latest may be partial), ``per_day`` each."""
    read, _ = CostExplorerRead.objects.get_or_create(
        month=date(2027, 1, 1),
        period_start=date(2027, 1, 1),
        period_end=date(2027, 1, 15),
        defaults={"started_at": at(1, 15), "finished_at": at(1, 15), "requests": 1, "ok": True},
    )
    for offset in range(days):
        day, _ = BilledDay.objects.get_or_create(
            day=date(2027, 1, 1) + timedelta(days=offset),
            defaults={"month": date(2027, 1, 1), "read": read, "fetched_at": at(1, 15)},
        )
        BilledCost.objects.update_or_create(
            billed_day=day,
            service="Amazon Elastic Compute Cloud - Compute",
            defaults={"amount": Decimal(per_day)},
        )


def test_without_a_bill_actual_spend_is_the_estimate(month):
    spend = selectors.budget_overview().spend

    assert spend.billed is None and spend.actual == spend.estimate and spend.source == "estimate"


def test_a_bill_above_the_estimate_counts_through_its_last_full_day_plus_the_estimate_since(
    month,
):
    bill("20.00")  # Jan 1..14 billed; the 14th is AWS's latest day, maybe partial

    view = selectors.budget_overview()
    spend = view.spend

    assert spend.billed_through == date(2027, 1, 13) and spend.billed == Decimal("260.00")
    estimate = view.overview.estimate
    since = sum(
        (b + u for day, (b, u) in estimate.daily.items() if day > date(2027, 1, 13)), Decimal(0)
    )
    assert spend.actual == Decimal("260.00") + amount(since) > spend.estimate
    assert spend.source == "bill through Jan 13 + estimate since"
    assert spend.forecast == spend.actual + view.overview.forecast.remaining


def test_a_bill_below_the_estimate_leaves_the_estimate(month):
    bill("0.10")

    spend = selectors.budget_overview().spend

    assert spend.billed == Decimal("1.30") and spend.actual == spend.estimate


def test_a_later_bill_that_lowers_the_figure_sends_nothing_again(month, people, mailbox):
    services.budget_set(actor=people["alice"], monthly="150", forecast="")
    assert budget_evaluate().crossed == ["actual-50"]  # the estimate alone: ~$83 of $150
    bill("20.00")

    high = budget_evaluate()

    assert high.claimed == ["actual-80", "actual-100"]  # the bill: ~$270
    bill("1.00")  # AWS revises the days down
    low = budget_evaluate()
    assert low.crossed == ["actual-50"] and low.claimed == [] and low.sent == []
    bill("20.00")

    assert budget_evaluate().sent == []
    assert len(mailbox.wait_for(3)) == 3
