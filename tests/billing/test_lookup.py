"""What does X cost at time T, and where does the figure come from."""

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.models import PriceOverride
from billing.prices import selectors
from clusterweb import clock
from tests.billing.conftest import spot_point, spot_record

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
UNKNOWN = "spot price unknown, on-demand shown"


def override(kind, item, price, region="eu-west-1", **extra):
    return PriceOverride.objects.create(
        kind=kind,
        region=region,
        item=item,
        price=Decimal(price),
        effective_from=extra.pop("effective_from", clock.now() - timedelta(minutes=1)),
        created_by_username="alice",
        **extra,
    )


def test_an_on_demand_price_comes_with_its_source_and_effective_date():
    quote = selectors.on_demand_quote("us-east-1", "m5.xlarge")
    assert quote.price == Decimal("0.192")
    assert "karpenter" in quote.source and quote.effective_from.date().isoformat() == "2026-07-20"
    assert quote.notice is None and quote.unit == "hour"


def test_a_type_missing_from_the_catalog_has_no_price_and_says_so():
    quote = selectors.on_demand_quote("eu-west-1", "g6.xlarge")
    assert quote.price is None and not quote.known
    assert "price unknown" in quote.notice


def test_a_derived_or_unconfirmed_figure_is_never_shown_without_saying_so():
    assert "derived" in selectors.on_demand_quote("eu-west-1", "c5.9xlarge").notice
    assert "unconfirmed" in selectors.storage_quote("eu-west-1", "efs").notice
    assert selectors.storage_quote("eu-west-1", "ebs-gp3").notice is None


def test_a_time_before_the_catalog_gets_its_first_figure_with_a_notice():
    quote = selectors.on_demand_quote("us-east-1", "t2.micro", clock.now() - timedelta(days=3650))
    assert quote.price == Decimal("0.0116")
    assert "first figure" in quote.notice


def test_an_override_wins_while_in_force_and_the_catalog_returns_after_it_ends():
    o = override("on-demand", "m5.xlarge", "0.3")
    quote = selectors.on_demand_quote("eu-west-1", "m5.xlarge")
    assert quote.price == Decimal("0.3") and quote.overridden
    assert "override by alice" in quote.source
    PriceOverride.objects.filter(pk=o.pk).update(ended_at=clock.now())
    assert selectors.on_demand_quote("eu-west-1", "m5.xlarge").price == Decimal("0.214")
    before = selectors.on_demand_quote("eu-west-1", "m5.xlarge", o.effective_from - timedelta(1))
    assert before.price == Decimal("0.214")


def test_an_override_prices_a_type_the_catalog_lacks():
    override("on-demand", "g6.xlarge", "0.95")
    assert selectors.on_demand_quote("eu-west-1", "g6.xlarge").price == Decimal("0.95")


def test_storage_and_ipv4_prices():
    assert selectors.storage_quote("eu-west-1", "ebs-gp3").price == Decimal("0.088")
    ipv4 = selectors.ipv4_quote("us-east-1")
    assert ipv4.price == Decimal("0.005") and ipv4.unit == "address-hour"


# --- Spot ----------------------------------------------------------------------------------------
def test_a_spot_point_is_used_from_its_timestamp_until_the_next_one():
    now = clock.now()
    t0 = now - timedelta(hours=5)
    spot_record(
        spot_point("m5.xlarge", "0.0700", t0),
        spot_point("m5.xlarge", "0.0800", t0 + timedelta(2 / 24)),
    )
    between = selectors.spot_quote("eu-west-1", "m5.xlarge", t0 + timedelta(hours=1))
    assert between.price == Decimal("0.07") and between.kind == "spot"
    assert between.effective_from == t0 and between.zone == "eu-west-1a"
    assert selectors.spot_quote("eu-west-1", "m5.xlarge", now).price == Decimal("0.08")
    before = selectors.spot_quote("eu-west-1", "m5.xlarge", t0 - timedelta(hours=1))
    assert before.price == Decimal("0.214") and UNKNOWN in before.notice


def test_without_a_zone_the_highest_zone_price_is_used():
    at = clock.now() - timedelta(hours=1)
    spot_record(
        spot_point("m5.xlarge", "0.0600", at, "eu-west-1a"),
        spot_point("m5.xlarge", "0.0900", at, "eu-west-1b"),
        spot_point("m5.xlarge", "0.0700", at, "eu-west-1c"),
    )
    quote = selectors.spot_quote("eu-west-1", "m5.xlarge")
    assert quote.price == Decimal("0.09") and quote.zone == "eu-west-1b"
    assert "highest of 3 zones" in quote.source
    assert selectors.spot_quote("eu-west-1", "m5.xlarge", zone="eu-west-1a").price == Decimal(
        "0.06"
    )


def test_a_spot_point_above_on_demand_is_not_used_silently():
    spot_record(spot_point("m5.xlarge", "0.2150", clock.now() - timedelta(hours=1)))
    quote = selectors.spot_quote("eu-west-1", "m5.xlarge")
    assert quote.price == Decimal("0.214") and quote.kind == "on-demand" and quote.fallback
    assert UNKNOWN in quote.notice and "outside 5%-100%" in quote.notice


def test_a_spot_point_below_five_percent_of_on_demand_is_not_used_silently():
    spot_record(spot_point("m5.xlarge", "0.0106", clock.now() - timedelta(hours=1)))
    quote = selectors.spot_quote("eu-west-1", "m5.xlarge")
    assert quote.price == Decimal("0.214") and UNKNOWN in quote.notice


def test_the_band_edges_are_inside_the_band():
    at = clock.now() - timedelta(hours=1)
    spot_record(spot_point("m5.xlarge", "0.0107", at), spot_point("m5.large", "0.107", at))
    assert selectors.spot_quote("eu-west-1", "m5.xlarge").price == Decimal("0.0107")
    assert selectors.spot_quote("eu-west-1", "m5.large").price == Decimal("0.107")


def test_an_implausible_zone_is_ignored_and_the_others_used_with_a_notice():
    at = clock.now() - timedelta(hours=1)
    spot_record(
        spot_point("m5.xlarge", "0.0700", at, "eu-west-1a"),
        spot_point("m5.xlarge", "0.9000", at, "eu-west-1b"),
    )
    quote = selectors.spot_quote("eu-west-1", "m5.xlarge")
    assert quote.price == Decimal("0.07") and "eu-west-1b" in quote.notice


def test_spot_prices_go_unknown_when_the_last_sync_is_too_old(shared_clock, settings):
    settings.SPOT_PRICE_MAX_AGE_HOURS = 6
    spot_record(spot_point("m5.xlarge", "0.0700", clock.now() - timedelta(hours=1)))
    assert selectors.spot_quote("eu-west-1", "m5.xlarge").price == Decimal("0.07")
    shared_clock.advance(7 * 3600)
    quote = selectors.spot_quote("eu-west-1", "m5.xlarge")
    assert quote.price == Decimal("0.214") and UNKNOWN in quote.notice
    assert "last spot price sync" in quote.notice
    spot_record()  # a sync that brought nothing new still counts
    assert selectors.spot_quote("eu-west-1", "m5.xlarge").price == Decimal("0.07")


def test_without_any_sync_spot_prices_are_unknown():
    quote = selectors.spot_quote("us-east-1", "t3.large")
    assert quote.price == Decimal("0.0832") and "no spot price sync" in quote.notice


def test_a_fixed_spot_override_wins_over_points():
    spot_record(spot_point("m5.xlarge", "0.0700", clock.now() - timedelta(hours=1)))
    override("spot", "m5.xlarge", "0.05")
    quote = selectors.spot_quote("eu-west-1", "m5.xlarge")
    assert quote.price == Decimal("0.05") and quote.overridden and quote.kind == "spot"


def test_the_price_table_gives_every_price_of_a_region_with_sources():
    spot_record(spot_point("m5.xlarge", "0.0700", clock.now() - timedelta(hours=1)))
    table = selectors.price_table("eu-west-1")
    rows = {row.instance_type: row for row in table.instances}
    assert len(rows) == 50 and next(iter(rows)) == "c5.large"
    assert rows["m5.xlarge"].spot.price == Decimal("0.07")
    assert rows["t2.micro"].spot.fallback
    assert {s for s, _, _ in table.storage} >= {"s3", "ebs-gp3", "efs"}
    assert table.ipv4.price == Decimal("0.005") and table.sync_fresh
