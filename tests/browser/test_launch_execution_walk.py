"""bob's approved Spark request to running and a stop, in Chromium, against the AWS layer and the
simulator with a real Celery worker: his request page follows the steps by itself (htmx polling),
shows his nodes, the Spark UI through the tunnel and the snippet to use the workers from inside
the cluster; he stops it, and the page ends (286) showing the quote against the actual cost."""

import pytest

from tests.billing.conftest import bundled_catalog_ensure
from tests.browser.test_launch_walk import log_in
from tests.provisioning.conftest import cloud  # noqa: F401 (fixture)
from tests.provisioning.execution.conftest import launches, workers  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.simulator_only,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def catalog(transactional_db):
    # Earlier transactional tests flush every table, the data migration's prices included.
    bundled_catalog_ensure()


def test_bobs_approved_request_runs_and_stops(
    page,
    live_server,
    directory_server,
    catalog,
    launches,  # noqa: F811
    workers,  # noqa: F811
    bob,
    screenshot,
    console_errors,
):
    launch = launches.request(count=2)  # alice approved it; queued for the worker
    log_in(page, live_server.url, bob)
    page.goto(f"{live_server.url}/launches/{launch.pk}/")
    assert page.locator("#state").inner_text() == "approved"
    screenshot(page, "1-approved")

    workers.start()
    page.wait_for_selector("#state >> text=running", timeout=60000)
    assert page.locator("#launch-nodes tbody tr").count() == 2
    assert (
        "spark://spark-master.spark.svc.cluster.local:7077"
        in page.locator("#spark-snippet").inner_text()
    )
    assert "http://127.0.0.1:8003/" in page.locator("#spark-ui").inner_text()
    steps = page.locator("#steps li").all_inner_texts()
    assert [s.split(" — ")[0].split(" ", 1)[1] for s in steps] == [
        "Room",
        "Join credentials",
        "Capacity",
        "Join",
        "Workload",
        "Workers registered",
    ]
    screenshot(page, "2-running")

    page.click("#stop")
    page.wait_for_selector("#state >> text=stopping", timeout=15000)
    screenshot(page, "3-stopping")
    page.wait_for_selector("#state >> text=stopped", timeout=60000)
    page.wait_for_selector("#quote-vs-actual", timeout=10000)
    assert page.locator("#stop").count() == 0
    screenshot(page, "4-stopped")
    assert {i.state for i in launches.instances(launch.pk)} == {"terminated"}
    assert console_errors == []
