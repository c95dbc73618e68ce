"""The sandbox's month of history: on the first start the dashboard shows a real month (the
always-on nodes up since the 1st, burst nodes that ran on earlier days, storage, spot prices, a
bill injected into the moto server consistent with it and read once), and the inventory sync
never rewrites that history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.costs.selectors import cost_overview
from billing.models import BilledDay, CostRow
from provisioning import inventory
from provisioning.models import Node, NodeEvent, StoredData, Volume
from sandbox.history import sandbox_history_seed
from sandbox.pools import sandbox_pools_seed
from tests.provisioning.conftest import cloud  # noqa: F401 - the simulated AWS and Kubernetes

pytestmark = pytest.mark.django_db


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, tzinfo=UTC)


def test_the_history_shows_a_real_month_and_the_inventory_sync_keeps_it(
    cloud,  # noqa: F811
    clock_at,
):
    now = clock_at(at(15, 10))
    sandbox_pools_seed()
    base = [
        cloud.launch(pool="control", instance_type="t2.micro", zone="eu-west-1a", owner=None)[0],
        *cloud.launch(pool="admin", instance_type="t2.small", zone="eu-west-1a", owner=None,
                      count=2),
    ]  # fmt: skip

    summary = sandbox_history_seed(now=now)

    assert (summary.base_nodes, summary.past_nodes, summary.billed_days) == (3, 8, 14)
    assert {n.launched_at for n in Node.objects.filter(instance_id__in=base)} == {at(1)}
    assert {v.created_at for v in Volume.objects.filter(instance_id__in=base)} == {at(1)}
    ended = Node.objects.filter(state="terminated")
    assert ended.count() == 8 and all(n.terminated_at < at(15) for n in ended)
    reclaimed = ended.get(spot_interrupted_at__isnull=False)
    assert sum(r.cost for r in CostRow.objects.filter(resource_id=reclaimed.instance_id)) == 0
    assert StoredData.objects.filter(first_seen_at=at(1)).count() == 2

    overview = cost_overview(now=now)
    assert overview.estimate.base > 0 and overview.estimate.burst > 0
    assert overview.forecast.total > overview.estimate.total
    billed = overview.billed
    assert billed.as_of == now and (billed.first_day.day, billed.last_day.day) == (1, 14)
    assert abs(billed.modelled.difference) <= billed.modelled.billed / 100
    assert [name for name, _ in billed.billed_only] == ["Amazon CloudWatch"]

    # The sync reads moto, whose launch and creation times are "now": the history stays.
    events = NodeEvent.objects.count()
    result = inventory.inventory_sync(now=clock_at(at(15, 10).replace(minute=5)))
    assert result.parts["ec2"].ok, result.errors
    assert {n.launched_at for n in Node.objects.filter(instance_id__in=base)} == {at(1)}
    assert {v.created_at for v in Volume.objects.filter(instance_id__in=base)} == {at(1)}
    assert StoredData.objects.filter(first_seen_at=at(1), gone_at__isnull=True).count() == 2
    assert Node.objects.filter(state="terminated").count() == 8
    assert NodeEvent.objects.count() == events  # nothing changed state

    # Seeding again writes nothing twice.
    sandbox_history_seed(now=now)
    assert Node.objects.count() == 11 and BilledDay.objects.count() == 14
