"""Cost rows: the cost of every node, volume, file system, bucket and public address, per UTC day
and per price, computed from the inventory's lifetimes and the price catalog by the cost refresh
(idempotent: a second run writes nothing; a changed price or lifetime is rewritten at the next).

eu-west-1 list prices used here (the bundled catalog): m5.xlarge 0.214/h, t2.micro 0.0126/h,
gp3 0.088 and EFS 0.33 per GB-month, public IPv4 0.005 per address-hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.costs import costing
from billing.costs.costing import Transition, node_runs
from billing.costs.services import cost_rows_refresh
from billing.models import CostMonth, CostRow
from billing.money import amount
from billing.prices.services import price_override_add
from provisioning.models import ElasticAddress, NodeEvent, StoredData, Volume
from sandbox.pools import sandbox_pool_data
from tests.billing.conftest import spot_point, spot_record
from tests.fixtures.personas import user_for
from tests.provisioning.conftest import node_make

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

M5, T2 = Decimal("0.214"), Decimal("0.0126")


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 1) -> datetime:
    return datetime(2027, month, day, hour, minute, second, tzinfo=UTC)


def rows(resource_id: str, kind: str = "node") -> list[CostRow]:
    return list(
        CostRow.objects.filter(resource_id=resource_id, resource_kind=kind).order_by("start")
    )


def total(found: list[CostRow]) -> Decimal:
    return sum((row.cost for row in found), Decimal(0))


@pytest.fixture
def pools():
    from provisioning.services import pool_spec_clean, pools_store

    pools_store([pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")], username="test")


def test_a_node_spanning_a_month_boundary_costs_in_each_month_its_own_hours(clock_at, pools):
    now = clock_at(at(1, 4))
    node = node_make(
        pool="spark",
        launched_at=at(31, 22, month=12).replace(year=2026),
        terminated_at=at(1, 3),
        state="terminated",
    )

    result = cost_rows_refresh(now=now)

    assert [m.month.isoformat() for m in result.months] == ["2026-12-01", "2027-01-01"]
    december, january = rows(node.instance_id)
    assert (december.day.isoformat(), december.usage, december.cost) == (
        "2026-12-31", Decimal(2), 2 * M5,
    )  # fmt: skip
    assert (january.day.isoformat(), january.usage, january.cost) == ("2027-01-01", 3, 3 * M5)
    assert december.month.isoformat() == "2026-12-01" and january.month == at(1).date()
    assert january.price == M5 and january.price_kind == "on-demand"
    assert january.price_source.startswith("catalog: AWS Price List")
    assert CostMonth.objects.get(month=at(1).date()).through == now
    assert CostMonth.objects.get(month=at(1, month=12).date().replace(year=2026)).through == at(1)


def test_a_spot_price_change_in_mid_life_splits_the_cost_at_the_change(clock_at, pools):
    now = clock_at(at(12, 18))
    spot_record(
        spot_point("m5.xlarge", "0.0700", at(12, 0), "eu-west-1a"),
        spot_point("m5.xlarge", "0.0900", at(12, 12), "eu-west-1a"),
        spot_point("m5.xlarge", "0.0500", at(12, 11), "eu-west-1b"),  # another zone: ignored
        synced_at=now,
    )
    node = node_make(
        capacity_type="spot", zone="eu-west-1a", launched_at=at(12, 10), terminated_at=at(12, 14),
        state="terminated",
    )  # fmt: skip

    cost_rows_refresh(now=now)

    before, after = rows(node.instance_id)
    assert (before.start, before.end, before.price, before.cost) == (
        at(12, 10), at(12, 12), Decimal("0.07"), Decimal("0.14"),
    )  # fmt: skip
    assert (after.start, after.end, after.price, after.cost) == (
        at(12, 12), at(12, 14), Decimal("0.09"), Decimal("0.18"),
    )  # fmt: skip
    assert before.price_kind == after.price_kind == "spot"
    assert after.price_source == "spot price eu-west-1a: test"


def test_a_run_shorter_than_a_minute_is_charged_sixty_seconds(clock_at, pools):
    now = clock_at(at(5, 12))
    node = node_make(
        launched_at=at(5, 9), terminated_at=at(5, 9, 0, 20), state="terminated", pool="spark"
    )

    cost_rows_refresh(now=now)

    [row] = rows(node.instance_id)
    assert row.usage == (Decimal(60) / 3600).quantize(costing.PLACES)
    assert row.cost == (M5 * 60 / 3600).quantize(costing.PLACES)
    assert row.rule == "60-second minimum"


def test_a_spot_node_aws_interrupts_in_its_first_hour_costs_nothing(clock_at, pools):
    now = clock_at(at(6, 12))
    spot_record(spot_point("m5.xlarge", "0.0700", at(6, 0), "eu-west-1b"), synced_at=now)
    spot = {"capacity_type": "spot", "zone": "eu-west-1b", "state": "terminated"}
    reclaimed = node_make(
        launched_at=at(6, 8), terminated_at=at(6, 8, 40), spot_interrupted_at=at(6, 8, 40), **spot
    )
    late = node_make(
        launched_at=at(6, 8), terminated_at=at(6, 9, 30), spot_interrupted_at=at(6, 9, 30), **spot
    )
    stopped_by_us = node_make(launched_at=at(6, 8), terminated_at=at(6, 8, 40), **spot)
    reason_only = node_make(
        launched_at=at(6, 8), terminated_at=at(6, 8, 30),
        state_reason="Server.SpotInstanceTermination", **spot,
    )  # fmt: skip

    cost_rows_refresh(now=now)

    [free] = rows(reclaimed.instance_id)
    assert free.cost == 0 and free.price == Decimal("0.07")  # the price used is still kept
    assert free.rule == "spot instance interrupted by AWS within its first hour: not charged"
    assert total(rows(reason_only.instance_id)) == 0  # EC2's state reason says AWS did it
    assert total(rows(late.instance_id)) == Decimal("0.105")  # 1.5 h: charged by the second
    assert total(rows(stopped_by_us.instance_id)) == (Decimal("0.07") * 40 / 60).quantize(
        costing.PLACES
    )


def test_storage_is_prorated_by_the_seconds_of_its_month(clock_at, pools):
    now = clock_at(at(3, 12))
    node = node_make(launched_at=at(2, 0), pool="spark")
    Volume.objects.create(
        volume_id="vol-scratch", node=node, instance_id=node.instance_id, size_gib=100,
        volume_type="gp3", state="deleted", created_at=at(2, 6), first_seen_at=at(2, 6),
        deleted_at=at(2, 18),
    )  # fmt: skip
    StoredData.objects.create(
        service="efs", resource="fs-home", name="home", size_bytes=20 * 1024**3,
        measured_at=at(2), first_seen_at=at(1, month=1), gone_at=None,
    )  # fmt: skip

    cost_rows_refresh(now=now)

    january = Decimal(31 * 86400)
    [scratch] = rows("vol-scratch", "volume")
    assert scratch.unit == "GB-month" and scratch.service == "ebs" and scratch.pool == "spark"
    assert scratch.usage == (Decimal(100) * 12 * 3600 / january).quantize(costing.PLACES)
    assert scratch.cost == (Decimal(100) * Decimal("0.088") * 12 * 3600 / january).quantize(
        costing.PLACES
    )
    home = rows("fs-home", "efs")
    assert [r.day.day for r in home] == [1, 2, 3]  # cut at every midnight, up to now
    whole_day = (Decimal(20) * Decimal("0.33") * 86400 / january).quantize(costing.PLACES)
    assert home[0].cost == home[1].cost == whole_day
    assert home[2].cost == (whole_day / 2).quantize(costing.PLACES)
    assert home[0].pool_kind == "base"  # shared storage counts as always-on


def test_public_ipv4_is_charged_per_address_hour_and_stays_charged_after_termination(
    clock_at, pools
):
    now = clock_at(at(4, 20))
    node = node_make(pool="spark", launched_at=at(4, 8), public_ipv4="203.0.113.5")
    ElasticAddress.objects.create(
        allocation_id="eipalloc-1", public_ip="203.0.113.9", first_seen_at=at(4), released_at=None
    )
    with_eip = node_make(pool="spark", launched_at=at(4, 8), public_ipv4="203.0.113.9")

    cost_rows_refresh(now=now)

    [address] = rows(node.instance_id, "node-ipv4")
    assert (address.usage, address.cost, address.service) == (12, Decimal("0.06"), "ipv4")
    [eip] = rows("eipalloc-1", "elastic-ip")
    assert eip.cost == Decimal("0.10")  # 20 h, attached or not
    assert rows(with_eip.instance_id, "node-ipv4") == []  # its address is the Elastic IP

    # The node ends; EC2 no longer reports its address. Its hours with one are still charged.
    node.state, node.terminated_at, node.public_ipv4 = "terminated", at(4, 18), None
    node.save()
    cost_rows_refresh(now=at(4, 21))
    [address] = rows(node.instance_id, "node-ipv4")
    assert address.cost == Decimal("0.05")


def test_the_refresh_is_idempotent_and_follows_lifetime_and_price_changes(clock_at, pools, alice):
    now = clock_at(at(8, 12))
    node = node_make(launched_at=at(8, 2), pool="spark", owner="bob", request="42")

    first = cost_rows_refresh(now=now).months[-1]
    again = cost_rows_refresh(now=now).months[-1]

    assert (first.created, first.rows) == (1, 1)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)
    [row] = rows(node.instance_id)
    assert (row.owner, row.request, row.pool_kind, row.cost) == ("bob", "42", "burst", 10 * M5)

    # An admin sets a price at 12:00; the node ends at 13:00: the next refresh rewrites it.
    price_override_add(
        actor=user_for(alice), kind="on-demand", region="eu-west-1", item="m5.xlarge",
        price="0.2000", note="negotiated",
    )  # fmt: skip
    node.state, node.terminated_at = "terminated", at(8, 13)
    node.save()
    cost_rows_refresh(now=at(8, 14))

    before, after = rows(node.instance_id)  # cut when the override took effect (12:00)
    assert before.end == after.start and after.start - at(8, 12) < timedelta(seconds=5)
    assert before.price == M5 and amount(before.cost) == amount(10 * M5)
    assert after.end == at(8, 13) and after.price == Decimal("0.2")
    assert amount(after.cost) == Decimal("0.20")
    assert after.price_source.startswith("override by alice") and "negotiated" in (
        after.price_source
    )


def test_runs_come_from_the_state_transitions_so_a_stopped_node_costs_only_while_it_ran(
    clock_at, pools
):
    now = clock_at(at(9, 20))
    node = node_make(launched_at=at(9, 14), pool="spark", state="running")
    for when, old, new in (
        (at(9, 8), "", "running"),
        (at(9, 10), "running", "stopping"),
        (at(9, 10, 1), "stopping", "stopped"),
        (at(9, 14), "stopped", "pending"),
        (at(9, 14, 0, 30), "pending", "running"),
    ):
        NodeEvent.objects.create(
            node=node, kind="state", from_state=old, to_state=new, at=when, recorded_at=when
        )

    cost_rows_refresh(now=now)

    found = rows(node.instance_id)
    assert [(r.start, r.end) for r in found] == [(at(9, 8), at(9, 10, 1)), (at(9, 14), now)]


def test_a_type_the_catalog_lacks_is_kept_with_no_price_and_counted(clock_at, pools):
    now = clock_at(at(10, 12))
    node = node_make(launched_at=at(10, 10), instance_type="x9.mystery", pool="spark")

    cost_rows_refresh(now=now)

    [row] = rows(node.instance_id)
    assert row.price is None and row.cost == 0 and row.price_notice.startswith("price unknown")
    assert CostMonth.objects.get(month=at(1).date()).unknown_prices == 1


def test_a_node_of_a_base_pool_is_base_and_of_no_known_pool_is_burst(clock_at, pools):
    now = clock_at(at(2, 0))
    control = node_make(pool="control", instance_type="t2.micro", launched_at=at(1), owner="")
    stray = node_make(pool="", launched_at=at(1, 23), owner="")

    cost_rows_refresh(now=now)

    assert {r.pool_kind for r in rows(control.instance_id)} == {"base"}
    assert total(rows(control.instance_id)) == 24 * T2
    assert {r.pool_kind for r in rows(stray.instance_id)} == {"burst"}


# --- The lifetime rules, without the database ----------------------------------------------------
def test_without_transitions_a_node_runs_from_launch_to_termination_or_now():
    assert node_runs(
        launched_at=at(1), terminated_at=None, state="running", transitions=[], now=at(2)
    ) == [(at(1), at(2))]
    assert node_runs(
        launched_at=at(1), terminated_at=at(1, 5), state="terminated", transitions=[], now=at(2)
    ) == [(at(1), at(1, 5))]
    assert (
        node_runs(launched_at=at(1), terminated_at=None, state="stopped", transitions=[], now=at(2))
        == []
    )


def test_a_node_first_seen_terminated_ran_from_its_launch():
    steps = [Transition(at(1, 5), "", "terminated")]
    assert node_runs(
        launched_at=at(1, 1), terminated_at=at(1, 4), state="terminated", transitions=steps,
        now=at(2),
    ) == [(at(1, 1), at(1, 4))]  # fmt: skip


def test_time_is_cut_at_every_utc_midnight_and_every_breakpoint():
    assert costing.cut(at(1, 22), at(3, 2), [at(2, 12), at(5)]) == [
        (at(1, 22), at(2)),
        (at(2), at(2, 12)),
        (at(2, 12), at(3)),
        (at(3), at(3, 2)),
    ]
    assert costing.cut(at(2), at(2)) == []


# --- Issue 14 finding 5: EBS provisioned IOPS and throughput -------------------------------------
# eu-west-1 rates of billing/data/ebs_performance.csv (AWS's EBS pricing page).
IO2_GB, IO2_IOPS, IO2_IOPS_32K = Decimal("0.138"), Decimal("0.072"), Decimal("0.0504")
GP3_GB, GP3_IOPS, GP3_MIBS = Decimal("0.088"), Decimal("0.0055"), Decimal("0.044")
JANUARY = Decimal(31 * 86400)


def _volume_for_a_day(volume_id: str, volume_type: str, size: int, **provisioned) -> None:
    """A volume that lived the whole of 2 January (one day of January's 31)."""
    Volume.objects.create(
        volume_id=volume_id, size_gib=size, volume_type=volume_type, state="deleted",
        created_at=at(2), first_seen_at=at(2), deleted_at=at(3), **provisioned,
    )  # fmt: skip


def _day_of(quantity: int, price: Decimal) -> Decimal:
    return (Decimal(quantity) * price * 86400 / JANUARY).quantize(costing.PLACES)


def _lines(volume_id: str) -> dict[str, tuple[str, Decimal | None, Decimal]]:
    """The volume's rows by resource id: (unit, price, cost)."""
    found = CostRow.objects.filter(resource_kind="volume", resource_id__startswith=volume_id)
    return {r.resource_id: (r.unit, r.price, r.cost) for r in found}


def test_an_io2_volume_is_priced_by_gb_month_and_provisioned_iops_month(clock_at, pools):
    now = clock_at(at(5))
    _volume_for_a_day("vol-io2", "io2", 100, iops=10_000)

    cost_rows_refresh(now=now)

    assert _lines("vol-io2") == {
        "vol-io2": ("GB-month", IO2_GB, _day_of(100, IO2_GB)),
        "vol-io2:iops": ("IOPS-month", IO2_IOPS, _day_of(10_000, IO2_IOPS)),
    }
    [iops] = rows("vol-io2:iops", "volume")
    assert iops.usage == (Decimal(10_000) * 86400 / JANUARY).quantize(costing.PLACES)
    assert "10,000 IOPS" in iops.label and "aws.amazon.com/ebs/pricing" in iops.price_source
    assert iops.price_notice.startswith("unconfirmed figure")  # until checked against the page
    assert CostMonth.objects.get(month=at(1).date()).unknown_prices == 0


def test_an_io2_volume_over_32000_iops_is_priced_by_tier(clock_at, pools):
    now = clock_at(at(5))
    _volume_for_a_day("vol-tiers", "io2", 100, iops=40_000)

    cost_rows_refresh(now=now)

    lines = _lines("vol-tiers")
    assert lines["vol-tiers:iops"] == ("IOPS-month", IO2_IOPS, _day_of(32_000, IO2_IOPS))
    assert lines["vol-tiers:iops>32000"] == (
        "IOPS-month", IO2_IOPS_32K, _day_of(8_000, IO2_IOPS_32K)
    )  # fmt: skip
    assert set(lines) == {"vol-tiers", "vol-tiers:iops", "vol-tiers:iops>32000"}
    [upper] = rows("vol-tiers:iops>32000", "volume")
    assert "32,001 to 64,000 IOPS: 8,000 IOPS" in upper.label
    assert upper.price_notice.startswith("derived figure")  # said wherever it is used


def test_a_gp3_volume_pays_for_iops_and_throughput_above_the_free_baseline(clock_at, pools):
    now = clock_at(at(5))
    _volume_for_a_day("vol-fast", "gp3", 100, iops=6_000, throughput=250)

    cost_rows_refresh(now=now)

    assert _lines("vol-fast") == {
        "vol-fast": ("GB-month", GP3_GB, _day_of(100, GP3_GB)),
        "vol-fast:iops": ("IOPS-month", GP3_IOPS, _day_of(3_000, GP3_IOPS)),
        "vol-fast:throughput": ("MiB/s-month", GP3_MIBS, _day_of(125, GP3_MIBS)),
    }


def test_a_gp3_volume_at_its_baseline_and_a_type_without_rates_have_no_extra_lines(clock_at, pools):
    now = clock_at(at(5))
    _volume_for_a_day("vol-base", "gp3", 100, iops=3_000, throughput=125)
    _volume_for_a_day("vol-odd", "io9", 100, iops=10_000)  # a type no table knows

    cost_rows_refresh(now=now)

    assert _lines("vol-base") == {"vol-base": ("GB-month", GP3_GB, _day_of(100, GP3_GB))}
    [odd] = rows("vol-odd", "volume")
    assert set(_lines("vol-odd")) == {"vol-odd"}
    assert (
        odd.price is None and odd.cost == 0 and "no storage price for ebs-io9" in odd.price_notice
    )
    assert CostMonth.objects.get(month=at(1).date()).unknown_prices == 1


def test_the_forecast_runs_a_volumes_iops_and_throughput_lines_at_their_own_rates(clock_at, pools):
    from billing.costs.forecasting import storage_hourly
    from billing.costs.selectors import running_items

    now = clock_at(at(5))
    for volume_id, volume_type, provisioned in (
        ("vol-io2", "io2", {"iops": 40_000}),
        ("vol-fast", "gp3", {"iops": 6_000, "throughput": 250}),
        ("vol-base", "gp3", {"iops": 3_000, "throughput": 125}),
        ("vol-odd", "io9", {"iops": 10_000}),
    ):
        Volume.objects.create(
            volume_id=volume_id, size_gib=100, volume_type=volume_type, state="in-use",
            created_at=at(1), first_seen_at=at(1), **provisioned,
        )  # fmt: skip

    items = {i.key: i.hourly for i in running_items(now) if i.key.startswith("volume:")}

    assert items == {
        "volume:vol-io2": storage_hourly(Decimal(100), IO2_GB, now),
        "volume:vol-io2:iops": storage_hourly(Decimal(32_000), IO2_IOPS, now),
        "volume:vol-io2:iops>32000": storage_hourly(Decimal(8_000), IO2_IOPS_32K, now),
        "volume:vol-fast": storage_hourly(Decimal(100), GP3_GB, now),
        "volume:vol-fast:iops": storage_hourly(Decimal(3_000), GP3_IOPS, now),
        "volume:vol-fast:throughput": storage_hourly(Decimal(125), GP3_MIBS, now),
        "volume:vol-base": storage_hourly(Decimal(100), GP3_GB, now),
        "volume:vol-odd": None,  # unpriced, shown as such
    }
