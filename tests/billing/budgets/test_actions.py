"""The stop links of a budget alert act through issue 18's stop path: an admin's confirmed POST
stops every spot Spark launch (or every GPU launch) with ``stop_reason`` ``budget``, and nothing
else; the confirmation page lists them first."""

from __future__ import annotations

import re

import pytest

from billing.budgets.actions import STOP_GPU, STOP_SPOT_SPARK, action_run
from clusterweb.audit.models import AuditEvent
from provisioning.launches import services as launches
from provisioning.launches.models import LaunchRequest
from tests.fixtures.personas import logged_in_client

pytestmark = pytest.mark.django_db


def running(by, **fields) -> LaunchRequest:
    values = {
        "kind": "spark",
        "pool": "spark",
        "instance_type": "m5.xlarge",
        "count": 1,
        "hours": 2,
        "capacity_type": "spot",
    }
    launch = launches.request_launch(requested_by=by, owner=by, **(values | fields))
    if launch.state == "pending_approval":
        launches.approve(launch.pk, by=by)
    assert launches.transition(launch.pk, ["approved"], "launching", source="task")
    assert launches.transition(launch.pk, ["launching"], "running", source="task")
    launch.refresh_from_db()
    return launch


@pytest.fixture
def fleet(pools, spot_prices, people):
    alice = people["alice"]
    return {
        "spot": running(alice),
        "on_demand": running(alice, capacity_type="on-demand"),
        "gpu": running(alice, kind="gpu", pool="gpu", instance_type="g5.xlarge",
                       capacity_type="on-demand"),
    }  # fmt: skip


def states(fleet):
    now = {name: LaunchRequest.objects.get(pk=launch.pk) for name, launch in fleet.items()}
    return {name: (launch.state, launch.stop_reason) for name, launch in now.items()}


def test_stop_all_spot_spark_workers_stops_only_the_spot_spark_launches(fleet, alice):
    client = logged_in_client(alice)
    page = client.get("/billing/budgets/actions/stop-spot-spark/").content.decode()
    listed = page[page.index('id="action-launches"') :]
    assert f"launch {fleet['spot'].pk}:" in listed
    assert f"launch {fleet['on_demand'].pk}:" not in listed
    assert states(fleet)["spot"] == ("running", None)  # the GET did nothing

    done = client.post(
        "/billing/budgets/actions/stop-spot-spark/",
        {"launch": re.findall(r'name="launch" value="(\d+)"', page)},  # what the page confirms
    )

    assert done.status_code == 302
    assert states(fleet) == {
        "spot": ("stopping", "budget"),
        "on_demand": ("running", None),
        "gpu": ("running", None),
    }
    event = AuditEvent.objects.get(action="budget.action")
    assert event.actor_username == "alice" and event.detail["stopped"] == [str(fleet["spot"].pk)]


def test_stop_all_gpu_launches_stops_the_gpu_ones_and_twice_is_once(fleet, people):
    first = action_run(slug=STOP_GPU, actor=people["alice"])
    again = action_run(slug=STOP_GPU, actor=people["alice"])

    assert first.stopped == [str(fleet["gpu"].pk)] and again.stopped == []
    assert states(fleet)["gpu"] == ("stopping", "budget")
    assert states(fleet)["spot"] == ("running", None)


def test_a_collaborator_cannot_stop_anything_through_the_links(fleet, people, bob):
    from django.core.exceptions import PermissionDenied

    assert logged_in_client(bob).post("/billing/budgets/actions/stop-gpu/").status_code == 403
    with pytest.raises(PermissionDenied):
        action_run(slug=STOP_SPOT_SPARK, actor=people["bob"])
    assert {s for s, _ in states(fleet).values()} == {"running"}


def test_a_replayed_confirmation_stops_only_the_launches_it_listed(fleet, people, alice):
    """The confirmation page says which launches it would stop; the admin's POST confirms those.
    Posted again later (a resubmitted form, the browser's history), it must not stop a launch
    started since, which nobody was shown."""
    client = logged_in_client(alice)
    page = client.get("/billing/budgets/actions/stop-gpu/").content.decode()
    confirmed = {"launch": [str(fleet["gpu"].pk)]}  # what the page listed

    assert client.post("/billing/budgets/actions/stop-gpu/", confirmed).status_code == 302
    later = running(people["alice"], kind="gpu", pool="gpu", instance_type="g5.xlarge",
                    capacity_type="on-demand")  # fmt: skip

    replayed = client.post("/billing/budgets/actions/stop-gpu/", confirmed)

    assert replayed.status_code == 302
    assert states(fleet)["gpu"] == ("stopping", "budget")
    assert LaunchRequest.objects.get(pk=later.pk).state == "running"
    stopped = [
        e.detail["stopped"]
        for e in AuditEvent.objects.filter(action="budget.action").order_by("pk")
    ]
    assert stopped == [[str(fleet["gpu"].pk)], []]
    # The page's form carries what it lists, so the confirmation names it.
    assert re.findall(r'name="launch" value="(\d+)"', page) == confirmed["launch"]


def test_a_post_that_lists_no_launch_stops_nothing(fleet, alice):
    """A POST that confirms no launch (not sent from the confirmation page) stops nothing."""
    done = logged_in_client(alice).post("/billing/budgets/actions/stop-spot-spark/")

    assert done.status_code == 302
    assert {s for s, _ in states(fleet).values()} == {"running"}
