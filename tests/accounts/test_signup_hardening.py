"""Issue 13, findings 6, 7, 8 and 10: names nobody may take, addresses the directory cannot
store, a uidNumber allocator that reads past slapd's size limit, and full names in styled
letters. Against the real slapd of the test harness."""

import ldap
import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from clusterweb.accounts.forms import SignupForm, full_name_problem, username_problem
from clusterweb.accounts.models import Signup, SignupState
from clusterweb.accounts.signup import provisioning, services, tasks
from clusterweb.audit.models import AuditEvent
from clusterweb.integrations import ldap as ldap_directory
from sandbox import directory
from tests.fixtures.hostile_text import (
    disguised,
    folding_twin,
    styled_words,
    with_combining_marks,
)
from tests.fixtures.personas import user_for
from tests.fixtures.signup import make_signup, people_entry

pytestmark = pytest.mark.django_db

FAST = hsettings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def approve_and_provision(signup, alice):
    services.signup_approve(signup_id=signup.pk, actor=user_for(alice), source="cli")
    tasks.signup_provision.apply(args=[signup.pk])
    signup.refresh_from_db()
    return signup


# --- Finding 6: reserved names -------------------------------------------------------------------
SYSTEM_ACCOUNTS = [
    "ssm-user",
    "ec2-instance-connect",
    "lxd",
    "syslog",
    "cloud-user",
    "jovyan",
    "docker",
    "nslcd",
    "sssd",
    "_chrony",
    "tcpdump",
]


@pytest.mark.parametrize("name", SYSTEM_ACCOUNTS)
def test_system_account_names_are_reserved(name, account_directory):
    assert "reserved" in (username_problem(name) or "")
    assert "reserved" in (services.username_unavailable(name) or "")


# --- Finding 7: addresses the directory cannot store --------------------------------------------
NON_ASCII_ADDRESSES = ["dave@exämple.org", "alıce@example.org", "dave@example.org\u200b"]


@pytest.mark.parametrize("email", NON_ASCII_ADDRESSES)
def test_an_invitation_to_a_non_ascii_address_is_refused_with_a_clear_message(
    email, alice, account_directory
):
    with pytest.raises(services.SignupError) as refused:
        services.invitation_create(email=email, actor=user_for(alice), source="cli")
    assert refused.value.field == "email"
    assert "ASCII" in str(refused.value)
    assert not Signup.objects.exists()


def test_the_invite_page_names_the_problem(as_alice, account_directory):
    response = as_alice.post(reverse("accounts:invite"), {"email": "dave@exämple.org"})
    assert "ASCII" in response.content.decode()
    assert not Signup.objects.exists()


def test_a_permanent_directory_error_ends_the_approval_as_failed_not_retried(
    signup_directory, mailbox, alice, as_alice
):
    # An address that got past the invitation (an older row): slapd refuses it for good.
    signup = make_signup(email="dave@exämple.org")
    signup = approve_and_provision(signup, alice)
    assert signup.state == SignupState.REJECTED
    assert "INVALID_SYNTAX" in signup.last_error
    assert signup.next_attempt_at is None and signup.claimed_until is None
    assert people_entry(signup_directory, "dave") is None
    assert AuditEvent.objects.filter(action="signup.provisioning_failed").count() == 1
    # The sweeper does not pick it up again.
    assert services.signups_sweep()["provision"] == 0
    page = as_alice.get(reverse("accounts:signup_detail", args=[signup.pk])).content.decode()
    assert "INVALID_SYNTAX" in page


# --- Finding 8: the uidNumber allocator past slapd's size limit ----------------------------------
def add_people(server, numbers):
    conn = server.admin()
    try:
        for n in numbers:
            conn.add_s(
                f"uid=bulk{n},{directory.PEOPLE_DN}",
                [
                    ("objectClass", [b"inetOrgPerson", b"posixAccount"]),
                    ("uid", [f"bulk{n}".encode()]),
                    ("cn", [f"Bulk {n}".encode()]),
                    ("sn", [b"Bulk"]),
                    ("uidNumber", [str(n).encode()]),
                    ("gidNumber", [b"10000"]),
                    ("homeDirectory", [f"/home/bulk{n}".encode()]),
                ],
            )
    finally:
        conn.unbind_s()


def test_the_allocator_reads_more_entries_than_slapds_size_limit(signup_directory, mailbox, alice):
    # slapd's default size limit is 500 entries for every bind but the rootdn (slapd.conf(5),
    # "sizelimit"); the harness sets none, so Clusterweb's service account has that default.
    add_people(signup_directory, range(20001, 20001 + 520))
    conn = ldap.initialize(signup_directory.uri)
    conn.simple_bind_s(django_settings.LDAP_BIND_DN, django_settings.LDAP_BIND_PASSWORD)
    with pytest.raises(ldap.SIZELIMIT_EXCEEDED):
        conn.search_s(directory.SUFFIX, ldap.SCOPE_SUBTREE, "(uidNumber=*)", ["uidNumber"])
    conn.unbind_s()

    assert ldap_directory.uid_number_highest() == 20520
    signup = approve_and_provision(make_signup(), alice)
    assert signup.state == SignupState.ACTIVE
    assert signup.uid_number == 20521


@pytest.mark.parametrize("highest", [65533, 65534])
def test_the_allocator_skips_nobody_and_the_invalid_uid(signup_directory, mailbox, alice, highest):
    add_people(signup_directory, [highest])
    signup = approve_and_provision(make_signup(), alice)
    assert signup.state == SignupState.ACTIVE
    assert signup.uid_number == 65536
    assert people_entry(signup_directory, "dave")["uidNumber"] == [b"65536"]


def test_the_allocator_never_gives_a_reserved_number():
    for number in (65534, 65535, 4294967294, 4294967295):
        assert provisioning.uid_number_usable(number) is False
    assert provisioning.uid_number_usable(65536) is True


# --- Finding 10: full names in styled letters ----------------------------------------------------
NAMES = ["Alice Smith", "Bob Jones", "Kate Moss", "Sissi Park"]


@FAST
@given(
    st.one_of(
        st.sampled_from(NAMES).flatmap(disguised), st.sampled_from(NAMES).flatmap(styled_words)
    )
)
def test_a_full_name_in_styled_letters_is_refused(name):
    problem = full_name_problem(name)
    assert problem is not None, name
    form = SignupForm(data={"full_name": name})
    form.is_valid()
    assert "full_name" in form.errors, name


@FAST
@given(st.sampled_from(NAMES).flatmap(with_combining_marks))
def test_a_full_name_with_real_accents_is_accepted(name):
    form = SignupForm(data={"full_name": name})
    form.is_valid()
    assert "full_name" not in form.errors, (name, form.errors)


def test_the_long_s_and_the_kelvin_sign_do_not_disguise_a_name():
    assert full_name_problem("Sſsi") is not None  # long s: NFKC makes it 's'
    # The Kelvin sign is a canonical twin of K: the form's NFC turns it into a plain K.
    form = SignupForm(data={"full_name": folding_twin("K") + "ate Moss"})
    form.is_valid()
    assert form.cleaned_data.get("full_name") == "Kate Moss"
