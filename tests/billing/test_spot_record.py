"""Storing spot price points (what the spot sync will call) and the sandbox's simulated points."""

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.models import SpotPricePoint, SpotPriceSync
from billing.prices import selectors
from billing.prices.services import SpotPoint, spot_price_points_record
from clusterweb import clock
from sandbox.prices import SANDBOX_SPOT_SOURCE, sandbox_spot_prices_seed
from tests.billing.conftest import spot_point

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_recording_the_same_points_twice_stores_them_once_and_records_both_syncs():
    at = clock.now() - timedelta(hours=2)
    points = [
        spot_point("m5.xlarge", "0.07", at),
        spot_point("m5.xlarge", "0.08", at, "eu-west-1b"),
    ]
    first = spot_price_points_record(points=points, synced_at=clock.now())
    second = spot_price_points_record(points=points, synced_at=clock.now() + timedelta(minutes=5))
    assert (first.new, second.new) == (2, 0)
    assert SpotPricePoint.objects.count() == 2
    syncs = list(SpotPriceSync.objects.filter(region="eu-west-1"))
    assert len(syncs) == 2 and syncs[0].points_new == 0 and syncs[1].points_new == 2


@pytest.mark.parametrize(
    "point",
    [
        SpotPoint("eu-west-1", "eu-west-1a", "m5.xlarge", Decimal("0"), clock.now()),
        SpotPoint("eu-west-1", "eu-west-1a", "m5.xlarge", 0.07, clock.now()),  # a float
        SpotPoint("eu-west-1", "us-east-1a", "m5.xlarge", Decimal("0.07"), clock.now()),
    ],
)
def test_a_malformed_point_is_refused_and_nothing_is_stored(point):
    with pytest.raises(ValueError):
        spot_price_points_record(points=[point], synced_at=clock.now())
    assert not SpotPricePoint.objects.exists() and not SpotPriceSync.objects.exists()


def test_sandbox_spot_prices_are_about_a_third_of_on_demand_vary_and_say_they_are_simulated():
    result = sandbox_spot_prices_seed(region="eu-west-1", days=3)
    assert result.new == 50 * 3 * 3 - _not_yet_today()
    points = SpotPricePoint.objects.filter(instance_type="m5.xlarge")
    shares = {p.price / Decimal("0.214") for p in points}
    assert all(Decimal("0.27") < s < Decimal("0.39") for s in shares) and len(shares) > 3
    assert {p.source for p in SpotPricePoint.objects.all()} == {SANDBOX_SPOT_SOURCE}
    quote = selectors.spot_quote("eu-west-1", "m5.xlarge")
    assert quote.kind == "spot" and "simulated" in quote.source
    again = sandbox_spot_prices_seed(region="eu-west-1", days=3)
    assert again.new == 0


def _not_yet_today() -> int:
    """Points of today whose hour (03, 08, 13 UTC by zone) has not come yet."""
    hour = clock.now().hour
    return 50 * sum(hour < h for h in (3, 8, 13))
