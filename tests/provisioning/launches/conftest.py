"""Launch request tests: the sandbox's pools (CONVENTIONS.md), the cast as Django users (as
their logins would leave them), spot prices recorded for the spark pool's zones, and a second
admin and a second collaborator for the races and the "someone else's" cases."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from clusterweb import clock
from clusterweb.accounts.models import User
from provisioning.models import Pool
from provisioning.services import pool_spec_clean, pools_store
from sandbox.pools import sandbox_pool_data
from tests.billing.conftest import spot_point, spot_record
from tests.fixtures.personas import user_for

REGION = "eu-west-1"
# m5.xlarge in eu-west-1: on-demand 0.214 (bundled catalog); spot recorded per zone below.
ON_DEMAND = Decimal("0.214")
SPOT = {"eu-west-1a": "0.07", "eu-west-1b": "0.08", "eu-west-1c": "0.075"}
SPOT_HIGHEST = Decimal("0.08")


@pytest.fixture
def pools(db) -> dict[str, Pool]:
    pools_store([pool_spec_clean(d) for d in sandbox_pool_data(REGION)], username="test")
    return {pool.slug: pool for pool in Pool.objects.all()}


@pytest.fixture
def spot_prices(db) -> None:
    at = clock.now() - timedelta(minutes=30)
    spot_record(*(spot_point("m5.xlarge", price, at, zone) for zone, price in SPOT.items()))


@pytest.fixture
def alice_user(db, alice) -> User:
    return user_for(alice)


@pytest.fixture
def bob_user(db, bob) -> User:
    return user_for(bob)


@pytest.fixture
def carol_user(db, carol) -> User:
    return user_for(carol)


def person(uid: str, *, admin: bool = False) -> User:
    user, _ = User.objects.update_or_create(
        username=uid,
        defaults={
            "email": f"{uid}@example.org",
            "is_cluster_admin": admin,
            "is_collaborator": True,
            "groups_checked_at": clock.now(),
        },
    )
    return user


@pytest.fixture
def erin_user(db) -> User:
    """A second admin."""
    return person("erin", admin=True)


@pytest.fixture
def dave_user(db) -> User:
    """A second collaborator."""
    return person("dave")
