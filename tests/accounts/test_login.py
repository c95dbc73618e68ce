"""Logging in with the cluster's LDAP account, against a real slapd."""

import pytest
from django.urls import reverse

from clusterweb.accounts.models import LoginThrottle, User
from clusterweb.audit.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_alice_logs_in_and_sees_the_admin_navigation(client, directory_server, alice):
    response = login(client, alice.uid, alice.password)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    page = client.get(reverse("home"))
    assert page.status_code == 200
    assert b"admin" in page.content
    assert reverse("audit:list").encode() in page.content
    user = User.objects.get(username="alice")
    assert user.is_cluster_admin and user.is_collaborator
    assert user.email == "alice@example.org"
    assert AuditEvent.objects.filter(action="login.succeeded", actor_username="alice").exists()


def test_bob_logs_in_as_a_collaborator_without_admin_navigation(client, directory_server, bob):
    assert login(client, bob.uid, bob.password).status_code == 302
    page = client.get(reverse("home"))
    assert b"collaborator" in page.content
    assert reverse("audit:list").encode() not in page.content
    user = User.objects.get(username="bob")
    assert user.role == "collaborator"


def test_carol_in_no_group_is_told_she_has_no_access(client, directory_server, carol):
    response = login(client, carol.uid, carol.password)
    assert response.status_code == 200
    assert b"no access to Clusterweb" in response.content
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login.no_access", actor_username="carol").exists()
    # A right password for a user in no group is not a failed guess.
    assert not LoginThrottle.objects.filter(username="carol").exists()


@pytest.mark.parametrize("username", ["alice", "nobody-here"])
def test_a_wrong_password_or_unknown_user_is_refused_with_one_message(
    client, directory_server, username
):
    response = login(client, username, "not-the-password")
    assert response.status_code == 200
    assert b"Wrong username or password." in response.content
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login.failed", actor_username=username).exists()


@pytest.mark.parametrize("username", ["*)(uid=*))(|(uid=*", "*", "alice)(uid=*", "al*"])
def test_a_filter_injection_in_the_username_matches_nobody(
    client, directory_server, alice, username
):
    response = login(client, username, alice.password)
    assert response.status_code == 200
    assert b"Wrong username or password." in response.content
    assert "_auth_user_id" not in client.session


def test_with_the_directory_down_the_page_says_so_and_counts_nothing(
    client, directory_server, alice, settings
):
    directory_server.stop()
    for _ in range(settings.LOGIN_LOCKOUT_FAILURES + 2):
        response = login(client, alice.uid, "whatever")
        assert response.status_code == 503
        assert b"directory (LDAP) is unreachable" in response.content
    assert not LoginThrottle.objects.exists()
    directory_server.start()
    assert login(client, alice.uid, alice.password).status_code == 302


def test_the_break_glass_superuser_logs_in_while_the_directory_is_down(client, directory_server):
    User.objects.create_superuser("root-breakglass", "root@example.org", "glass-pw-123")
    directory_server.stop()
    response = login(client, "root-breakglass", "glass-pw-123")
    assert response.status_code == 302
    page = client.get(reverse("audit:list"))
    assert page.status_code == 200
    assert AuditEvent.objects.filter(action="login.break_glass").exists()


def test_a_directory_user_never_logs_in_with_a_local_password(client, directory_server, bob):
    user = User.objects.create_user("bob", "bob@example.org", "local-password")
    user.is_collaborator = True
    user.save()
    directory_server.stop()
    response = login(client, "bob", "local-password")
    assert response.status_code == 503
    assert "_auth_user_id" not in client.session


def test_repeated_failures_lock_the_username_even_for_the_right_password(
    client, directory_server, bob, settings, shared_clock
):
    for _ in range(settings.LOGIN_LOCKOUT_FAILURES):
        login(client, bob.uid, "guess")
    response = login(client, bob.uid, bob.password)
    assert response.status_code == 429
    assert b"locked" in response.content
    assert AuditEvent.objects.filter(action="login.locked", actor_username="bob").count() == 1
    # The lock is on the username (every client comes through the bastion's one address),
    # whatever its case.
    assert login(client, "BOB", bob.password).status_code == 429
    shared_clock.advance(settings.LOGIN_LOCKOUT_SECONDS + 1)
    assert login(client, bob.uid, bob.password).status_code == 302
    assert not LoginThrottle.objects.filter(username="bob").exists()


def test_failures_spread_beyond_the_window_do_not_lock(
    client, directory_server, bob, settings, shared_clock
):
    for _ in range(settings.LOGIN_LOCKOUT_FAILURES - 1):
        login(client, bob.uid, "guess")
    shared_clock.advance(settings.LOGIN_LOCKOUT_WINDOW_SECONDS + 1)
    login(client, bob.uid, "guess")
    assert login(client, bob.uid, bob.password).status_code == 302


def test_removal_from_users_ends_bobs_access_within_the_recheck_interval(
    client, directory_server, bob, settings, shared_clock
):
    assert login(client, bob.uid, bob.password).status_code == 302
    directory_server.group_member_remove("users", "bob")
    # Within the interval the session goes on: membership is not re-read on every click.
    assert client.get(reverse("home")).status_code == 200
    shared_clock.advance(settings.AUTH_RECHECK_SECONDS + 1)
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert User.objects.get(username="bob").role is None
    assert AuditEvent.objects.filter(action="session.access_revoked", actor_username="bob").exists()


def test_an_unreachable_directory_during_a_recheck_keeps_the_session(
    client, directory_server, bob, settings, shared_clock
):
    assert login(client, bob.uid, bob.password).status_code == 302
    directory_server.stop()
    shared_clock.advance(settings.AUTH_RECHECK_SECONDS + 1)
    assert client.get(reverse("home")).status_code == 200


def test_logout_needs_a_post_and_ends_the_session(client, directory_server, alice):
    login(client, alice.uid, alice.password)
    assert client.get(reverse("logout")).status_code == 200
    assert "_auth_user_id" in client.session
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_login_redirects_only_to_this_site(client, directory_server, alice):
    response = client.post(
        reverse("login") + "?next=https://evil.example/",
        {"username": alice.uid, "password": alice.password},
    )
    assert response["Location"] == reverse("home")
    client.post(reverse("logout"))
    response = client.post(
        reverse("login"), {"username": alice.uid, "password": alice.password, "next": "/audit/"}
    )
    assert response["Location"] == "/audit/"


def test_an_overlong_username_is_a_form_error_not_a_crash(client, directory_server):
    response = login(client, "a" * 5000, "x")
    assert response.status_code == 200
    assert b"at most 150 characters" in response.content
