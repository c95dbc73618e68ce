"""In Chromium: alice opens the budget page (spend and forecast against the budget as a bar, the
daily chart with the budget line, the alerts sent, each collaborator's spend, the freeze), then
follows the freeze link of an alert email she received: a confirmation page that does nothing
until she confirms. Bob then sees the freeze on his dashboard."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from billing.budgets.freeze import freeze_state
from billing.budgets.services import budget_evaluate
from tests.billing.budgets.conftest import at, base_node, budget_for, costs_at, spark_node
from tests.billing.conftest import bundled_catalog_ensure
from tests.browser.test_dashboard import log_in
from tests.fixtures.personas import user_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _catalog(transactional_db):
    bundled_catalog_ensure()


@pytest.fixture
def alerted(shared_clock, alice, mailbox):
    """January 15, 10:00, with a budget 90 % spent: three alerts mailed to alice."""
    from provisioning.services import pool_spec_clean, pools_store
    from sandbox.pools import sandbox_pool_data

    pools_store([pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")], username="test")
    now = at(1, 15, 10)
    shared_clock.set_offset((now - datetime.now(UTC)).total_seconds())
    base_node(at(1, 1))
    spark_node(at(1, 1))
    costs_at(now)
    budget_for(user_for(alice), share="0.9")
    budget_evaluate()
    return mailbox.wait_for(3)


def test_alice_reads_the_budget_page_and_freezes_from_an_alerts_link(
    page, live_server, directory_server, alice, bob, alerted, screenshot, console_errors
):
    log_in(page, live_server.url, alice)
    page.click("header nav >> text=Budgets")
    page.wait_for_url("**/billing/budgets/")

    expect(page.locator("h1")).to_have_text("Budget")
    expect(page.locator("#budget-bar svg")).to_be_visible()
    expect(page.locator("#cost-chart line.budget")).to_have_count(1)
    expect(page.locator("#alert-list tbody tr")).to_have_count(3)
    expect(page.locator("#collaborator-spend")).to_contain_text("bob")
    expect(page.locator("#freeze-state")).to_contain_text("Not frozen")
    screenshot(page, "budget-page")

    mail = next(m for m in alerted if "80 %" in m.subject)
    link = re.search(r'href="(http://[^"]+/actions/freeze/\?alert=\d+)"', mail.html()).group(1)
    page.goto(link.replace("http://127.0.0.1:8000", live_server.url))

    expect(page.locator("h1")).to_have_text("Freeze new launches until the 1st?")
    expect(page.locator("#from-alert")).to_contain_text("80 % of actual spend")
    expect(page.locator("input[name=reason]")).to_have_value(re.compile("^Budget alert: 80 %"))
    screenshot(page, "freeze-confirmation")
    assert not freeze_state().frozen  # opening the link did nothing

    page.click("#confirm")
    page.wait_for_url("**/billing/budgets/")

    expect(page.locator("#freeze-state")).to_contain_text("Frozen by alice")
    assert freeze_state().frozen
    screenshot(page, "budget-page-frozen")
    assert console_errors == []

    page.context.clear_cookies()
    log_in(page, live_server.url, bob)
    expect(page.locator("#freeze-banner")).to_contain_text("New launches are frozen")
    expect(page.locator("#budget-state")).to_contain_text("monthly budget")
    screenshot(page, "bob-dashboard-frozen")
