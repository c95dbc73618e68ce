"""The forecast to the month's end, as pure functions (no database, no clock): base nodes, storage
and addresses run on at today's prices to the month's end; each burst node runs until its time
limit (expires-at tag, else its pool's max hours from launch), else to the month's end; planned
launches are an input. It works on the 1st, mid-month and on the last day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import time_machine

from billing.costs.forecasting import (
    ADDRESSES,
    BASE,
    BURST,
    STORAGE,
    PlannedLaunch,
    RunningItem,
    forecast_month,
    storage_hourly,
    time_limit,
)

T2_MICRO, T2_SMALL, M5_SPOT = Decimal("0.0126"), Decimal("0.025"), Decimal("0.0712")


def at(day: int, hour: int = 0, minute: int = 0, month: int = 1, year: int = 2027) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def platform() -> list[RunningItem]:
    """The always-on part: a t2.micro, two t2.small, a 20 GB EFS and one public address."""
    return [
        RunningItem("node:control", "control-1", BASE, T2_MICRO),
        RunningItem("node:admin-1", "admin-1", BASE, T2_SMALL),
        RunningItem("node:admin-2", "admin-2", BASE, T2_SMALL),
        RunningItem("efs:home", "EFS home", STORAGE, Decimal("0.33") * 20 / 744),
        RunningItem("ipv4:control", "public IPv4 of control-1", ADDRESSES, Decimal("0.005")),
    ]


def test_on_the_first_of_the_month_everything_is_forecast_from_zero():
    forecast = forecast_month(at=at(1), month_to_date=Decimal("0.00"), running=platform())

    hours = 31 * 24  # January
    assert forecast.month_start == at(1) and forecast.month_end == at(1, month=2)
    assert [line.cost for line in forecast.lines] == [
        Decimal("9.37"),  # 0.0126 x 744
        Decimal("18.60"),
        Decimal("18.60"),
        Decimal("6.60"),  # 20 GB x 0.33 per GB-month
        Decimal("3.72"),
    ]
    assert forecast.total == Decimal("56.89") == sum(line.cost for line in forecast.lines)
    assert all(line.hours == hours for line in forecast.lines)
    assert "No planned launches are included." in forecast.assumptions
    assert any("until the month ends (2027-01-31 24:00 UTC)" in a for a in forecast.assumptions)


def test_on_the_first_a_burst_node_counts_until_its_expires_at_tag():
    limit, source = time_limit(expires_at="2027-01-01T06:00:00Z", launched_at=at(1), max_hours=48)
    assert (limit, source) == (at(1, 6), "expires-at tag")
    gpu = RunningItem("node:gpu", "gpu-1", BURST, Decimal("0.2500"), limit=limit)

    forecast = forecast_month(at=at(1), month_to_date=Decimal("0.00"), running=[gpu])

    [line] = forecast.lines
    assert (line.end, line.hours, line.cost) == (at(1, 6), 6, Decimal("1.50"))
    assert forecast.daily == {date(2027, 1, 1): Decimal("1.5")}


def test_mid_month_a_burst_node_counts_until_its_pools_max_hours_from_launch():
    launched = at(15, 10)
    limit, source = time_limit(expires_at=None, launched_at=launched, max_hours=48)
    assert (limit, source) == (at(17, 10), "pool limit of 48 h")
    spark = RunningItem("node:spark", "spark-1", BURST, M5_SPOT, limit=limit)

    forecast = forecast_month(
        at=at(15, 12), month_to_date=Decimal("25.10"), running=[*platform(), spark]
    )

    line = next(line for line in forecast.lines if line.key == "node:spark")
    assert line.hours == 46 and line.cost == Decimal("3.28")  # 0.0712 x 46
    assert forecast.total == Decimal("25.10") + forecast.remaining
    assert forecast.daily[date(2027, 1, 17)] > forecast.daily[date(2027, 1, 18)]  # spark gone
    assert any("until its time limit" in a for a in forecast.assumptions)


def test_mid_month_a_burst_node_without_a_limit_runs_to_the_months_end():
    spark = RunningItem("node:spark", "spark-1", BURST, M5_SPOT, limit=None)

    forecast = forecast_month(at=at(15, 12), month_to_date=Decimal("10.00"), running=[spark])

    [line] = forecast.lines
    assert line.end == at(1, month=2) and line.hours == 16 * 24 + 12
    assert any("1 without a limit runs to the month's end" in a for a in forecast.assumptions)


def test_a_node_past_its_time_limit_is_counted_to_the_months_end_and_said_so():
    forgotten = RunningItem("node:gpu", "gpu-1", BURST, Decimal("0.25"), limit=at(14, 9))

    forecast = forecast_month(at=at(15, 12), month_to_date=Decimal("0.00"), running=[forgotten])

    [line] = forecast.lines
    assert line.overdue and line.end == at(1, month=2)
    assert any(
        "gpu-1 is past its time limit (2027-01-14 09:00 UTC)" in a for a in forecast.assumptions
    )


def test_on_the_last_day_only_the_last_hours_remain_and_limits_stop_at_the_months_end():
    spark = RunningItem("node:spark", "spark-1", BURST, M5_SPOT, limit=at(2, 6, month=2))

    forecast = forecast_month(
        at=at(31, 22), month_to_date=Decimal("48.00"), running=[*platform(), spark]
    )

    assert all(line.end == at(1, month=2) and line.hours == 2 for line in forecast.lines)
    # t2.micro 0.03, two t2.small 0.05 each, EFS 0.02, the address 0.01, the spot node 0.14
    assert [line.cost for line in forecast.lines] == [
        Decimal(c) for c in ("0.03", "0.05", "0.05", "0.02", "0.01", "0.14")
    ]
    assert forecast.total == Decimal("48.30")


def test_planned_launches_count_the_part_inside_the_rest_of_the_month():
    planned = [
        PlannedLaunch("spark job", "m5.xlarge", "spot", 10, at(20, 8), Decimal(4), M5_SPOT),
        PlannedLaunch(
            "overnight", "g4dn.xlarge", "spot", 1, at(31, 20), Decimal(10), Decimal("0.2")
        ),
        PlannedLaunch("next month", "m5.xlarge", "spot", 2, at(3, 8, month=2), Decimal(5), M5_SPOT),
    ]

    forecast = forecast_month(at=at(15), month_to_date=Decimal("0.00"), planned=planned)

    costs = {line.label.split(":")[0]: line.cost for line in forecast.lines}
    assert costs == {
        "spark job": Decimal("2.85"),  # 10 x 4 h x 0.0712
        "overnight": Decimal("0.80"),  # 4 of its 10 hours fall in January
        "next month": Decimal("0.00"),
    }
    assert any("3 planned launches included" in a for a in forecast.assumptions)


def test_items_without_a_price_are_left_out_and_counted():
    mystery = RunningItem("node:x", "x-1", BURST, None)

    forecast = forecast_month(at=at(10), month_to_date=Decimal("1.00"), running=[mystery])

    assert forecast.unknown == 1 and forecast.total == Decimal("1.00")
    assert "1 item without a price left out." in forecast.assumptions


def test_a_time_limit_tag_without_a_zone_is_utc_and_a_garbled_one_falls_back_to_the_pool():
    assert time_limit(expires_at="2027-01-02T03:04:05", launched_at=at(1), max_hours=None)[
        0
    ] == datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert time_limit(expires_at="tomorrow", launched_at=at(1), max_hours=24) == (
        at(2),
        "pool limit of 24 h",
    )
    assert time_limit(expires_at="", launched_at=at(1), max_hours=None) == (None, "")


def test_storage_costs_per_hour_its_share_of_the_months_gb_month_price():
    february = storage_hourly(Decimal(100), Decimal("0.088"), at(10, month=2))
    january = storage_hourly(Decimal(100), Decimal("0.088"), at(10))
    month = Decimal("0.000001")
    assert (
        (february * 24 * 28).quantize(month)
        == (january * 24 * 31).quantize(month)
        == Decimal("8.8")
    )


def test_a_forecast_from_now_uses_the_callers_moment_not_the_wall_clock():
    with time_machine.travel(datetime(2030, 6, 1, tzinfo=UTC), tick=False):
        forecast = forecast_month(at=at(31, 23), month_to_date=Decimal("0"), running=platform())
    assert forecast.month_end == at(1, month=2)
    assert all(line.hours == 1 for line in forecast.lines)


def test_addresses_and_volumes_of_burst_nodes_are_not_counted_as_nodes():
    """Issue 14 finding 6: two burst nodes, each with its public IPv4 and its root volume, are
    "2 running burst nodes"; only a node is past its time limit, its address goes with it."""
    items = []
    for name, limit in (("gpu-1", at(14, 9)), ("spark-1", at(20))):
        items += [
            RunningItem(f"node:{name}", name, BURST, Decimal("0.25"), limit=limit),
            RunningItem(
                f"ipv4:{name}", f"public IPv4 of {name}", BURST, Decimal("0.005"), limit=limit,
                node=name,
            ),
            RunningItem(
                f"volume:{name}", f"vol of {name}", BURST, Decimal("0.0001"), limit=limit,
                node=name,
            ),
        ]  # fmt: skip

    forecast = forecast_month(at=at(15, 12), month_to_date=Decimal("0.00"), running=items)

    said = " ".join(forecast.assumptions)
    assert "2 running burst nodes" in said, forecast.assumptions
    assert "gpu-1 is past its time limit" in said
    assert "public IPv4 of gpu-1 is past" not in said and "vol of gpu-1 is past" not in said
    overdue = [line.key for line in forecast.lines if line.overdue]
    assert overdue == ["node:gpu-1", "ipv4:gpu-1", "volume:gpu-1"]  # all run to the month's end
    assert [line.node for line in forecast.lines if line.overdue] == ["", "gpu-1", "gpu-1"]
