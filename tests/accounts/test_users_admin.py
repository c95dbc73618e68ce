"""The Users page's directory accounts (admins): who has access, and taking it away at once.
Disable locks the account with the ppolicy overlay and removes it from the role groups; Enable
gives both back. Against a real slapd."""

import ldap
import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse

from clusterweb import clock
from clusterweb.accounts.directory import services as account_services
from clusterweb.accounts.login import services
from clusterweb.accounts.models import DirectoryUser, DisabledAccount, SignupState, User
from clusterweb.audit.models import AuditEvent
from clusterweb.health.models import Heartbeat
from sandbox import directory
from tests.fixtures.accounts import is_locked, key_add, mirror, stored_keys
from tests.fixtures.personas import logged_in_client, user_for
from tests.fixtures.signup import binds, group_members, make_signup, public_key

pytestmark = pytest.mark.django_db

USERS = reverse("accounts:users")


def url(action, uid):
    return reverse(f"accounts:user_{action}", kwargs={"uid": uid})


def alice_user():
    return user_for(directory.BY_UID["alice"])


def row(page, uid) -> str:
    return page.content.decode().split(f'id="account-{uid}"')[1].split("</tr>")[0]


# --- The page ------------------------------------------------------------------------------------
def test_the_users_page_lists_every_directory_user_with_groups_state_and_last_login(
    as_alice, account_directory, bob
):
    mirror()
    client = logged_in_client(bob)  # bob's dashboard login
    User.objects.filter(username="bob").update(last_login=clock.now())
    client.get("/")
    page = as_alice.get(USERS)
    assert page.status_code == 200
    assert "admins</code>, <code>users" in row(page, "alice")
    bob_row = row(page, "bob")
    assert "<code>users</code>" in bob_row and "state-active" in bob_row
    assert "never" not in bob_row
    carol_row = row(page, "carol")
    assert "state-no_access" in carol_row and "never" in carol_row


def test_running_nodes_are_counted_per_owner_from_the_node_inventory(as_alice, account_directory):
    from provisioning.models import Node

    now = clock.now()
    for n, state in enumerate(["running", "running", "terminated"]):
        Node.objects.create(
            instance_id=f"i-0000{n}",
            instance_type="t2.xlarge",
            capacity_type="spot",
            state=state,
            owner="bob",
            launched_at=now,
            first_seen_at=now,
        )
    mirror()
    assert '<td class="num">2</td>' in row(as_alice.get(USERS), "bob")
    assert '<td class="num">0</td>' in row(as_alice.get(USERS), "carol")


def test_the_users_page_reads_the_database_not_the_directory(as_alice, account_directory):
    mirror()
    account_directory.stop()
    page = as_alice.get(USERS)
    assert page.status_code == 200
    assert 'id="account-bob"' in page.content.decode()


def test_read_now_copies_changes_made_elsewhere_in_the_directory(as_alice, account_directory):
    mirror()
    account_directory.group_member_add("admins", "bob")
    response = as_alice.post(reverse("accounts:users_sync"))
    assert response.status_code == 302
    assert DirectoryUser.objects.get(uid="bob").groups == ["admins", "users"]


def test_the_directory_sync_job_records_its_heartbeat_and_forgets_people_who_left(
    account_directory,
):
    from clusterweb.accounts.directory import tasks

    DirectoryUser.objects.create(uid="gone", synced_at=clock.now())
    counts = tasks.directory_sync()
    assert counts["people"] == 3 and counts["removed"] == 1
    assert sorted(DirectoryUser.objects.values_list("uid", flat=True)) == ["alice", "bob", "carol"]
    assert Heartbeat.objects.get(name="directory-sync").last_ok_at is not None


def test_the_sync_is_in_the_beat_schedule(settings):
    from clusterweb.celery import beat_schedule

    entry = beat_schedule()["directory-sync"]
    assert entry["task"] == "clusterweb.accounts.tasks.directory_sync"
    assert entry["schedule"] == settings.DIRECTORY_SYNC_SECONDS


# --- Disable and enable --------------------------------------------------------------------------
def test_each_action_asks_for_confirmation_first(as_alice, account_directory):
    mirror()
    page = as_alice.get(url("disable", "bob"))
    assert page.status_code == 200
    assert "loses every access at once" in page.content.decode()
    assert not is_locked(account_directory, "bob")


def test_disable_locks_bob_out_of_binds_groups_keys_and_his_dashboard_sessions(
    as_alice, account_directory, bob
):
    key_add(account_directory, "bob", public_key())
    mirror()
    bob_session = logged_in_client(bob)
    assert bob_session.get("/profile/").status_code == 200
    signup = make_signup(SignupState.ACTIVE, username="bob", email="bob@example.org")

    response = as_alice.post(url("disable", "bob"), {"reason": "collaboration ended"})
    assert response.status_code == 302

    assert is_locked(account_directory, "bob")
    assert not binds(account_directory, "bob", bob.password)
    assert "bob" not in group_members(account_directory, "users")
    assert stored_keys(account_directory, "bob")  # kept, but the bastion gives none of them
    assert DisabledAccount.objects.get(uid="bob").groups == ["users"]
    # His session row is gone, and his next request finds no session.
    assert bob_session.get("/profile/").status_code == 302
    assert not User.objects.get(username="bob").is_collaborator
    signup.refresh_from_db()
    assert signup.state == SignupState.DISABLED
    page = as_alice.get(USERS)
    assert "state-disabled" in row(page, "bob") and "collaboration ended" in row(page, "bob")
    event = AuditEvent.objects.get(action="account.disabled")
    assert event.actor_username == "alice" and event.target == "bob"
    assert event.detail["sessions_ended"] == 1


def test_a_disabled_user_cannot_log_in_to_the_dashboard(client, account_directory, bob):
    account_services.account_disable(uid="bob", actor=alice_user(), source="cli")
    response = client.post(reverse("login"), {"username": "bob", "password": bob.password})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_a_disabled_account_put_back_in_a_group_by_hand_still_has_no_role(account_directory, bob):
    bob_user = user_for(bob)
    account_services.account_disable(uid="bob", actor=alice_user(), source="cli")
    account_directory.group_member_add("users", "bob")
    user = services.user_membership_refresh(user=bob_user)
    assert user.role is None


def test_enable_gives_bob_his_groups_and_his_password_back(as_alice, account_directory, bob):
    mirror()
    as_alice.post(url("disable", "bob"))
    response = as_alice.post(url("enable", "bob"))
    assert response.status_code == 302
    assert not is_locked(account_directory, "bob")
    assert binds(account_directory, "bob", bob.password)
    assert "bob" in group_members(account_directory, "users")
    assert not DisabledAccount.objects.exists()
    assert "state-active" in row(as_alice.get(USERS), "bob")
    assert AuditEvent.objects.filter(action="account.enabled", target="bob").exists()
    client = logged_in_client(bob)
    assert client.get("/").status_code == 200


def test_an_admin_disabled_and_enabled_is_an_admin_again(account_directory, bob):
    user_for(bob)
    alice = alice_user()
    account_services.account_promote(uid="bob", actor=alice, source="cli")
    account_services.account_disable(uid="bob", actor=alice, source="cli")
    assert DisabledAccount.objects.get(uid="bob").groups == ["users", "admins"]
    assert "bob" not in group_members(account_directory, "admins")
    account_services.account_enable(uid="bob", actor=alice, source="cli")
    assert "bob" in group_members(account_directory, "admins")
    assert "bob" in group_members(account_directory, "users")
    assert User.objects.get(username="bob").is_cluster_admin


def test_disable_run_again_after_a_partial_failure_finishes_and_remembers_the_groups(
    account_directory,
):
    alice = alice_user()
    # A first attempt locked bob but died before taking him out of the users group.
    DisabledAccount.objects.create(uid="bob", groups=["users"], disabled_at=clock.now())
    conn = account_directory.admin()
    conn.modify_s(
        directory.BY_UID["bob"].dn,
        [(ldap.MOD_REPLACE, "pwdAccountLockedTime", [b"000001010000Z"])],
    )
    conn.unbind_s()
    account_services.account_disable(uid="bob", actor=alice, source="cli")
    assert "bob" not in group_members(account_directory, "users")
    account_services.account_enable(uid="bob", actor=alice, source="cli")
    assert "bob" in group_members(account_directory, "users")


def test_enabling_an_account_that_is_not_disabled_is_refused(account_directory):
    with pytest.raises(account_services.AccountStateError, match="not disabled"):
        account_services.account_enable(uid="carol", actor=alice_user(), source="cli")
    assert "carol" not in group_members(account_directory, "users")


def test_an_admin_cannot_disable_themselves(as_alice, account_directory):
    mirror()
    account_directory.group_member_add("admins", "bob")
    response = as_alice.post(url("disable", "alice"), follow=True)
    assert "You cannot disable your own account" in response.content.decode()
    assert not is_locked(account_directory, "alice")


def test_the_last_active_admin_can_be_neither_disabled_nor_demoted(as_alice, account_directory):
    mirror()
    response = as_alice.post(url("demote", "alice"), follow=True)
    assert "last active admin" in response.content.decode()
    assert "alice" in group_members(account_directory, "admins")
    # bob, an admin whose account is locked, does not count.
    account_directory.group_member_add("admins", "bob")
    conn = account_directory.admin()
    conn.modify_s(
        directory.BY_UID["bob"].dn,
        [(ldap.MOD_REPLACE, "pwdAccountLockedTime", [b"000001010000Z"])],
    )
    conn.unbind_s()
    with pytest.raises(account_services.AccountStateError, match="last active admin"):
        account_services.account_demote(uid="alice", actor=alice_user(), source="cli")


# --- Promote and demote --------------------------------------------------------------------------
def test_promote_makes_bob_an_admin_and_demote_takes_it_back(as_alice, account_directory, bob):
    mirror()
    bob_session = logged_in_client(bob)
    assert bob_session.get(USERS).status_code == 403
    assert as_alice.post(url("promote", "bob")).status_code == 302
    assert "bob" in group_members(account_directory, "admins")
    assert bob_session.get(USERS).status_code == 200  # at once, not at the next re-check
    assert as_alice.post(url("demote", "bob")).status_code == 302
    assert "bob" not in group_members(account_directory, "admins")
    assert bob_session.get(USERS).status_code == 403
    actions = AuditEvent.objects.filter(target="bob").values_list("action", flat=True)
    assert {"account.promoted", "account.demoted"} <= set(actions)


def test_an_admin_may_demote_themselves_while_another_admin_remains(as_alice, account_directory):
    mirror()
    account_services.account_promote(uid="bob", actor=alice_user(), source="cli")
    response = as_alice.post(url("demote", "alice"))
    assert response.status_code == 302 and response["Location"] == "/"
    assert as_alice.get(USERS).status_code == 403


def test_a_reset_link_is_sent_from_the_users_page(as_alice, account_directory, mailoutbox):
    mirror()
    response = as_alice.post(url("reset_link", "bob"), follow=True)
    assert "Reset link sent to bob at bob@example.org" in response.content.decode()
    [message] = mailoutbox
    assert message.to == ["bob@example.org"] and "/reset/?token=" in message.body


def test_a_collaborator_may_do_none_of_this(as_bob, account_directory):
    mirror()
    for action in ("disable", "enable", "promote", "demote", "reset_link"):
        assert as_bob.post(url(action, "carol")).status_code == 403
    assert Session.objects.count() == 1
    assert not is_locked(account_directory, "carol")


def test_an_unknown_user_is_not_found(as_alice, account_directory):
    mirror()
    assert as_alice.get(url("disable", "nobody")).status_code == 404
    assert as_alice.post(url("disable", "*")).status_code == 404
    for hostile in ("%00", "bob%00", "b%2A", "x" * 300):
        assert as_alice.get(f"/users/people/{hostile}/disable/").status_code == 404
