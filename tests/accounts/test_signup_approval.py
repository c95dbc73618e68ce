"""Approving a signup writes a real LDAP account (against a real slapd), idempotently, with
distinct uidNumbers under concurrency, and survives a directory outage and crashes."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import ldap
import pytest
from django.db import connection
from django.urls import reverse

from clusterweb.accounts.models import Signup, SignupState
from clusterweb.accounts.signup import provisioning, services, tasks
from clusterweb.audit.models import AuditEvent
from sandbox import directory
from tests.fixtures.personas import user_for
from tests.fixtures.signup import (
    PASSWORD,
    binds,
    group_members,
    make_signup,
    people_entry,
    people_with_uid,
    public_key,
    site_switch,
)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db

FAILPOINTS = [
    "signup.before_uid_claim",
    "signup.after_uid_claim",
    "signup.after_uid_saved",
    "signup.after_entry_add",
    "signup.after_group_add",
    "signup.after_welcome_mail",
    "signup.after_activate",
]


def approve(signup, persona_user):
    return services.signup_approve(signup_id=signup.pk, actor=persona_user, source="cli")


def provision(signup) -> None:
    """What the worker does with the task (run here, in this process)."""
    tasks.signup_provision.apply(args=[signup.pk])


def lock_entries(server) -> list[str]:
    conn = server.admin()
    try:
        found = conn.search_s(directory.UIDNUMBERS_DN, ldap.SCOPE_ONELEVEL, "(cn=*)", ["cn"])
        return sorted(v.decode() for _, attrs in found for v in attrs["cn"])
    finally:
        conn.unbind_s()


@pytest.mark.parametrize("scheme", ["ARGON2", "SSHA512"])
def test_approval_writes_an_account_whose_password_binds_and_key_is_stored(
    signup_directory, mailbox, alice, settings, scheme
):
    settings.SIGNUP_PASSWORD_SCHEME = scheme
    settings.BASTION_HOST = "bastion.example.net"
    key = public_key(comment="dave@laptop")
    signup = make_signup(keys=[key], scheme=scheme)
    assert signup.password_hash.startswith(f"{{{scheme}}}")

    approve(signup, user_for(alice))
    provision(signup)

    signup.refresh_from_db()
    assert signup.state == SignupState.ACTIVE
    assert signup.password_hash == ""  # the directory has it now; the database forgets it
    entry = people_entry(signup_directory, "dave")
    assert {v.decode() for v in entry["objectClass"]} >= {
        "inetOrgPerson",
        "posixAccount",
        "shadowAccount",
        "ldapPublicKey",
    }
    assert entry["cn"] == [b"Dave Newcomer"]
    assert entry["givenName"] == [b"Dave"] and entry["sn"] == [b"Newcomer"]
    assert entry["mail"] == [b"dave@example.org"]
    # Above the directory's highest (the personas end at 10003).
    assert entry["uidNumber"] == [b"10004"] and signup.uid_number == 10004
    assert entry["gidNumber"] == [str(directory.USERS_GID).encode()]
    assert entry["homeDirectory"] == [b"/home/dave"]
    assert entry["loginShell"] == [b"/bin/bash"]
    assert entry["sshPublicKey"] == [key.encode()]
    assert "dave" in group_members(signup_directory, "users")
    assert binds(signup_directory, "dave", PASSWORD)
    assert not binds(signup_directory, "dave", PASSWORD + "x")

    welcome = [m for m in mailbox.wait_for(1) if m.recipients == ["dave@example.org"]]
    assert len(welcome) == 1
    assert "ssh -p 22 dave@bastion.example.net" in welcome[0].text()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"signup.approved", "signup.entry_added", "signup.activated"} <= actions


def test_the_new_collaborator_logs_in_to_the_dashboard_as_a_collaborator(
    client, signup_directory, alice
):
    signup = make_signup()
    approve(signup, user_for(alice))
    provision(signup)
    response = client.post(reverse("login"), {"username": "dave", "password": PASSWORD})
    assert response.status_code == 302
    page = client.get(reverse("home"))
    assert b"collaborator" in page.content
    assert reverse("accounts:users").encode() not in page.content


def test_a_rejected_signup_is_told_why_and_gets_no_account(signup_directory, mailbox, alice):
    signup = make_signup()
    services.signup_reject(
        signup_id=signup.pk, actor=user_for(alice), reason="Please use your work address."
    )
    tasks.signup_rejection_notify.apply(args=[signup.pk])
    tasks.signup_rejection_notify.apply(args=[signup.pk])  # a second run sends nothing

    signup.refresh_from_db()
    assert signup.state == SignupState.REJECTED and signup.password_hash == ""
    messages = mailbox.wait_for(1)
    assert len(messages) == 1 and messages[0].recipients == ["dave@example.org"]
    assert "Please use your work address." in messages[0].text()
    assert people_entry(signup_directory, "dave") is None
    with pytest.raises(services.SignupStateError):
        approve(signup, user_for(alice))


def test_only_admins_approve_or_reject(signup_directory, bob):
    signup = make_signup()
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        approve(signup, user_for(bob))
    with pytest.raises(PermissionDenied):
        services.signup_reject(signup_id=signup.pk, actor=user_for(bob))
    assert Signup.objects.get(pk=signup.pk).state == SignupState.PENDING_APPROVAL


def test_a_submitted_signup_is_put_before_every_admin_by_email(signup_directory, mailbox):
    signup = make_signup(SignupState.SUBMITTED)
    tasks.signup_review.apply(args=[signup.pk])
    tasks.signup_review.apply(args=[signup.pk])  # safe twice: one mail per admin

    signup.refresh_from_db()
    assert signup.state == SignupState.PENDING_APPROVAL
    messages = mailbox.wait_for(1)
    assert [m.recipients for m in messages] == [["alice@example.org"]]
    body = messages[0].html()
    assert f"/users/signups/{signup.pk}/#approve" in body and "Reject" in body
    assert signup.fingerprints[0] in messages[0].text()


def test_with_auto_approval_an_admins_invitation_is_approved_at_once(
    signup_directory, mailbox, settings
):
    settings.SIGNUP_AUTO_APPROVE = True
    signup = make_signup(SignupState.SUBMITTED)
    tasks.signup_review.apply(args=[signup.pk])
    signup.refresh_from_db()
    assert signup.state == SignupState.PROVISIONING
    assert signup.auto_approved and signup.decided_by_username == "alice"


def test_auto_approval_does_not_trust_an_inviter_who_is_no_longer_admin(
    signup_directory, mailbox, settings
):
    settings.SIGNUP_AUTO_APPROVE = True
    signup = make_signup(SignupState.SUBMITTED)
    signup_directory.group_member_remove("admins", "alice")
    tasks.signup_review.apply(args=[signup.pk])
    signup.refresh_from_db()
    assert signup.state == SignupState.PENDING_APPROVAL


@pytest.mark.sqlite
def test_the_provisioning_claim_is_one_conditional_update_with_a_lease(shared_clock):
    signup = make_signup(SignupState.PROVISIONING)
    assert provisioning.signup_provision_claim(signup_id=signup.pk) is not None
    assert provisioning.signup_provision_claim(signup_id=signup.pk) is None  # another worker has it
    shared_clock.advance(provisioning.PROVISION_LEASE_SECONDS + 1)
    claimed = provisioning.signup_provision_claim(signup_id=signup.pk)
    assert claimed is not None and claimed.attempts == 2
    pending = make_signup(SignupState.PENDING_APPROVAL, username="erin")
    assert provisioning.signup_provision_claim(signup_id=pending.pk) is None


def test_the_allocator_skips_a_number_someone_else_claimed(signup_directory, alice):
    conn = signup_directory.admin()
    try:
        conn.add_s(
            f"cn=10004,{directory.UIDNUMBERS_DN}",
            [
                ("objectClass", [b"organizationalRole"]),
                ("cn", [b"10004"]),
                ("roleOccupant", [f"uid=someone,{directory.PEOPLE_DN}".encode()]),
            ],
        )
    finally:
        conn.unbind_s()
    signup = make_signup()
    approve(signup, user_for(alice))
    provision(signup)
    signup.refresh_from_db()
    assert signup.uid_number == 10005


@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
def test_two_approvals_at_once_get_distinct_uid_numbers(signup_directory, failpoints):
    # Both allocators read the same highest uidNumber before either claims: the directory's
    # refusal of a second cn=NUMBER entry decides who gets it.
    failpoints.arm("signup.before_uid_claim", "sleep:0.3")
    # Approved (written directly: an approval here would also queue the task for any worker
    # still running from another test).
    signups = [make_signup(SignupState.PROVISIONING, username=n) for n in ("dave", "erin")]
    errors = []

    def run(pk):
        try:
            tasks.signup_provision.apply(args=[pk], throw=True)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(s.pk,)) for s in signups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    numbers = sorted(Signup.objects.values_list("uid_number", flat=True))
    assert numbers == [10004, 10005]
    entries = [people_entry(signup_directory, name)["uidNumber"] for name in ("dave", "erin")]
    assert sorted(entries) == [[b"10004"], [b"10005"]]
    assert lock_entries(signup_directory) == ["10004", "10005"]


@pytest.mark.parametrize("point", FAILPOINTS)
def test_a_failure_at_each_step_then_a_retry_ends_with_exactly_one_account(
    signup_directory, mailbox, alice, failpoints, point
):
    signup = make_signup()
    approve(signup, user_for(alice))
    failpoints.arm(point, "raise")
    provision(signup)
    signup.refresh_from_db()
    if point != "signup.after_activate":
        assert signup.state == SignupState.PROVISIONING
        assert "FailpointError" in signup.last_error
        assert signup.claimed_until is None  # released for the retry

    failpoints.clear()
    provision(signup)
    provision(signup)

    signup.refresh_from_db()
    assert signup.state == SignupState.ACTIVE
    assert people_with_uid(signup_directory, "dave") == 1
    assert group_members(signup_directory, "users").count("dave") == 1
    assert lock_entries(signup_directory) == [str(signup.uid_number)]
    assert people_entry(signup_directory, "dave")["uidNumber"] == [str(signup.uid_number).encode()]
    assert binds(signup_directory, "dave", PASSWORD)
    welcomes = len(mailbox.wait_for(1))
    # The welcome is sent at least once: a failure between sending it and recording it sends
    # it again, rather than risk never sending it.
    assert welcomes == (2 if point == "signup.after_welcome_mail" else 1)


@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("point", ["signup.after_uid_claim", "signup.after_entry_add"])
def test_a_worker_killed_mid_approval_recovers_to_one_account(
    signup_directory, mailbox, failpoints, shared_clock, point
):
    signup = make_signup(SignupState.PROVISIONING)  # approved (see the test above)
    failpoints.arm(point, "crash")
    code = (
        "import django; django.setup()\n"
        "from clusterweb.accounts.signup.tasks import signup_provision\n"
        f"signup_provision.apply(args=[{signup.pk}])\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 70, result.stderr.decode()[-2000:]
    failpoints.clear()
    # The dead worker still holds the lease: nobody else runs it until the lease lapses.
    provision(signup)
    assert Signup.objects.get(pk=signup.pk).state == SignupState.PROVISIONING
    shared_clock.advance(provisioning.PROVISION_LEASE_SECONDS + 1)
    provision(signup)
    signup.refresh_from_db()
    assert signup.state == SignupState.ACTIVE
    assert people_with_uid(signup_directory, "dave") == 1
    assert lock_entries(signup_directory) == [str(signup.uid_number)]


def _database_url() -> str:
    from tests.fixtures.signup import _database_url as url

    return url()


def test_a_username_taken_in_the_directory_meanwhile_rejects_the_signup(
    signup_directory, mailbox, alice
):
    signup = make_signup(username="bob")  # as if bob had been created by hand after the form
    approve(signup, user_for(alice))
    provision(signup)
    signup.refresh_from_db()
    assert signup.state == SignupState.REJECTED
    assert "taken" in signup.reason
    assert people_entry(signup_directory, "bob")["uidNumber"] == [b"10002"]  # untouched


@pytest.mark.django_db(transaction=True)
def test_with_the_directory_down_an_approval_is_kept_retried_and_finished(
    signup_directory, celery_worker, mailbox, alice, as_alice
):
    signup = make_signup()
    signup_directory.stop()
    approve(signup, user_for(alice))

    deadline = time.monotonic() + 20
    while Signup.objects.get(pk=signup.pk).attempts < 2:
        assert time.monotonic() < deadline, celery_worker.log_tail()
        time.sleep(0.1)
    signup.refresh_from_db()
    assert signup.state == SignupState.PROVISIONING
    assert "ldap" in signup.last_error
    page = as_alice.get(reverse("accounts:users")).content.decode()
    assert "Waiting to retry" in page

    signup_directory.start()
    deadline = time.monotonic() + 30
    while Signup.objects.get(pk=signup.pk).state != SignupState.ACTIVE:
        assert time.monotonic() < deadline, celery_worker.log_tail()
        time.sleep(0.1)
    assert binds(signup_directory, "dave", PASSWORD)
    assert AuditEvent.objects.filter(action="signup.provisioning_retry").count() >= 2


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_sends_a_stuck_approval_to_a_worker_again(
    signup_directory, celery_worker, mailbox, alice
):
    # Approved while Redis was down: the row says provisioning, but no task was ever queued.
    signup = make_signup(SignupState.PROVISIONING)
    counts = services.signups_sweep()
    assert counts["provision"] == 1
    deadline = time.monotonic() + 20
    while Signup.objects.get(pk=signup.pk).state != SignupState.ACTIVE:
        assert time.monotonic() < deadline, celery_worker.log_tail()
        time.sleep(0.1)
    assert people_with_uid(signup_directory, "dave") == 1


def test_from_the_invitation_email_to_the_first_dashboard_login(
    signup_directory, mailbox, settings, as_alice
):
    """The whole way in with Django's test client (the browser walk does it in Chromium)."""
    import re

    from django.test import Client

    as_alice.post(reverse("accounts:invite"), {"email": "dave@example.org"})
    [invitation] = mailbox.wait_for(1)
    link = re.search(r"http://127.0.0.1:8001(/invitation/\?token=\S+)", invitation.text())[1]

    site_switch(settings, "signup")
    newcomer = Client()
    assert newcomer.get(link).status_code == 302
    key = public_key()
    form = {
        "username": "dave",
        "full_name": "Dave Newcomer",
        "password": PASSWORD,
        "password_again": PASSWORD,
        "ssh_keys": key,
    }
    assert newcomer.post("/join/", form).status_code == 302
    signup = Signup.objects.get(username="dave")
    tasks.signup_review.apply(args=[signup.pk])  # what the worker does after the commit

    site_switch(settings, "web")  # back on the dashboard
    as_alice.post(reverse("accounts:signup_approve", args=[signup.pk]))
    provision(signup)

    entry = people_entry(signup_directory, "dave")
    assert entry["sshPublicKey"] == [key.encode()]
    assert "dave" in group_members(signup_directory, "users")
    assert binds(signup_directory, "dave", PASSWORD)
    dave = Client()
    assert (
        dave.post(reverse("login"), {"username": "dave", "password": PASSWORD}).status_code == 302
    )
    assert b"collaborator" in dave.get(reverse("home")).content


def test_ldap_metacharacters_in_a_key_comment_are_stored_as_plain_text(signup_directory, alice):
    key = public_key(comment='dave*)(uid=*\\,cn=x+y<z>;"#')
    signup = make_signup(keys=[key])
    approve(signup, user_for(alice))
    provision(signup)
    assert people_entry(signup_directory, "dave")["sshPublicKey"] == [key.encode()]
    assert people_with_uid(signup_directory, "dave") == 1
