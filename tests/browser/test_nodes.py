"""In Chromium: the Nodes page after a sync of the simulated cloud. Alice sees every node with
its price and source, sorts by price, shows the terminated ones, and watches the table refresh
itself (htmx polling with X-Clusterweb-Poll); Bob sees his node and the always-on ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from clusterweb import clock
from provisioning import inventory
from sandbox.pools import sandbox_pools_seed
from tests.billing.conftest import bundled_catalog_ensure, spot_point, spot_record
from tests.provisioning.conftest import cloud  # noqa: F401 - the simulated AWS and Kubernetes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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


@pytest.fixture
def synced(cloud):  # noqa: F811
    """The always-on nodes, a spot Spark worker of bob's with its Kubernetes node, a Jupyter
    node of carol's, and a Spark worker that already ended; synced once."""
    sandbox_pools_seed()
    ids = {
        "control": cloud.launch(pool="control", instance_type="t2.micro", zone="eu-west-1a",
                                owner=None, name="control-1")[0],
        "admin": cloud.launch(pool="admin", instance_type="t2.small", zone="eu-west-1a",
                              owner=None, name="admin-1")[0],
        "spark": cloud.launch(pool="spark", spot=True, zone="eu-west-1b", owner="bob")[0],
        "jupyter": cloud.launch(pool="jupyter", instance_type="t2.xlarge", spot=True,
                                zone="eu-west-1c", owner="carol")[0],
        "ended": cloud.launch(pool="spark", instance_type="m5.2xlarge", owner="bob")[0],
    }  # fmt: skip
    cloud.register(ids["control"], zone="eu-west-1a", pool="control", cpu="1", memory="1Gi")
    cloud.register(ids["spark"], zone="eu-west-1b")
    cloud.terminate(ids["ended"])
    spot_record(spot_point("m5.xlarge", "0.0712", clock.now() - timedelta(hours=1), "eu-west-1b"))
    result = inventory.inventory_sync()
    assert result.ok, result.errors
    return cloud, ids


def test_alice_reads_what_runs_and_what_it_costs(
    page,
    live_server,
    directory_server,
    alice,
    synced,
    screenshot,
    console_errors,
):
    aws_and_kube, synced = synced
    log_in(page, live_server.url, alice)
    page.click("header nav >> text=Nodes")
    page.wait_for_url("**/nodes/")
    table = page.locator("#inventory")
    assert "Inventory as of" in page.locator("#sync-age").inner_text()
    spark = page.locator(f"#node-{synced['spark']}")
    assert "0.0712" in spark.inner_text() and "spot price eu-west-1b" in spark.inner_text()
    assert "Ready" in spark.inner_text()
    assert "0.0126" in page.locator(f"#node-{synced['control']}").inner_text()
    assert page.locator(f"#node-{synced['ended']}").count() == 0
    screenshot(page, "nodes")

    page.click("#inventory th >> text=$/h")
    page.wait_for_url("**/nodes/?sort=price")
    page.click("#inventory th >> text=$/h")  # again: most expensive first
    page.wait_for_url("**/nodes/?sort=-price")
    first = page.locator("#inventory tbody tr").first
    # No spot price recorded for t2.xlarge: its on-demand price, said so, is the highest here.
    assert synced["jupyter"] in (first.get_attribute("id") or "")
    assert "spot price unknown, on-demand shown" in first.inner_text()
    screenshot(page, "nodes-by-price")

    page.click("text=Show the 1 node terminated this month")
    ended = page.locator(f"#node-{synced['ended']}")
    assert "terminated" in ended.inner_text()
    screenshot(page, "nodes-with-terminated")

    # The table refreshes itself: a node ends in AWS, the sync runs, the next poll shows it.
    polls = []
    page.on(
        "request",
        lambda r: polls.append(r) if r.headers.get("hx-request") == "true" else None,
    )
    aws_and_kube.terminate(synced["jupyter"])
    inventory.inventory_sync()
    jupyter = page.locator(f"#node-{synced['jupyter']} .state")
    expect(jupyter).to_have_text("terminated", timeout=35_000)  # polls every 15 s
    assert polls and all("/nodes/?sort=-price&terminated=1" in r.url for r in polls)
    assert all(r.headers.get("x-clusterweb-poll") == "1" for r in polls)
    assert table.count() == 1
    screenshot(page, "nodes-after-poll")
    assert console_errors == []


def test_bob_sees_his_node_and_the_always_on_ones(
    page, live_server, directory_server, bob, synced, screenshot, console_errors
):
    _, synced = synced
    log_in(page, live_server.url, bob)
    page.goto(f"{live_server.url}/nodes/")
    ids = {row.get_attribute("id") for row in page.locator("#inventory tbody tr").all()}
    assert ids == {f"node-{synced[k]}" for k in ("control", "admin", "spark")}
    assert page.locator("#storage").count() == 0
    screenshot(page, "nodes-bob")
    assert console_errors == []
