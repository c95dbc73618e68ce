"""EBS performance rates (issue 14 finding 5): every provisioned IOPS or MiB/s above the free
baseline is charged exactly once, at the rate of its own tier, for every type and region the
bundled table covers; no rate exists for a type it does not name."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.prices import ebs

pytestmark = pytest.mark.sqlite

REGIONS = ("us-east-1", "eu-west-1")
FREE = {"gp3": (3_000, 125), "io1": (0, 0), "io2": (0, 0)}


def test_the_table_covers_io1_io2_and_gp3_in_both_regions_with_io2s_three_tiers():
    for region in REGIONS:
        for volume_type in ("io1", "io2"):
            assert ebs.gb_month_rate(region, volume_type) is not None, (region, volume_type)
        tiers = [r for r in ebs.rates() if (r.region, r.volume_type, r.dimension) == (
            region, "io2", "iops")]  # fmt: skip
        assert [(r.above, r.upto) for r in tiers] == [(0, 32_000), (32_000, 64_000), (64_000, None)]
        assert tiers[0].price > tiers[1].price > tiers[2].price  # cheaper as it grows
        for rate in ebs.rates():
            assert rate.price > 0 and -rate.price.as_tuple().exponent <= 6  # CONVENTIONS
    assert ebs.gb_month_rate("eu-west-1", "gp3") is None  # the storage table's, not this one's
    assert ebs.performance_pieces("eu-west-1", "io9", 10_000, 500) == []
    assert ebs.performance_pieces("eu-west-1", "gp2", 3_000, None) == []  # gp2's IOPS are free


@given(
    region=st.sampled_from(REGIONS),
    volume_type=st.sampled_from(sorted(FREE)),
    iops=st.none() | st.integers(min_value=0, max_value=256_000),
    throughput=st.none() | st.integers(min_value=0, max_value=4_000),
)
def test_every_unit_above_the_baseline_is_charged_once_at_its_tiers_rate(
    region, volume_type, iops, throughput
):
    pieces = ebs.performance_pieces(region, volume_type, iops, throughput)

    free_iops, free_mibs = FREE[volume_type]
    charged = {dimension: sum(p.units for p in pieces if p.rate.dimension == dimension)
               for dimension in (ebs.IOPS, ebs.THROUGHPUT)}  # fmt: skip
    assert charged[ebs.IOPS] == max((iops or 0) - free_iops, 0)
    expected_mibs = max((throughput or 0) - free_mibs, 0) if volume_type == "gp3" else 0
    assert charged[ebs.THROUGHPUT] == expected_mibs
    for piece in pieces:
        rate = piece.rate
        assert piece.units > 0 and (rate.region, rate.volume_type) == (region, volume_type)
        assert rate.upto is None or piece.units <= rate.upto - rate.above
        assert piece.monthly == rate.price * piece.units and isinstance(piece.monthly, Decimal)
    assert len({p.key for p in pieces}) == len(pieces)  # each a line of its own
