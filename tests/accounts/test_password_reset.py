"""Forgotten passwords: an admin sends a one-time, expiring reset link; the user follows it on the
signup site (through the `join` tunnel) and chooses a new password. Optionally people ask for a
link themselves by email address. Against a real slapd."""

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.test import Client

from clusterweb.accounts.directory import services as account_services
from clusterweb.accounts.models import PasswordReset
from clusterweb.accounts.selfservice import services as selfservice
from clusterweb.audit.models import AuditEvent
from sandbox import directory
from tests.fixtures.accounts import mirror
from tests.fixtures.personas import logged_in_client, user_for
from tests.fixtures.signup import binds, site_switch

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("signup_site")]

NEW_PASSWORD = "copper-meadow-signal-58"


def send_link(uid="bob"):
    return account_services.password_reset_issue(
        uid=uid, actor=user_for(directory.BY_UID["alice"]), source="cli"
    )


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def open_link(client, link):
    return client.get("/reset/", {"token": token_of(link)})


def set_password(client, password=NEW_PASSWORD, again=None):
    return client.post(
        "/reset/password/", {"password": password, "password_again": again or password}
    )


def test_an_admins_reset_link_sets_bobs_password_once(client, account_directory, bob):
    outcome = send_link()
    assert outcome.sent
    [message] = mail.outbox
    assert message.to == ["bob@example.org"]
    assert outcome.link in message.body
    assert outcome.link.startswith("http://127.0.0.1:8001/reset/?token=")
    assert "ssh -N -L 8001:127.0.0.1:8001 -p 22 join@127.0.0.1" in message.body

    response = open_link(client, outcome.link)
    assert response.status_code == 302 and response["Location"] == "/reset/password/"
    page = client.get("/reset/password/")
    assert page.status_code == 200 and 'id="reset-uid">bob<' in page.content.decode()
    assert token_of(outcome.link) not in page.content.decode()

    response = set_password(client)
    assert response.status_code == 302 and response["Location"] == "/reset/done/"
    assert "Your password was changed" in client.get("/reset/done/").content.decode()
    assert binds(account_directory, "bob", NEW_PASSWORD)
    assert not binds(account_directory, "bob", bob.password)

    reset = PasswordReset.objects.get()
    assert reset.used_at is not None and reset.state == "used"
    assert token_of(outcome.link) not in str(list(PasswordReset.objects.values()))
    assert AuditEvent.objects.filter(action="account.password_reset", target="bob").exists()
    # Once.
    again = open_link(client, outcome.link)
    assert again.status_code == 410 and "has been used" in again.content.decode()


def test_the_same_form_submitted_twice_sets_the_password_once(client, account_directory):
    outcome = send_link()
    open_link(client, outcome.link)
    assert set_password(client).status_code == 302
    # A second browser tab still holding the reset in its session.
    other = client.session
    other["password_reset"] = {"id": outcome.reset.pk, "digest": outcome.reset.token_hash}
    other.save()
    response = set_password(client, "another-harbour-29")
    assert response.status_code == 410
    assert binds(account_directory, "bob", NEW_PASSWORD)


def test_a_reset_link_expires(client, account_directory, shared_clock, settings, bob):
    settings.PASSWORD_RESET_HOURS = 24
    outcome = send_link()
    open_link(client, outcome.link)  # opened in time...
    shared_clock.advance(24 * 3600 + 1)
    response = set_password(client)  # ...submitted too late
    assert response.status_code == 410 and "has expired" in response.content.decode()
    assert open_link(Client(), outcome.link).status_code == 410  # a new browser, too late
    assert binds(account_directory, "bob", bob.password)


def test_a_newer_link_withdraws_the_older_one(client, account_directory):
    first = send_link()
    second = send_link()
    response = open_link(client, first.link)
    assert response.status_code == 410 and "replaced" in response.content.decode()
    assert open_link(client, second.link).status_code == 302


def test_a_forged_token_opens_nothing_and_is_audited(client, account_directory):
    response = client.get("/reset/", {"token": "made-up-token"})
    assert response.status_code == 404
    assert AuditEvent.objects.filter(action="account.reset_link_refused").exists()
    assert client.get("/reset/password/").status_code == 404


def test_the_new_password_passes_djangos_validators(client, account_directory, bob):
    outcome = send_link()
    open_link(client, outcome.link)
    response = set_password(client, "bob-collaborator")
    assert response.status_code == 200 and "too similar" in response.content.decode()
    response = set_password(client, NEW_PASSWORD, again="different-" + NEW_PASSWORD)
    assert "The two passwords differ." in response.content.decode()
    assert binds(account_directory, "bob", bob.password)
    assert PasswordReset.objects.get().used_at is None


def test_a_reset_ends_the_users_dashboard_sessions(client, account_directory, bob, settings):
    site_switch(settings, "web")
    session = logged_in_client(bob)  # a dashboard session
    assert session.get("/profile/").status_code == 200
    site_switch(settings, "signup")
    outcome = send_link()
    open_link(client, outcome.link)
    set_password(client)
    site_switch(settings, "web")
    assert session.get("/profile/").status_code == 302


def test_a_disabled_account_gets_no_link_and_an_earlier_link_stops_working(
    client, account_directory
):
    alice = user_for(directory.BY_UID["alice"])
    outcome = send_link()
    account_services.account_disable(uid="bob", actor=alice, source="cli")
    with pytest.raises(account_services.AccountStateError, match="disabled"):
        send_link()
    open_link(client, outcome.link)
    response = set_password(client)
    assert response.status_code == 403 and "disabled" in response.content.decode()


def test_with_the_directory_down_the_link_stays_usable(client, account_directory):
    outcome = send_link()
    open_link(client, outcome.link)
    account_directory.stop()
    response = set_password(client)
    assert response.status_code == 503
    account_directory.start()
    assert set_password(client).status_code == 302
    assert binds(account_directory, "bob", NEW_PASSWORD)


def test_reset_submissions_are_rate_limited_per_link_and_per_user(
    client, account_directory, settings, bob
):
    settings.ACCOUNTS_ATTEMPT_LIMIT = 3
    outcome = send_link()
    open_link(client, outcome.link)
    for _ in range(3):
        assert set_password(client, "short").status_code == 200
    response = set_password(client)
    assert response.status_code == 429 and "Too many attempts" in response.content.decode()
    assert binds(account_directory, "bob", bob.password)
    # A fresh link for the same user does not start a fresh count: the user name is limited too.
    fresh = send_link()
    open_link(client, fresh.link)
    assert set_password(client).status_code == 429


# --- Self-service requests -----------------------------------------------------------------------
def test_without_self_service_there_is_no_request_page(client, settings):
    settings.PASSWORD_RESET_SELF_SERVICE = False
    assert client.get("/reset/request/").status_code == 404
    assert client.post("/reset/request/", {"email": "bob@example.org"}).status_code == 404


def test_the_answer_never_says_whether_an_address_is_known(client, account_directory, settings):
    settings.PASSWORD_RESET_SELF_SERVICE = True
    mirror()
    known = client.post("/reset/request/", {"email": "bob@example.org"})
    unknown = client.post("/reset/request/", {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 200

    def body(response):
        return re.sub(r'value="[^"]+"', "", response.content.decode())

    assert body(known) == body(unknown)
    assert "If an account of this cluster has that address" in body(known)
    # The lookup and the mail happen in the task, after the answer.
    assert mail.outbox == []
    assert selfservice.password_reset_self_service(email="bob@example.org") == 1
    assert selfservice.password_reset_self_service(email="nobody@example.org") == 0
    [message] = mail.outbox
    assert message.to == ["bob@example.org"] and "asked for a new password" in message.body


def test_self_service_skips_accounts_that_are_disabled_or_have_no_access(
    account_directory, settings
):
    alice = user_for(directory.BY_UID["alice"])
    account_services.account_disable(uid="bob", actor=alice, source="cli")
    mirror()
    assert selfservice.password_reset_self_service(email="bob@example.org") == 0
    assert selfservice.password_reset_self_service(email="carol@example.org") == 0
    assert mail.outbox == []


def test_self_service_requests_are_limited_per_address(client, account_directory, settings):
    settings.PASSWORD_RESET_SELF_SERVICE = True
    settings.ACCOUNTS_ATTEMPT_LIMIT = 2
    for _ in range(3):
        assert client.post("/reset/request/", {"email": "Bob@Example.org"}).status_code == 200
    limited = AuditEvent.objects.filter(action="account.reset_requested").order_by("id")
    assert [e.detail["rate_limited"] for e in limited] == [False, False, True]


def test_an_invalid_address_is_a_field_error(client, settings):
    settings.PASSWORD_RESET_SELF_SERVICE = True
    response = client.post("/reset/request/", {"email": "bob@@example.org)(uid=*"})
    assert response.status_code == 200
    assert "Enter a valid email address." in response.content.decode()
    assert not AuditEvent.objects.filter(action="account.reset_requested").exists()


@pytest.mark.django_db(transaction=True)
def test_a_self_service_request_reaches_the_mailbox_through_a_real_worker(
    client, account_directory, celery_worker, mailbox, settings
):
    settings.PASSWORD_RESET_SELF_SERVICE = True
    mirror()
    response = client.post("/reset/request/", {"email": "bob@example.org"})
    assert response.status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not mailbox.messages:
        time.sleep(0.1)
    [message] = mailbox.messages
    assert "bob@example.org" in message.recipients
    link = re.search(r"(http://\S+/reset/\?token=\S+)", message.text()).group(1)
    assert open_link(client, link).status_code == 302
