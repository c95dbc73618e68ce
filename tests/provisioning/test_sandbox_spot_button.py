"""The sandbox-only "Simulate spot interruption" button: AWS (the AWS layer) reclaims the spot
instance as it would, and the inventory records it. Without CLUSTERWEB_SANDBOX=1 the URL does not
exist."""

import importlib
import json

import pytest
from django.urls import clear_url_caches, reverse

from clusterweb.audit.models import AuditEvent
from clusterweb.integrations import aws as adapter
from provisioning import inventory
from provisioning.models import Node

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox_site(settings):
    import clusterweb.urls

    settings.SANDBOX = True
    clear_url_caches()
    importlib.reload(clusterweb.urls)
    yield
    settings.SANDBOX = False
    clear_url_caches()
    importlib.reload(clusterweb.urls)


def state_of(instance_id: str) -> tuple[str, str]:
    reservation = adapter.client("ec2").describe_instances(InstanceIds=[instance_id])
    instance = reservation["Reservations"][0]["Instances"][0]
    return instance["State"]["Name"], instance.get("StateReason", {}).get("Code", "")


def test_alice_sees_the_button_on_a_running_spot_node_and_aws_reclaims_it(
    cloud, sandbox_site, as_alice
):
    [spot] = cloud.launch(spot=True)
    [on_demand] = cloud.launch(pool="admin", instance_type="t2.small", owner=None)
    inventory.inventory_sync()
    page = as_alice.get(reverse("provisioning:nodes")).content.decode()
    button = reverse("sandbox:spot_interrupt", args=[spot])
    assert button in page
    assert reverse("sandbox:spot_interrupt", args=[on_demand]) not in page

    response = as_alice.post(button)
    assert response.status_code == 302
    cloud.settle(spot, state="terminated")  # after shutting-down, as on EC2
    assert state_of(spot) == ("terminated", "Server.SpotInstanceTermination")
    assert AuditEvent.objects.filter(action="sandbox.spot_interrupted", target=spot).exists()
    inventory.inventory_sync()
    node = Node.objects.get(instance_id=spot)
    assert node.state == "terminated" and node.spot_interrupted_at is not None


def test_an_on_demand_instance_is_not_interrupted(cloud, sandbox_site, as_alice):
    [on_demand] = cloud.launch(pool="admin", instance_type="t2.small", owner=None)
    response = as_alice.post(reverse("sandbox:spot_interrupt", args=[on_demand]), follow=True)
    assert b"Could not interrupt" in response.content
    assert state_of(on_demand)[0] == "running"


def test_collaborators_may_not_press_it_and_see_no_button(cloud, sandbox_site, as_bob):
    [spot] = cloud.launch(spot=True, owner="bob")
    inventory.inventory_sync()
    button = reverse("sandbox:spot_interrupt", args=[spot])
    assert button not in as_bob.get(reverse("provisioning:nodes")).content.decode()
    assert as_bob.post(button).status_code == 403
    assert as_bob.get(button).status_code == 405
    assert state_of(spot)[0] == "running"


def test_without_the_sandbox_the_url_does_not_exist(as_alice):
    assert as_alice.post("/sandbox/spot-interruptions/i-0123456789abcdef0/").status_code == 404


def test_the_button_sends_the_two_minute_warning_to_the_product_s_queue_first(
    cloud, sandbox_site, as_alice, settings, shared_clock
):
    sqs = adapter.client("sqs")
    settings.SPOT_INTERRUPTION_QUEUE_URL = sqs.create_queue(QueueName="spot-warnings")["QueueUrl"]
    [spot] = cloud.launch(spot=True)
    shared_clock.advance(60)  # booted: running

    as_alice.post(reverse("sandbox:spot_interrupt", args=[spot]))

    [message] = sqs.receive_message(QueueUrl=settings.SPOT_INTERRUPTION_QUEUE_URL)["Messages"]
    event = json.loads(message["Body"])
    assert event["detail-type"] == "EC2 Spot Instance Interruption Warning"
    assert event["detail"] == {"instance-id": spot, "instance-action": "terminate"}
    assert state_of(spot)[0] == "running"  # warned, not yet reclaimed
    shared_clock.advance(119)
    assert state_of(spot)[0] == "running"
    shared_clock.advance(2 + 60)  # the two minutes, then its shutdown
    assert state_of(spot) == ("terminated", "Server.SpotInstanceTermination")
