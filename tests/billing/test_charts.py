"""The daily chart's geometry (pure): one bar per day and kind, the bill as dots, a round scale,
and a budget line once a budget is given."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from billing.costs.charts import daily_chart, nice_ceiling

JAN = date(2027, 1, 1)


def test_bars_stack_base_burst_and_forecast_and_the_bill_is_dots():
    chart = daily_chart(
        first_day=JAN,
        days=31,
        estimate={JAN: (Decimal("2"), Decimal("1")), date(2027, 1, 2): (Decimal("2"), 0)},
        forecast={date(2027, 1, 2): Decimal("1"), date(2027, 1, 3): Decimal("3")},
        billed={JAN: Decimal("3.1")},
        today=date(2027, 1, 2),
    )

    kinds = [(bar.title.split(":")[0], bar.kind) for bar in chart.bars]
    assert kinds == [
        ("Jan 01", "base"), ("Jan 01", "burst"), ("Jan 02", "base"), ("Jan 02", "forecast"),
        ("Jan 03", "forecast"),
    ]  # fmt: skip
    base, burst = chart.bars[0], chart.bars[1]
    assert burst.y + burst.height == base.y  # stacked
    assert base.y + base.height == chart.bottom
    assert [t.label for t in chart.y_ticks] == ["$0.00", "$1.25", "$2.50", "$3.75", "$5.00"]
    assert len(chart.dots) == 1 and "billed (Cost Explorer)" in chart.dots[0].title
    assert chart.today_x is not None and chart.budget_y is None and not chart.empty
    assert [t.label for t in chart.x_ticks] == ["1", "5", "10", "15", "20", "25", "30", "31"]


def test_a_budget_draws_its_daily_share_and_an_empty_month_is_flagged():
    chart = daily_chart(
        first_day=JAN, days=31, estimate={}, forecast={}, billed={}, today=None,
        budget_daily=Decimal("3.2258"),
    )  # fmt: skip
    assert chart.budget_y is not None and chart.budget_label == "budget $3.23/day"

    empty = daily_chart(first_day=JAN, days=31, estimate={}, forecast={}, billed={}, today=None)
    assert empty.empty and empty.bars == [] and "$0.00 estimated so far" in empty.description


def test_the_scale_ends_on_a_round_number():
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 1.1, 2.2, 4.9, 7, 64)] == [
        1, 0.5, 1, 2, 2.5, 5, 10, 100,
    ]  # fmt: skip
