"""The request page during and after a launch: the nodes, the cost so far, how to use the
workers and Stop while it runs; the polled part ends with 286 once stopped, showing the quote
against the actual cost."""

from __future__ import annotations

import pytest

from tests.fixtures.personas import logged_in_client
from tests.provisioning.execution.conftest import state_is

pytestmark = [pytest.mark.django_db, pytest.mark.simulator_only]


def test_bob_watches_his_launch_run_and_stops_it_from_the_page(launches, bob):
    launch = launches.request(count=1)
    launch = launches.drive(launch.pk, state_is("running"))
    page = logged_in_client(bob)

    html = page.get(f"/launches/{launch.pk}/").content.decode()
    assert 'id="stop"' in html
    assert "spark://spark-master.spark.svc.cluster.local:7077" in html
    assert "http://127.0.0.1:8003/" in html
    assert launches.instances(launch.pk)[0].instance_id in html
    assert 'id="cost-so-far"' in html
    assert "the launch stops when its cost reaches that" in html  # the sweeper's cost cap
    assert "Workers registered" in html

    polled = page.get(f"/launches/{launch.pk}/", headers={"HX-Request": "true"})
    assert polled.status_code == 200  # still running: polling goes on

    response = page.post(f"/launches/{launch.pk}/stop/")
    assert response.status_code == 302
    launch = launches.drive(launch.pk, state_is("stopped"))
    polled = page.get(f"/launches/{launch.pk}/", headers={"HX-Request": "true"})
    assert polled.status_code == 286
    html = polled.content.decode()
    assert 'id="quote-vs-actual"' in html and 'id="stop"' not in html
    assert "ran 0.0 h of the 2 h quoted" in html


def test_a_stop_without_csrf_changes_nothing(launches, bob):
    from django.test import Client

    from tests.fixtures.personas import user_for

    launch = launches.request(count=1)
    launch = launches.drive(launch.pk, state_is("running"))
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(user_for(bob))
    assert forged.post(f"/launches/{launch.pk}/stop/").status_code == 403
    launch.refresh_from_db()
    assert launch.state == "running"


def test_the_nodes_page_offers_stop_on_a_launch_s_nodes(launches, bob, alice):
    launch = launches.request(count=1)
    launch = launches.drive(launch.pk, state_is("running"))
    [instance] = launches.instances(launch.pk)
    html = logged_in_client(bob).get("/nodes/").content.decode()
    assert f'id="stop-{instance.instance_id}"' in html
    assert f'action="/launches/{launch.pk}/stop/"' in html
    response = logged_in_client(alice).post(f"/launches/{launch.pk}/stop/")
    assert response.status_code == 302
    launch.refresh_from_db()
    assert launch.state == "stopping" and launch.stop_reason == "admin"
