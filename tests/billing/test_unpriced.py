"""Unknown is never zero (issue 14, finding 1): a spot node of a type the catalog lacks costs its
recorded spot price (with a notice), and a resource with no price at all is *unpriced* wherever
money is shown -- a red line on the dashboard's estimate card and on the Nodes page, and
``"unpriced"`` in ``cost --json`` -- never a silent $0.00."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from billing.costs.selectors import cost_overview
from billing.costs.services import cost_rows_refresh
from billing.models import CatalogPrice, CostRow
from billing.money import amount
from sandbox.pools import sandbox_pool_data
from tests.billing.conftest import spot_point, spot_record
from tests.fixtures.personas import logged_in_client
from tests.provisioning.conftest import node_make, sync_ok

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
HOURS = 18 * 24 + 4  # from the 1st 00:00 to the 19th 04:00


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, tzinfo=UTC)


@pytest.fixture
def pools():
    from provisioning.services import pool_spec_clean, pools_store

    pools_store([pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")], username="test")


def cost_json() -> dict:
    out = StringIO()
    call_command("cost", "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_a_spot_node_of_a_type_the_catalog_lacks_costs_its_spot_price_not_zero(clock_at, pools):
    CatalogPrice.objects.filter(item="g6.xlarge").delete()  # the catalog lacks the type
    now = clock_at(at(19, 4))
    spot_record(spot_point("g6.xlarge", "0.3170", at(1), "eu-west-1a"), synced_at=now)
    node = node_make(
        pool="spark", instance_type="g6.xlarge", capacity_type="spot", zone="eu-west-1a",
        launched_at=at(1), owner="bob",
    )  # fmt: skip
    sync_ok(now)

    cost_rows_refresh(now=now)
    overview = cost_overview(now=now)

    expected = amount(Decimal("0.3170") * HOURS)  # 436 h: $138.21
    assert overview.estimate.total == expected
    assert overview.forecast.total > expected
    pieces = CostRow.objects.filter(resource_id=node.instance_id)
    assert {row.price for row in pieces} == {Decimal("0.3170")}
    assert all("spot price used unchecked" in row.price_notice for row in pieces)
    assert cost_json()["unpriced"] == []


def test_a_node_with_no_price_at_all_is_listed_as_unpriced_in_cost_json(clock_at, pools):
    now = clock_at(at(19, 4))
    node = node_make(pool="spark", instance_type="g9.huge", launched_at=at(1), owner="bob")
    sync_ok(now)
    cost_rows_refresh(now=now)

    data = cost_json()

    assert data["unpriced"] == [
        {
            "resource": node.instance_id,
            "kind": "node",
            "since": "2027-01-01T00:00:00+00:00",
            "hours": f"{HOURS}.00",
        }
    ]
    assert data["estimate"]["total"] == "0.00"  # nothing priced: the list says why


def test_the_dashboard_card_and_the_nodes_page_say_in_red_which_node_has_no_price(
    clock_at, pools, alice
):
    now = clock_at(at(19, 4))
    node_make(pool="spark", instance_type="g9.huge", launched_at=at(1), owner="bob")
    sync_ok(now)
    cost_rows_refresh(now=now)
    client = logged_in_client(alice)

    home = client.get("/").content.decode()
    nodes = client.get(reverse("provisioning:nodes")).content.decode()

    card = home[home.index('id="card-estimate"') : home.index('id="card-billed"')]
    assert "1 running node has no price: g9.huge, 18 d 4 h" in card
    assert 'class="unpriced"' in card
    assert "1 running node has no price: g9.huge, 18 d 4 h" in nodes
