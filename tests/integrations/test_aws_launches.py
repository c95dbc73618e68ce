"""The AWS adapter's launch calls against the AWS layer over real HTTP: a launch from a template
with the conventions' tags and a ClientToken (the same call twice is one set of instances), the
request's instances found by tag, terminate, tags rewritten, and the spot fallback codes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clusterweb.errors import PermanentError
from clusterweb.integrations import aws as adapter
from tests.fixtures.services import instances_wait

IMAGE_ID = "ami-12c6146b"


@pytest.fixture(autouse=True)
def fresh_clients(settings) -> Iterator[None]:
    settings.AWS_MAX_ATTEMPTS = 1  # an injected fault reaches the adapter from the first call
    adapter.clients_clear()
    yield
    adapter.clients_clear()


def template() -> str:
    created = adapter.client("ec2").create_launch_template(
        LaunchTemplateName="clusterweb-spark",
        LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "m5.xlarge"},
    )
    return created["LaunchTemplate"]["LaunchTemplateId"]


def spec(template_id: str, **changes) -> adapter.LaunchSpec:
    values = {
        "launch_template_id": template_id,
        "instance_type": "m5.xlarge",
        "count": 2,
        "capacity_type": "spot",
        "user_data": "#!/bin/bash\ntrue\n",
        "tags": {
            "clusterweb:cluster": "sandbox",
            "clusterweb:pool": "spark",
            "clusterweb:owner": "bob",
            "clusterweb:request": "7",
            "clusterweb:expires-at": "2026-12-08T02:00:00Z",
        },
        "client_token": "cw-test-r7-capacity-spot-g0",
        "zone": "eu-west-1b",
    }
    return adapter.LaunchSpec(**{**values, **changes})


def test_a_launch_made_twice_with_its_client_token_is_one_set_of_instances(aws):
    template_id = template()
    first = adapter.instances_launch(spec(template_id))
    again = adapter.instances_launch(spec(template_id))
    assert len(first) == 2
    assert [i.instance_id for i in again] == [i.instance_id for i in first]
    found = adapter.request_instances("sandbox", "7")
    assert sorted(i.instance_id for i in found) == sorted(i.instance_id for i in first)
    assert {i.lifecycle for i in found} == {"spot"}
    assert found[0].tags["clusterweb:expires-at"] == "2026-12-08T02:00:00Z"
    assert found[0].zone == "eu-west-1b"
    assert len(adapter.instances_describe("sandbox")) == 2


def test_another_request_s_instances_are_not_found_by_this_one_s_tag(aws):
    template_id = template()
    adapter.instances_launch(spec(template_id))
    assert adapter.request_instances("sandbox", "8") == []
    assert adapter.request_instances("other-cluster", "7") == []


def test_an_on_demand_launch_is_not_spot(aws):
    launched = adapter.instances_launch(
        spec(template(), capacity_type="on-demand", client_token="cw-test-r7-od", count=1)
    )
    assert [i.lifecycle for i in launched] == ["on-demand"]


@pytest.mark.parametrize(
    "code",
    ["InsufficientInstanceCapacity", "UnfulfillableCapacity", "MaxSpotInstanceCountExceeded"],
)
def test_capacity_refusals_carry_a_fallback_code(aws, code):
    template_id = template()
    aws.fault_inject("RunInstances", code)
    with pytest.raises(Exception) as caught:
        adapter.instances_launch(spec(template_id))
    assert caught.value.code == code
    assert code in adapter.SPOT_FALLBACK_CODES
    assert adapter.request_instances("sandbox", "7") == []


def test_a_spot_price_cap_under_the_spot_price_is_a_fallback_code_too(aws):
    aws.fault_inject("RunInstances", "SpotMaxPriceTooLow")
    with pytest.raises(PermanentError) as caught:
        adapter.instances_launch(spec(template()))
    assert caught.value.code in adapter.SPOT_FALLBACK_CODES


def test_terminate_and_tag_rewrite(aws):
    launched = adapter.instances_launch(spec(template()))
    ids = [i.instance_id for i in launched]
    adapter.instances_tag(ids, {"clusterweb:expires-at": "2026-12-09T00:00:00Z"})
    assert {i.tags["clusterweb:expires-at"] for i in adapter.request_instances("sandbox", "7")} == {
        "2026-12-09T00:00:00Z"
    }
    adapter.instances_terminate(ids)
    instances_wait(adapter.client("ec2"), ids, "terminated")
    assert {i.state for i in adapter.request_instances("sandbox", "7")} == {"terminated"}
    adapter.instances_terminate([])  # nothing to do: no call


def test_a_client_token_over_64_characters_is_refused_before_any_call(aws):
    with pytest.raises(ValueError):
        adapter.instances_launch(spec("lt-x", client_token="x" * 65))


def test_a_request_s_volumes_by_tag_and_their_deletion(aws):
    ec2 = adapter.client("ec2")
    tags = [
        {"Key": "clusterweb:cluster", "Value": "sandbox"},
        {"Key": "clusterweb:request", "Value": "7"},
    ]
    mine = ec2.create_volume(
        AvailabilityZone="eu-west-1b",
        Size=10,
        TagSpecifications=[{"ResourceType": "volume", "Tags": tags}],
    )["VolumeId"]
    other = ec2.create_volume(
        AvailabilityZone="eu-west-1b",
        Size=10,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [tags[0], {**tags[1], "Value": "8"}]}
        ],
    )["VolumeId"]
    assert [v.volume_id for v in adapter.request_volumes("sandbox", "7")] == [mine]
    adapter.volumes_delete([mine, mine])
    adapter.volumes_delete([mine])  # already gone: success
    assert adapter.request_volumes("sandbox", "7") == []
    assert [v.volume_id for v in adapter.request_volumes("sandbox", "8")] == [other]
