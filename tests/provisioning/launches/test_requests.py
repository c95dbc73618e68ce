"""Requesting a launch: the policy decides pending or approved at once, the quote is frozen on
the row, the pool's room is respected, and every bad input is refused naming the field with
nothing written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied

from clusterweb.audit.models import AuditEvent
from provisioning.launches import selectors, services
from provisioning.launches.models import ApprovalPolicy, LaunchRequest

pytestmark = pytest.mark.django_db


def spark(by, owner=None, **kwargs):
    values = {
        "kind": "spark",
        "pool": "spark",
        "instance_type": "m5.xlarge",
        "count": 4,
        "hours": 10,
        "capacity_type": "spot",
    }
    return services.request_launch(requested_by=by, owner=owner or by, **{**values, **kwargs})


def test_a_collaborators_spark_request_waits_for_an_admin_by_policy(pools, spot_prices, bob_user):
    launch = spark(bob_user)

    assert launch.state == "pending_approval"
    assert launch.max_cost == Decimal("8.56") and launch.expected_cost == Decimal("3.20")
    assert launch.hourly == Decimal("0.08") and "eu-west-1b" in launch.hourly_source
    assert "collaborators' spark requests" in launch.approval_reason
    assert "threshold" not in launch.approval_reason  # 8.56 is within $10
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["launch.requested"]


def test_an_admins_request_within_the_threshold_is_approved_at_once(pools, spot_prices, alice_user):
    launch = spark(alice_user)

    assert launch.state == "approved" and launch.auto_approved
    assert launch.approved_count == 4 and launch.approved_max_cost == Decimal("8.56")
    assert sorted(AuditEvent.objects.values_list("action", flat=True)) == [
        "launch.approved",
        "launch.requested",
    ]
    assert selectors.request_json(launch)["approval"]["auto"] is True


def test_an_admins_request_over_the_threshold_needs_an_explicit_self_approval(
    pools, spot_prices, alice_user
):
    launch = spark(alice_user, count=10, hours=10)  # 0.214 x 100 = 21.40 > 10

    assert launch.state == "pending_approval"
    assert launch.approval_reason == "maximum cost $21.40 is over the $10.00 threshold"
    approved = services.approve(launch.pk, by=alice_user)
    assert approved.state == "approved" and approved.self_approved
    assert selectors.request_json(approved)["approval"]["self"] is True
    event = AuditEvent.objects.get(action="launch.approved")
    assert event.detail["self"] is True and event.actor_username == "alice"


def test_a_collaborators_jupyter_server_is_approved_at_once_but_a_gpu_one_counts_as_gpu(
    pools, spot_prices, bob_user
):
    small = services.request_launch(
        requested_by=bob_user,
        owner=bob_user,
        kind="jupyter",
        jupyter_profile="small",
        pool="jupyter",
        instance_type=None,
        count=1,
        hours=4,
        capacity_type="spot",
    )
    gpu = services.request_launch(
        requested_by=bob_user,
        owner=bob_user,
        kind="jupyter",
        jupyter_profile="gpu",
        pool="gpu",
        instance_type="g4dn.xlarge",
        count=1,
        hours=1,
        capacity_type="spot",
    )

    assert small.state == "approved" and small.instance_type is None
    assert small.max_cost == Decimal("0.00")
    assert selectors.request_json(small)["instance_type"] is None
    assert gpu.state == "pending_approval"
    assert "collaborators' gpu requests" in gpu.approval_reason


def test_the_policy_threshold_and_requirements_decide(pools, spot_prices, alice_user, bob_user):
    services.approval_policy_set(by=alice_user, threshold=Decimal("5.00"), require={"spark": False})

    cheap = spark(bob_user, count=1, hours=10)  # max 2.14
    dear = spark(bob_user, count=3, hours=10)  # max 6.42

    assert cheap.state == "approved" and dear.state == "pending_approval"
    assert dear.approval_reason == "maximum cost $6.42 is over the $5.00 threshold"
    event = AuditEvent.objects.get(action="approval_policy.updated")
    assert event.detail["before"]["threshold"] == "10.00"
    assert event.detail["after"] == {
        "threshold": "5.00",
        "require": {"spark": False, "gpu": True, "jupyter": False},
    }


def test_a_collaborator_cannot_change_the_policy(pools, bob_user):
    with pytest.raises(PermissionDenied):
        services.approval_policy_set(by=bob_user, threshold=Decimal("1000"))
    assert ApprovalPolicy.current().threshold == Decimal("10.00")


def test_an_unknown_price_always_waits_for_an_admin(pools, alice_user):
    pool = pools["spark"]
    pool.instance_types = [*pool.instance_types, "zz9.huge"]
    pool.save()

    launch = spark(alice_user, instance_type="zz9.huge", count=1, hours=1)

    assert launch.state == "pending_approval" and launch.max_cost is None
    assert "price is unknown" in launch.approval_reason


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"count": 0}, "count", "at least 1"),
        ({"count": 11}, "count", "room for 10"),
        ({"instance_type": "p5.48xlarge"}, "instance_type", "not allowed in pool spark"),
        ({"instance_type": ""}, "instance_type", "choose an instance type"),
        ({"hours": 0}, "hours", "at least 1 hour"),
        ({"hours": -3}, "hours", "at least 1 hour"),
        ({"hours": 49}, "hours", "at most 48 hours"),
        ({"capacity_type": "reserved"}, "capacity_type", "spot or on-demand"),
        ({"pool": "admin", "instance_type": "t2.small"}, "pool", "base pool"),
        ({"pool": "nope"}, "pool", "no such pool"),
        ({"kind": "cobol"}, "kind", "unknown kind"),
        (
            {"pool": "gpu", "instance_type": "g4dn.xlarge", "count": 1,
             "allow_on_demand_fallback": True, "kind": "gpu"},
            "allow_on_demand_fallback",
            "does not allow a fallback",
        ),
        (
            {"capacity_type": "on-demand", "allow_on_demand_fallback": True},
            "allow_on_demand_fallback",
            "for spot launches",
        ),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    pools, spot_prices, alice_user, changes, field, words
):
    with pytest.raises(services.LaunchInputError) as refused:
        spark(alice_user, **changes)

    assert refused.value.field == field and words in str(refused.value)
    assert not LaunchRequest.objects.exists() and not AuditEvent.objects.exists()


def test_a_collaborator_cannot_launch_for_someone_else(pools, spot_prices, bob_user, dave_user):
    with pytest.raises(PermissionDenied):
        spark(bob_user, owner=dave_user)
    assert not LaunchRequest.objects.exists()


def test_someone_without_a_role_can_neither_launch_nor_be_launched_for(
    pools, spot_prices, alice_user, carol_user
):
    with pytest.raises(PermissionDenied):
        spark(carol_user)
    with pytest.raises(services.LaunchInputError) as refused:
        spark(alice_user, owner=carol_user)
    assert refused.value.field == "owner"
    assert not LaunchRequest.objects.exists()


def test_an_admin_may_launch_for_a_collaborator(pools, spot_prices, alice_user, bob_user):
    launch = spark(alice_user, owner=bob_user)

    assert launch.owner == bob_user and launch.requested_by == alice_user
    assert launch.state == "approved"  # an admin's request: only the threshold applies
    row = selectors.request_json(launch)
    assert (row["owner"], row["requested_by"]) == ("bob", "alice")


def test_the_pools_room_counts_running_nodes_and_approved_requests(
    pools, spot_prices, alice_user, bob_user
):
    from tests.provisioning.launches.test_transitions import node_row

    spark_pool = pools["spark"]
    node_row("i-0001", pool="spark")
    node_row("i-0002", pool="spark", state="terminated")
    assert selectors.pool_room(spark_pool) == 9

    spark(bob_user, count=5)  # pending: holds nothing yet
    assert selectors.pool_room(spark_pool) == 9
    approved = spark(alice_user, count=3)
    assert selectors.pool_room(spark_pool) == 6
    node_row("i-0003", pool="spark", request=str(approved.pk))  # its node is the request's
    assert selectors.pool_room(spark_pool) == 6

    with pytest.raises(services.LaunchInputError) as refused:
        spark(alice_user, count=7)
    assert refused.value.field == "count" and "room for 6" in str(refused.value)


def test_request_json_has_what_conventions_name(pools, spot_prices, bob_user):
    row = selectors.request_json(spark(bob_user))

    assert {
        "id", "kind", "state", "owner", "requested_by", "pool", "instance_type", "count",
        "capacity_type", "hours", "expected_cost", "max_cost", "approval", "created_at",
        "running_at", "expires_at", "instances", "urls", "steps", "stop_reason", "error",
    } <= set(row)  # fmt: skip
    assert row["state"] == "pending_approval" and row["approval"] is None
    assert row["expected_cost"] == "3.20" and row["max_cost"] == "8.56"
    assert row["stop_reason"] is None and row["steps"] == [] and row["instances"] == []
