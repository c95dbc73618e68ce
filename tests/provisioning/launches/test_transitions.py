"""The one transition: a conditional UPDATE from the expected states, one audit entry per
transition, nothing changed (and no entry) when another process moved the row first; the step
log."""

from __future__ import annotations

import pytest
from django.db.models import F

from clusterweb import clock
from clusterweb.audit.models import AuditEvent
from provisioning.launches import services
from provisioning.launches.models import LaunchRequest, LaunchState
from provisioning.models import Node

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def node_row(instance_id: str, *, pool: str, state: str = "running", request: str = "") -> Node:
    now = clock.now()
    return Node.objects.create(
        instance_id=instance_id,
        pool=pool,
        instance_type="m5.xlarge",
        capacity_type="spot",
        state=state,
        launched_at=now,
        first_seen_at=now,
        request=request,
        terminated_at=now if state == "terminated" else None,
    )


def approved_request(pools, owner) -> LaunchRequest:
    now = clock.now()
    return LaunchRequest.objects.create(
        kind="spark",
        pool=pools["spark"],
        instance_type="m5.xlarge",
        count=2,
        capacity_type="spot",
        hours=3,
        owner=owner,
        requested_by=owner,
        quoted_at=now,
        created_at=now,
        updated_at=now,
        state=LaunchState.APPROVED,
    )


def test_a_transition_claims_the_row_and_records_one_audit_entry(pools, alice_user):
    launch = approved_request(pools, alice_user)

    moved = services.transition(
        launch.pk,
        [LaunchState.APPROVED],
        LaunchState.LAUNCHING,
        source="task",
        attempt=F("attempt") + 1,
    )

    launch.refresh_from_db()
    assert moved and launch.state == "launching" and launch.attempt == 1
    event = AuditEvent.objects.get()
    assert event.action == "launch.launching" and event.target == f"launch {launch.pk}"
    assert event.detail == {"request": launch.pk, "from": "approved", "to": "launching"}


def test_a_transition_from_the_wrong_state_changes_nothing(pools, alice_user):
    launch = approved_request(pools, alice_user)
    services.transition(launch.pk, [LaunchState.APPROVED], LaunchState.LAUNCHING)

    again = services.transition(
        launch.pk, [LaunchState.APPROVED], LaunchState.LAUNCHING, error="second"
    )

    launch.refresh_from_db()
    assert again is False and launch.error == ""
    assert AuditEvent.objects.count() == 1


def test_issue_18s_states_go_through_the_same_transition(pools, alice_user):
    launch = approved_request(pools, alice_user)
    path = [
        (["approved"], "launching", {}),
        (["launching"], "running", {"running_at": clock.now()}),
        (["running"], "stopping", {"stop_reason": "time_limit"}),
        (["stopping"], "stopped", {"ended_at": clock.now()}),
    ]
    for from_states, to_state, fields in path:
        assert services.transition(launch.pk, from_states, to_state, **fields)

    launch.refresh_from_db()
    assert launch.state == "stopped" and launch.stop_reason == "time_limit"
    assert list(AuditEvent.objects.order_by("at", "id").values_list("action", flat=True)) == [
        "launch.launching",
        "launch.running",
        "launch.stopping",
        "launch.stopped",
    ]


def test_the_step_log_opens_closes_and_reuses_an_open_line(pools, alice_user):
    launch = approved_request(pools, alice_user)

    first = services.step_start(launch.pk, "run_instances", detail="asking EC2")
    rerun = services.step_start(launch.pk, "run_instances")  # a task that died runs again
    done = services.step_finish(first.pk, detail="i-0123")
    services.step_record(launch.pk, "spot_interruption", ok=False, detail="i-0123 reclaimed")

    assert rerun.pk == first.pk
    assert done.state == "done" and done.finished_at is not None and done.detail == "i-0123"
    assert list(launch.steps.values_list("name", "state")) == [
        ("run_instances", "done"),
        ("spot_interruption", "failed"),
    ]
    closed = services.step_finish(first.pk, ok=False)  # a closed line stays as it was
    assert closed.state == "done"
