"""The dashboard (home page): month-to-date estimate, billed with its as-of time, forecast, base vs
burst, a server-rendered daily chart, breakdowns and the nodes table, from the database only;
refreshed by htmx every 15 s without extending the session. Collaborators see totals and their
own figures; per-owner detail is for admins. The number of queries does not grow with the
number of nodes or days."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.costs.services import cost_rows_refresh
from billing.models import BilledCost, BilledDay, CostExplorerRead
from clusterweb.accounts.login.services import SESSION_LAST_SEEN
from sandbox.pools import sandbox_pool_data
from tests.billing.conftest import spot_point, spot_record
from tests.fixtures.personas import logged_in_client
from tests.provisioning.conftest import (
    FLEET_COMBINATIONS,
    fleet_make,
    fleet_spot_points,
    node_make,
    sync_ok,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

POLL = {"HX-Request": "true", "X-Clusterweb-Poll": "1"}


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, tzinfo=UTC)


@pytest.fixture
def pools():
    from provisioning.services import pool_spec_clean, pools_store

    pools_store([pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")], username="test")


def cluster(nodes: int, now: datetime, *, first: int = 0) -> None:
    """``nodes`` nodes since the 1st (one always-on, the rest a fleet of 10 types x 3 zones x spot
    and on-demand for bob and carol with launch requests, some terminated), spot prices for every
    type and zone, an inventory sync and the cost rows at ``now``; and a bill for every full day
    so far."""
    node_make(pool="control", instance_type="t2.micro", zone="eu-west-1a", owner="",
              launched_at=at(1), public_ipv4=f"203.0.113.{first % 250 + 1}")  # fmt: skip
    for index, node in enumerate(fleet_make(nodes - 1, first=first, launched_at=at(1))):
        node.request = f"r-{node.owner}-{(index // 2 + 1) % 2}"
        node.save(update_fields=["request"])
    spot_record(*fleet_spot_points(at(1)), synced_at=now)
    sync_ok(now)
    cost_rows_refresh(now=now)
    read = CostExplorerRead.objects.create(
        month=date(2027, 1, 1), period_start=date(2027, 1, 1), period_end=now.date(),
        started_at=now, finished_at=now, requests=1, ok=True,
    )  # fmt: skip
    for offset in range((now.date() - date(2027, 1, 1)).days):
        day = date(2027, 1, 1) + timedelta(days=offset)
        billed, created = BilledDay.objects.get_or_create(
            day=day, defaults={"month": date(2027, 1, 1), "read": read, "fetched_at": now}
        )
        if created:
            BilledCost.objects.create(
                billed_day=billed,
                service="Amazon Elastic Compute Cloud - Compute",
                amount=Decimal("1.0"),
            )


def test_alice_sees_estimate_bill_forecast_and_split_each_labelled_with_as_of(
    clock_at, pools, alice
):
    now = clock_at(at(15, 10))
    cluster(3, now)

    page = logged_in_client(alice).get("/").content.decode()

    for card in ("card-estimate", "card-billed", "card-forecast", "card-split"):
        assert f'id="{card}"' in page
    estimate = _section(page, "card-estimate")
    assert "estimate" in estimate and "as of" in estimate and "2027-01-15 10:00 UTC" in estimate
    billed = _section(page, "card-billed")
    assert "AWS Cost Explorer" in billed and "$14.00" in billed and "read" in billed
    assert "Jan 1–Jan 14" in billed and "Cost Explorer requests this month: 1" in billed
    forecast = _section(page, "card-forecast")
    assert "estimate" in forecast and "to come" in forecast
    assert "base" in _section(page, "card-split") and "burst" in _section(page, "card-split")
    assert 'id="by-owner"' in page and ">bob<" in page and ">carol<" in page
    assert 'id="billed-comparison"' in page and "Billed beside the estimate" in page
    assert 'id="forecast-assumptions"' in page and "No planned launches" in page
    assert page.count('class="bar bar-base"') == 15  # one base bar a day so far
    assert 'class="bar bar-forecast"' in page and 'class="billed-dot"' in page
    assert 'id="inventory"' in page  # the nodes table from the inventory
    # The CSP forbids inline script and style: the chart needs neither.
    assert "style=" not in page and not re.search(r"<script(?![^>]*\bsrc=)", page)


def test_bob_sees_the_totals_and_his_own_figures_but_no_one_elses(clock_at, pools, bob):
    now = clock_at(at(15, 10))
    cluster(3, now)

    page = logged_in_client(bob).get("/").content.decode()

    assert 'id="card-estimate"' in page and 'id="by-pool"' in page
    assert 'id="my-cost"' in page and "Yours:" in page
    assert 'id="by-owner"' not in page and ">carol<" not in page
    requests = _section(page, "by-request")
    assert "r-bob-1" in requests and "r-carol" not in requests


def test_the_cost_section_refreshes_itself_without_extending_the_session(clock_at, pools, alice):
    now = clock_at(at(15, 10))
    cluster(3, now)
    client = logged_in_client(alice)
    page = client.get("/").content.decode()
    assert 'hx-trigger="every 15s"' in page and "X-Clusterweb-Poll" in page
    seen = client.session[SESSION_LAST_SEEN]

    clock_at(at(15, 10) + timedelta(minutes=5))
    poll = client.get("/", headers=POLL)

    fragment = poll.content.decode()
    assert poll.status_code == 200 and fragment.lstrip().startswith('<section id="costs"')
    assert "<html" not in fragment and 'id="inventory"' not in fragment
    assert client.session[SESSION_LAST_SEEN] == seen


def test_a_month_with_no_data_shows_zeros_and_says_so(clock_at, alice):
    clock_at(at(3, 9))

    page = logged_in_client(alice).get("/").content.decode()

    assert "No cost recorded for January 2027 yet" in page
    assert "$0.00" in _section(page, "card-estimate") and "not computed yet" in page
    assert "No bill for this month read yet" in page


def test_the_number_of_queries_does_not_grow_with_nodes_or_days(
    clock_at, pools, alice, django_assert_num_queries
):
    """Issue 14 finding 4: realistic diversity (10 types x 3 zones, spot and on-demand, some
    terminated), N nodes over 2 days and 3N nodes over 20 days: the same count."""
    now = clock_at(at(3))
    cluster(FLEET_COMBINATIONS, now)  # N = 60 nodes x 2 days
    client = logged_in_client(alice)
    client.get("/")  # the session's first request records it was seen
    # Counted at once: a CaptureQueriesContext reads the connection's query log when asked, and
    # the next request clears that log (the old test compared two such empty slices: 0 == 0).
    with CaptureQueriesContext(connection) as captured:
        page = client.get("/").content.decode()
    page_queries = len(captured)
    with CaptureQueriesContext(connection) as captured:
        client.get("/", headers=POLL)
    poll_queries = len(captured)
    assert page_queries > 10 and poll_queries > 10
    assert "g4dn.xlarge" in page and "eu-west-1c" in page and "spot price" in page

    now = clock_at(at(21))
    cluster(2 * FLEET_COMBINATIONS, now, first=FLEET_COMBINATIONS)  # 3N = 180 nodes x 20 days
    client = logged_in_client(alice)
    client.get("/")
    with django_assert_num_queries(page_queries):
        response = client.get("/")
    with django_assert_num_queries(poll_queries):
        client.get("/", headers=POLL)

    assert response.content.decode().count('class="bar bar-base"') == 20


def _section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start : start + 3000]


def test_the_forecast_shows_each_hourly_rate_as_aws_lists_it(clock_at, pools, alice):
    """Issue 14 finding 7: a spot price of 0.07976 is shown as 0.07976, never as 0.0798."""
    now = clock_at(at(10))
    node_make(pool="spark", instance_type="m5.xlarge", capacity_type="spot",
              zone="eu-west-1b", launched_at=at(9), owner="bob")  # fmt: skip
    spot_record(spot_point("m5.xlarge", "0.07976", at(1), "eu-west-1b"), synced_at=now)
    sync_ok(now)
    cost_rows_refresh(now=now)

    page = logged_in_client(alice).get("/").content.decode()

    details = page[page.index('id="forecast-details"') :]
    row = next(r for r in details.split("<tr") if "m5.xlarge spot" in r)
    assert ">0.07976<" in row, row
    assert "0.0798" not in page


def test_the_forecast_counts_burst_nodes_not_their_addresses_and_volumes(clock_at, pools, alice):
    """Issue 14 finding 6: two burst nodes with a public IPv4 address and a root volume each are
    "2 running burst nodes"; the one past its time limit is named, its address is not."""
    from billing.costs.selectors import cost_overview
    from provisioning.models import Volume

    now = clock_at(at(10))
    late = {"clusterweb:expires-at": "2027-01-09T12:00:00Z"}
    for number, tags in enumerate(({}, late)):
        node = node_make(pool="spark", instance_type="m5.xlarge", launched_at=at(9), owner="bob",
                         public_ipv4=f"198.51.100.{number + 1}", tags=tags,
                         node_name=f"spark-{number}")  # fmt: skip
        Volume.objects.create(volume_id=f"vol-{number}", node=node, instance_id=node.instance_id,
                              size_gib=20, volume_type="gp3", state="in-use", zone="eu-west-1a",
                              created_at=at(9), first_seen_at=at(9))  # fmt: skip
    sync_ok(now)
    cost_rows_refresh(now=now)

    said = " ".join(cost_overview(now=now).forecast.assumptions)

    assert "2 running burst nodes" in said, said
    assert "spark-1 (m5.xlarge on-demand) is past its time limit" in said
    assert "public IPv4 of spark-1 is past" not in said and "vol-1" not in said
    page = logged_in_client(alice).get("/").content.decode()
    assert "with its node spark-1, past its time limit" in page
