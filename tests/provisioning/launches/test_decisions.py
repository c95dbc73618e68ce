"""Approve (perhaps smaller), reject, cancel, expire, and the disable path: each a transition
from the expected state, with the decision on the row and in the audit log; decided requests
refuse a second decision; two admins at once make one approval."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import F

from clusterweb import clock
from clusterweb.audit.models import AuditEvent
from provisioning.launches import selectors, services
from provisioning.launches.models import LaunchRequest
from tests.provisioning.launches.test_requests import spark
from tests.provisioning.launches.test_transitions import node_row

pytestmark = pytest.mark.django_db


def test_an_admin_approves_a_pending_request(pools, spot_prices, alice_user, bob_user):
    launch = spark(bob_user)

    approved = services.approve(launch.pk, by=alice_user, note="go ahead")

    assert approved.state == "approved" and approved.decided_by == alice_user
    assert approved.decision_note == "go ahead" and not approved.self_approved
    assert approved.approved_count == 4 and approved.approved_max_cost == Decimal("8.56")
    assert selectors.request_json(approved)["approval"] == {
        "by": "alice",
        "at": approved.decided_at.isoformat(),
        "note": "go ahead",
        "self": False,
        "auto": False,
        "count": 4,
        "hours": 10,
        "smaller": False,
        "expected_cost": "3.20",
        "max_cost": "8.56",
    }
    assert AuditEvent.objects.filter(action="launch.approved", actor_username="alice").exists()


def test_an_approval_may_be_smaller_and_is_requoted_at_the_approved_size(
    pools, spot_prices, alice_user, bob_user
):
    launch = spark(bob_user, count=8, hours=20)  # max 0.214 x 160 = 34.24

    approved = services.approve(launch.pk, by=alice_user, count=2, hours=5, note="start small")

    assert approved.approved_smaller
    assert (approved.count, approved.hours) == (8, 20)  # what was asked stays on the row
    assert (approved.granted_count, approved.granted_hours) == (2, 5)
    assert approved.max_cost == Decimal("34.24")
    assert approved.approved_max_cost == Decimal("2.14")  # 0.214 x 10: what it may cost
    assert approved.approved_expected_cost == Decimal("0.80")
    assert selectors.pool_room(pools["spark"]) == 8  # only what was approved is held
    event = AuditEvent.objects.get(action="launch.approved")
    assert event.detail["smaller"] is True and event.detail["quoted_max_cost"] == "34.24"


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"count": 9}, "count"), ({"hours": 11}, "hours"), ({"count": 0}, "count")],
)
def test_an_approval_cannot_be_larger_than_the_request(
    pools, spot_prices, alice_user, bob_user, changes, field
):
    launch = spark(bob_user, count=8, hours=10)

    with pytest.raises(services.LaunchInputError) as refused:
        services.approve(launch.pk, by=alice_user, **changes)

    assert refused.value.field == field
    launch.refresh_from_db()
    assert launch.state == "pending_approval" and launch.approved_count is None


def test_approving_rechecks_the_pools_room(pools, spot_prices, alice_user, bob_user):
    launch = spark(bob_user, count=6)
    for n in range(6):
        node_row(f"i-{n}", pool="spark")  # meanwhile six nodes started

    with pytest.raises(services.LaunchInputError) as refused:
        services.approve(launch.pk, by=alice_user)

    assert refused.value.field == "count" and "room for 4" in str(refused.value)
    assert services.approve(launch.pk, by=alice_user, count=4).granted_count == 4


def test_a_collaborator_cannot_approve_or_reject(pools, spot_prices, bob_user, dave_user):
    launch = spark(bob_user)

    with pytest.raises(PermissionDenied):
        services.approve(launch.pk, by=bob_user)
    with pytest.raises(PermissionDenied):
        services.reject(launch.pk, by=dave_user)

    launch.refresh_from_db()
    assert launch.state == "pending_approval"
    assert not AuditEvent.objects.exclude(action="launch.requested").exists()


def test_a_rejected_request_cannot_be_approved_or_rejected_again(
    pools, spot_prices, alice_user, erin_user, bob_user
):
    launch = spark(bob_user)
    rejected = services.reject(launch.pk, by=alice_user, note="use a smaller type")

    with pytest.raises(services.LaunchStateError) as refused:
        services.approve(launch.pk, by=erin_user)
    with pytest.raises(services.LaunchStateError):
        services.reject(launch.pk, by=erin_user)

    assert rejected.state == "rejected" and rejected.decision_note == "use a smaller type"
    assert "is rejected by alice" in str(refused.value)
    launch.refresh_from_db()
    assert launch.decided_by_username == "alice" and launch.state == "rejected"
    assert AuditEvent.objects.filter(action__startswith="launch.").count() == 2


def test_an_unknown_request_is_named(pools, alice_user):
    with pytest.raises(services.LaunchNotFound) as refused:
        services.approve(4242, by=alice_user)
    assert refused.value.field == "id" and "no launch request 4242" in str(refused.value)


def test_the_requester_cancels_while_pending(pools, spot_prices, bob_user):
    launch = spark(bob_user)

    cancelled = services.cancel(launch.pk, by=bob_user)

    assert cancelled.state == "cancelled" and cancelled.stop_reason == "owner"
    assert cancelled.ended_at is not None
    with pytest.raises(services.LaunchStateError):
        services.cancel(launch.pk, by=bob_user)


def test_nobody_cancels_someone_elses_request_but_an_admin(
    pools, spot_prices, alice_user, bob_user, dave_user
):
    launch = spark(bob_user)

    with pytest.raises(PermissionDenied):
        services.cancel(launch.pk, by=dave_user)
    launch.refresh_from_db()
    assert launch.state == "pending_approval"

    assert services.cancel(launch.pk, by=alice_user).stop_reason == "admin"


def test_a_request_pending_too_long_expires(pools, spot_prices, bob_user, settings):
    settings.LAUNCH_APPROVAL_HOURS = 24
    old = spark(bob_user, count=1)
    fresh = spark(bob_user, count=1)
    long_ago = clock.now() - timedelta(hours=24, seconds=1)
    LaunchRequest.objects.filter(pk=old.pk).update(created_at=long_ago, updated_at=long_ago)

    assert services.expire_pending() == 1
    assert services.expire_pending() == 0  # safe to run twice

    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.state == "expired" and fresh.state == "pending_approval"
    assert AuditEvent.objects.filter(action="launch.expired").count() == 1


def test_a_request_past_its_deadline_is_expired_not_decided(
    pools, spot_prices, alice_user, bob_user, settings
):
    """Between the deadline and the next expiry sweep (every few minutes) an admin's click must
    not approve what the requester was told expires: it expires there and then, once."""
    settings.LAUNCH_APPROVAL_HOURS = 24
    late, later = spark(bob_user, count=1), spark(bob_user, count=1)
    long_ago = clock.now() - timedelta(hours=24, seconds=1)
    LaunchRequest.objects.filter(pk__in=[late.pk, later.pk]).update(
        created_at=long_ago, updated_at=long_ago
    )

    with pytest.raises(services.LaunchStateError, match=f"request {late.pk} is expired"):
        services.approve(late.pk, by=alice_user)
    with pytest.raises(services.LaunchStateError, match=f"request {later.pk} is expired"):
        services.reject(later.pk, by=alice_user, note="too late")

    assert set(LaunchRequest.objects.values_list("state", flat=True)) == {"expired"}
    assert not AuditEvent.objects.filter(action__in=["launch.approved", "launch.rejected"])
    assert AuditEvent.objects.filter(action="launch.expired").count() == 2
    assert services.expire_pending() == 0  # expired once


def test_a_request_sent_back_to_pending_is_a_fresh_wait_for_an_admin(
    pools, spot_prices, alice_user, bob_user, mailbox, settings
):
    """Issue 18's spot fallback over the threshold sends an approved request back to
    ``pending_approval`` (execution.py, the same fields as below). That wait is new: its deadline
    counts from then, not from the first request; it carries no approval until one is given; and
    the second approval is mailed like the first."""
    settings.LAUNCH_APPROVAL_HOURS = 24
    launch = spark(bob_user)
    asked = clock.now() - timedelta(hours=23)
    LaunchRequest.objects.filter(pk=launch.pk).update(created_at=asked, updated_at=asked)
    services.approve(launch.pk, by=alice_user)
    assert services.launch_requester_notify(request_id=launch.pk) is True
    services.transition(launch.pk, ["approved"], "launching")
    services.transition(
        launch.pk,
        ["launching"],
        "pending_approval",
        capacity_type="on-demand",
        attempt=F("attempt") + 1,
        approval_reason="no spot capacity; on-demand is over the threshold",
        approved_count=None,
        approved_hours=None,
        approved_max_cost=None,
        admins_notified_at=None,
    )

    assert services.expire_pending(now=clock.now() + timedelta(hours=2)) == 0
    launch.refresh_from_db()
    assert launch.state == "pending_approval"
    assert selectors.request_json(launch)["approval"] is None

    services.approve(launch.pk, by=alice_user, note="on-demand is fine")
    assert services.launch_requester_notify(request_id=launch.pk) is True
    assert len(mailbox.wait_for(2)) == 2
    assert services.expire_pending(now=clock.now() + timedelta(hours=25)) == 0


def test_a_request_the_policy_approved_then_sent_back_to_pending_is_approved_by_a_person(
    pools, spot_prices, alice_user, erin_user
):
    launch = spark(alice_user, count=1)  # within the threshold: approved by the policy
    assert launch.auto_approved
    services.transition(launch.pk, ["approved"], "launching")
    services.transition(  # issue 18's fallback, as in the test above
        launch.pk, ["launching"], "pending_approval", capacity_type="on-demand",
        approved_count=None, approved_hours=None, approved_max_cost=None, admins_notified_at=None,
    )  # fmt: skip

    launch = services.approve(launch.pk, by=erin_user, note="on-demand then")

    assert not launch.auto_approved and launch.decided_by_username == "erin"
    approval = selectors.request_json(launch)["approval"]
    assert approval["auto"] is False and approval["by"] == "erin"


def test_disabling_a_person_cancels_what_they_have_not_started(
    pools, spot_prices, alice_user, bob_user
):
    pending = spark(bob_user, count=1)
    approved = services.approve(spark(bob_user, count=1).pk, by=alice_user)
    launching = services.approve(spark(bob_user, count=1).pk, by=alice_user)
    services.transition(launching.pk, ["approved"], "launching")
    others = spark(alice_user, count=1)

    assert services.cancel_pending_for(bob_user, actor=alice_user) == 2

    states = dict(LaunchRequest.objects.values_list("pk", "state"))
    assert states[pending.pk] == states[approved.pk] == "cancelled"
    assert states[launching.pk] == "launching"  # issue 18 stops what runs
    assert states[others.pk] == "approved"
    assert LaunchRequest.objects.get(pk=pending.pk).stop_reason == "disabled"


@pytest.mark.django_db(transaction=True)
def test_two_admins_approving_at_once_make_one_approval(
    pools, spot_prices, alice_user, erin_user, bob_user
):
    launch = spark(bob_user)
    start = threading.Barrier(2)
    outcomes: list[str] = []
    refusals: list[str] = []

    def decide(admin) -> None:
        try:
            start.wait()
            services.approve(launch.pk, by=admin, note=admin.username)
            outcomes.append("approved")
        except services.LaunchStateError as exc:
            outcomes.append("refused")
            refusals.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(a,)) for a in (alice_user, erin_user)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["approved", "refused"]
    assert AuditEvent.objects.filter(action="launch.approved").count() == 1
    launch.refresh_from_db()
    assert launch.decision_note == launch.decided_by_username
    assert refusals == [f"request {launch.pk} is approved by {launch.decided_by_username}: only "
                        "a pending request can be approved"]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_two_requests_for_the_last_room_get_one_approval(pools, spot_prices, alice_user, erin_user):
    """An admin's requests within the threshold are approved at once: racing for the last four
    nodes, one gets them and the other is told the pool's room."""
    for n in range(6):
        node_row(f"i-{n}", pool="spark")
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def ask(admin) -> None:
        try:
            start.wait()
            spark(admin, count=4, hours=1)
            outcomes.append("approved")
        except services.LaunchInputError as exc:
            outcomes.append(exc.field)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(a,)) for a in (alice_user, erin_user)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["approved", "count"]
    assert LaunchRequest.objects.filter(state="approved").count() == 1
