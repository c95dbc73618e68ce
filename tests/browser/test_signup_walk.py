"""A newcomer's whole way in, in Chromium: alice invites dave from the Users page, dave follows
the link in the invitation email to the signup site, alice approves, a real Celery worker writes
dave's LDAP account, and dave logs in to the dashboard as a collaborator.

The signup site runs as its own server process (``CLUSTERWEB_SITE=signup``, as in production:
its own URL configuration and cookie names) beside the live server of the dashboard, rather
than mounting its pages into the dashboard's URLs for the test: the walk then crosses the same
boundary a newcomer does, and proves the two sites' cookies do not collide.
"""

import re
import time

import pytest

from clusterweb.accounts.models import Signup, SignupState
from tests.fixtures.signup import PASSWORD, binds, group_members, public_key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait_for_mail(mailbox, to: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in mailbox.wait_for(1, timeout=0.2) if to in m.recipients]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no mail to {to}: {[m.subject for m in mailbox.messages]}")


def log_in(page, base_url, username, password):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_a_newcomer_signs_up_from_the_invitation_email_to_the_first_dashboard_login(
    page,
    browser,
    live_server,
    signup_site_server,
    celery_worker,
    signup_directory,
    mailbox,
    settings,
    alice,
    screenshot,
    console_errors,
):
    settings.SIGNUP_BASE_URL = signup_site_server

    # alice invites dave from the Users page.
    log_in(page, live_server.url, alice.uid, alice.password)
    page.click("header nav >> text=Users")
    page.fill("#id_email", "dave@example.org")
    screenshot(page, "1-users-invite")
    page.click("#invite button[type=submit]")
    page.wait_for_selector("text=Invitation sent to dave@example.org")
    assert page.locator("#invitations").inner_text().count("dave@example.org") == 1

    # dave, in his own browser, opens the link from the invitation email.
    [invitation] = wait_for_mail(mailbox, "dave@example.org")
    port = signup_site_server.rsplit(":", 1)[1]  # the tunnel's local end is the link's port
    assert f"ssh -N -L {port}:127.0.0.1:8001 -p 22 join@127.0.0.1" in invitation.text()
    link = re.search(r"(http://\S+/invitation/\?token=\S+)", invitation.text()).group(1)
    assert link.startswith(signup_site_server)
    dave = browser.new_context().new_page()
    dave_errors: list[str] = []
    dave.on("console", lambda m: dave_errors.append(m.text) if m.type == "error" else None)
    dave.goto(link)
    assert dave.url == f"{signup_site_server}/join/"  # the token left the address bar
    screenshot(dave, "2-signup-form")

    # A private key is refused and not shown back; then dave pastes the public one.
    dave.fill("#id_username", "dave")
    dave.fill("#id_full_name", "Dave Newcomer")
    dave.fill("#id_password", PASSWORD)
    dave.fill("#id_password_again", PASSWORD)
    dave.fill("#id_ssh_keys", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n")
    dave.click("button[type=submit]")
    dave.wait_for_selector("text=Never share it")
    assert dave.input_value("#id_ssh_keys") == ""
    screenshot(dave, "3-private-key-refused")
    key = public_key(comment="dave@laptop")
    dave.fill("#id_password", PASSWORD)
    dave.fill("#id_password_again", PASSWORD)
    dave.fill("#id_ssh_keys", key)
    dave.click("button[type=submit]")
    dave.wait_for_url(f"{signup_site_server}/join/submitted/")
    signup = Signup.objects.get(username="dave")
    assert signup.fingerprints[0] in dave.content()
    screenshot(dave, "4-signup-received")
    cookies = {c["name"] for c in dave.context.cookies()}
    assert "clusterweb_signup_session" in cookies and "clusterweb_session" not in cookies

    # The worker puts the signup before every admin by email.
    [review] = wait_for_mail(mailbox, "alice@example.org")
    assert f"/users/signups/{signup.pk}/" in review.html()

    # alice approves on the Users page; the page follows the provisioning by itself.
    page.goto(f"{live_server.url}/users/")
    row = page.locator(f"#signup-{signup.pk}")
    assert "dave" in row.inner_text() and signup.fingerprints[0] in row.inner_text()
    screenshot(page, "5-users-pending")
    row.locator("text=Approve").click()
    page.wait_for_selector("text=Approved dave")
    page.wait_for_selector(f"#settled-{signup.pk} >> text=active", timeout=30000)
    screenshot(page, "6-users-active")

    signup.refresh_from_db()
    assert signup.state == SignupState.ACTIVE
    assert binds(signup_directory, "dave", PASSWORD)
    assert "dave" in group_members(signup_directory, "users")
    [welcome] = wait_for_mail(mailbox, "dave@example.org")[1:]
    assert "ssh -p 22 dave@127.0.0.1" in welcome.text()

    # dave's first login to the dashboard, as a collaborator.
    dave.goto(f"{live_server.url}/")
    screenshot(dave, "7-dashboard-login")
    log_in(dave, live_server.url, "dave", PASSWORD)
    assert "dave · collaborator" in dave.locator("header").inner_text()
    assert "Users" not in dave.locator("header nav").inner_text()
    screenshot(dave, "8-dashboard-dave")
    assert console_errors == [] and dave_errors == []
    dave.context.close()
