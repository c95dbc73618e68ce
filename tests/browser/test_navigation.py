"""A person logs in through the login page in Chromium and opens every page of the navigation."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, base_url, persona):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", persona.uid)
    page.fill("#id_password", persona.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_alice_logs_in_and_opens_every_page_of_the_navigation(
    page, live_server, directory_server, alice, screenshot, console_errors
):
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    screenshot(page, "login")
    log_in(page, live_server.url, alice)
    links = page.locator("header nav ul:nth-of-type(2) a")
    labels = links.all_inner_texts()
    assert {"Dashboard", "Audit"} <= set(labels)
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    for label, href in zip(labels, hrefs, strict=True):
        response = page.goto(f"{live_server.url}{href}")
        assert response.status == 200, f"{label} answered {response.status}"
        assert page.locator("h1").first.is_visible()
        screenshot(page, label)
    assert console_errors == []


def test_the_audit_filter_updates_the_table_in_place_with_htmx(
    page, live_server, directory_server, alice, screenshot, console_errors
):
    log_in(page, live_server.url, alice)
    page.goto(f"{live_server.url}/audit/")
    page.fill("input[name=action]", "login.succeeded")
    with page.expect_response(lambda r: "/audit/" in r.url and r.request.headers.get("hx-request")):
        page.press("input[name=action]", "Enter")
    page.wait_for_url("**/audit/?*action=login.succeeded*")
    rows = page.locator("#events tbody tr")
    assert rows.count() >= 1
    assert all("login.succeeded" in t for t in rows.all_inner_texts())
    screenshot(page, "audit-filtered")
    assert console_errors == []


def test_bob_sees_no_admin_pages_and_logs_out(page, live_server, directory_server, bob, screenshot):
    log_in(page, live_server.url, bob)
    labels = page.locator("header nav ul:nth-of-type(2) a").all_inner_texts()
    assert "Audit" not in labels
    screenshot(page, "dashboard-bob")
    page.click("text=Log out")
    page.wait_for_url(f"{live_server.url}/login/")
    assert "You are logged out" in page.content()
