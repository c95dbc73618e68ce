"""Budget tests: a small cluster on the shared clock (an always-on node nobody owns and bob's
Spark node, on-demand in eu-west-1), its cost rows, the admins as users, and the budget."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from billing.budgets import selectors, services
from billing.costs.services import cost_rows_refresh
from sandbox.directory import BY_UID
from sandbox.pools import sandbox_pool_data
from tests.fixtures.personas import user_for
from tests.provisioning.conftest import node_make, sync_ok

ROOT = Path(__file__).resolve().parents[3]


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2027, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def pools():
    from provisioning.services import pool_spec_clean, pools_store

    pools_store([pool_spec_clean(d) for d in sandbox_pool_data("eu-west-1")], username="test")


@pytest.fixture
def spot_prices(db):
    """Spot prices of m5.xlarge in the spark pool's zones, as the launch request tests have
    them (a spot launch is quoted from them)."""
    from datetime import timedelta

    from clusterweb import clock
    from tests.billing.conftest import spot_point, spot_record
    from tests.provisioning.launches.conftest import SPOT

    moment = clock.now() - timedelta(minutes=30)
    spot_record(*(spot_point("m5.xlarge", price, moment, zone) for zone, price in SPOT.items()))


@pytest.fixture
def people():
    """alice (admin) and bob (collaborator) as users, as a login leaves them."""
    return {uid: user_for(BY_UID[uid]) for uid in ("alice", "bob")}


def base_node(launched_at: datetime, **fields):
    values = {
        "pool": "admin",
        "instance_type": "t2.small",
        "owner": "",
        "launched_at": launched_at,
        "first_seen_at": launched_at,
    }
    return node_make(**(values | fields))


def spark_node(launched_at: datetime, **fields):
    values = {
        "pool": "spark",
        "instance_type": "m5.xlarge",
        "owner": "bob",
        "request": "r-1",
        "launched_at": launched_at,
        "first_seen_at": launched_at,
        # No time limit: it runs to the month's end as far as the forecast knows.
        "tags": {"clusterweb:expires-at": "2099-01-01T00:00:00Z"},
    }
    return node_make(**(values | fields))


def costs_at(now: datetime) -> None:
    """The inventory as seen at ``now`` and the cost rows up to it."""
    sync_ok(now)
    cost_rows_refresh(now=now)


def budget_for(admin, *, share: str, thresholds="50,80,100", forecast="100"):
    """A budget such that actual spend now is ``share`` of it (0.9: 50 % and 80 % crossed)."""
    spend = selectors.budget_overview().spend.actual
    monthly = (spend / Decimal(share)).quantize(Decimal("0.01"))
    return services.budget_set(
        actor=admin, monthly=monthly, thresholds=thresholds, forecast=forecast
    )


def manage(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``manage.py ARGS`` in a subprocess on the test database (tests.settings: the shared
    clock, the failpoints file, the SMTP sink)."""
    from tests.fixtures.services import _worker_env

    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **_worker_env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
