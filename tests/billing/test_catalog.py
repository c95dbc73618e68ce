"""The catalog right after migrate: every bundled price, each with its source and date."""

import csv
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing.models import CatalogPrice
from billing.prices.catalog import DATA_DIR, ON_DEMAND_FILE, bundled_rows

pytestmark = pytest.mark.sqlite

FAMILIES = {
    "t2": ["nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"],
    "t3": ["nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"],
    "m5": ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"],
    "c5": ["large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge"],
    "r5": ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"],
    "g4dn": ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge"],
    "g5": ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge"],
    "p3": ["2xlarge", "8xlarge"],
}
TYPES = {f"{family}.{size}" for family, sizes in FAMILIES.items() for size in sizes}
SERVICES = {"s3", "ebs-gp3", "ebs-gp2", "ebs-st1", "ebs-sc1", "ebs-standard", "efs"}


@pytest.mark.django_db(transaction=True)
def test_prices_are_in_the_database_right_after_migrate_each_with_a_source():
    call_command("migrate", "billing", "zero", verbosity=0)
    call_command("migrate", verbosity=0)
    for region in ("us-east-1", "eu-west-1"):
        on_demand = CatalogPrice.objects.filter(kind="on-demand", region=region)
        # us-east-1 holds every type AWS lists (test_catalog_coverage.py), eu-west-1 these.
        assert set(on_demand.values_list("item", flat=True)) >= TYPES
        storage = CatalogPrice.objects.filter(kind="storage", region=region)
        assert set(storage.values_list("item", flat=True)) == SERVICES
        ipv4 = CatalogPrice.objects.get(kind="ipv4", region=region)
        assert ipv4.price == Decimal("0.005")
    for row in CatalogPrice.objects.all():
        assert row.source.strip() and row.effective_from is not None
        assert row.origin == "bundled"
        assert row.price > 0


def test_the_bundled_tables_say_where_every_figure_came_from_and_as_of_when():
    for path in sorted(DATA_DIR.glob("*.csv")):
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        text = "\n".join(header)
        assert "Source" in text or "came from" in text, path.name
        rows = list(csv.DictReader(line for line in path.open() if not line.startswith("#")))
        assert rows, path.name
        for row in rows:
            assert row["source"].strip() and row["effective_from"], (path.name, row)
            assert row["confidence"] in {"confirmed", "derived", "unconfirmed"}
            if row["confidence"] != "confirmed":
                assert row["source"].lower().startswith(row["confidence"]), row


def test_known_figures_from_aws_price_list():
    prices = {(r.region, r.item): r.price for r in bundled_rows() if r.kind == "on-demand"}
    assert prices[("us-east-1", "t2.micro")] == Decimal("0.0116")
    assert prices[("us-east-1", "m5.xlarge")] == Decimal("0.192")
    assert prices[("us-east-1", "g4dn.xlarge")] == Decimal("0.526")
    assert prices[("eu-west-1", "t2.small")] == Decimal("0.025")
    assert prices[("eu-west-1", "g5.12xlarge")] == Decimal("6.33167")
    assert "karpenter" in ON_DEMAND_FILE.read_text()
