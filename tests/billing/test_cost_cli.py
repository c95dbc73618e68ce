"""``manage.py cost [--month YYYY-MM] [--json]``: the month's estimate, bill and forecast from the
database only, in exactly the JSON shape of CONVENTIONS.md; a malformed or future --month exits 2
naming the field."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from billing.costs.services import cost_rows_refresh
from billing.models import BilledCost, BilledDay, CostExplorerRead
from sandbox.pools import sandbox_pool_data
from tests.provisioning.conftest import node_make

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def at(day: int, hour: int = 0, month: int = 1) -> datetime:
    return datetime(2027, month, day, hour, tzinfo=UTC)


def cost(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("cost", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def month(clock_at):
    """January 2027 to the 11th, 00:00: a t2.micro since the 1st (base), bob's m5.xlarge for 10
    hours on the 5th with launch request 7, and Cost Explorer's bill for the 1st to the 10th."""
    from provisioning.services import pool_spec_clean, pools_store

    pools_store([pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")], username="test")
    now = clock_at(at(11))
    node_make(pool="control", instance_type="t2.micro", launched_at=at(1), owner="")
    node_make(
        pool="spark", owner="bob", request="7", launched_at=at(5, 8), terminated_at=at(5, 18),
        state="terminated",
    )  # fmt: skip
    cost_rows_refresh(now=now)
    read = CostExplorerRead.objects.create(
        month=date(2027, 1, 1), period_start=date(2027, 1, 1), period_end=date(2027, 1, 11),
        started_at=at(10, 22), finished_at=at(10, 22), requests=2, ok=True,
    )  # fmt: skip
    for day in range(1, 11):
        billed = BilledDay.objects.create(
            day=date(2027, 1, day), month=date(2027, 1, 1), read=read, fetched_at=at(10, 22)
        )
        BilledCost.objects.create(billed_day=billed, service="EC2 - Other", amount=Decimal("0.5"))
    return now


def test_cost_json_has_exactly_the_conventions_shape(month):
    code, out, _ = cost("--json")

    assert code == 0
    data = json.loads(out)  # exactly one JSON object on stdout
    assert data == {
        "month": "2027-01",
        "currency": "USD",
        "estimate": {
            "total": "5.16",  # 240 h x 0.0126 = 3.02, plus 10 h x 0.214 = 2.14
            "base": "3.02",
            "burst": "2.14",
            "as_of": "2027-01-11T00:00:00+00:00",
        },
        "billed": {
            "total": "5.00",
            "as_of": "2027-01-10T22:00:00+00:00",
            "ce_requests_this_month": 2,
        },
        "forecast": {"total": data["forecast"]["total"]},
        "by_pool": {"control": "3.02", "spark": "2.14"},
        "by_owner": {"(none)": "3.02", "bob": "2.14"},
        "unpriced": [],  # every resource had a price
    }
    # The t2.micro runs on for the 21 days left: 504 h x 0.0126 = 6.35.
    assert data["forecast"]["total"] == "11.51"


def test_a_past_month_is_read_from_the_database_and_its_forecast_is_its_estimate(month, clock_at):
    clock_at(at(3, month=2))

    code, out, _ = cost("--month", "2027-01", "--json")

    data = json.loads(out)
    assert code == 0 and data["month"] == "2027-01"
    assert data["estimate"]["as_of"] == "2027-01-11T00:00:00+00:00"  # as the rows were left
    assert data["forecast"]["total"] == data["estimate"]["total"] == "5.16"
    assert data["billed"]["ce_requests_this_month"] == 2


def test_a_month_without_data_is_zeros_and_null_bill(clock_at):
    clock_at(at(3))

    code, out, err = cost("--json", "--month", "2026-12")

    data = json.loads(out)
    assert code == 0 and "no cost recorded for 2026-12" in err
    assert data["estimate"] == {"total": "0.00", "base": "0.00", "burst": "0.00", "as_of": None}
    assert data["billed"] == {"total": None, "as_of": None, "ce_requests_this_month": 0}
    assert data["forecast"] == {"total": "0.00"} and data["by_pool"] == data["by_owner"] == {}


@pytest.mark.parametrize("value", ["2027-13", "2027-1", "January", "27-01", "2027-01-05", ""])
def test_a_malformed_month_exits_2_naming_the_field(clock_at, value):
    clock_at(at(3))

    code, out, err = cost("--month", value, "--json") if value else cost("--month= ", "--json")

    assert code == 2 and out == "" and "--month" in err


def test_a_future_month_exits_2_naming_the_field(clock_at):
    clock_at(at(3))

    code, out, err = cost("--month", "2027-02")

    assert code == 2 and out == "" and "--month: 2027-02 is in the future" in err


def test_without_json_it_prints_a_summary_saying_estimate_and_billed(month):
    code, out, _ = cost()

    assert code == 0
    assert "estimate         5.16  as of 2027-01-11 00:00 UTC" in out
    assert "billed           5.00" in out and "read 2027-01-10 22:00 UTC" in out
    assert "forecast        11.51" in out and "bob" in out
