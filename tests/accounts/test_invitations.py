"""Admins invite collaborators from the Users page; the invitation email holds a one-time link
to the signup site and the tunnel command that reaches it. Against a real SMTP sink."""

import hashlib
import re

import pytest
from django.test import Client
from django.urls import reverse

from clusterweb.accounts.models import Signup, SignupState
from clusterweb.accounts.signup import services
from clusterweb.audit.models import AuditEvent
from sandbox.services.base import free_port
from tests.fixtures.personas import user_for
from tests.fixtures.signup import invitation, make_signup, site_switch, token_from

pytestmark = pytest.mark.django_db


def link_in(message) -> str:
    return re.search(r"(http://\S+/invitation/\?token=[A-Za-z0-9_-]+)", message.text()).group(1)


def test_alice_invites_an_address_and_the_mail_holds_the_link_and_the_tunnel(
    as_alice, mailbox, settings
):
    settings.BASTION_HOST = "bastion.example.net"
    settings.BASTION_PORT = 2222
    settings.SIGNUP_HOST = "10.0.1.5"
    settings.SIGNUP_BASE_URL = "http://127.0.0.1:8001"
    response = as_alice.post(reverse("accounts:invite"), {"email": "dave@example.org"})
    assert response.status_code == 302
    assert "Invitation sent to dave@example.org" in as_alice.get(response["Location"]).text

    [message] = mailbox.wait_for(1)
    assert message.recipients == ["dave@example.org"]
    text = message.text()
    assert "ssh -N -L 8001:10.0.1.5:8001 -p 2222 join@bastion.example.net" in text
    link = link_in(message)
    assert link.startswith("http://127.0.0.1:8001/invitation/?token=")
    assert link in message.html()

    signup = Signup.objects.get(email="dave@example.org")
    assert signup.state == SignupState.INVITED
    assert signup.invited_by_username == "alice"
    assert signup.sent_at is not None and signup.send_count == 1
    assert (signup.expires_at - signup.invited_at).total_seconds() == 72 * 3600
    assert AuditEvent.objects.filter(action="signup.invited", actor_username="alice").exists()


def test_only_a_hash_of_the_random_token_is_stored(db, alice):
    signup, token = invitation()
    assert len(token) >= 43  # 32 random bytes
    assert signup.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(list(Signup.objects.values()))
    _, other = invitation("erin@example.org")
    assert other != token


def test_days_set_how_long_the_link_stays_valid(as_alice, mailbox):
    as_alice.post(reverse("accounts:invite"), {"email": "dave@example.org", "days": "7"})
    signup = Signup.objects.get()
    assert (signup.expires_at - signup.invited_at).days == 7


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-address"}, "Enter a valid email address."),
        ({"email": "dave@example.org", "days": "90"}, "less than or equal to 30"),
    ],
)
def test_bad_input_is_shown_on_the_form(as_alice, data, message):
    response = as_alice.post(reverse("accounts:invite"), data)
    assert response.status_code == 200
    assert message in response.text
    assert not Signup.objects.exists()


def test_an_address_with_an_open_invitation_is_not_invited_twice(as_alice, mailbox):
    invitation()
    response = as_alice.post(reverse("accounts:invite"), {"email": "DAVE@example.org"})
    assert response.status_code == 200
    assert "already has an open invitation" in response.text
    assert Signup.objects.count() == 1


def test_revoking_an_invitation_kills_its_link(as_alice, client, signup_site_settings):
    signup, token = invitation()
    response = as_alice.post(reverse("accounts:invitation_revoke", args=[signup.pk]))
    assert response.status_code == 302
    signup.refresh_from_db()
    assert signup.state == SignupState.EXPIRED and signup.revoked_at is not None
    signup_site_settings()
    assert client.get("/invitation/", {"token": token}).status_code == 410
    assert AuditEvent.objects.filter(action="signup.invitation_revoked").exists()


def test_resending_makes_a_fresh_link_and_the_old_one_stops_working(
    alice, client, mailbox, shared_clock, signup_site_settings
):
    from tests.fixtures.personas import logged_in_client

    signup, old = invitation()
    shared_clock.advance(80 * 3600)  # expired meanwhile
    services.signups_sweep()
    assert Signup.objects.get(pk=signup.pk).state == SignupState.EXPIRED
    mailbox.clear()
    as_alice = logged_in_client(alice)
    as_alice.post(reverse("accounts:invitation_resend", args=[signup.pk]))
    [message] = mailbox.wait_for(1)
    new = token_from(link_in(message))
    assert new != old
    signup.refresh_from_db()
    assert signup.state == SignupState.INVITED and signup.send_count == 2
    signup_site_settings()
    assert client.get("/invitation/", {"token": old}).status_code == 404
    assert client.get("/invitation/", {"token": new}).status_code == 302


def test_a_used_invitation_cannot_be_resent_or_revoked(as_alice):
    signup = make_signup(SignupState.PENDING_APPROVAL)
    for name in ("accounts:invitation_resend", "accounts:invitation_revoke"):
        response = as_alice.post(reverse(name, args=[signup.pk]), follow=True)
        assert "only an unused invitation" in response.text
    assert Signup.objects.get(pk=signup.pk).state == SignupState.PENDING_APPROVAL


def test_the_sweeper_expires_invitations_past_their_time(db, shared_clock, settings):
    signup, _ = invitation()
    shared_clock.advance(settings.SIGNUP_INVITATION_HOURS * 3600 - 60)
    assert services.signups_sweep()["expired"] == 0
    shared_clock.advance(120)
    assert services.signups_sweep()["expired"] == 1
    assert Signup.objects.get(pk=signup.pk).state == SignupState.EXPIRED


def test_when_mail_fails_the_invitation_is_kept_and_the_admin_is_told(as_alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_PORT = free_port()  # nothing listens there
    response = as_alice.post(reverse("accounts:invite"), {"email": "dave@example.org"}, follow=True)
    assert "could not be sent" in response.text
    signup = Signup.objects.get()
    assert signup.state == SignupState.INVITED and signup.sent_at is None
    assert "not sent" in as_alice.get(reverse("accounts:users")).text
    assert AuditEvent.objects.filter(action="signup.invitation_mail_failed").exists()


def test_the_users_page_lists_pending_signups_and_open_invitations(as_alice):
    pending = make_signup(SignupState.PENDING_APPROVAL, username="dave")
    invited, _ = invitation("erin@example.org")
    page = as_alice.get(reverse("accounts:users")).text
    assert f'id="signup-{pending.pk}"' in page and pending.fingerprints[0] in page
    assert f'id="invitation-{invited.pk}"' in page and "erin@example.org" in page
    assert reverse("accounts:signup_approve", args=[pending.pk]) in page
    assert reverse("accounts:signup_reject", args=[pending.pk]) in page


def test_approve_and_reject_from_the_page(as_alice, mailbox):
    dave = make_signup(username="dave")
    erin = make_signup(username="erin")
    response = as_alice.post(reverse("accounts:signup_approve", args=[dave.pk]), follow=True)
    assert "Approved dave" in response.text
    as_alice.post(reverse("accounts:signup_reject", args=[erin.pk]), {"reason": "Unknown"})
    assert Signup.objects.get(pk=dave.pk).state == SignupState.PROVISIONING
    erin.refresh_from_db()
    assert erin.state == SignupState.REJECTED and erin.reason == "Unknown"
    # Deciding twice is refused with a message, not an error page.
    again = as_alice.post(reverse("accounts:signup_approve", args=[erin.pk]), follow=True)
    assert again.status_code == 200 and "only a signup waiting for a decision" in again.text


def test_the_signup_page_shows_the_decision_forms_and_polls_while_provisioning(as_alice):
    signup = make_signup(username="dave")
    page = as_alice.get(reverse("accounts:signup_detail", args=[signup.pk])).text
    assert 'id="approve"' in page and 'id="reject"' in page
    services.signup_approve(signup_id=signup.pk, actor=user_for_alice())
    url = reverse("accounts:signup_detail", args=[signup.pk])
    assert 'hx-trigger="every 2s"' in as_alice.get(url).text
    fragment = as_alice.get(url, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    Signup.objects.filter(pk=signup.pk).update(state=SignupState.ACTIVE)
    assert as_alice.get(url, HTTP_HX_REQUEST="true").status_code == 286  # polling stops


def user_for_alice():
    from sandbox.directory import BY_UID

    return user_for(BY_UID["alice"])


@pytest.mark.parametrize("persona", ["as_bob", "as_carol"])
def test_nobody_but_admins_sees_or_acts_on_signups(request, persona):
    signup = make_signup()
    client = request.getfixturevalue(persona)
    expected = 403 if persona == "as_bob" else 302  # carol, in no group, is logged out
    for name in ("accounts:users", "accounts:signup_detail"):
        kwargs = {"pk": signup.pk} if name != "accounts:users" else {}
        assert client.get(reverse(name, kwargs=kwargs)).status_code == expected
    assert client.post(reverse("accounts:signup_approve", args=[signup.pk])).status_code in (
        expected,
    )
    assert Signup.objects.get(pk=signup.pk).state == SignupState.PENDING_APPROVAL


def test_an_unknown_signup_is_not_found(as_alice):
    assert as_alice.get(reverse("accounts:signup_detail", args=[999999])).status_code == 404
    assert as_alice.post(reverse("accounts:signup_approve", args=[999999])).status_code == 404


def test_every_users_page_form_needs_its_csrf_token(alice):
    from tests.fixtures.personas import logged_in_client

    client = logged_in_client(alice)
    client.handler.enforce_csrf_checks = True
    signup = make_signup()
    for url in (
        reverse("accounts:invite"),
        reverse("accounts:signup_approve", args=[signup.pk]),
        reverse("accounts:signup_reject", args=[signup.pk]),
        reverse("accounts:invitation_resend", args=[signup.pk]),
        reverse("accounts:invitation_revoke", args=[signup.pk]),
    ):
        assert client.post(url, {"email": "x@example.org"}).status_code == 403, url
    assert Signup.objects.count() == 1


@pytest.fixture
def signup_site_settings(settings):
    """Switch the rest of the test to the signup site (after dashboard requests)."""

    def switch():
        site_switch(settings, "signup")

    return switch


def test_a_stranger_to_the_dashboard_cannot_invite(client):
    response = Client().post(reverse("accounts:invite"), {"email": "x@example.org"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
