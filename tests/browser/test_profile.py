"""The profile page in Chromium: bob adds a new laptop's key, removes the old one and changes his
password, then logs in with the new one. And the admin's side: alice disables bob from the Users
page while his browser is open, and his next click finds him logged out."""

import pytest

from clusterweb.accounts.ssh_keys import fingerprint
from tests.fixtures.accounts import key_add, stored_keys
from tests.fixtures.signup import binds, public_key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "velvet-compass-orchard-61"


def log_in(page, base_url, username, password):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_bob_manages_his_keys_and_password_on_the_profile_page(
    page, live_server, account_directory, bob, screenshot, console_errors
):
    old_key = public_key(comment="bob@old-laptop")
    key_add(account_directory, "bob", old_key)
    log_in(page, live_server.url, bob.uid, bob.password)
    page.click("header nav >> text=Profile")
    page.wait_for_url(f"{live_server.url}/profile/")
    account = page.locator("#account").inner_text()
    assert "Bob Collaborator" in account and "bob@example.org" in account and "10002" in account
    assert "your only key" in page.locator("#key-list").inner_text()
    screenshot(page, "1-profile")

    # A key for the new laptop.
    new_key = public_key(comment="bob@new-laptop")
    page.fill("#id_ssh_keys", new_key)
    page.click("#keys form >> text=Add key")
    page.wait_for_selector("text=Added 1 key")
    assert fingerprint(new_key) in page.locator("#key-list").inner_text()
    screenshot(page, "2-key-added")

    # The old laptop's key goes.
    page.click(f"[aria-label='Remove the key {fingerprint(old_key)}']")
    page.wait_for_selector(f"text=Removed the key {fingerprint(old_key)}")
    assert fingerprint(old_key) not in page.locator("#key-list").inner_text()
    assert stored_keys(account_directory, "bob") == [new_key]
    screenshot(page, "3-key-removed")

    # A wrong current password first, then the right one.
    page.fill("#id_old_password", "not-my-password")
    page.fill("#id_new_password", NEW_PASSWORD)
    page.fill("#id_new_password_again", NEW_PASSWORD)
    page.click("#password form >> text=Change password")
    page.wait_for_selector("text=This is not your current password.")
    screenshot(page, "4-wrong-password")
    page.fill("#id_old_password", bob.password)
    page.fill("#id_new_password", NEW_PASSWORD)
    page.fill("#id_new_password_again", NEW_PASSWORD)
    page.click("#password form >> text=Change password")
    page.wait_for_selector("text=Your password was changed")
    screenshot(page, "5-password-changed")
    assert binds(account_directory, "bob", NEW_PASSWORD)

    page.click("text=Log out")
    page.wait_for_url(f"{live_server.url}/login/")
    page.fill("#id_username", "bob")
    page.fill("#id_password", bob.password)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Wrong username or password.")
    log_in(page, live_server.url, "bob", NEW_PASSWORD)
    assert "bob · collaborator" in page.locator("header").inner_text()
    assert console_errors == []


def test_alice_disables_bob_and_his_open_session_ends(
    page, browser, live_server, account_directory, alice, bob, screenshot, console_errors
):
    bobs = browser.new_context().new_page()
    log_in(bobs, live_server.url, bob.uid, bob.password)

    log_in(page, live_server.url, alice.uid, alice.password)
    page.goto(f"{live_server.url}/users/")
    page.click("#people >> text=Read now")
    page.wait_for_selector("#account-bob")
    screenshot(page, "1-users-accounts")
    page.click("#account-bob >> text=Disable")
    page.wait_for_url(f"{live_server.url}/users/people/bob/disable/")
    page.fill("#id_reason", "collaboration ended")
    screenshot(page, "2-confirm-disable")
    page.click("#confirm button[type=submit]")
    page.wait_for_selector("text=Disabled bob")
    assert "disabled" in page.locator("#account-bob").inner_text()
    screenshot(page, "3-bob-disabled")
    assert not binds(account_directory, "bob", bob.password)

    bobs.goto(f"{live_server.url}/profile/")
    assert "/login/" in bobs.url
    screenshot(bobs, "4-bob-logged-out")

    page.click("#account-bob >> text=Enable")
    page.click("#confirm button[type=submit]")
    page.wait_for_selector("text=Enabled bob")
    assert binds(account_directory, "bob", bob.password)
    assert console_errors == []
    bobs.context.close()
