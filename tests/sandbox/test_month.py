"""Where the sandbox's replayed history starts: the 1st of the month, or a week back in a month's
first days, so the previous month's last days are billed in full (sandbox/month.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.month import base_launch_steps, history_start


@pytest.mark.parametrize(
    ("now", "start"),
    [
        (datetime(2027, 1, 20, 9, 30, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2027, 3, 4, 0, 0, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC)),
        (datetime(2027, 3, 3, 23, 59, tzinfo=UTC), datetime(2027, 2, 24, tzinfo=UTC)),
        (datetime(2027, 1, 1, 0, 10, tzinfo=UTC), datetime(2026, 12, 25, tzinfo=UTC)),
    ],
)
def test_the_history_starts_on_the_1st_or_a_week_back_in_a_month_s_first_days(now, start):
    assert history_start(now) == start


def test_the_always_on_nodes_are_launched_at_the_start_with_their_join_scripts():
    at = datetime(2027, 1, 1, tzinfo=UTC)

    steps = base_launch_steps(
        at, image_id="ami-1", cluster="sandbox", region="eu-west-1", user_data={"admin": "#!"}
    )

    assert [(s["at"], s["params"]["InstanceType"], s["params"].get("UserData")) for s in steps] == [
        (at, "t2.micro", None),
        (at, "t2.small", "#!"),
        (at, "t2.small", "#!"),
    ]
    assert {s["params"]["ClientToken"] for s in steps} == {
        "sandbox-control-0", "sandbox-admin-0", "sandbox-admin-1",
    }  # fmt: skip
