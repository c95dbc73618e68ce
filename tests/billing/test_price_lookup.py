"""Asking AWS for what the catalog lacks (issue 14, finding 1): the price lookup job asks the
Price List Query API (through its us-east-1 endpoint, filtered to plain on-demand Linux) for the
types the inventory saw or a pool names, stores a price found as a catalog row with its source
and date, and caches every answer. Against the AWS layer, which answers GetProducts from its own
table in AWS's format (sandbox/aws/pricing.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import CatalogPrice, LookupOutcome, PriceLookup
from billing.prices import selectors
from billing.prices.lookups import price_lookups_run
from billing.tasks import price_lookups_sync
from clusterweb import clock
from clusterweb.integrations import aws as adapter
from provisioning.models import Pool
from tests.provisioning.conftest import node_make

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def fresh_clients():
    adapter.clients_clear()
    yield
    adapter.clients_clear()


def test_the_adapter_asks_the_us_east_1_endpoint_for_plain_on_demand_linux_across_pages(aws):
    aws.price_list_set("eu-west-1", "g9.huge", "3.3000")

    answer = adapter.ec2_on_demand_products("eu-west-1", "g9.huge")

    assert len(answer.products) == 1  # Windows, dedicated, unused-reservation filtered out
    attributes = answer.products[0]["product"]["attributes"]
    assert (attributes["instanceType"], attributes["regionCode"]) == ("g9.huge", "eu-west-1")
    assert answer.requests == 1
    assert ("pricing", "GetProducts") in aws.recorded_actions()
    assert aws.controls.price_list.regions_asked == {"us-east-1"}  # not the cluster's eu-west-1


def test_the_job_asks_for_types_the_inventory_saw_and_stores_the_price_with_its_source(aws):
    aws.price_list_set("eu-west-1", "g9.huge", "3.3000")
    node_make(instance_type="g9.huge")  # the catalog lacks it
    node_make(instance_type="m5.xlarge")  # the catalog has it: never asked

    outcome = price_lookups_sync()

    assert outcome["asked"] == ["g9.huge"] and outcome["found"] == {"g9.huge": "3.3"}
    quote = selectors.on_demand_quote("eu-west-1", "g9.huge")
    assert quote.price == Decimal("3.3") and "Price List Query API" in quote.source
    row = CatalogPrice.objects.get(item="g9.huge")
    assert row.origin == "lookup" and "asked" in row.source
    lookup = PriceLookup.objects.get(instance_type="g9.huge")
    assert lookup.outcome == LookupOutcome.FOUND
    assert price_lookups_sync()["asked"] == []  # safe to run twice: the catalog has it now


def test_a_type_aws_lists_no_price_for_is_cached_and_asked_again_only_a_day_later(aws):
    now = clock.now()
    first = price_lookups_run(region="eu-west-1", types=["zz9.huge"], now=now)
    again = price_lookups_run(region="eu-west-1", types=["zz9.huge"], now=now + timedelta(hours=2))
    later = price_lookups_run(
        region="eu-west-1", types=["zz9.huge"], now=now + timedelta(days=1, minutes=1)
    )

    assert first.not_found == ["zz9.huge"] and again.asked == [] and later.asked == ["zz9.huge"]
    assert PriceLookup.objects.get(instance_type="zz9.huge").outcome == LookupOutcome.NOT_FOUND


def test_a_failed_call_is_recorded_per_type_and_the_job_fails_when_every_call_failed(aws):
    node_make(instance_type="g9.huge")
    aws.fault_inject("pricing:GetProducts", "AccessDeniedException", times=5)

    with pytest.raises(Exception, match="price lookup"):
        price_lookups_sync()

    lookup = PriceLookup.objects.get(instance_type="g9.huge")
    assert lookup.outcome == LookupOutcome.FAILED and lookup.error


def test_pools_load_asks_aws_and_refuses_a_type_that_cannot_be_priced_naming_it(
    aws, tmp_path, directory_server
):
    path = tmp_path / "pools.json"
    path.write_text(
        '{"pools": [{"slug": "gpu", "kind": "burst", "instance_types": ["zz9.huge"], '
        '"lifecycle": "on-demand", "max_nodes": 2, "max_hours": 8}]}'
    )
    err = StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("pools", "load", str(path), "--by", "alice", stdout=StringIO(), stderr=err)

    assert exit_info.value.code == 2
    assert "instance type zz9.huge cannot be priced in eu-west-1" in err.getvalue()
    assert not Pool.objects.filter(slug="gpu").exists()
