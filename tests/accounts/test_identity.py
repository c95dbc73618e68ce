"""Issue 13: one identity per person, against the real slapd.

slapd matches ``uid`` after Unicode compatibility and case folding (``caseIgnoreMatch`` prepares
strings per RFC 4518), so full-width, mathematical, circled or mixed spellings of ``bob`` bind as
bob. The login form takes only the directory's uid pattern; the Django user is named by the
entry's own uid; the LDAP backend never lands in a local (break-glass) row; a local name always
counts its failures, directory or not; group membership is ``memberUid`` only; disable ends every
session; and a name that is not a local user's never pays the local password hash."""

import unicodedata

import ldap
import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from clusterweb.accounts.directory import services as account_services
from clusterweb.accounts.models import LoginThrottle, User
from clusterweb.accounts.signup.services import username_unavailable
from clusterweb.audit.models import AuditEvent
from sandbox import directory
from tests.fixtures.accounts import mirror
from tests.fixtures.personas import logged_in_client, user_for

pytestmark = pytest.mark.django_db

WRONG = b"Wrong username or password."


def login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def person_add(server, uid: str, password: str, *, gid: int, groups=(), uid_number=20001) -> None:
    """A directory entry shaped like a signup's (signup/provisioning.py): gidNumber is the users
    group's, supplementary groups by memberUid."""
    conn = server.admin()
    try:
        conn.add_s(
            f"uid={ldap.dn.escape_dn_chars(uid)},{directory.PEOPLE_DN}",
            [
                (
                    "objectClass",
                    [b"top", b"inetOrgPerson", b"posixAccount", b"shadowAccount", b"ldapPublicKey"],
                ),
                ("uid", [uid.encode()]),
                ("cn", [f"{uid} Person".encode()]),
                ("sn", [b"Person"]),
                ("mail", [f"{uid.lower()}@example.org".encode()]),
                ("uidNumber", [str(uid_number).encode()]),
                ("gidNumber", [str(gid).encode()]),
                ("homeDirectory", [f"/home/{uid}".encode()]),
                ("loginShell", [b"/bin/bash"]),
                ("userPassword", [directory.ssha(password).encode()]),
            ],
        )
    finally:
        conn.unbind_s()
    for group in groups:
        server.group_member_add(group, uid)


# --- Look-alike spellings (finding 1) ------------------------------------------------------------
def full_width(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in s)


def math_bold(s: str) -> str:
    return "".join(chr(0x1D41A + ord(c) - ord("a")) if "a" <= c <= "z" else c for c in s)


def circled(s: str) -> str:
    return "".join(chr(0x24D0 + ord(c) - ord("a")) if "a" <= c <= "z" else c for c in s)


LOOK_ALIKE_BOB = ["ｂｏｂ", "𝐛𝐨𝐛", "bⓞb", "ｂob", "bob\u0301", "BOB\u0338"]


@pytest.mark.parametrize("spelling", LOOK_ALIKE_BOB)
def test_a_look_alike_of_a_locked_name_is_refused_before_ldap_and_counted(
    client, directory_server, bob, settings, spelling
):
    for _ in range(settings.LOGIN_LOCKOUT_FAILURES):
        login(client, "bob", "guess")
    assert login(client, "bob", bob.password).status_code == 429
    response = login(client, spelling, bob.password)
    assert response.status_code == 200
    assert WRONG in response.content
    assert "_auth_user_id" not in client.session
    assert list(User.objects.values_list("username", flat=True)) == []
    assert LoginThrottle.objects.filter(username=spelling.strip().lower()).get().failures == 1


def _look_alike(name: str, ways: list[str]) -> str:
    swaps = {
        "full": full_width,
        "bold": math_bold,
        "circled": circled,
        "upper": str.upper,
        "combining": lambda c: c + "\u0301",
        "dotless": lambda c: "\u0131" if c == "i" else c,  # ı
        "long_s": lambda c: "\u017f" if c == "s" else c,  # ſ
        "kelvin": lambda c: "\u212a" if c == "k" else c,  # K (Kelvin sign)
        "plain": lambda c: c,
    }
    return "".join(swaps[way](c) for c, way in zip(name, ways, strict=False))


LOOK_ALIKE_WAYS = st.sampled_from(
    ["full", "bold", "circled", "upper", "combining", "dotless", "long_s", "kelvin", "plain"]
)
USER_NAMES = st.builds(
    _look_alike,
    st.sampled_from(["alice", "bob", "kiss"]),
    st.lists(LOOK_ALIKE_WAYS, min_size=5, max_size=5),
)


@pytest.mark.sqlite
@hsettings(max_examples=300, deadline=None)
@given(typed=st.one_of(USER_NAMES, st.text(max_size=40)))
def test_a_login_name_is_the_uid_pattern_or_nothing(typed):
    from clusterweb.accounts.login.services import login_name

    name = login_name(typed)
    if name is not None:
        assert name.isascii() and name == name.lower()
        assert name == unicodedata.normalize("NFKC", name)
        assert name == typed.strip().lower()


@hsettings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(typed=USER_NAMES)
def test_any_spelling_logs_in_as_the_entrys_own_uid_or_not_at_all(client, account_directory, typed):
    passwords = {p.uid: p.password for p in directory.PERSONAS}
    person_add_once(account_directory)
    passwords["kiss"] = "kiss-sandbox-pw"
    for uid, password in passwords.items():
        client.post(reverse("logout"))
        response = login(client, typed, password)
        if response.status_code == 302:
            assert typed.strip().lower() == uid
            assert client.session["_auth_user_id"] == str(User.objects.get(username=uid).pk)
    assert set(User.objects.values_list("username", flat=True)) <= set(passwords)
    logged = AuditEvent.objects.filter(action="login.succeeded")
    assert set(logged.values_list("actor_username", flat=True)) <= set(passwords)


def person_add_once(server) -> None:
    conn = server.admin()
    try:
        found = conn.search_s(directory.PEOPLE_DN, ldap.SCOPE_ONELEVEL, "(uid=kiss)", ["1.1"])
    finally:
        conn.unbind_s()
    if not found:
        person_add(server, "kiss", "kiss-sandbox-pw", gid=directory.USERS_GID, groups=("users",))


def test_the_django_user_is_named_by_the_entrys_own_uid(client, account_directory):
    person_add(account_directory, "JSmith", "jsmith-pw", gid=directory.USERS_GID, groups=["users"])
    assert login(client, "jsmith", "jsmith-pw").status_code == 302
    assert list(User.objects.values_list("username", flat=True)) == ["JSmith"]
    assert AuditEvent.objects.get(action="login.succeeded").actor_username == "JSmith"


# --- Break-glass (findings 2 and 3) -------------------------------------------------------------
def test_an_ldap_login_never_lands_in_a_local_superuser_row(client, account_directory):
    User.objects.create_superuser("breakglass", "root@example.org", "glass-pw-123")
    person_add(account_directory, "breakglass", "own-ldap-pw", gid=directory.USERS_GID)
    account_directory.group_member_add("users", "breakglass")
    response = login(client, "breakglass", "own-ldap-pw")
    assert response.status_code == 200
    assert WRONG in response.content
    assert "_auth_user_id" not in client.session
    assert User.objects.get(username="breakglass").is_superuser
    assert login(client, "BreakGlass", "own-ldap-pw").status_code == 200


def test_a_name_held_by_a_local_user_is_unavailable_at_signup(directory_server):
    User.objects.create_superuser("breakglass", "root@example.org", "glass-pw-123")
    assert username_unavailable("breakglass") == "This user name is taken. Choose another one."


def test_createsuperuser_refuses_a_name_the_directory_has(directory_server, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "glass-pw-123-long")
    with pytest.raises(CommandError, match="directory already has"):
        call_command("createsuperuser", username="bob", email="b@example.org", interactive=False)
    assert not User.objects.filter(username__iexact="bob").exists()


def test_createsuperuser_with_the_directory_down_needs_the_flag_and_reserves_the_name(
    directory_server, monkeypatch
):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "glass-pw-123-long")
    directory_server.stop()
    with pytest.raises(CommandError, match="unreachable"):
        call_command("createsuperuser", username="glass", email="g@example.org", interactive=False)
    assert not User.objects.filter(username="glass").exists()
    call_command(
        "createsuperuser",
        username="glass",
        email="g@example.org",
        interactive=False,
        without_directory_check=True,
    )
    assert User.objects.get(username="glass").is_break_glass
    directory_server.start()
    assert username_unavailable("glass") == "This user name is taken. Choose another one."


def test_a_wrong_break_glass_password_counts_while_the_directory_is_down(
    client, directory_server, settings
):
    User.objects.create_superuser("root-breakglass", "root@example.org", "glass-pw-123")
    directory_server.stop()
    for _ in range(settings.LOGIN_LOCKOUT_FAILURES - 1):
        response = login(client, "root-breakglass", "guess")
        assert response.status_code == 200
        assert WRONG in response.content
    assert login(client, "Root-BreakGlass ", "guess").status_code == 200
    assert login(client, "root-breakglass", "glass-pw-123").status_code == 429
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login.locked").count() == 1


# --- Membership is memberUid only (finding 4) ----------------------------------------------------
def test_a_signed_up_account_outside_users_has_no_access(client, account_directory):
    person_add(account_directory, "dave", "dave-sandbox-pw", gid=directory.USERS_GID)
    response = login(client, "dave", "dave-sandbox-pw")
    assert response.status_code == 200
    assert b"no access to Clusterweb" in response.content
    assert "_auth_user_id" not in client.session


def test_removal_from_users_revokes_a_signed_up_collaborator(
    client, account_directory, settings, shared_clock
):
    person_add(
        account_directory, "dave", "dave-sandbox-pw", gid=directory.USERS_GID, groups=["users"]
    )
    assert login(client, "dave", "dave-sandbox-pw").status_code == 302
    account_directory.group_member_remove("users", "dave")
    shared_clock.advance(settings.AUTH_RECHECK_SECONDS + 1)
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert User.objects.get(username="dave").role is None


# --- Disable ends every session (finding 5) ------------------------------------------------------
def test_disable_ends_the_session_of_a_uid_with_capitals(client, account_directory, as_alice):
    person_add(account_directory, "JSmith", "jsmith-pw", gid=directory.USERS_GID, groups=["users"])
    assert login(client, "jsmith", "jsmith-pw").status_code == 302
    assert client.get(reverse("home")).status_code == 200
    mirror()
    account_services.account_disable(uid="JSmith", actor=user_for(directory.BY_UID["alice"]))
    assert client.get(reverse("home")).status_code == 302
    assert not User.objects.get(username__iexact="jsmith").is_collaborator


def test_disable_ends_sessions_even_while_the_directory_is_down(account_directory, bob):
    mirror()
    bob_client = logged_in_client(bob)
    assert bob_client.get(reverse("home")).status_code == 200
    alice = user_for(directory.BY_UID["alice"])
    account_directory.stop()
    with pytest.raises(Exception, match=r"(?i)directory"):
        account_services.account_disable(uid="bob", actor=alice, source="cli")
    assert bob_client.get(reverse("home")).status_code == 302
    bob_user = User.objects.get(username="bob")
    assert not bob_user.is_collaborator and not bob_user.is_cluster_admin


def test_the_disable_page_says_what_it_cannot_end(as_alice, account_directory):
    mirror()
    page = as_alice.get(reverse("accounts:user_disable", kwargs={"uid": "bob"})).content.decode()
    assert "open SSH session" in page
    assert "pkill -KILL -u bob" in page


# --- The local password hash only for local names (finding 14) -----------------------------------
class CountingHasher(PBKDF2PasswordHasher):
    """Django's production hasher (PBKDF2), counting how often it hashes."""

    calls = 0

    def encode(self, password, salt, iterations=None):
        type(self).calls += 1
        return super().encode(password, salt, iterations)


@pytest.fixture
def production_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.accounts.test_identity.CountingHasher"]
    CountingHasher.calls = 0
    return CountingHasher


def hashes(client, username, password, hasher) -> tuple[int, int]:
    hasher.calls = 0
    status = login(client, username, password).status_code
    client.post(reverse("logout"))
    return status, hasher.calls


def test_a_directory_login_pays_no_local_hash_and_every_failure_pays_one(
    client, directory_server, bob, production_hasher
):
    User.objects.create_superuser("breakglass", "root@example.org", "glass-pw-123")
    assert hashes(client, "bob", bob.password, production_hasher) == (302, 0)
    # Failures do the same work whoever the name is: nothing tells a local name apart.
    assert hashes(client, "nobody-here", "guess", production_hasher) == (200, 1)
    assert hashes(client, "bob", "guess", production_hasher) == (200, 1)
    assert hashes(client, "breakglass", "guess", production_hasher) == (200, 1)
    assert hashes(client, "Not.A.Uid", "guess", production_hasher) == (200, 1)
    assert hashes(client, "breakglass", "glass-pw-123", production_hasher)[0] == 302


def queued_task_names() -> list[str]:
    import json

    from clusterweb.celery import app

    with app.connection_for_write() as conn:
        raw = conn.default_channel.client.lrange("celery", 0, -1)
    return [json.loads(message)["headers"]["task"] for message in raw]


def test_disable_enqueues_the_stop_of_jupyterhub_servers_and_the_task_stops_them(
    as_alice,
    account_directory,
    bob,
    jupyterhub,
    kube,
    redis,
    settings,
    django_capture_on_commit_callbacks,
):
    from clusterweb.accounts.directory import tasks
    from clusterweb.integrations import jupyterhub as hub_adapter
    from tests.fixtures.jupyterhub import jupyter_nodes, spawn_and_wait

    settings.JUPYTERHUB_URL = jupyterhub.url
    settings.JUPYTERHUB_API_TOKEN = jupyterhub.token
    hub_adapter.reset_client()
    jupyter_nodes(kube, "admin")  # where `small` servers run
    spawn_and_wait(jupyterhub, "bob")
    spawn_and_wait(jupyterhub, "bob", "second")
    mirror()
    with django_capture_on_commit_callbacks(execute=True):
        response = as_alice.post(reverse("accounts:user_disable", kwargs={"uid": "bob"}))
    assert response.status_code == 302
    # The page request only enqueued the stop: both servers still run.
    assert queued_task_names().count("clusterweb.accounts.tasks.account_servers_stop") == 1
    hub = hub_adapter.client_from_settings()
    assert hub.server_status("bob").state == "ready"
    assert hub.server_status("bob", name="second").state == "ready"
    assert sorted(tasks.account_servers_stop("bob")) == ["bob/", "bob/second"]
    for name in ("", "second"):
        hub.server_stop("bob", name=name)  # waits: idempotent once stopping
        assert hub.server_status("bob", name=name).state == "stopped"
    assert tasks.account_servers_stop("bob") == []
    hub_adapter.reset_client()


# --- The migration that merges ghost rows (finding 1) ---------------------------------------------
def test_the_migration_merges_ghosts_into_their_persons_row(db):
    import importlib

    from django.apps import apps
    from django.contrib.auth.hashers import make_password

    from clusterweb import clock
    from clusterweb.accounts.models import Signup, SignupState
    from clusterweb.audit.services import audit_record

    migration = importlib.import_module("clusterweb.accounts.migrations.0005_merge_ghost_users")
    bob_row = User.objects.create(username="bob", password="!unusable", is_collaborator=True)
    ghosts = [
        User.objects.create(username=name, password="!unusable", is_collaborator=True)
        for name in ("ｂｏｂ", "𝐛𝐨𝐛", "𝐚𝐥𝐢𝐜𝐞", "ａｌｉｃｅ")
    ]
    glass = User.objects.create(username="glass", password=make_password("x"), is_superuser=True)
    glass_ghost = User.objects.create(username="ｇｌａｓｓ", password="!unusable")
    for ghost in ghosts:
        audit_record(action="login.succeeded", actor=ghost, source="web")
    now = clock.now()
    signup = Signup.objects.create(
        state=SignupState.ACTIVE,
        email="dave@example.org",
        token_hash="0" * 64,
        invited_by=ghosts[2],
        invited_by_username="𝐚𝐥𝐢𝐜𝐞",
        invited_at=now,
        expires_at=now,
        username="dave",
        updated_at=now,
        decided_by=ghosts[0],
    )

    counts = migration.merge_ghost_users(apps)

    assert counts == {"merged": 3, "renamed": 1, "deactivated": 1}
    names = set(User.objects.values_list("username", flat=True))
    assert names == {"bob", "alice", "glass", "ｇｌａｓｓ"}
    alice_row = User.objects.get(username="alice")
    assert alice_row.pk == ghosts[2].pk
    events = AuditEvent.objects.filter(action="login.succeeded").order_by("pk")
    assert [(e.actor_id, e.actor_username) for e in events] == [
        (bob_row.pk, "ｂｏｂ"),
        (bob_row.pk, "𝐛𝐨𝐛"),
        (alice_row.pk, "𝐚𝐥𝐢𝐜𝐞"),
        (alice_row.pk, "ａｌｉｃｅ"),
    ]
    signup.refresh_from_db()
    assert (signup.decided_by_id, signup.invited_by_id) == (bob_row.pk, alice_row.pk)
    assert signup.invited_by_username == "𝐚𝐥𝐢𝐜𝐞"
    glass.refresh_from_db()
    glass_ghost.refresh_from_db()
    assert glass.is_superuser and glass.is_active and not glass_ghost.is_active
    # Run again: the deactivated ghost is deactivated again, nothing else changes.
    assert migration.merge_ghost_users(apps) == {"merged": 0, "renamed": 0, "deactivated": 1}
    assert set(User.objects.values_list("username", flat=True)) == names


def test_the_stop_task_without_a_configured_hub_stops_nothing_and_says_why(
    account_directory, settings, caplog
):
    from clusterweb.accounts.directory import tasks
    from clusterweb.accounts.models import DisabledAccount
    from clusterweb.integrations import jupyterhub as hub_adapter

    settings.JUPYTERHUB_URL = ""
    hub_adapter.reset_client()
    DisabledAccount.objects.create(uid="bob", groups=["users"], disabled_at=clock_now())
    assert tasks.account_servers_stop("bob") == []
    assert "JUPYTERHUB_URL" in caplog.text
    hub_adapter.reset_client()


def clock_now():
    from clusterweb import clock

    return clock.now()
