"""bob's Spark request through alice's approval, in Chromium: bob fills the Spark form and
watches the quote follow his fields (htmx), asks, and lands on his request page, waiting; a real
Celery worker emails alice; alice sees the pending count in the nav, opens Approvals and approves
fewer workers than asked (htmx); bob's page, polling, shows the smaller approval without a
reload, and the worker emails him the decision."""

import re
import time
from datetime import timedelta

import pytest

from clusterweb import clock
from provisioning.launches.models import LaunchRequest
from provisioning.services import pool_spec_clean, pools_store
from sandbox.pools import sandbox_pool_data
from tests.billing.conftest import bundled_catalog_ensure, spot_point, spot_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def spark_pool(transactional_db):
    # Earlier transactional tests flush every table, the data migration's prices included.
    bundled_catalog_ensure()
    pools_store([pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")], username="test")
    at = clock.now() - timedelta(minutes=30)
    spot_record(*(spot_point("m5.xlarge", "0.08", at, z) for z in ("eu-west-1a", "eu-west-1b")))


def log_in(page, base_url, persona):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", persona.uid)
    page.fill("#id_password", persona.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def wait_for_mail(mailbox, to: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in mailbox.wait_for(1, timeout=0.2) if to in m.recipients]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no mail to {to}: {[m.subject for m in mailbox.messages]}")


def quote_after(page, action):
    """Do ``action`` and wait for the live quote it triggers."""
    with page.expect_response(
        lambda r: "/launches/spark/" in r.url and r.request.headers.get("hx-request")
    ):
        action()


def test_bobs_spark_request_through_alices_approval(
    page,
    browser,
    live_server,
    directory_server,
    celery_worker,
    mailbox,
    spark_pool,
    alice,
    bob,
    screenshot,
    console_errors,
):
    # bob opens the Spark form from his launches.
    log_in(page, live_server.url, bob)
    page.click("header nav >> text=Launches")
    page.wait_for_url("**/launches/")
    page.click("#new-spark")
    page.wait_for_url("**/launches/spark/")
    assert page.locator("#id_workers").get_attribute("max") == "10"
    assert page.locator("#quote-expected").is_visible()  # one worker for an hour, quoted
    screenshot(page, "1-spark-form")
    quote_after(page, lambda: page.select_option("#id_instance_type", "m5.xlarge"))
    page.wait_for_selector("#quote-expected >> text=$0.08")

    # Too many workers: the quote says what is wrong, live; then a size that fits.
    quote_after(page, lambda: page.fill("#id_workers", "11"))
    page.wait_for_selector("#quote-problems")
    assert "has room for 10 more nodes now" in page.locator("#quote-problems").inner_text()
    screenshot(page, "2-spark-too-many")
    quote_after(page, lambda: page.fill("#id_workers", "4"))
    quote_after(page, lambda: page.fill("#id_hours", "10"))
    page.wait_for_selector("#quote-max >> text=$8.56")
    assert page.locator("#quote-expected").inner_text() == "$3.20"
    assert "always need an admin's approval" in page.locator("#approval-needed").inner_text()
    screenshot(page, "3-spark-quote")

    page.click("#spark-submit")
    page.wait_for_url(re.compile(r".*/launches/\d+/$"))
    launch = LaunchRequest.objects.get()
    assert page.locator("#state").inner_text() == "pending_approval"
    assert "is waiting for an admin" in page.locator(".messages").inner_text()
    screenshot(page, "4-request-pending")

    # The worker emails alice, with the link to the request.
    [review] = wait_for_mail(mailbox, "alice@example.org")
    assert f"/launches/{launch.pk}/" in review.text()

    # alice sees one request waiting, in the nav, and approves three workers instead of four.
    alice_page = browser.new_context().new_page()
    alice_errors: list[str] = []
    alice_page.on("console", lambda m: alice_errors.append(m.text) if m.type == "error" else None)
    log_in(alice_page, live_server.url, alice)
    assert alice_page.locator("#badge-approvals").inner_text() == "1"
    alice_page.click("header nav >> text=Approvals")
    alice_page.wait_for_url("**/launches/approvals/")
    row = alice_page.locator(f"#launch-{launch.pk}")
    assert "bob" in row.inner_text() and "$8.56" in row.inner_text()
    screenshot(alice_page, "5-approvals")
    row.locator(f"#id_workers_{launch.pk}").fill("3")
    row.locator(f"#id_approve_note_{launch.pk}").fill("three for now")
    row.locator(f"#approve-button-{launch.pk}").click()
    alice_page.wait_for_selector(f"#outcome-{launch.pk}")
    assert "(smaller than asked)" in alice_page.locator(f"#outcome-{launch.pk}").inner_text()
    screenshot(alice_page, "6-approved")

    # bob's page follows by itself (htmx polling) and stops polling: the request is approved.
    page.wait_for_selector("#state >> text=approved", timeout=15000)
    assert "smaller than asked: 3" in page.locator("#approved-smaller").inner_text()
    assert page.locator("#granted-max").inner_text() == "$6.42"  # 0.214 x 3 x 10
    screenshot(page, "7-request-approved")
    launch.refresh_from_db()
    assert launch.state == "approved" and launch.granted_count == 3
    assert launch.decided_by_username == "alice" and launch.decision_note == "three for now"

    [decision] = wait_for_mail(mailbox, "bob@example.org")
    assert "three for now" in decision.text()
    assert console_errors == [] and alice_errors == []
    alice_page.context.close()
