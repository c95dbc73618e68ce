"""Hostile input to every field of the forms strangers and users reach (signup, profile, password
reset, reset request) and the admins' forms: LDAP metacharacters, NUL, non-ASCII and look-alike
letters, very long values, bad addresses. Each form turns any input into clean data or field
errors; nothing answers 500; nothing in the directory is created or changed; no filter matches
more than the one entry it names.

Forms are exercised in-process with many generated cases; a handful go through the views to the
real slapd. Example counts are bounded so the suite stays fast."""

import re
import unicodedata

import ldap
import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from clusterweb.accounts.directory import services as account_services
from clusterweb.accounts.forms import (
    LDAP_METACHARACTERS,
    AccountActionForm,
    InviteForm,
    PasswordChangeForm,
    PasswordResetForm,
    ResetRequestForm,
    SignupForm,
    SSHKeyRemoveForm,
    SSHKeysAddForm,
)
from clusterweb.accounts.models import Signup, SignupState, User
from clusterweb.accounts.selfservice import services as selfservice
from clusterweb.accounts.ssh_keys import MAX_KEYS, MAX_LINE, PublicKey
from clusterweb.integrations import ldap as ldap_directory
from sandbox import directory
from tests.fixtures.accounts import directory_snapshot, mirror, stored_keys
from tests.fixtures.signup import PASSWORD, binds, invitation, public_key

METACHARACTERS = '*()\\,=+<>;"#/\x00'
# Cyrillic, Greek and full-width letters that look like Latin ones, a dotless i, a ligature.
LOOK_ALIKES = "аеорсхіјАВЕКМНОРСТХΑΒΕΗΙΚΜΝΟΡΤΧΥΖｂｏｂıﬁ"
HOSTILE = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=METACHARACTERS + LOOK_ALIKES + "abob-_. ", max_size=60),
    st.builds(
        lambda name, tail: name + tail,
        st.sampled_from(["bob", "alice", "admin", "root", "*", "ssh-ed25519 AAAA"]),
        st.text(alphabet=METACHARACTERS + LOOK_ALIKES, max_size=8),
    ),
    st.sampled_from(["x" * 5000, "\x00", "bob\x00", "*", "*)(uid=*))(|(uid=*", "a" * 33]),
)
FAST = hsettings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
THROUGH_SLAPD = hsettings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def field_errors_only(form) -> None:
    """Errors name the form's own fields (or the form as a whole), in words."""
    assert set(form.errors) <= set(form.fields) | {"__all__"}
    for messages in form.errors.values():
        assert all(isinstance(m, str) and m for m in messages)


def person() -> User:
    return User(username="bob", first_name="Bob Collaborator", email="bob@example.org")


# --- Every form, in-process ----------------------------------------------------------------------
@pytest.mark.sqlite
@FAST
@given(username=HOSTILE, full_name=HOSTILE, password=HOSTILE, keys=HOSTILE)
def test_the_signup_form_gives_clean_data_or_field_errors(username, full_name, password, keys):
    form = SignupForm(
        data={
            "username": username,
            "full_name": full_name,
            "password": password,
            "password_again": password,
            "ssh_keys": keys,
        }
    )
    form.is_valid()
    field_errors_only(form)
    cleaned = form.cleaned_data
    if "username" in cleaned:
        assert re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", cleaned["username"])
        assert ldap.filter.escape_filter_chars(cleaned["username"]) == cleaned["username"]
        assert ldap.dn.escape_dn_chars(cleaned["username"]) == cleaned["username"]
    if "full_name" in cleaned:
        assert not set(cleaned["full_name"]) & LDAP_METACHARACTERS
        assert unicodedata.is_normalized("NFC", cleaned["full_name"])
    if "password" in cleaned:
        assert "\x00" not in cleaned["password"]
    assert "ssh_keys" not in cleaned or all(isinstance(k, PublicKey) for k in cleaned["ssh_keys"])


@pytest.mark.sqlite
@FAST
@given(old=HOSTILE, new=HOSTILE, again=HOSTILE)
def test_the_password_change_form_gives_clean_data_or_field_errors(old, new, again):
    form = PasswordChangeForm(
        data={"old_password": old, "new_password": new, "new_password_again": again},
        user=person(),
    )
    if form.is_valid():
        assert new == again and "\x00" not in new and len(new) >= 12
    field_errors_only(form)


@pytest.mark.sqlite
@FAST
@given(keys=HOSTILE, fingerprint=HOSTILE)
def test_the_key_forms_give_clean_data_or_field_errors(keys, fingerprint):
    add = SSHKeysAddForm(data={"ssh_keys": keys})
    add.is_valid()
    field_errors_only(add)
    remove = SSHKeyRemoveForm(data={"fingerprint": fingerprint})
    if remove.is_valid():
        assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", remove.cleaned_data["fingerprint"])
    field_errors_only(remove)


@pytest.mark.sqlite
@FAST
@given(password=HOSTILE, again=HOSTILE, email=HOSTILE, reason=HOSTILE, days=HOSTILE)
def test_the_reset_invite_and_action_forms_give_clean_data_or_field_errors(
    password, again, email, reason, days
):
    reset = PasswordResetForm(data={"password": password, "password_again": again}, person=person())
    if reset.is_valid():
        assert password == again and "\x00" not in password
    for form in (
        reset,
        ResetRequestForm(data={"email": email}),
        InviteForm(data={"email": email, "days": days}),
        AccountActionForm(data={"reason": reason}),
    ):
        form.is_valid()
        field_errors_only(form)
        if "email" in getattr(form, "cleaned_data", {}):
            address = form.cleaned_data["email"]
            assert "\x00" not in address and "(" not in address and "*" not in address


@pytest.mark.sqlite
@pytest.mark.parametrize(
    "address", ["bob@@example.org", "bob@example.org)(uid=*", "*", "bob\x00@example.org", "a" * 300]
)
def test_an_invalid_address_is_a_field_error(address):
    form = ResetRequestForm(data={"email": address})
    assert not form.is_valid() and list(form.errors) == ["email"]


# --- Sizes: refused before anything parses them ---------------------------------------------------
def test_a_megabyte_key_field_is_refused_by_size_before_any_form_reads_it(
    as_bob, account_directory
):
    response = Client(raise_request_exception=False)
    response.cookies = as_bob.cookies
    answer = response.post(reverse("accounts:profile_key_add"), {"ssh_keys": "A" * 1_000_000})
    assert answer.status_code == 400
    assert stored_keys(account_directory, "bob") == []


@pytest.mark.django_db
def test_a_megabyte_signup_is_refused_by_size(signup_site, account_directory):
    signup, token = invitation()
    client = Client(raise_request_exception=False)
    client.get("/invitation/", {"token": token})
    response = client.post("/join/", {"username": "dave", "ssh_keys": "A" * 1_000_000})
    assert response.status_code == 400
    assert Signup.objects.get(pk=signup.pk).state == SignupState.INVITED


def test_an_oversized_key_field_is_refused_by_length_not_by_the_key_parser(
    as_bob, account_directory
):
    limit = MAX_KEYS * MAX_LINE
    text = (public_key() + "\n") * (limit // 80 + 1)
    response = as_bob.post(reverse("accounts:profile_key_add"), {"ssh_keys": text})
    assert response.status_code == 200
    assert f"Ensure this value has at most {limit} characters" in response.content.decode()
    assert "At most 10 keys" not in response.content.decode()  # the parser never ran
    assert stored_keys(account_directory, "bob") == []


# --- Through the views to the real slapd ----------------------------------------------------------
@pytest.mark.django_db
@THROUGH_SLAPD
@given(username=HOSTILE, full_name=HOSTILE)
def test_hostile_signups_change_nothing_in_the_directory(
    signup_site, account_directory, settings, username, full_name
):
    settings.ACCOUNTS_ATTEMPT_LIMIT = 10**6
    before = directory_snapshot(account_directory)
    signup, token = invitation(f"dave{Signup.objects.count()}@example.org")
    client = Client(raise_request_exception=False)
    client.get("/invitation/", {"token": token})
    response = client.post(
        "/join/",
        {
            "username": username,
            "full_name": full_name,
            "password": PASSWORD,
            "password_again": PASSWORD,
            "ssh_keys": public_key(),
        },
    )
    assert response.status_code in (200, 302)
    if response.status_code == 302:  # a legitimate name: recorded, nothing written yet
        recorded = Signup.objects.get(pk=signup.pk)
        assert re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", recorded.username)
    assert directory_snapshot(account_directory) == before


@pytest.mark.django_db
@THROUGH_SLAPD
@given(keys=HOSTILE, fingerprint=HOSTILE, old=HOSTILE)
def test_hostile_profile_input_changes_nothing_in_the_directory(
    account_directory, settings, keys, fingerprint, old
):
    from tests.fixtures.personas import logged_in_client

    settings.ACCOUNTS_ATTEMPT_LIMIT = 10**6
    client = logged_in_client(directory.BY_UID["bob"])
    client.raise_request_exception = False
    before = directory_snapshot(account_directory)
    for url, data in (
        (reverse("accounts:profile_key_add"), {"ssh_keys": keys}),
        (reverse("accounts:profile_key_remove"), {"fingerprint": fingerprint}),
        (
            reverse("accounts:profile_password"),
            {"old_password": old, "new_password": PASSWORD, "new_password_again": PASSWORD},
        ),
    ):
        assert client.post(url, data).status_code == 200
    assert directory_snapshot(account_directory) == before


@pytest.mark.django_db
@THROUGH_SLAPD
@given(email=HOSTILE)
def test_hostile_reset_requests_answer_alike_and_send_nothing(
    signup_site, account_directory, settings, mailoutbox, email
):
    settings.PASSWORD_RESET_SELF_SERVICE = True
    settings.ACCOUNTS_ATTEMPT_LIMIT = 10**6
    response = Client(raise_request_exception=False).post("/reset/request/", {"email": email})
    assert response.status_code == 200
    assert selfservice.password_reset_self_service(email=email) == 0
    assert mailoutbox == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password",
    ['pa(ss)*wo\\rd,=+<>;"#-42-long', "пароль-очень-длинный-7", "ｆｕｌｌ-ｗｉｄｔｈ-ｐａｓｓ-9"],
)
def test_a_password_with_metacharacters_or_other_alphabets_is_stored_exactly(
    as_bob, account_directory, bob, password
):
    response = as_bob.post(
        reverse("accounts:profile_password"),
        {"old_password": bob.password, "new_password": password, "new_password_again": password},
    )
    assert response.status_code == 302
    assert binds(account_directory, "bob", password)
    assert not binds(account_directory, "bob", password.upper())


# --- No filter matches more than it names ---------------------------------------------------------
@pytest.mark.parametrize("uid", ["*", "b*", "*ob", "bob)(uid=*", "*)(|(uid=*", "bob\x00", "BOB"])
def test_directory_lookups_match_exactly_the_name_they_are_given(account_directory, uid):
    assert ldap_directory.person_read(uid) is None
    assert ldap_directory.username_taken(uid) is None or uid == "BOB"
    assert ldap_directory.group_members(uid) == []


@pytest.mark.django_db
@pytest.mark.parametrize("uid", ["*", "b*", "bob)(uid=*", "bob\x00"])
def test_admin_actions_on_a_hostile_name_touch_nobody(account_directory, uid):
    from tests.fixtures.personas import user_for

    before = directory_snapshot(account_directory)
    alice = user_for(directory.BY_UID["alice"])
    for action in account_services.ACTIONS.values():
        with pytest.raises(account_services.AccountError):
            action(uid=uid, actor=alice, source="cli")
    with pytest.raises(account_services.AccountError):
        account_services.password_reset_issue(uid=uid, actor=alice, source="cli")
    assert directory_snapshot(account_directory) == before


@pytest.mark.django_db
def test_the_mirror_never_matches_an_address_by_pattern(account_directory):
    mirror()
    for pattern in ("%", "_ob@example.org", "*@example.org", "bob@example.%"):
        assert selfservice.password_reset_self_service(email=pattern) == 0


# --- Rate limits on the signup site ---------------------------------------------------------------
@pytest.mark.django_db
def test_signup_submissions_are_limited_per_invitation(signup_site, account_directory, settings):
    settings.ACCOUNTS_ATTEMPT_LIMIT = 3
    _signup, token = invitation()
    client = Client()
    client.get("/invitation/", {"token": token})
    for _ in range(3):
        assert client.post("/join/", {"username": "*"}).status_code == 200
    response = client.post("/join/", {"username": "dave"})
    assert response.status_code == 429
    assert "Too many attempts with this invitation" in response.content.decode()
    # Another invitation has its own count.
    _other, other_token = invitation("erin@example.org")
    fresh = Client()
    fresh.get("/invitation/", {"token": other_token})
    assert fresh.post("/join/", {"username": "*"}).status_code == 200


# --- Invalid and duplicate addresses on the Users page's invite form ------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("not-an-address", "Enter a valid email address."),
        ("dave@example.org)(mail=*", "Enter a valid email address."),
        ("dave\x00@example.org", "Null characters are not allowed."),
        ("BOB@example.org", "belongs to the account bob already"),
        ("erin@example.org", "already has an open invitation"),
    ],
)
def test_the_invite_form_names_bad_and_duplicate_addresses(
    as_alice, account_directory, mailoutbox, address, message
):
    mirror()
    invitation("erin@example.org")
    before = Signup.objects.count()
    response = as_alice.post(reverse("accounts:invite"), {"email": address})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Signup.objects.count() == before
