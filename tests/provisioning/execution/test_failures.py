"""Launches that cannot go as asked: spot capacity refused on every attempt (on-demand when the
request allows it, a clean failure when not), a join that never completes, the same step
delivered twice at once."""

from __future__ import annotations

import threading
import time

import pytest

from clusterweb.integrations import k8s
from provisioning.launches import execution
from provisioning.launches.execution_models import LaunchExecution
from provisioning.launches.models import LaunchRequest
from tests.provisioning.execution.conftest import phase_is, state_is

pytestmark = pytest.mark.simulator_only


def _nothing_left(launches, launch) -> None:
    assert {i.state for i in launches.instances(launch.pk)} <= {"terminated"}
    kube = launches.cloud.kube
    names = {d.metadata.name for d in kube.apps.list_namespaced_deployment("spark").items}
    assert f"spark-worker-{launch.pk}" not in names
    secrets = {s.metadata.name for s in kube.core.list_namespaced_secret("kube-system").items}
    token_id = execution.bootstrap_token(launch).split(".")[0]
    assert f"bootstrap-token-{token_id}" not in secrets


def _deliver(request_id: int) -> None:
    """One delivery of the request's next step, as a worker thread with its own connection."""
    from django.db import connection

    try:
        execution.launch_advance(request_id=request_id)
    finally:
        connection.close()


@pytest.mark.django_db
def test_spot_refused_every_time_falls_back_to_on_demand_when_allowed(launches):
    launches.cloud.aws.fault_inject(
        "RunInstances",
        "InsufficientInstanceCapacity",
        times=None,
        when={"InstanceMarketOptions.MarketType": "spot"},
    )
    launch = launches.request(count=2, allow_on_demand_fallback=True)
    launch = launches.drive(launch.pk, phase_is(execution.REGISTER))
    assert {i.lifecycle for i in launches.instances(launch.pk)} == {"on-demand"}
    assert len(launches.instances(launch.pk)) == 2
    row = LaunchExecution.objects.get(request=launch)
    assert row.fell_back and "InsufficientInstanceCapacity" in row.fallback_reason
    nodes = k8s.client_from_settings().nodes_list(f"clusterweb.io/request={launch.pk}")
    assert {n.labels["clusterweb.io/capacity-type"] for n in nodes} == {"on-demand"}
    capacity = [s for s in launch.steps.all() if s.name == "Capacity"]
    assert "on-demand" in capacity[-1].detail


@pytest.mark.django_db
def test_spot_refused_without_fallback_fails_clearly_and_leaves_nothing(launches):
    launches.cloud.aws.fault_inject("RunInstances", "InsufficientInstanceCapacity", times=None)
    launch = launches.request(count=2)
    launch = launches.drive(launch.pk, state_is("failed"))
    assert launch.stop_reason == "failed"
    assert "no spot capacity" in launch.error
    assert "InsufficientInstanceCapacity" in launch.error
    assert launches.instances(launch.pk) == []
    _nothing_left(launches, launch)


@pytest.mark.django_db
def test_a_join_that_never_completes_fails_after_the_join_timeout(launches, settings):
    settings.LAUNCH_JOIN_TIMEOUT_SECONDS = 2
    launch = launches.request(count=1)
    launch = launches.drive(launch.pk, phase_is(execution.CAPACITY))
    # The token is gone before the instance boots: its join script cannot join (kubeadm join
    # fails discovery), as with a token that expired or was never valid.
    token_id = LaunchExecution.objects.get(request=launch).token_id
    launches.cloud.kube.core.delete_namespaced_secret(f"bootstrap-token-{token_id}", "kube-system")
    started = time.monotonic()
    launch = launches.drive(launch.pk, state_is("failed"))
    assert time.monotonic() - started >= 1.5
    assert "did not join within 2 s" in launch.error
    assert {i.state for i in launches.instances(launch.pk)} == {"terminated"}
    _nothing_left(launches, launch)


@pytest.mark.django_db(transaction=True)
def test_the_same_step_delivered_twice_at_once_launches_one_set(launches, failpoints):
    launch = launches.request(count=2)
    launch = launches.drive(launch.pk, phase_is(execution.CAPACITY))
    # The first delivery pauses right before RunInstances for longer than its lease; the second
    # arrives while the first is paused, once the lease has lapsed, and runs the same step.
    failpoints.arm("launch.before_run_instances", "sleep:4")

    first = threading.Thread(target=_deliver, args=(launch.pk,))
    first.start()
    time.sleep(0.5)
    assert execution.launch_advance(request_id=launch.pk) is None  # leased: nothing done
    time.sleep(3)  # the lease (3 s in tests) lapses; the first is still paused
    second = threading.Thread(target=_deliver, args=(launch.pk,))
    second.start()
    first.join(30)
    second.join(30)
    failpoints.clear()
    launches.drive(launch.pk, phase_is(execution.REGISTER))
    instances = launches.instances(launch.pk)
    assert len(instances) == 2, instances
    assert LaunchRequest.objects.get(pk=launch.pk).state == "launching"


@pytest.mark.django_db(transaction=True)
def test_a_stop_that_ends_while_run_instances_is_slow_leaves_no_instance(launches, failpoints):
    # Review of issue 18: a RunInstances slower than the lease (AWS_READ_TIMEOUT x
    # AWS_MAX_ATTEMPTS can exceed LAUNCH_LEASE_SECONDS) lets the stop steps run meanwhile; they
    # find nothing by tag, the request ends `stopped`, then the call returns instances that no
    # step would ever look at again. The step that launched them must take them down itself.
    launch = launches.request(count=1)
    launch = launches.drive(launch.pk, phase_is(execution.CAPACITY))
    failpoints.arm("launch.before_run_instances", "sleep:8")

    slow = threading.Thread(target=_deliver, args=(launch.pk,))
    slow.start()
    time.sleep(0.5)
    execution.launch_stop(launch.pk, by=launches.bob)
    # Another worker takes the lapsed lease (3 s in tests) and carries the stop to its end.
    stopped = launches.drive(launch.pk, state_is("stopped", "failed"))
    assert stopped.state == "stopped"
    assert slow.is_alive(), "the slow RunInstances should still be pending"
    slow.join(30)
    failpoints.clear()
    instances = launches.instances(launch.pk)
    assert instances, "RunInstances did launch"
    assert {i.state for i in instances} <= {"shutting_down", "terminated"}, [
        (i.instance_id, i.state) for i in instances
    ]
    row = LaunchExecution.objects.get(request=launch)
    assert set(row.instance_ids) == {i.instance_id for i in instances}


@pytest.mark.django_db(transaction=True)
def test_a_launch_stuck_in_launching_past_its_time_limit_is_failed_and_cleaned_up(
    launches, failpoints, shared_clock
):
    # Review of issue 18: only `running` launches met their time limit. A step that keeps
    # raising something the engine does not sort (a bug, a library error) left the request in
    # `launching` with its instances running: the sweeper re-enqueued it forever, and nothing
    # ever stopped it. Past start + join timeout + hours (the instances' own expires-at tag),
    # it fails and the stop steps remove what it launched.
    from provisioning.launches import tasks

    launch = launches.request(count=1, hours=1)
    launch = launches.drive(launch.pk, phase_is(execution.JOIN))
    failpoints.arm("launch.after_join", "raise")
    launch = launches.drive(
        launch.pk, lambda r: launches.instances(r.pk)[0].state == "running", timeout=20
    )
    with pytest.raises(RuntimeError):
        for _ in range(50):
            execution.launch_advance(request_id=launch.pk)
            time.sleep(0.1)
    tasks.launches_sweep()
    assert LaunchRequest.objects.get(pk=launch.pk).state == "launching"  # not due yet
    shared_clock.advance(2 * 3600)
    tasks.launches_sweep()
    launch = LaunchRequest.objects.get(pk=launch.pk)
    assert (launch.state, launch.stop_reason) == ("stopping", "failed")
    assert "time limit" in launch.error
    failpoints.clear()
    launch = launches.drive(launch.pk, state_is("failed"))
    assert {i.state for i in launches.instances(launch.pk)} == {"terminated"}


@pytest.mark.django_db
def test_a_fallback_over_the_approved_maximum_goes_back_to_approval_then_launches_on_demand(
    launches,
):
    from decimal import Decimal

    from provisioning.launches import services
    from provisioning.launches.models import ApprovalPolicy

    launches.cloud.aws.fault_inject(
        "RunInstances",
        "InsufficientInstanceCapacity",
        times=None,
        when={"InstanceMarketOptions.MarketType": "spot"},
    )
    launch = launches.request(count=2, allow_on_demand_fallback=True)
    # Approved smaller (1 of 2), with a maximum under what on-demand may cost, and so is the
    # policy's threshold.
    LaunchRequest.objects.filter(pk=launch.pk).update(
        approved_count=1, approved_max_cost=Decimal("0.01"), decision_note="one is enough"
    )
    policy = ApprovalPolicy.current()
    policy.threshold = Decimal("0.01")
    policy.save()
    first_token = execution.bootstrap_token(launch).split(".")[0]
    launch = launches.drive(launch.pk, state_is("pending_approval"))
    assert (launch.capacity_type, launch.attempt) == ("on-demand", 1)
    assert launch.approved_max_cost is None and "approve again" in launch.approval_reason
    # The new ask is what was granted, and nothing of the first decision is left to show.
    assert (launch.count, launch.granted_count) == (1, 1)
    assert (launch.decided_by_id, launch.decided_at, launch.decision_note) == (None, None, "")
    assert not launch.auto_approved and launch.approved_expected_cost is None
    assert launches.instances(launch.pk) == []
    secrets = {
        s.metadata.name
        for s in launches.cloud.kube.core.list_namespaced_secret("kube-system").items
    }
    assert f"bootstrap-token-{first_token}" not in secrets
    launch = services.approve(launch.pk, by=launches.alice)
    launch = launches.drive(launch.pk, state_is("running"))
    instances = launches.instances(launch.pk)
    assert [i.lifecycle for i in instances] == ["on-demand"]
    assert LaunchExecution.objects.get(request=launch).fell_back


@pytest.mark.django_db(transaction=True)
def test_a_late_duplicate_capacity_step_leaves_a_launch_that_reached_running_alone(
    launches, failpoints
):
    # The other side of the slow-RunInstances clean-up: when a second delivery carried the
    # request to `running` meanwhile, the late call's ClientToken answers the same instances,
    # which must keep running.
    launch = launches.request(count=1)
    launch = launches.drive(launch.pk, phase_is(execution.CAPACITY))
    failpoints.arm("launch.before_run_instances", "sleep:8")

    slow = threading.Thread(target=_deliver, args=(launch.pk,))
    slow.start()
    time.sleep(0.5)
    failpoints.clear()  # the paused delivery sleeps on; the next one does not pause
    running = launches.drive(launch.pk, state_is("running"))
    assert slow.is_alive(), "the slow delivery should still be pending"
    slow.join(30)
    instances = launches.instances(launch.pk)
    assert [i.state for i in instances] == ["running"]
    assert LaunchRequest.objects.get(pk=running.pk).state == "running"
