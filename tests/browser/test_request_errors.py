"""In Chromium: an htmx request that fails says so on the page. Each case is a real failure of
the real live server or of the browser's network: a 403 (bob asks for the audit log), a 500 (the
sessions table is renamed away for one request), an expired CSRF token (its cookie cleared), the
network gone (Chromium offline), and a lost session (its cookie cleared), which sends the person
to the login page. Screenshots of each under test-artifacts/screenshots/."""

from __future__ import annotations

import pytest
from django.db import connection
from playwright.sync_api import expect

from tests.browser.test_dashboard import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def htmx_request(page, verb: str, path: str) -> None:
    """What any hx-get/hx-post on the page does: a request with the body's hx-headers (the CSRF
    token) swapped into <main>. htmx's own API, so the same events fire."""
    page.evaluate(
        "([verb, path]) => { htmx.ajax(verb, path, {source: document.body, target: 'main', "
        "swap: 'innerHTML'}).catch(() => null); }",
        [verb, path],
    )


def error_box(page):
    return page.locator("#request-error")


def test_a_failed_htmx_request_shows_a_polite_message(
    page, live_server, directory_server, alice, bob, screenshot, console_errors
):
    log_in(page, live_server.url, bob)
    box = error_box(page)
    expect(box).to_be_hidden()

    htmx_request(page, "GET", "/audit/")  # admins only
    expect(box).to_be_visible()
    expect(box).to_contain_text("You do not have permission to do that.")
    screenshot(page, "403")

    htmx_request(page, "GET", "/")  # a request that works clears the message
    expect(box).to_be_hidden()

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_session RENAME TO django_session_away")
    try:
        htmx_request(page, "GET", "/")
        expect(box).to_contain_text("Something went wrong on Clusterweb's side.")
        expect(box).to_be_visible()
        screenshot(page, "500")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE django_session_away RENAME TO django_session")

    page.context.set_offline(True)
    try:
        htmx_request(page, "GET", "/")
        expect(box).to_contain_text("Clusterweb could not be reached.")
        screenshot(page, "network")
    finally:
        page.context.set_offline(False)

    page.get_by_role("button", name="Dismiss").click()
    expect(box).to_be_hidden()

    page.context.clear_cookies(name="clusterweb_csrf")
    htmx_request(page, "POST", "/billing/estimate/")
    expect(box).to_contain_text("This page has expired. Reload the page and try again.")
    screenshot(page, "csrf-expired")
    # The browser and htmx log each failed request; the script itself breaks no CSP rule.
    assert not [e for e in console_errors if "Content Security Policy" in e or "Refused" in e]
    assert not [e for e in console_errors if "TypeError" in e or "ReferenceError" in e]


def test_a_lost_session_sends_the_person_to_the_login_page(
    page, live_server, directory_server, alice, screenshot
):
    log_in(page, live_server.url, alice)
    page.context.clear_cookies(name="clusterweb_session")
    htmx_request(page, "GET", "/")
    page.wait_for_url(f"{live_server.url}/login/**")
    expect(page.locator("#id_username")).to_be_visible()
    screenshot(page, "login-after-lost-session")
