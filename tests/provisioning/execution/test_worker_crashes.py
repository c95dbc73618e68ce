"""Reliability with a real Celery worker (named failpoints, not timing): the worker is killed at
each step boundary and a new one started, and Redis is stopped during launches and stops; the
request completes with exactly the requested instances, and recovery made no RunInstances with a
new ClientToken after the first one succeeded (the AWS layer's request recorder)."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings

from clusterweb.tasking import enqueue
from provisioning.launches import execution, tasks
from provisioning.launches.models import LaunchRequest
from sandbox.aws import wire
from tests.fixtures.personas import logged_in_client
from tests.provisioning.execution.conftest import Workers, state_is

pytestmark = [pytest.mark.simulator_only, pytest.mark.django_db(transaction=True)]

WAIT = 45.0


def _recording_size(launches) -> int:
    path = launches.cloud.aws.controls.recording
    return path.stat().st_size if path.exists() else 0


def run_instances_tokens(launches, since: int, request_id: int) -> list[str]:
    """ClientTokens of the RunInstances calls for ``request_id`` that reached EC2 (moto) since
    byte ``since`` of the recording: a call answered from a token already used does not."""
    path = launches.cloud.aws.controls.recording
    with path.open("rb") as handle:
        handle.seek(since)
        lines = handle.read().decode(errors="replace").splitlines()
    tokens = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        call = wire.parse_recorded(entry)
        if call.action != "RunInstances":
            continue
        if f"-r{request_id}-" in call.params.get("ClientToken", ""):
            tokens.append(call.params["ClientToken"])
    return tokens


def wait_for(check, what: str, workers: Workers, timeout: float = WAIT, launches=None):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            tails = "\n".join(w.log_tail(30) for w in workers.started)
            problems = launches.bridge.problems if launches is not None else {}
            raise AssertionError(f"{what} did not happen: {problems}\n{tails}")
        time.sleep(0.1)


def reached(request_id: int, check) -> bool:
    return check(LaunchRequest.objects.get(pk=request_id))


BOUNDARIES = [
    "launch.before_run_instances",
    "launch.after_run_instances",
    "launch.after_join",
    "launch.after_workload",
]


@pytest.mark.parametrize("point", BOUNDARIES)
def test_a_worker_killed_at_a_step_boundary_recovers_to_one_set_of_instances(
    launches, workers, failpoints, point
):
    since = _recording_size(launches)
    failpoints.arm(point, "kill")  # SIGKILL, sent by the worker to itself at that point
    first = workers.start()
    launch = launches.request(count=2)  # approved: enqueued after the commit
    wait_for(lambda: not first.running(), f"the worker dying at {point}", workers)
    failpoints.clear()

    workers.start()
    # The dead worker's lease lapses; the sweeper (beat's job, run here) enqueues the request.
    time.sleep(settings.LAUNCH_LEASE_SECONDS + 0.5)
    wait_for(lambda: tasks.launches_sweep()["enqueued"] >= 1, "the sweep", workers)
    wait_for(lambda: reached(launch.pk, state_is("running")), "running", workers, launches=launches)

    instances = launches.instances(launch.pk)
    assert len(instances) == 2
    tokens = run_instances_tokens(launches, since, launch.pk)
    assert len(tokens) == 1, tokens  # one launch reached EC2: recovery found it by its tag
    assert LaunchRequest.objects.get(pk=launch.pk).state == "running"


def test_redis_down_loses_no_launch_and_no_stop(launches, workers, redis, alice):
    client = logged_in_client(alice)
    workers.start()  # the worker rides the outage out and reconnects, as in production
    redis.stop()
    launch = launches.request(count=1)  # the enqueue after the commit fails: logged, not raised
    assert client.get("/nodes/").status_code == 200
    assert LaunchRequest.objects.get(pk=launch.pk).state == "approved"
    redis.start()
    wait_for(lambda: tasks.launches_sweep()["enqueued"] >= 1, "the sweep", workers)
    wait_for(lambda: reached(launch.pk, state_is("running")), "running", workers, launches=launches)

    redis.stop()
    stopped = execution.launch_stop(launch.pk, by=launches.bob)
    assert stopped.state == "stopping"
    assert client.get("/nodes/").status_code == 200
    assert not enqueue(tasks.launch_advance, launch.pk)  # Redis is down
    redis.start()
    # A worker may not survive a second outage (kombu's restore of unacked messages can fail
    # with AttributeError while reconnecting, and the worker exits): its supervisor (the
    # Deployment) starts a new one, as here. Two at once are harmless (the lease).
    workers.start()
    time.sleep(settings.LAUNCH_LEASE_SECONDS + 0.5)
    wait_for(lambda: tasks.launches_sweep()["enqueued"] >= 1, "the sweep", workers)
    wait_for(lambda: reached(launch.pk, state_is("stopped")), "the stop", workers)
    assert {i.state for i in launches.instances(launch.pk)} == {"terminated"}
