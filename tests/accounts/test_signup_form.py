"""The signup site's form: a newcomer with an invitation link picks a username, a password and
SSH keys. Against a real slapd (usernames are checked there)."""

import re

import ldap
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.db import IntegrityError, transaction
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from clusterweb.accounts.forms import full_name_problem, username_problem
from clusterweb.accounts.models import Signup, SignupState
from clusterweb.accounts.passwords import ldap_password_verify
from clusterweb.accounts.signup import services
from clusterweb.audit.models import AuditEvent
from sandbox import directory
from tests.fixtures.signup import PASSWORD, invitation, make_signup, public_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("signup_site")]


def open_link(client, token):
    return client.get("/invitation/", {"token": token})


def form_data(**changes):
    data = {
        "username": "dave",
        "full_name": "Dave Newcomer",
        "password": PASSWORD,
        "password_again": PASSWORD,
        "ssh_keys": public_key(),
    }
    data.update(changes)
    return data


def submit(client, token, **changes):
    open_link(client, token)
    return client.post("/join/", form_data(**changes))


def test_the_invitation_link_opens_the_form_and_takes_the_token_out_of_the_address(
    client, signup_directory
):
    _signup, token = invitation()
    response = open_link(client, token)
    assert response.status_code == 302 and response["Location"] == "/join/"
    page = client.get("/join/")
    assert page.status_code == 200
    assert b"dave@example.org" in page.content
    assert token.encode() not in page.content
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()


def test_a_signup_is_recorded_with_a_directory_hash_never_the_password(client, signup_directory):
    signup, token = invitation()
    key = public_key(comment="dave@laptop")
    response = submit(client, token, ssh_keys=key)
    assert response.status_code == 302 and response["Location"] == "/join/submitted/"

    signup.refresh_from_db()
    assert signup.state == SignupState.SUBMITTED
    assert (signup.username, signup.full_name) == ("dave", "Dave Newcomer")
    assert signup.ssh_keys == [key]
    assert signup.password_hash.startswith("{ARGON2}$argon2id$")
    assert ldap_password_verify(PASSWORD, signup.password_hash)
    row = str(list(Signup.objects.filter(pk=signup.pk).values()))
    assert PASSWORD not in row
    assert PASSWORD not in str(list(AuditEvent.objects.values()))
    assert AuditEvent.objects.filter(action="signup.submitted", actor_username="dave").exists()

    done = client.get("/join/submitted/")
    assert signup.fingerprints[0].encode() in done.content
    assert b"waits for an admin" in done.content


@pytest.mark.parametrize("problem", ["forged", "expired", "used", "revoked"])
def test_a_bad_token_gets_a_clear_page_and_no_signup(
    client, signup_directory, shared_clock, alice, problem
):
    signup, token = invitation()
    if problem == "forged":
        token = token[:-4] + "AAAA"
    elif problem == "expired":
        shared_clock.advance(72 * 3600 + 1)
    elif problem == "used":
        assert submit(Client(), token).status_code == 302
    elif problem == "revoked":
        services.invitation_revoke(signup_id=signup.pk, actor=signup.invited_by)
    response = open_link(client, token)
    assert response.status_code == (404 if problem == "forged" else 410)
    text = response.content.decode()
    assert {
        "forged": "not valid",
        "expired": "has expired",
        "used": "already been used",
        "revoked": "was withdrawn",
    }[problem] in text
    assert "No account was created" in text
    assert client.post("/join/", form_data(username="mallory")).status_code == 404
    assert not Signup.objects.filter(username="mallory").exists()
    assert AuditEvent.objects.filter(action="signup.token_refused").exists()


def test_an_invitation_expiring_while_the_form_is_open_is_refused(
    client, signup_directory, shared_clock
):
    signup, token = invitation()
    open_link(client, token)
    shared_clock.advance(72 * 3600 + 1)
    response = client.post("/join/", form_data())
    assert response.status_code == 410
    assert Signup.objects.get(pk=signup.pk).state == SignupState.INVITED


def test_a_double_submitted_form_makes_one_signup(client, signup_directory):
    _signup, token = invitation()
    open_link(client, token)
    first = client.post("/join/", form_data())
    second = client.post("/join/", form_data())
    assert first.status_code == 302
    assert second.status_code == 302 and second["Location"] == "/join/submitted/"
    assert Signup.objects.filter(username="dave").count() == 1
    assert AuditEvent.objects.filter(action="signup.submitted").count() == 1


def test_the_same_link_in_two_browsers_makes_one_signup(signup_directory):
    _signup, token = invitation()
    first, second = Client(), Client()
    open_link(first, token)
    open_link(second, token)
    assert first.post("/join/", form_data()).status_code == 302
    response = second.post("/join/", form_data(username="dave2"))
    assert response.status_code == 410
    assert Signup.objects.exclude(username="").count() == 1


@pytest.mark.sqlite
def test_the_database_holds_a_username_for_one_live_signup_only():
    make_signup(SignupState.PENDING_APPROVAL, username="dave")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_signup(SignupState.SUBMITTED, username="dave", email="other@example.org")
    # A rejected signup frees its name.
    make_signup(SignupState.REJECTED, username="erin")
    make_signup(SignupState.SUBMITTED, username="erin", email="erin2@example.org")


@pytest.mark.parametrize(
    ("username", "why"),
    [
        ("alice", "taken"),  # a directory user
        ("root", "reserved"),
        ("www-data", "reserved"),
        ("join", "reserved"),
        ("physics", "name of a group"),  # a directory group without a user
        ("pending", "taken"),  # held by another signup
    ],
)
def test_it_refuses_taken_reserved_and_group_usernames(client, signup_directory, username, why):
    conn = signup_directory.admin()
    conn.add_s(
        f"cn=physics,{directory.GROUPS_DN}",
        [("objectClass", [b"posixGroup"]), ("cn", [b"physics"]), ("gidNumber", [b"12000"])],
    )
    try:
        make_signup(SignupState.PENDING_APPROVAL, username="pending")
        signup, token = invitation()
        response = submit(client, token, username=username)
        assert response.status_code == 200
        assert why in response.content.decode()
        assert Signup.objects.get(pk=signup.pk).state == SignupState.INVITED
    finally:
        conn.delete_s(f"cn=physics,{directory.GROUPS_DN}")
        conn.unbind_s()


# Every LDAP metacharacter, NUL, look-alike letters from other alphabets, and other near misses.
HOSTILE_USERNAMES = [
    "dave*",
    "*",
    "dave)(uid=*",
    "da(ve",
    "dave\\",
    "dave,ou=people",
    "dave=x",
    "dave+x",
    "dave<",
    "dave>",
    "dave;",
    'dave"',
    "#dave",
    "dave\x00",
    "dаve",
    "Dave",
    "da\nve",
    "dave\u200b",
    "ﬁle",
    "1dave",
    "-dave",
    "d" * 33,
    "dave.smith",
    "dave@host",
    "dave space",
]


@pytest.mark.parametrize("username", HOSTILE_USERNAMES)
def test_a_username_with_ldap_metacharacters_or_lookalikes_never_reaches_the_directory(
    client, signup_directory, username
):
    signup, token = invitation()
    response = submit(client, token, username=username)
    assert response.status_code == 200
    assert Signup.objects.get(pk=signup.pk).state == SignupState.INVITED
    assert not re.search(r"Server Error|Traceback", response.content.decode())


HOSTILE_NAMES = [
    "Dave *",
    "Dave (admin)",
    "Dave\\Newcomer",
    "Newcomer, Dave",
    "Dave=root",
    "Dave+1",
    "<Dave>",
    "Dave; drop",
    'Dave "D"',
    "#Dave",
    "Dave\x00",
    "Dаve Newcomer",
    "Dave\u202eNewcomer",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_full_name_with_ldap_metacharacters_or_mixed_alphabets_is_refused(name):
    assert full_name_problem(name) is not None


@pytest.mark.parametrize(
    "name", ["José Müller", "Zoë O'Brien-Smith", "Дмитрий Петров", "山田 太郎"]
)
def test_a_full_name_in_any_single_alphabet_is_welcome(name):
    assert full_name_problem(name) is None


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=40))
def test_every_username_the_form_accepts_is_plain_ascii_without_ldap_metacharacters(text):
    if username_problem(text) is None:
        assert re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", text)
        assert ldap.filter.escape_filter_chars(text) == text
        assert ldap.dn.escape_dn_chars(text) == text


def test_a_pasted_private_key_is_refused_and_never_shown_back(client, signup_directory):
    private = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
        .decode()
    )
    signup, token = invitation()
    response = submit(client, token, ssh_keys=private)
    text = response.content.decode()
    assert response.status_code == 200
    assert "Never share it" in text
    assert "BEGIN OPENSSH PRIVATE KEY" not in text
    assert private.splitlines()[1] not in text
    assert Signup.objects.get(pk=signup.pk).state == SignupState.INVITED


def test_a_bad_key_is_named_and_the_good_ones_fingerprints_are_shown(client, signup_directory):
    _signup, token = invitation()
    good = public_key()
    response = submit(client, token, ssh_keys=good, password_again="different-" + PASSWORD)
    assert response.status_code == 200
    assert "The two passwords differ." in response.content.decode()
    from clusterweb.accounts.ssh_keys import fingerprint

    assert fingerprint(good) in response.content.decode()
    response = submit(client, token, ssh_keys=good + "\n" + public_key("rsa", bits=2048))
    assert "Line 2: This RSA key has 2048 bits" in response.content.decode()


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-pw", "too short"),
        ("password1234", "too common"),
        ("123456789012345", "entirely numeric"),
        ("dave-newcomer-x", "too similar"),
    ],
)
def test_the_password_must_pass_djangos_validators(client, signup_directory, password, message):
    signup, token = invitation()
    response = submit(client, token, password=password, password_again=password)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Signup.objects.get(pk=signup.pk).state == SignupState.INVITED


def test_the_form_needs_its_csrf_token(signup_directory):
    signup, token = invitation()
    client = Client(enforce_csrf_checks=True)
    open_link(client, token)
    assert client.post("/join/", form_data()).status_code == 403
    assert Signup.objects.get(pk=signup.pk).state == SignupState.INVITED


def test_with_the_directory_down_the_form_says_so_and_the_invitation_stays_usable(
    client, signup_directory
):
    _signup, token = invitation()
    open_link(client, token)
    signup_directory.stop()
    response = client.post("/join/", form_data())
    assert response.status_code == 503
    assert "cannot be reached" in response.content.decode()
    signup_directory.start()
    assert client.post("/join/", form_data()).status_code == 302


def test_without_an_invitation_the_form_is_not_found(client):
    response = client.get("/join/")
    assert response.status_code == 404
    assert b"Open the link from your invitation" in response.content
