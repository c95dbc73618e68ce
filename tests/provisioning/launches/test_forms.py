"""The forms the pages and the command line share: the Spark request (its errors name the field
in the service's words; the live quote follows what the form holds) and approve-smaller."""

from __future__ import annotations

from decimal import Decimal

import pytest

from provisioning.launches.forms import ApprovalPolicyForm, ApproveForm, SparkLaunchForm
from provisioning.launches.models import ApprovalPolicy, LaunchRequest
from tests.provisioning.launches.test_requests import spark

pytestmark = pytest.mark.django_db

VALID = {
    "workers": "4",
    "instance_type": "m5.xlarge",
    "capacity_type": "spot",
    "hours": "10",
}


def form(user, pool, **changes):
    return SparkLaunchForm({**VALID, **changes}, user=user, pool=pool)


def test_a_valid_form_asks_for_the_launch_for_its_user(pools, spot_prices, bob_user):
    spark_form = form(bob_user, pools["spark"])

    assert spark_form.is_valid(), spark_form.errors
    launch = spark_form.save(source="web")
    assert launch.owner == bob_user and launch.count == 4 and launch.state == "pending_approval"


def test_the_live_quote_follows_the_fields(pools, spot_prices, bob_user):
    assert form(bob_user, pools["spark"]).quote().max_cost == Decimal("8.56")
    assert form(bob_user, pools["spark"], workers="1").quote().max_cost == Decimal("2.14")
    assert form(bob_user, pools["spark"], workers="").quote() is None
    assert form(bob_user, pools["spark"], instance_type="p5.48xlarge").quote() is None


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"workers": "0"}, "workers", "greater than or equal to 1"),
        ({"workers": "11"}, "workers", "room for 10 more nodes"),
        ({"hours": "49"}, "hours", "at most 48 hours"),
        ({"hours": "-1"}, "hours", "greater than or equal to 1"),
        ({"instance_type": "p5.48xlarge"}, "instance_type", "not allowed in pool spark"),
        ({"capacity_type": "on-demand", "allow_on_demand_fallback": "on"},
         "allow_on_demand_fallback", "for spot launches"),
    ],
)  # fmt: skip
def test_each_bad_field_is_named(pools, spot_prices, bob_user, changes, field, words):
    spark_form = form(bob_user, pools["spark"], **changes)

    assert not spark_form.is_valid()
    assert words in " ".join(spark_form.errors[field])
    assert not LaunchRequest.objects.exists()


def test_fallback_is_refused_where_the_pool_forbids_it(pools, spot_prices, bob_user):
    gpu_form = form(
        bob_user, pools["gpu"], instance_type="g4dn.xlarge", workers="1",
        allow_on_demand_fallback="on", hours="2",
    )  # fmt: skip

    assert not gpu_form.is_valid()
    assert "does not allow a fallback" in gpu_form.errors["allow_on_demand_fallback"][0]


def test_a_collaborator_naming_someone_else_is_refused_as_not_permitted(
    pools, spot_prices, bob_user, dave_user
):
    spark_form = form(bob_user, pools["spark"], owner="dave")

    assert not spark_form.is_valid() and spark_form.not_permitted
    assert spark_form.errors["owner"] == ["Collaborators launch only for themselves."]


def test_an_admin_names_the_owner(pools, spot_prices, alice_user, bob_user):
    spark_form = form(alice_user, pools["spark"], owner="bob")

    assert spark_form.is_valid(), spark_form.errors
    assert spark_form.save().owner == bob_user


def test_an_admin_naming_nobody_known_gets_a_field_error(pools, spot_prices, alice_user):
    spark_form = form(alice_user, pools["spark"], owner="nobody")

    assert not spark_form.is_valid() and not spark_form.not_permitted
    assert "nobody is not a user of the cluster" in spark_form.errors["owner"][0]


def test_approve_form_refuses_more_than_was_asked(pools, spot_prices, alice_user, bob_user):
    launch = spark(bob_user, count=4, hours=10)

    larger = ApproveForm({"workers": "5"}, launch=launch)
    smaller = ApproveForm({"workers": "2", "hours": "3", "note": "start small"}, launch=launch)

    assert not larger.is_valid() and "not larger (asked: 4)" in larger.errors["workers"][0]
    assert smaller.is_valid()
    approved = smaller.save(by=alice_user)
    assert (approved.granted_count, approved.granted_hours) == (2, 3)


def test_the_policy_form_saves_through_the_service(pools, alice_user):
    data = {"threshold": "12.50", "require_spark": "on", "require_gpu": "on"}

    policy_form = ApprovalPolicyForm(data)

    assert policy_form.is_valid()
    policy_form.save(by=alice_user)
    policy = ApprovalPolicy.current()
    assert policy.threshold == Decimal("12.50") and not policy.require_jupyter
    assert ApprovalPolicyForm.initial_from(policy)["require_spark"] is True
