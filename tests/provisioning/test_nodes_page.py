"""The Nodes page: what runs and what it costs per hour, read from the database only. Admins see
every node, collaborators their own and the always-on ones; every price names its source; the
table polls itself as an htmx fragment and says how old the inventory is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from clusterweb import clock
from provisioning import inventory
from provisioning.models import Pool
from tests.billing.conftest import spot_point, spot_record
from tests.provisioning.conftest import node_make, sync_ok

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
NODES = reverse("provisioning:nodes")


def base_pools() -> None:
    now = clock.now()
    for slug, instance_type in (("control", "t2.micro"), ("admin", "t2.small")):
        Pool.objects.create(
            slug=slug, kind="base", lifecycle="on-demand", instance_types=[instance_type],
            max_nodes=2, created_at=now, updated_at=now,
        )  # fmt: skip


def row(response, node) -> str:
    content = response.content.decode()
    start = content.index(f'id="node-{node.instance_id}"')
    return content[start : content.index("</tr>", start)]


def test_admins_see_every_node_with_its_facts_and_hourly_price(as_alice):
    base_pools()
    sync_ok()
    control = node_make(pool="control", instance_type="t2.micro", owner="", node_name="control-1")
    spark = node_make(owner="carol", capacity_type="on-demand", public_ipv4="54.1.2.3",
                      launched_at=clock.now() - timedelta(hours=3, minutes=5))  # fmt: skip

    page = as_alice.get(NODES)

    assert page.status_code == 200
    cells = row(page, spark)
    assert spark.node_name in cells and "m5.xlarge" in cells and "eu-west-1a" in cells
    assert "running" in cells and "Ready" in cells and "3 h 5 min" in cells and "carol" in cells
    assert "0.214" in cells and "catalog: AWS Price List" in cells  # on-demand, from the catalog
    assert "+ 0.005 public IPv4" in cells
    assert "3.92 CPU" in cells and "16.0 GiB" in cells
    assert "0.0126" in row(page, control)
    # Total: 0.214 + 0.005 + 0.0126
    assert '<td class="num" id="total-hourly">0.2316' in page.content.decode()


def test_collaborators_see_their_own_nodes_and_the_always_on_ones(as_bob):
    base_pools()
    sync_ok()
    mine = node_make(owner="bob")
    admin_node = node_make(pool="admin", instance_type="t2.small", owner="")
    theirs = node_make(owner="carol")

    page = as_bob.get(NODES)

    assert page.status_code == 200
    content = page.content.decode()
    assert mine.instance_id in content and admin_node.instance_id in content
    assert theirs.instance_id not in content
    assert 'id="storage"' not in content  # storage and addresses: admins only


def test_a_spot_node_is_priced_at_its_zones_spot_price_when_plausible(as_alice):
    sync_ok()
    node = node_make(capacity_type="spot", zone="eu-west-1b")
    spot_record(spot_point("m5.xlarge", "0.0712", clock.now() - timedelta(hours=1), "eu-west-1b"))

    cells = row(as_alice.get(NODES), node)

    assert "0.0712" in cells and "spot price eu-west-1b" in cells
    assert "spot price unknown" not in cells


def test_an_implausible_spot_price_shows_on_demand_and_says_so(as_alice):
    sync_ok()
    node = node_make(capacity_type="spot", zone="eu-west-1b")
    spot_record(spot_point("m5.xlarge", "0.00001", clock.now() - timedelta(hours=1), "eu-west-1b"))

    cells = row(as_alice.get(NODES), node)

    assert "0.214" in cells
    assert "spot price unknown, on-demand shown" in cells and "outside 5%-100%" in cells
    assert "price-notice" in cells


def test_a_type_missing_from_the_catalog_is_price_unknown_never_a_guess(as_alice):
    sync_ok()
    node = node_make(instance_type="x9z.mega")

    page = as_alice.get(NODES)

    cells = row(page, node)
    assert "unknown" in cells and "price unknown: no on-demand price for x9z.mega" in cells
    assert "plus 1 unknown price" in page.content.decode()


def test_stopped_and_terminated_nodes_cost_nothing_per_hour_and_say_why(as_alice):
    sync_ok()
    stopped = node_make(state="stopped")
    cells = row(as_alice.get(NODES), stopped)
    assert "stopped: no instance charge" in cells and "0.214" not in cells


def test_terminated_nodes_of_the_month_are_behind_a_toggle(as_alice):
    sync_ok()
    now = clock.now()
    ended = node_make(state="terminated", launched_at=now - timedelta(hours=5),
                      terminated_at=now - timedelta(hours=1))  # fmt: skip
    last_month = node_make(
        state="terminated",
        launched_at=now.replace(day=1) - timedelta(days=3),
        terminated_at=now.replace(day=1) - timedelta(days=2),
    )
    live = node_make()

    page = as_alice.get(NODES).content.decode()
    assert live.instance_id in page and ended.instance_id not in page
    assert "Show the 1 node terminated this month" in page

    shown = as_alice.get(NODES, {"terminated": "1"})
    cells = row(shown, ended)
    assert "terminated" in cells and "4 h" in cells  # its lifetime
    assert last_month.instance_id not in shown.content.decode()


def test_sorting_is_server_side_and_whitelisted(as_alice):
    sync_ok()
    cheap = node_make(node_name="a-cheap", instance_type="t2.micro")
    dear = node_make(node_name="b-dear", instance_type="m5.12xlarge")

    by_price = as_alice.get(NODES, {"sort": "-price"}).content.decode()
    assert by_price.index(dear.node_name) < by_price.index(cheap.node_name)
    assert 'aria-sort="descending"' in by_price

    odd = as_alice.get(NODES, {"sort": "instance_id; drop table"})
    assert odd.status_code == 200
    body = odd.content.decode()
    assert body.index(cheap.node_name) < body.index(dear.node_name)  # by name


def test_the_htmx_fragment_is_the_table_alone_and_polls_without_extending_the_session(as_alice):
    sync_ok()
    node_make()

    fragment = as_alice.get(
        NODES, {"sort": "-uptime"}, headers={"HX-Request": "true", "X-Clusterweb-Poll": "1"}
    )

    body = fragment.content.decode()
    assert fragment.status_code == 200
    assert body.lstrip().startswith('<section id="inventory"') and "<html" not in body
    assert 'hx-trigger="every 15s"' in body
    assert '"X-Clusterweb-Poll": "1"' in body
    assert 'hx-get="/nodes/?sort=-uptime"' in body  # polls with the same sort


def test_the_page_says_how_old_the_inventory_is(as_alice):
    sync_ok(at=clock.now() - timedelta(seconds=40))
    page = as_alice.get(NODES).content.decode()
    assert "Inventory as of" in page and "40 s ago" in page
    assert 'id="sync-warning"' not in page


def test_a_stale_or_failing_sync_shows_the_last_known_state_with_a_warning(as_alice):
    sync_ok(at=clock.now() - timedelta(minutes=10), kubernetes="kubernetes unreachable: refused")
    node = node_make()

    page = as_alice.get(NODES)

    assert page.status_code == 200
    content = page.content.decode()
    assert node.instance_id in content  # the last known state
    warning = content[content.index('id="sync-warning"') :].split("</div>")[0]
    assert "Showing the last known state" in warning
    assert "EC2 instances, volumes and addresses: last read 10 min ago" in warning
    assert "the latest attempt failed: kubernetes unreachable: refused" in warning


def test_before_any_sync_the_page_says_so(as_alice):
    content = as_alice.get(NODES).content.decode()
    assert "No inventory sync has succeeded yet" in content


@pytest.mark.usefixtures("cloud")
def test_no_page_request_calls_aws_or_kubernetes(as_alice, as_bob, cloud):
    [instance] = cloud.launch()
    cloud.register(instance)
    inventory.inventory_sync()
    recording = cloud.aws.workdir / "moto-recording.jsonl"
    aws_calls = len(recording.read_text().splitlines())
    cloud.kube.recorder.reset()

    for client in (as_alice, as_bob):
        assert client.get(NODES).status_code == 200
        assert client.get(NODES, headers={"HX-Request": "true"}).status_code == 200
    assert as_alice.get(reverse("provisioning:pools")).status_code == 200

    assert len(recording.read_text().splitlines()) == aws_calls
    # The session's JupyterHub (KubeSpawner's reflectors, identity jupyterhub) may list and watch
    # its namespace at any time: the product here has the admin's kubeconfig.
    assert cloud.kube.recorder.accesses("admin") == []


def test_the_navigation_links_nodes_for_everyone_and_pools_for_admins(as_alice, as_bob):
    assert f'href="{NODES}"' in as_bob.get(NODES).content.decode()
    assert 'href="/pools/"' not in as_bob.get(NODES).content.decode()
    assert 'href="/pools/"' in as_alice.get(NODES).content.decode()


def test_admins_see_storage_sizes_and_public_addresses_with_their_prices(as_alice):
    from provisioning.models import ElasticAddress, StoredData, Volume

    sync_ok()
    now = clock.now()
    node = node_make(public_ipv4="54.1.2.3")
    Volume.objects.create(volume_id="vol-1", node=node, instance_id=node.instance_id, size_gib=8,
                          volume_type="gp2", state="in-use", zone="eu-west-1a", created_at=now,
                          first_seen_at=now)  # fmt: skip
    StoredData.objects.create(service="efs", resource="fs-1", name="home", size_bytes=3 * 1024**3,
                              measured_at=now, first_seen_at=now)  # fmt: skip
    ElasticAddress.objects.create(
        allocation_id="eipalloc-1", public_ip="52.9.9.9", first_seen_at=now
    )

    content = as_alice.get(NODES).content.decode()

    storage = content[content.index('id="storage"') :]
    assert "EBS gp2" in storage and "8 GiB" in storage and "0.11" in storage
    assert "EFS home" in storage and "3.000 GiB" in storage and "AWS/EFS StorageBytes" in storage
    assert "Public IPv4 addresses in use or held: <strong>2</strong>" in storage
    assert "idle, still billed" in storage


def test_the_number_of_queries_is_the_same_for_n_and_3n_nodes_of_every_kind(
    as_alice, django_assert_num_queries
):
    """Issue 14 finding 4: 10 instance types x 3 zones, spot and on-demand, terminated ones shown
    (``?terminated=1``): 60 nodes and 180 nodes take the same number of queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.provisioning.conftest import fleet_make, fleet_spot_points

    now = clock.now()
    base_pools()
    sync_ok(now)
    spot_record(*fleet_spot_points(now - timedelta(hours=2)), synced_at=now)
    fleet_make(60, launched_at=now - timedelta(hours=2))
    url = f"{NODES}?terminated=1"
    as_alice.get(url)
    with CaptureQueriesContext(connection) as captured:
        page = as_alice.get(url)
    queries = len(captured)  # now: the next request clears the connection's query log
    assert queries > 5
    content = page.content.decode()
    assert content.count('id="node-i-') == 60 and "terminated" in content
    assert "eu-west-1c" in content and "g4dn.xlarge" in content and "spot price" in content

    fleet_make(120, first=60, launched_at=now - timedelta(hours=2))
    with django_assert_num_queries(queries):
        page = as_alice.get(url)
    assert page.content.decode().count('id="node-i-') == 180


def test_io1_io2_and_gp3_extras_are_priced_on_the_storage_panel_never_as_another_type(as_alice):
    """Issue 14 finding 5: io1/io2 at their own GB-month and IOPS-month rates, gp3's IOPS and
    throughput above the free baseline; a type without a rate is unknown, never another type's
    price (magnetic: 0.055). eu-west-1 rates of billing/data/ebs_performance.csv."""
    from provisioning.models import Volume

    sync_ok()
    now = clock.now()
    for number, (kind, size, iops, throughput) in enumerate(
        (
            ("io1", 100, 1_000, None),
            ("io2", 200, 40_000, None),
            ("gp3", 50, 6_000, 250),
            ("gp3", 50, 3_000, 125),
            ("io9", 10, 5_000, None),
        )
    ):
        Volume.objects.create(volume_id=f"vol-{number}", size_gib=size, volume_type=kind,
                              iops=iops, throughput=throughput, state="available",
                              zone="eu-west-1a", created_at=now, first_seen_at=now)  # fmt: skip

    content = as_alice.get(NODES).content.decode()

    storage = content[content.index('id="storage"') : content.index('id="public-ipv4"')]
    rows = storage.split("<tr>")[2:]  # after the header row
    lines = {r.split("<td>")[1].split("<br>")[0].strip(): r for r in rows}
    assert set(lines) == {
        "EBS gp3", "EBS gp3 provisioned IOPS, above 3,000 IOPS",
        "EBS gp3 provisioned throughput, above 125 MiB/s",
        "EBS io1", "EBS io1 provisioned IOPS",
        "EBS io2", "EBS io2 provisioned IOPS, up to 32,000 IOPS",
        "EBS io2 provisioned IOPS, 32,001 to 64,000 IOPS", "EBS io9",
    }, list(lines)  # fmt: skip
    assert all("0.055" not in row and "magnetic" not in row for row in rows)
    assert "0.138" in lines["EBS io1"] and "13.80" in lines["EBS io1"]  # 100 GiB x 0.138
    assert "1000 IOPS" in lines["EBS io1 provisioned IOPS"]
    assert "0.072 per IOPS-month" in lines["EBS io1 provisioned IOPS"]
    assert "0.044 per MiB/s-month" in lines["EBS gp3 provisioned throughput, above 125 MiB/s"]
    assert "72.00" in lines["EBS io1 provisioned IOPS"]  # 1,000 x 0.072
    assert "27.60" in lines["EBS io2"]  # 200 GiB x 0.138
    assert "2304.00" in lines["EBS io2 provisioned IOPS, up to 32,000 IOPS"]  # 32,000 x 0.072
    assert "403.20" in lines["EBS io2 provisioned IOPS, 32,001 to 64,000 IOPS"]  # 8,000 x 0.0504
    assert "8.80" in lines["EBS gp3"]  # 100 GiB x 0.088, the baseline volume adds nothing else
    assert "16.50" in lines["EBS gp3 provisioned IOPS, above 3,000 IOPS"]  # 3,000 x 0.0055
    assert "5.50" in lines["EBS gp3 provisioned throughput, above 125 MiB/s"]  # 125 x 0.044
    assert "no storage price for ebs-io9" in lines["EBS io9"]
    assert '<td class="num">unknown</td>' in lines["EBS io9"]  # its monthly figure
