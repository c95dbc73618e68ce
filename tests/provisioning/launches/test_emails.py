"""The emails, over real SMTP: every admin for each pending request (quote, reason, link through
the tunnel), the requester on the decision (approved, approved smaller with why, rejected) and
on expiry. Queued after the commit; each sent once however often its task runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clusterweb import clock
from clusterweb.accounts.models import User
from clusterweb.errors import TransientError
from provisioning.launches import services, tasks
from provisioning.launches.models import LaunchRequest
from sandbox.services.base import free_port
from tests.provisioning.launches.conftest import person
from tests.provisioning.launches.test_requests import spark

pytestmark = pytest.mark.django_db


def test_a_pending_request_is_queued_for_the_admins_after_the_commit_only(
    pools, spot_prices, alice_user, bob_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as pending:
        spark(bob_user)
    with django_capture_on_commit_callbacks() as auto:
        spark(alice_user, count=1)

    # No admin mail for a request the policy approved: its one callback starts the execution.
    assert len(pending) == 1 and len(auto) == 1


def test_every_admin_is_emailed_the_quote_the_reason_and_the_link(
    pools, spot_prices, bob_user, directory_server, mailbox, settings
):
    settings.DASHBOARD_BASE_URL = "http://127.0.0.1:8000"
    launch = spark(bob_user)

    tasks.launch_admins_notify.apply(args=[launch.pk])
    tasks.launch_admins_notify.apply(args=[launch.pk])  # safe twice: one mail per admin

    messages = mailbox.wait_for(1)
    assert [m.recipients for m in messages] == [["alice@example.org"]]
    message = messages[0]
    assert "Launch to approve: 4 x m5.xlarge for bob, up to $8.56" in message.subject
    text = message.text()
    assert "Expected:     $3.20" in text and "Maximum:      $8.56" in text
    assert "Hourly:       $0.08 per instance (" in text  # as published, not 0.080000
    assert "$0.08 per instance (" in message.html()
    assert "collaborators' spark requests always need an admin's approval" in text
    assert f"http://127.0.0.1:8000/launches/{launch.pk}/" in text
    assert f'href="http://127.0.0.1:8000/launches/{launch.pk}/"' in message.html()


def test_the_requester_is_told_of_a_smaller_approval_and_why(
    pools, spot_prices, alice_user, bob_user, mailbox
):
    launch = spark(bob_user, count=8, hours=20)
    services.approve(launch.pk, by=alice_user, count=2, hours=5, note="try 2 first")

    tasks.launch_requester_notify.apply(args=[launch.pk])
    tasks.launch_requester_notify.apply(args=[launch.pk])  # told once

    messages = mailbox.wait_for(1)
    assert len(messages) == 1 and messages[0].recipients == ["bob@example.org"]
    assert messages[0].subject.endswith(f"#{launch.pk} approved smaller")
    text = messages[0].text()
    assert "smaller than you asked: 2 x m5.xlarge for 5 h" in text
    assert "It may cost at most $2.14" in text
    assert "Note from alice: try 2 first" in text


def test_the_requester_is_told_of_a_rejection(pools, spot_prices, alice_user, bob_user, mailbox):
    launch = spark(bob_user)
    services.reject(launch.pk, by=alice_user, note="the budget is spent — Jänner 😬")

    tasks.launch_requester_notify.apply(args=[launch.pk])

    message = mailbox.wait_for(1)[0]
    assert message.subject.endswith(f"#{launch.pk} rejected")
    assert "was rejected by alice" in message.text()
    assert "the budget is spent — Jänner 😬" in message.html()
    assert "the budget is spent — Jänner 😬" in message.text()


def test_the_requester_is_told_when_nobody_decided_in_time(pools, spot_prices, bob_user, mailbox):
    launch = spark(bob_user)
    asked = clock.now() - timedelta(hours=25)
    LaunchRequest.objects.filter(pk=launch.pk).update(created_at=asked, updated_at=asked)
    assert tasks.launch_expire.apply().get() == 1

    tasks.launch_requester_notify.apply(args=[launch.pk])

    message = mailbox.wait_for(1)[0]
    assert message.subject.endswith(f"#{launch.pk} expired without a decision")
    assert "no admin decided it in time" in message.text()


def test_a_request_the_policy_approved_sends_no_decision_mail(
    pools, spot_prices, alice_user, mailbox
):
    launch = spark(alice_user, count=1)

    tasks.launch_requester_notify.apply(args=[launch.pk])

    assert launch.state == "approved" and mailbox.messages == []


def test_a_mail_whose_task_was_lost_is_sent_by_the_expiry_sweep(
    pools,
    spot_prices,
    alice_user,
    bob_user,
    directory_server,
    mailbox,
    django_capture_on_commit_callbacks,
):
    """The tasks are enqueued after the commit; with the broker down then, the enqueue is only
    logged (clusterweb.tasking: "a sweeper re-enqueues what never started"). Here the test's
    transaction never commits, so every after-commit enqueue is lost the same way."""
    pending = spark(bob_user)
    decided = spark(bob_user)
    services.approve(decided.pk, by=alice_user, note="go")
    spark(alice_user, count=1)  # approved by the policy: nobody is mailed

    assert services.launch_notices_unsent() == ([pending.pk], [decided.pk])
    with django_capture_on_commit_callbacks() as sent:
        tasks.launch_expire.apply()
    assert len(sent) == 2  # the sweep enqueues both again

    tasks.launch_admins_notify.apply(args=[pending.pk])
    tasks.launch_requester_notify.apply(args=[decided.pk])
    messages = mailbox.wait_for(2)
    assert sorted(m.recipients[0] for m in messages) == ["alice@example.org", "bob@example.org"]
    assert services.launch_notices_unsent() == ([], [])  # told: not again


@pytest.mark.parametrize("refused", ["aaron\n@example.org", "zed\n@example.org"])
def test_admins_already_mailed_are_not_mailed_again_when_another_one_fails(
    pools, spot_prices, alice_user, erin_user, bob_user, mailbox, settings, refused
):
    """One review mail per admin: when one send fails (first or last) and two went out, the claim
    stays (that admin still has the badge and the Approvals page), so neither the task's retries
    nor the sweep's re-send (above) mail the two again and again. With the directory
    unreachable the admins are the database's."""
    settings.LDAP_URI = f"ldap://127.0.0.1:{free_port()}"
    person("zed", admin=True)
    User.objects.filter(username="zed").update(email=refused)  # Django refuses a newline
    launch = spark(bob_user)

    assert services.launch_admins_notify(request_id=launch.pk) == 2
    assert services.launch_admins_notify(request_id=launch.pk) == 0
    assert services.launch_notices_unsent() == ([], [])
    messages = mailbox.wait_for(2)
    assert sorted(m.recipients[0] for m in messages) == ["alice@example.org", "erin@example.org"]


def test_when_no_review_mail_goes_out_the_claim_is_given_back(
    pools, spot_prices, alice_user, bob_user, settings
):
    settings.LDAP_URI = f"ldap://127.0.0.1:{free_port()}"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    launch = spark(bob_user)

    with pytest.raises(TransientError):
        services.launch_admins_notify(request_id=launch.pk)

    assert LaunchRequest.objects.get(pk=launch.pk).admins_notified_at is None
    assert services.launch_notices_unsent() == ([launch.pk], [])  # the sweep sends it later


def test_the_approval_is_mailed_even_when_the_launch_has_already_begun(
    pools, spot_prices, alice_user, bob_user, mailbox
):
    """The approval enqueues the decision mail and the execution together: a worker may move the
    request to ``launching`` before the mail's task loads it. The approval is still the news."""
    launch = spark(bob_user)
    services.approve(launch.pk, by=alice_user, count=2, note="two first")
    services.transition(launch.pk, ["approved"], "launching")  # the execution's first step

    assert services.launch_notices_unsent() == ([], [launch.pk])
    tasks.launch_requester_notify.apply(args=[launch.pk])
    tasks.launch_requester_notify.apply(args=[launch.pk])  # told once

    messages = mailbox.wait_for(1)
    assert len(messages) == 1 and messages[0].subject.endswith(f"#{launch.pk} approved smaller")
    assert "Note from alice: two first" in messages[0].text()
    assert services.launch_notices_unsent() == ([], [])
    assert LaunchRequest.objects.get(pk=launch.pk).state == "launching"
