"""The execution's database side, without a cloud: the sweeper finds what no task carries (and
only that), the step backoff stays far below Redis's visibility timeout, and the email at the
end shows the quote beside the actual cost, once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from clusterweb import clock
from provisioning.launches import execution, outcomes, services
from provisioning.launches.execution_models import LaunchExecution
from tests.provisioning.launches.test_requests import spark

pytestmark = pytest.mark.django_db


def approved(alice_user, bob_user, count: int = 2):
    launch = spark(bob_user, count=count, hours=3)
    return services.approve(launch.pk, by=alice_user)


def test_the_sweeper_takes_what_no_task_carries(pools, spot_prices, alice_user, bob_user, settings):
    never_looked_at = approved(alice_user, bob_user, 1)
    leased = approved(alice_user, bob_user, 1)
    due_soon = approved(alice_user, bob_user, 1)
    overdue = approved(alice_user, bob_user, 1)
    pending = spark(bob_user, count=1)
    now = clock.now()
    lease = timedelta(seconds=settings.LAUNCH_LEASE_SECONDS)
    LaunchExecution.objects.create(request=leased, lease_until=now + lease, lease_token="x")
    LaunchExecution.objects.create(request=due_soon, due_at=now + timedelta(seconds=1))
    LaunchExecution.objects.create(request=overdue, due_at=now - 2 * lease)

    assert execution.launches_sweep(now=now) == [never_looked_at.pk, overdue.pk]
    assert pending.pk not in execution.launches_sweep(now=now + 10 * lease)


def test_a_leased_request_is_left_to_its_worker(pools, spot_prices, alice_user, bob_user):
    launch = approved(alice_user, bob_user)
    LaunchExecution.objects.create(
        request=launch, lease_until=clock.now() + timedelta(minutes=1), lease_token="other"
    )
    assert execution.launch_advance(request_id=launch.pk) is None
    launch.refresh_from_db()
    assert launch.state == "approved"  # nothing ran


def test_backoff_grows_and_stays_far_below_the_visibility_timeout(settings):
    waits = [execution.backoff(n) for n in range(1, 12)]
    assert waits[:5] == [5, 10, 20, 40, 60]
    assert max(waits) == 60
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert max(waits) * 10 < visibility


def _ended(launch, state: str, **execution_fields):
    assert services.transition(launch.pk, ["approved"], "launching", source="task")
    now = clock.now()
    assert services.transition(
        launch.pk, ["launching"], "running", source="task", running_at=now - timedelta(hours=1)
    )
    stop_reason = "failed" if state == "failed" else "owner"
    assert services.transition(
        launch.pk, ["running"], "stopping", source="task", stop_reason=stop_reason,
        error="AWS had no capacity for this launch" if state == "failed" else "",
    )  # fmt: skip
    assert services.transition(launch.pk, ["stopping"], state, source="task", ended_at=now)
    LaunchExecution.objects.create(request=launch, **execution_fields)
    launch.refresh_from_db()
    return launch


def test_the_requester_gets_the_quote_beside_the_actual_cost_once(
    pools, spot_prices, alice_user, bob_user, mailbox
):
    launch = _ended(
        approved(alice_user, bob_user),
        "stopped",
        actual_cost=Decimal("0.16"),
        cost_reasons=["ran 1.0 h of the 3 h quoted"],
        capacity_type="spot",
    )
    assert execution.launches_unnotified() == [launch.pk]

    assert outcomes.launch_ended_notify(request_id=launch.pk) is True
    assert outcomes.launch_ended_notify(request_id=launch.pk) is False  # once

    [message] = mailbox.wait_for(1)
    assert message.recipients == ["bob@example.org"]
    assert f"Launch #{launch.pk} stopped: $0.16" in message.subject
    text = message.text()
    assert f"${launch.approved_expected_cost} expected" in text
    assert "Actual:  $0.16" in text
    assert "- ran 1.0 h of the 3 h quoted" in text
    assert execution.launches_unnotified() == []


def test_a_failed_launch_tells_what_went_wrong_in_plain_words(
    pools, spot_prices, alice_user, bob_user, mailbox
):
    launch = _ended(approved(alice_user, bob_user), "failed", actual_cost=Decimal("0.00"))
    outcomes.launch_ended_notify(request_id=launch.pk)
    [message] = mailbox.wait_for(1)
    assert "failed" in message.subject
    assert "What went wrong: AWS had no capacity for this launch" in message.text()
    assert "everything it had started was removed" in message.text()


def test_a_launch_past_its_hours_begins_stopping_with_time_limit(
    pools, spot_prices, alice_user, bob_user
):
    launch = approved(alice_user, bob_user, 1)
    assert services.transition(launch.pk, ["approved"], "launching", source="task")
    now = clock.now()
    assert services.transition(
        launch.pk, ["launching"], "running", source="task", expires_at=now + timedelta(hours=3)
    )
    assert execution.launches_time_limit(now=now + timedelta(hours=2)) == []
    assert execution.launches_time_limit(now=now + timedelta(hours=3)) == [launch.pk]
    launch.refresh_from_db()
    assert launch.state == "stopping" and launch.stop_reason == "time_limit"
    assert launch.pk in execution.launches_sweep(now=now + timedelta(hours=3))
