"""In Chromium: the dashboard of a month under way. Alice reads the month-to-date estimate, the bill
with its as-of time, the forecast and the base/burst split, sees the daily chart (SVG, no script)
and the breakdowns, and watches the cost section refresh itself with htmx (X-Clusterweb-Poll)
after the cost refresh has run again. Bob sees the totals and his own figure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from billing.costs.services import cost_rows_refresh
from tests.billing.conftest import bundled_catalog_ensure
from tests.billing.test_dashboard import cluster
from tests.provisioning.conftest import node_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _catalog(transactional_db):
    # Earlier transactional tests flush every table, the data migration's prices included.
    bundled_catalog_ensure()


@pytest.fixture
def clock_at(shared_clock):
    def move(moment: datetime) -> datetime:
        shared_clock.set_offset((moment - datetime.now(UTC)).total_seconds())
        return moment

    return move


@pytest.fixture
def month(clock_at):
    """January 2027 to the 15th, 10:00: the always-on node, bob's Spark and carol's Jupyter
    nodes with their launch requests, spot prices, cost rows, and a bill to the 14th."""
    from provisioning.services import pool_spec_clean, pools_store
    from sandbox.pools import sandbox_pool_data

    pools_store([pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")], username="test")
    now = clock_at(datetime(2027, 1, 15, 10, tzinfo=UTC))
    cluster(3, now)
    return now


def log_in(page, base_url, persona):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", persona.uid)
    page.fill("#id_password", persona.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_alice_reads_the_months_cost_and_watches_it_refresh(
    page, live_server, directory_server, alice, month, clock_at, screenshot, console_errors
):
    log_in(page, live_server.url, alice)

    estimate = page.locator("#card-estimate")
    expect(estimate).to_contain_text("estimate")
    expect(estimate).to_contain_text("as of 2027-01-15 10:00 UTC")
    expect(page.locator("#card-billed")).to_contain_text("AWS Cost Explorer")
    expect(page.locator("#card-billed")).to_contain_text("$14.00")
    expect(page.locator("#card-forecast")).to_contain_text("Forecast to month end")
    expect(page.locator("#card-split")).to_contain_text("burst")
    chart = page.locator("#cost-chart > svg")
    expect(chart).to_be_visible()
    assert page.locator("#cost-chart rect.bar-base").count() == 15
    assert page.locator("#cost-chart rect.bar-forecast").count() >= 17
    assert page.locator("#cost-chart circle.billed-dot").count() == 14
    expect(page.locator("#by-owner")).to_contain_text("bob")
    expect(page.locator("#inventory")).to_be_visible()
    screenshot(page, "dashboard")
    before = estimate.locator(".figure").inner_text()

    # A Spark node the inventory just found has run for two hours; a minute later the cost
    # refresh runs; the next poll shows it.
    polls = []
    page.on(
        "request",
        lambda r: polls.append(r) if r.headers.get("hx-request") == "true" else None,
    )
    later = clock_at(datetime(2027, 1, 15, 10, 1, tzinfo=UTC))
    node_make(pool="spark", owner="bob", launched_at=later - timedelta(hours=2), request="r-new")
    cost_rows_refresh(now=later)
    expect(estimate).to_contain_text("as of 2027-01-15 10:01 UTC", timeout=35_000)
    assert estimate.locator(".figure").inner_text() != before
    costs = [r for r in polls if r.url.rstrip("/") == live_server.url]
    assert costs and all(r.headers.get("x-clusterweb-poll") == "1" for r in costs)
    screenshot(page, "dashboard-after-poll")
    assert console_errors == []


def test_bob_sees_the_totals_and_his_own_figure(
    page, live_server, directory_server, bob, month, screenshot, console_errors
):
    log_in(page, live_server.url, bob)

    expect(page.locator("#my-cost")).to_contain_text("Yours:")
    assert page.locator("#by-owner").count() == 0
    expect(page.locator("#by-request")).to_contain_text("r-bob")
    screenshot(page, "dashboard-bob")
    assert console_errors == []
