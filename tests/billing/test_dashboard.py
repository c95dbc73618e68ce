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
from tests.provisioning.conftest import node_make, sync_ok

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

POLL = {"HX-Request": "true", "X-Clusterweb-Poll": "1"}
# Three kinds of node, so the nodes table's price lookups are the same at any cluster size.
KINDS = [
    {"pool": "control", "instance_type": "t2.micro", "zone": "eu-west-1a", "owner": ""},
    {"pool": "spark", "instance_type": "m5.xlarge", "capacity_type": "spot",
     "zone": "eu-west-1b", "owner": "bob"},
    {"pool": "jupyter", "instance_type": "t2.xlarge", "capacity_type": "spot",
     "zone": "eu-west-1c", "owner": "carol"},
]  # fmt: skip


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, tzinfo=UTC)


@pytest.fixture
def pools():
    from provisioning.services import pool_spec_clean, pools_store

    pools_store([pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")], username="test")


def cluster(nodes: int, now: datetime) -> None:
    """``nodes`` nodes since the 1st (a third each always-on, bob's Spark, carol's Jupyter, with
    launch requests), spot prices, an inventory sync and the cost rows at ``now``; and a bill
    for every full day so far."""
    for number in range(nodes):
        kind = KINDS[number % 3]
        request = "" if kind["pool"] == "control" else f"r-{kind['owner']}-{number % 2}"
        node_make(launched_at=at(1), request=request, public_ipv4=f"198.51.100.{number}", **kind)
    spot_record(
        spot_point("m5.xlarge", "0.0712", at(1), "eu-west-1b"),
        spot_point("t2.xlarge", "0.0650", at(1), "eu-west-1c"),
        synced_at=now,
    )
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


def test_the_number_of_queries_does_not_grow_with_nodes_or_days(clock_at, pools, alice):
    now = clock_at(at(3))
    cluster(3, now)  # 3 nodes x 2 days
    client = logged_in_client(alice)
    client.get("/")  # the session's first request records it was seen
    with CaptureQueriesContext(connection) as small:
        assert client.get("/").status_code == 200
    with CaptureQueriesContext(connection) as small_poll:
        client.get("/", headers=POLL)

    now = clock_at(at(21))
    cluster(27, now)  # 30 nodes x 20 days
    client = logged_in_client(alice)
    client.get("/")
    with CaptureQueriesContext(connection) as large:
        response = client.get("/")
    with CaptureQueriesContext(connection) as large_poll:
        client.get("/", headers=POLL)

    assert response.content.decode().count('class="bar bar-base"') == 20
    assert len(large) == len(small), _diff(small, large)
    assert len(large_poll) == len(small_poll)


def _section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start : start + 3000]


def _diff(small, large) -> str:
    a = [q["sql"][:120] for q in small.captured_queries]
    b = [q["sql"][:120] for q in large.captured_queries]
    return "\n".join(q for q in b if q not in a) or f"{len(a)} vs {len(b)}"
