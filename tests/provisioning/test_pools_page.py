"""The Pools page: admins list, add and edit node pools (validated, audited); collaborators get
403."""

from __future__ import annotations

import pytest
from django.urls import reverse

from clusterweb.audit.models import AuditEvent
from provisioning.models import Pool
from tests.provisioning.conftest import node_make

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
POOLS = reverse("provisioning:pools")
ADD = reverse("provisioning:pool_add")

SPARK = {
    "slug": "spark",
    "kind": "burst",
    "instance_types": "t2.xlarge, m5.xlarge m5.2xlarge",
    "lifecycle": "spot",
    "on_demand_fallback": "on",
    "max_nodes": "10",
    "max_hours": "48",
    "zones": "eu-west-1a, eu-west-1b",
    "subnets": "",
    "launch_template_name": "clusterweb-spark",
    "launch_template_id": "lt-0123456789abcdef0",
    "labels": "clusterweb.io/pool=spark\nclusterweb.io/capacity-type=spot",
    "taints": "",
}


def test_an_admin_adds_a_pool_which_is_listed_and_audited(as_alice):
    response = as_alice.post(ADD, SPARK)

    assert response.status_code == 302 and response["Location"] == f"{POOLS}#pool-spark"
    pool = Pool.objects.get(slug="spark")
    assert pool.instance_types == ["t2.xlarge", "m5.xlarge", "m5.2xlarge"]
    assert pool.on_demand_fallback and pool.max_hours == 48 and pool.max_nodes == 10
    assert pool.zones == ["eu-west-1a", "eu-west-1b"]
    assert pool.labels == {"clusterweb.io/capacity-type": "spot", "clusterweb.io/pool": "spark"}
    assert pool.updated_by_username == "alice"
    event = AuditEvent.objects.get(action="pool.created")
    assert event.actor_username == "alice" and event.target == "pool spark"
    node_make(pool="spark")
    listing = as_alice.get(POOLS).content.decode()
    row = listing[listing.index('id="pool-spark"') :].split("</tr>")[0]
    assert (
        "m5.2xlarge" in row
        and "on-demand fallback allowed" in row
        and "lt-0123456789abcdef0" in row
    )
    assert '<td class="num">1</td>' in row  # one live node


def test_an_admin_edits_a_pool_whose_slug_stays(as_alice):
    as_alice.post(ADD, SPARK)
    edit = reverse("provisioning:pool_edit", kwargs={"slug": "spark"})
    form = as_alice.get(edit).content.decode()
    assert 'value="t2.xlarge, m5.xlarge, m5.2xlarge"' in form and "readonly" in form

    response = as_alice.post(
        edit,
        {**SPARK, "slug": "renamed", "max_nodes": "4", "taints": "dedicated=spark:NoSchedule"},
    )

    assert response.status_code == 302
    pool = Pool.objects.get()
    assert pool.slug == "spark" and pool.max_nodes == 4
    assert pool.taints == ["dedicated=spark:NoSchedule"]
    event = AuditEvent.objects.get(action="pool.updated")
    assert event.detail == {"changed": ["max_nodes", "taints"]}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"max_hours": ""}, "max_hours", "a burst pool needs max_hours"),
        ({"instance_types": "m5.xlarge, not a type"}, "instance_types", "must look like m5.xlarge"),
        ({"zones": "us-east-1a"}, "zones", "availability zone of eu-west-1"),
        ({"taints": "nvidia.com/gpu=present"}, "taints", "key=value:Effect"),
        ({"labels": "bad key!=x"}, "labels", "is not a Kubernetes label key"),
        ({"launch_template_id": "template-1"}, "launch_template_id", "must look like lt-"),
    ],
)
def test_bad_input_is_shown_on_the_field_and_nothing_is_saved(as_alice, change, field, message):
    response = as_alice.post(ADD, {**SPARK, **change})

    assert response.status_code == 200
    content = response.content.decode()
    assert message in content
    assert f'id="id_{field}"' in content and 'aria-invalid="true"' in content
    assert not Pool.objects.exists()


def test_a_second_pool_with_the_same_slug_is_refused(as_alice):
    as_alice.post(ADD, SPARK)
    response = as_alice.post(ADD, SPARK)
    assert response.status_code == 200 and "exists already" in response.content.decode()


def test_collaborators_may_not_see_or_change_pools(as_bob):
    assert as_bob.get(POOLS).status_code == 403
    assert as_bob.post(ADD, SPARK).status_code == 403
    assert not Pool.objects.exists()
