"""The periodic sync tasks: a beat entry each, a heartbeat each, retries with capped backoff on
AWS throttling, and the spot price sync for the pools' types and zones."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from billing import tasks as billing_tasks
from billing.models import SpotPricePoint, SpotPriceSync
from clusterweb import clock
from clusterweb.celery import beat_schedule
from clusterweb.health.models import Heartbeat
from provisioning import inventory, tasks
from provisioning.models import Node, Pool, SyncPart

pytestmark = pytest.mark.django_db


def test_both_syncs_are_in_the_beat_schedule_at_their_configured_intervals(settings):
    settings.INVENTORY_SYNC_SECONDS = 45
    schedule = beat_schedule()
    assert schedule["inventory-sync"] == {
        "task": "provisioning.tasks.inventory_sync",
        "schedule": 45.0,
    }
    assert schedule["spot-price-sync"]["task"] == "billing.tasks.spot_prices_sync"
    assert schedule["spot-price-sync"]["schedule"] == float(settings.SPOT_PRICE_SYNC_SECONDS)


def test_retry_countdowns_double_from_5_s_and_stay_at_most_a_minute():
    assert [tasks.retry_countdown(n) for n in range(6)] == [5, 10, 20, 40, 60, 60]
    assert tasks.RETRY_MAX * tasks.RETRY_CAP_SECONDS < 3600  # far below Redis's visibility timeout


def test_a_throttled_sync_is_retried_with_backoff_until_aws_answers(cloud, one_attempt, caplog):
    [instance] = cloud.launch()
    cloud.aws.fault_inject("DescribeInstances", "RequestLimitExceeded", times=2)

    outcome = tasks.inventory_sync.apply()

    assert outcome.successful(), outcome.traceback
    assert Node.objects.filter(instance_id=instance).exists()
    beat = Heartbeat.objects.get(name="inventory-sync")
    assert beat.last_ok_at is not None and beat.last_error == ""
    retries = [r.getMessage() for r in caplog.records if " retry: " in r.getMessage()]
    assert ["Retry in 5s" in retries[0], "Retry in 10s" in retries[1]] == [True, True]


def test_throttling_that_outlasts_the_retries_fails_the_job_and_pages_warn(
    cloud, one_attempt, shared_clock, as_alice
):
    [instance] = cloud.launch()
    tasks.inventory_sync.apply()
    shared_clock.advance(300)
    cloud.aws.fault_inject("DescribeInstances", "RequestLimitExceeded", times=None)

    outcome = tasks.inventory_sync.apply()

    assert outcome.failed()
    beat = Heartbeat.objects.get(name="inventory-sync")
    assert "RequestLimitExceeded" in beat.last_error
    assert SyncPart.objects.get(name="ec2").failing
    assert SyncPart.objects.get(name="kubernetes").last_error == ""
    assert Node.objects.get(instance_id=instance).state == "running"
    page = as_alice.get(reverse("provisioning:nodes"))
    assert page.status_code == 200
    content = page.content.decode()
    assert f'id="node-{instance}"' in content  # the last known state
    assert "Inventory as of" in content and "5 min ago" in content
    warning = content[content.index('id="sync-warning"') :].split("</div>")[0]
    assert "EC2 instances, volumes and addresses: last read 5 min ago" in warning
    assert "aws RequestLimitExceeded" in warning


def test_a_sync_that_finds_another_in_progress_does_nothing(cloud):
    cloud.launch()
    token = inventory.sync_claim(inventory.INVENTORY_CLAIM)
    calls = len(recorded_calls(cloud))

    outcome = tasks.inventory_sync.apply()

    assert outcome.successful() and outcome.result["claimed"] is False
    assert not Node.objects.exists()
    assert len(recorded_calls(cloud)) == calls  # not one AWS call
    inventory.sync_release(inventory.INVENTORY_CLAIM, token)


def recorded_calls(cloud) -> list[str]:
    """Every request the AWS layer has recorded (the recording outlives resets)."""
    return (cloud.aws.workdir / "moto-recording.jsonl").read_text().splitlines()


def _pools():
    now = clock.now()
    common = {"created_at": now, "updated_at": now, "max_nodes": 2}
    Pool.objects.create(slug="gpu", kind="burst", lifecycle="spot", max_hours=24,
                        instance_types=["g4dn.xlarge", "g5.xlarge"],
                        zones=["eu-west-1a", "eu-west-1b"], **common)  # fmt: skip
    Pool.objects.create(slug="admin", kind="base", lifecycle="on-demand",
                        instance_types=["t2.small"], zones=["eu-west-1a"], **common)  # fmt: skip


def test_the_spot_price_sync_records_points_for_the_pools_types_and_zones(cloud):
    _pools()

    outcome = billing_tasks.spot_prices_sync.apply()

    assert outcome.successful(), outcome.traceback
    points = SpotPricePoint.objects.all()
    assert points.exists()
    assert {p.instance_type for p in points} <= {"g4dn.xlarge", "g5.xlarge", "t2.small"}
    assert {p.zone for p in points} <= {"eu-west-1a", "eu-west-1b"}
    assert {p.source for p in points} == {"AWS EC2 describe_spot_price_history"}
    sync = SpotPriceSync.objects.get()
    assert sync.region == "eu-west-1" and abs(sync.synced_at - clock.now()) < timedelta(minutes=1)
    assert Heartbeat.objects.get(name="spot-price-sync").last_ok_at is not None

    count = points.count()
    billing_tasks.spot_prices_sync.apply()
    assert SpotPricePoint.objects.count() == count  # points already stored stay as they are


def test_the_sync_command_prints_a_summary_and_fails_when_a_part_fails(cloud, capsys):
    cloud.launch()
    call_command("sync", "--json")
    body = json.loads(capsys.readouterr().out)
    assert body["sync"]["inventory"]["ok"] is True
    assert body["sync"]["inventory"]["parts"]["ec2"]["summary"]["created"] == 1
    assert body["sync"]["spot_prices"]["claimed"] is True

    cloud.aws.fault_inject("DescribeVolumes", "UnauthorizedOperation", times=None)
    with pytest.raises(SystemExit) as exit_:
        call_command("sync", "--no-spot-prices")
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    assert "ec2: FAILED: aws UnauthorizedOperation" in captured.out
    assert "kubernetes: ok" in captured.out
