"""In Chromium: a collaborator prices a plan on the "What would it cost?" page (htmx swaps the
result in), and an admin opens the Prices page and sets an override."""

import json

import pytest

from tests.billing.conftest import bundled_catalog_ensure

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PLAN = {
    "region": "eu-west-1",
    "items": [
        {
            "label": "spark workers",
            "kind": "instance",
            "instance_type": "m5.xlarge",
            "lifecycle": "spot",
            "count": 10,
            "hours": 4,
        },
        {"label": "data", "kind": "storage", "service": "ebs-gp3", "gb": 100, "months": 1},
    ],
}


@pytest.fixture(autouse=True)
def _catalog(transactional_db):
    # Earlier transactional tests flush every table, the data migration's prices included.
    bundled_catalog_ensure()


def log_in(page, base_url, persona):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", persona.uid)
    page.fill("#id_password", persona.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def submit_plan(page, text):
    page.fill("#id_plan", text)
    with page.expect_response(
        lambda r: "/billing/estimate/" in r.url and r.request.headers.get("hx-request")
    ):
        page.click("#plan-form button[type=submit]")


def test_bob_prices_a_plan_and_sees_items_sources_and_total(
    page, live_server, directory_server, bob, screenshot, console_errors
):
    log_in(page, live_server.url, bob)
    page.click("header nav >> text=Estimate")
    page.wait_for_url("**/billing/estimate/")
    assert page.locator("h1").inner_text() == "What would it cost?"
    screenshot(page, "estimate-form")
    submit_plan(page, json.dumps(PLAN, indent=2))
    page.wait_for_selector("#estimate-total")
    assert page.locator("#estimate-total").inner_text() == "17.36"
    rows = page.locator("#estimate-items tbody tr")
    assert rows.count() == 2
    assert "spot price unknown, on-demand shown" in rows.nth(0).inner_text()
    assert "EU (Ireland)" in rows.nth(1).inner_text()
    screenshot(page, "estimate-result")
    bad = json.loads(json.dumps(PLAN))
    bad["items"][0]["count"] = 0
    submit_plan(page, json.dumps(bad))
    page.wait_for_selector("#plan-errors")
    assert "items[0] ('spark workers'), field 'count'" in page.locator("#plan-errors").inner_text()
    screenshot(page, "estimate-bad-plan")
    labels = page.locator("header nav ul:nth-of-type(2) a").all_inner_texts()
    assert "Estimate" in labels and "Prices" not in labels
    assert console_errors == []


def test_alice_opens_the_prices_page_and_sets_an_override(
    page, live_server, directory_server, alice, screenshot, console_errors
):
    log_in(page, live_server.url, alice)
    page.click("header nav >> text=Prices")
    page.wait_for_url("**/billing/prices/")
    row = page.locator("#price-m5\\.xlarge")
    assert "0.214" in row.inner_text() and "skypilot-catalog" in row.inner_text()
    screenshot(page, "prices")
    page.select_option("#id_kind", "on-demand")
    page.fill("#id_item", "m5.xlarge")
    page.fill("#id_price", "0.2")
    page.fill("#id_note", "negotiated")
    page.click("#override-form button[type=submit]")
    page.wait_for_selector("#override-list tr.overridden")
    assert "alice" in page.locator("#override-list").inner_text()
    assert "overridden" in (row.get_attribute("class") or "")
    screenshot(page, "prices-override")
    assert console_errors == []
