"""The profile page: everyone logged in sees their directory account, changes their password and
manages their SSH keys. Against a real slapd: the directory is the only judge of a password."""

import ldap
import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse

from clusterweb.accounts.models import DirectoryUser, User
from clusterweb.accounts.ssh_keys import fingerprint
from clusterweb.audit.models import AuditEvent
from sandbox import directory
from tests.fixtures.accounts import key_add, mirror, stored_keys
from tests.fixtures.personas import logged_in_client
from tests.fixtures.signup import binds, public_key

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "quiet-lantern-river-73"
PROFILE = reverse("accounts:profile")


def change_password(client, old, new, again=None):
    return client.post(
        reverse("accounts:profile_password"),
        {"old_password": old, "new_password": new, "new_password_again": again or new},
    )


# --- What the page shows -------------------------------------------------------------------------
def test_the_profile_shows_bobs_account_from_the_directory_copy(as_bob, account_directory):
    mirror()
    page = as_bob.get(PROFILE)
    assert page.status_code == 200
    text = page.content.decode()
    for shown in ("bob", "Bob Collaborator", "bob@example.org", "<code>users</code>", "10002"):
        assert shown in text


def test_the_profile_reads_the_database_not_the_directory(as_bob, account_directory):
    mirror()
    account_directory.stop()
    page = as_bob.get(PROFILE)
    assert page.status_code == 200
    assert "Bob Collaborator" in page.content.decode()


def test_before_the_directory_was_read_the_profile_says_so(as_bob, account_directory):
    page = as_bob.get(PROFILE)
    assert page.status_code == 200
    assert 'id="not-synced"' in page.content.decode()


def test_a_login_refreshes_the_users_copy_of_the_directory(client, account_directory, bob):
    assert not DirectoryUser.objects.filter(uid="bob").exists()
    client.post(reverse("login"), {"username": "bob", "password": bob.password})
    assert DirectoryUser.objects.get(uid="bob").groups == ["users"]


def test_a_break_glass_superuser_is_told_there_is_no_directory_entry(client, account_directory):
    User.objects.create_superuser("root-local", "root@localhost", "a-local-password-9")
    client.post(reverse("login"), {"username": "root-local", "password": "a-local-password-9"})
    page = client.get(PROFILE)
    assert page.status_code == 200
    assert "no entry in the cluster's directory" in page.content.decode()
    assert 'name="old_password"' not in page.content.decode()


def test_the_profile_is_in_everyones_navigation(as_bob, account_directory):
    assert f'href="{PROFILE}"' in as_bob.get(reverse("home")).content.decode()


# --- Password ------------------------------------------------------------------------------------
def test_a_password_change_lets_bob_bind_with_the_new_password_and_not_the_old(
    as_bob, account_directory, bob
):
    response = change_password(as_bob, bob.password, NEW_PASSWORD)
    assert response.status_code == 302 and response["Location"] == PROFILE
    assert binds(account_directory, "bob", NEW_PASSWORD)
    assert not binds(account_directory, "bob", bob.password)
    # Written by the directory's password-modify operation: hashed with slapd's own scheme.
    conn = account_directory.admin()
    try:
        [(_, attrs)] = conn.search_s(bob.dn, ldap.SCOPE_BASE, attrlist=["userPassword"])
    finally:
        conn.unbind_s()
    assert attrs["userPassword"][0].startswith(b"{SSHA}")
    event = AuditEvent.objects.get(action="account.password_changed")
    assert event.actor_username == "bob" and NEW_PASSWORD not in str(event.detail)


def test_a_wrong_current_password_changes_nothing(as_bob, account_directory, bob):
    response = change_password(as_bob, "not-my-password", NEW_PASSWORD)
    assert response.status_code == 200
    assert "This is not your current password." in response.content.decode()
    assert binds(account_directory, "bob", bob.password)
    assert AuditEvent.objects.filter(action="account.password_change_refused").exists()


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("short-pw", "too short"),
        ("password1234", "too common"),
        ("123456789012345", "entirely numeric"),
        ("bob-collaborator", "too similar"),
    ],
)
def test_the_new_password_must_pass_djangos_validators(
    as_bob, account_directory, bob, new, message
):
    response = change_password(as_bob, bob.password, new)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert binds(account_directory, "bob", bob.password)


def test_the_two_copies_of_the_new_password_must_match(as_bob, account_directory, bob):
    response = change_password(as_bob, bob.password, NEW_PASSWORD, again=NEW_PASSWORD + "x")
    assert "The two passwords differ." in response.content.decode()
    assert binds(account_directory, "bob", bob.password)


def test_the_directorys_own_password_policy_has_the_last_word(as_bob, account_directory, bob):
    conn = account_directory.admin()
    policy = [
        (ldap.MOD_REPLACE, "pwdMinLength", [b"40"]),
        (ldap.MOD_REPLACE, "pwdCheckQuality", [b"2"]),
    ]
    conn.modify_s(directory.POLICY_DN, policy)
    try:
        response = change_password(as_bob, bob.password, NEW_PASSWORD)
    finally:
        conn.modify_s(
            directory.POLICY_DN,
            [(ldap.MOD_DELETE, "pwdMinLength", None), (ldap.MOD_DELETE, "pwdCheckQuality", None)],
        )
        conn.unbind_s()
    assert response.status_code == 200
    assert "The directory refused the new password" in response.content.decode()
    assert binds(account_directory, "bob", bob.password)


def test_a_password_change_ends_bobs_other_sessions_but_not_this_one(
    as_bob, account_directory, bob
):
    other = logged_in_client(bob)
    alice_session = logged_in_client(directory.BY_UID["alice"])
    change_password(as_bob, bob.password, NEW_PASSWORD)
    assert as_bob.get(PROFILE).status_code == 200
    assert other.get(PROFILE).status_code == 302  # to the login page
    assert alice_session.get(PROFILE).status_code == 200
    assert Session.objects.count() == 2


def test_password_changes_are_rate_limited_per_user(as_bob, account_directory, settings):
    settings.ACCOUNTS_ATTEMPT_LIMIT = 3
    for _ in range(3):
        assert change_password(as_bob, "wrong-guess", NEW_PASSWORD).status_code == 200
    response = change_password(as_bob, "wrong-guess", NEW_PASSWORD)
    assert response.status_code == 429
    assert "Too many password changes" in response.content.decode()


def test_with_the_directory_down_the_page_says_so_and_changes_nothing(
    as_bob, account_directory, bob
):
    account_directory.stop()
    response = change_password(as_bob, bob.password, NEW_PASSWORD)
    assert response.status_code == 503
    assert "cannot be reached" in response.content.decode()
    account_directory.start()
    assert binds(account_directory, "bob", bob.password)


# --- SSH keys ------------------------------------------------------------------------------------
def add_keys(client, text):
    return client.post(reverse("accounts:profile_key_add"), {"ssh_keys": text})


def remove_key(client, fp):
    return client.post(reverse("accounts:profile_key_remove"), {"fingerprint": fp})


def test_a_key_added_is_stored_in_the_directory_and_its_fingerprint_shown(
    as_bob, account_directory
):
    key = public_key(comment="bob@new-laptop")
    response = add_keys(as_bob, key)
    assert response.status_code == 302
    assert stored_keys(account_directory, "bob") == [key]
    page = as_bob.get(PROFILE).content.decode()
    assert fingerprint(key) in page and "bob@new-laptop" in page
    assert DirectoryUser.objects.get(uid="bob").ssh_keys == [key]
    event = AuditEvent.objects.get(action="account.ssh_key_added")
    assert event.detail["fingerprints"] == [fingerprint(key)]


def test_a_removed_key_is_gone_from_the_directory(as_bob, account_directory):
    old, new = public_key(comment="old"), public_key("ecdsa", comment="new")
    key_add(account_directory, "bob", old)
    assert add_keys(as_bob, new).status_code == 302
    response = remove_key(as_bob, fingerprint(old))
    assert response.status_code == 302
    assert stored_keys(account_directory, "bob") == [new]
    page = as_bob.get(PROFILE).content.decode()
    assert f"Removed the key {fingerprint(old)}" in page  # the message, once
    key_list = page.split('id="key-list"')[1].split("</table>")[0]
    assert fingerprint(old) not in key_list and fingerprint(new) in key_list
    assert AuditEvent.objects.filter(action="account.ssh_key_removed").exists()


def test_the_last_key_stays(as_bob, account_directory):
    only = public_key()
    key_add(account_directory, "bob", only)
    mirror()
    assert "your only key" in as_bob.get(PROFILE).content.decode()
    response = remove_key(as_bob, fingerprint(only))
    assert response.status_code == 200
    assert "This is your only SSH key" in response.content.decode()
    assert stored_keys(account_directory, "bob") == [only]


def test_a_key_on_the_account_already_is_refused(as_bob, account_directory):
    key = public_key()
    key_add(account_directory, "bob", key)
    response = add_keys(as_bob, key)
    assert "on your account already" in response.content.decode()
    assert stored_keys(account_directory, "bob") == [key]


def test_keys_are_checked_as_at_signup(as_bob, account_directory):
    response = add_keys(as_bob, public_key("rsa", bits=2048))
    assert "This RSA key has 2048 bits" in response.content.decode()
    response = add_keys(as_bob, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n")
    assert "Never share it" in response.content.decode()
    assert "b3BlbnNzaC1rZXktdjEA" not in response.content.decode()
    assert stored_keys(account_directory, "bob") == []


def test_an_account_holds_at_most_ten_keys(as_bob, account_directory):
    for n in range(10):
        key_add(account_directory, "bob", public_key(comment=f"k{n}"))
    response = add_keys(as_bob, public_key())
    assert "at most 10 keys" in response.content.decode()
    assert len(stored_keys(account_directory, "bob")) == 10


def test_removing_a_key_that_is_not_there_says_so(as_bob, account_directory):
    key_add(account_directory, "bob", public_key())
    key_add(account_directory, "bob", public_key())
    response = remove_key(as_bob, fingerprint(public_key()))
    assert response.status_code == 200
    assert "no key with this fingerprint" in response.content.decode()
    assert len(stored_keys(account_directory, "bob")) == 2
