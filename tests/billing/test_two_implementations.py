"""The estimate's cost rules (``billing.costs.costing``) and the AWS layer's bill
(``sandbox.aws.bill``) are two implementations of AWS's billing rules that must agree on the same
usage, day by day (issue 19): hypothesis draws instance runs and volume lifetimes across
midnights and a month's end, from a second to days long, on-demand and spot (interrupted in its
first hour or not). The replayed month (test_sandbox_history.py) compares them through the
product; this compares the rules themselves on shapes the month does not script."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.costs import costing
from sandbox.aws.bill import COMPUTE, EC2_OTHER, VPC, Bill, BillRules
from sandbox.aws.metering import Held, Run, Snapshot
from sandbox.aws.price_table import ON_DEMAND, STORAGE, PriceTable

pytestmark = pytest.mark.sqlite

BASE = datetime(2027, 1, 25, tzinfo=UTC)  # a week before a month's end
FIRST, END = date(2027, 1, 20), date(2027, 2, 20)
WINDOW = (costing.midnight(FIRST), costing.midnight(END))
STARTS = st.integers(min_value=0, max_value=14 * 86400).map(lambda s: BASE + timedelta(seconds=s))
LENGTHS = st.one_of(st.integers(1, 120), st.integers(1, 3 * 86400))
# The estimate keeps 10 decimals per piece, the layer exact figures: equal to 1e-8 a day.
CLOSE = Decimal("0.00000001")


def quote(price: Decimal) -> SimpleNamespace:
    return SimpleNamespace(price=price, kind="test", source="test", notice=None)


def by_day(charges) -> dict[date, Decimal]:
    found: dict[date, Decimal] = defaultdict(Decimal)
    for charge in charges:
        found[charge.day] += charge.cost
    return {day: cost for day, cost in found.items() if cost}


def billed(snapshot: Snapshot, service: str, spot_price: Decimal | None = None) -> dict:
    history = [(BASE - timedelta(days=30), spot_price)] if spot_price is not None else []
    bill = Bill(
        snapshot,
        PriceTable(),
        BillRules(),
        lambda instance_type, zone: history,
        first=FIRST,
        end=END,
        cutoff=costing.midnight(END),
    )
    return {day: costs[service] for day, costs in bill.days.items() if costs.get(service)}


def agree(estimate: dict[date, Decimal], bill: dict[date, Decimal]) -> bool:
    return set(estimate) == set(bill) and all(
        abs(estimate[day] - bill[day]) <= CLOSE for day in estimate
    )


@settings(max_examples=60, deadline=None)
@given(start=STARTS, length=LENGTHS, spot=st.booleans(), interrupted=st.booleans())
def test_an_instance_run_costs_the_same_each_day_in_both(start, length, spot, interrupted):
    end = start + timedelta(seconds=length)
    interrupted = spot and interrupted
    price = Decimal("0.0712") if spot else ON_DEMAND["m5.xlarge"]
    estimate = costing.instance_charges(
        runs=[(start, end)],
        window=WINDOW,
        quote_at=lambda at: quote(price),
        spot=spot,
        spot_interrupted_at=end if interrupted else None,
    )
    run = Run("i-1", "eu-west-1", "m5.xlarge", spot, "eu-west-1a", start, end, interrupted)
    snapshot = Snapshot(runs=[run], held={}, sizes={}, ce_requests=[])

    assert agree(by_day(estimate), billed(snapshot, COMPUTE, price if spot else None))


@settings(max_examples=60, deadline=None)
@given(start=STARTS, length=LENGTHS, size=st.integers(1, 16_384))
def test_a_volume_costs_the_same_each_day_in_both(start, length, size):
    end = start + timedelta(seconds=length)
    estimate = costing.storage_charges(
        start=start,
        end=end,
        window=WINDOW,
        gb=Decimal(size),
        quote_at=lambda at: quote(STORAGE["ebs-gp3"]),
    )
    attrs = {"size": size, "type": "gp3", "iops": 3000, "throughput": 125}
    snapshot = Snapshot(
        runs=[], held={"volume": [Held("vol-1", start, end, attrs)]}, sizes={}, ce_requests=[]
    )

    assert agree(by_day(estimate), billed(snapshot, EC2_OTHER))


@settings(max_examples=40, deadline=None)
@given(start=STARTS, length=LENGTHS)
def test_a_public_ipv4_address_costs_the_same_each_day_in_both(start, length):
    end = start + timedelta(seconds=length)
    estimate = costing.hourly_charges(
        start=start, end=end, window=WINDOW, quote_at=lambda at: quote(Decimal("0.005"))
    )
    snapshot = Snapshot(
        runs=[], held={"address": [Held("eipalloc-1", start, end)]}, sizes={}, ce_requests=[]
    )

    assert agree(by_day(estimate), billed(snapshot, VPC))
