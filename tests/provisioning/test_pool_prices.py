"""A pool refuses an instance type that cannot be priced even after asking AWS, naming it
(issue 14, finding 1): a pool must never launch what would cost an unknown amount. The Pools page
never calls AWS: a type never asked about is recorded as a price gap for the price lookup job and
the save is refused until the answer is in."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import CatalogPrice, LookupOutcome, PriceGap, PriceLookup
from clusterweb import clock
from provisioning.models import Pool
from tests.provisioning.test_pools_page import SPARK

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
ADD = reverse("provisioning:pool_add")


def with_types(types: str) -> dict[str, str]:
    return {**SPARK, "instance_types": types}


def test_a_type_aws_lists_no_price_for_is_refused_naming_it(as_alice):
    PriceLookup.objects.create(
        region="eu-west-1", instance_type="g9.huge", asked_at=clock.now() - timedelta(hours=2),
        outcome=LookupOutcome.NOT_FOUND,
    )  # fmt: skip

    page = as_alice.post(ADD, with_types("m5.xlarge g9.huge")).content.decode()

    assert "instance type g9.huge cannot be priced in eu-west-1" in page
    assert "lists no Linux on-demand price for it" in page
    assert not Pool.objects.exists()


def test_a_type_never_asked_about_is_refused_until_the_price_lookup_answers(as_alice):
    page = as_alice.post(ADD, with_types("m5.xlarge g9.huge")).content.decode()

    assert "instance type g9.huge has no price in eu-west-1 yet" in page
    assert not Pool.objects.exists()
    gap = PriceGap.objects.get(item="g9.huge")  # the lookup job asks for every gap
    assert (gap.kind, gap.region) == ("on-demand", "eu-west-1")

    # The job found it: the catalog has it now, and the same save goes through.
    CatalogPrice.objects.create(
        kind="on-demand", region="eu-west-1", item="g9.huge", price=Decimal("3.5"),
        effective_from=clock.now() - timedelta(days=1), source="test", origin="lookup",
        loaded_at=clock.now(),
    )  # fmt: skip
    as_alice.post(ADD, with_types("m5.xlarge g9.huge"))
    assert Pool.objects.get(slug="spark").instance_types == ["m5.xlarge", "g9.huge"]


def test_types_the_catalog_prices_are_saved_without_asking_anything(as_alice):
    as_alice.post(ADD, SPARK)

    assert Pool.objects.filter(slug="spark").exists()
    assert not PriceGap.objects.exists() and not PriceLookup.objects.exists()


def test_the_prices_page_says_what_aws_answered_for_a_type_a_pool_wanted(as_alice):
    as_alice.post(ADD, with_types("g9.huge"))  # refused; the gap is recorded
    prices = reverse("billing:prices")

    assert "not asked yet" in as_alice.get(prices).content.decode()

    PriceLookup.objects.create(
        region="eu-west-1", instance_type="g9.huge", asked_at=clock.now(),
        outcome=LookupOutcome.NOT_FOUND,
    )  # fmt: skip
    gaps = as_alice.get(prices).content.decode()
    gaps = gaps[gaps.index('id="gaps"') : gaps.index("</section>", gaps.index('id="gaps"'))]
    assert "g9.huge" in gaps and "lists no Linux on-demand price" in gaps
