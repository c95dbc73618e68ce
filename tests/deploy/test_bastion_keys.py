"""The bastion's AuthorizedKeysCommand (deploy/bastion/clusterweb-authorized-keys), run as sshd
runs it: a subprocess with the login name as its argument, against the real slapd, bound as a
read-only account of its own."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import ldap
import pytest

from clusterweb.accounts.directory import services as account_services
from sandbox import directory
from tests.fixtures.accounts import key_add
from tests.fixtures.personas import user_for
from tests.fixtures.signup import public_key

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "bastion" / "clusterweb-authorized-keys"
BASTION_DN = f"cn=bastion,ou=services,{directory.SUFFIX}"
BASTION_PASSWORD = "bastion-read-only-pw"


@pytest.fixture
def bastion_account(account_directory):
    """A read-only service account for the bastion (the directory's ACLs give every bound
    account read access to people and groups, and write access to none of it)."""
    conn = account_directory.admin()
    conn.add_s(
        BASTION_DN,
        [
            ("objectClass", [b"organizationalRole", b"simpleSecurityObject"]),
            ("cn", [b"bastion"]),
            ("userPassword", [directory.ssha(BASTION_PASSWORD).encode()]),
        ],
    )
    conn.unbind_s()
    yield account_directory
    if not account_directory.running():
        account_directory.start()
    conn = account_directory.admin()
    conn.delete_s(BASTION_DN)
    conn.unbind_s()


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def config(tmp_path, bastion_account) -> Path:
    password = write_private(tmp_path / "password", BASTION_PASSWORD + "\n")
    return write_private(
        tmp_path / "authorized-keys.conf",
        f"""[ldap]
uri = {bastion_account.uri}
bind_dn = {BASTION_DN}
bind_password_file = {password}
people_dn = {directory.PEOPLE_DN}
groups_dn = {directory.GROUPS_DN}
group = users
timeout = 1
""",
    )


def lookup(
    config: Path | None, user: str, uid_number: int | str | None = None, **environ: str
) -> tuple[int, str, str]:
    # As the sshd_config line in deploy/bastion/README.md has it: `--`, the login name (%u) and
    # the uid number sshd resolved for it (%U); by default the persona's own (bob's for others).
    if uid_number is None:
        uid_number = directory.BY_UID.get(user, directory.BY_UID["bob"]).uid_number
    args = [sys.executable, str(SCRIPT)] + (["-c", str(config)] if config else [])
    args += ["--", user, str(uid_number)]
    env = {"PATH": os.environ["PATH"], **environ}
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env)
    return result.returncode, result.stdout, result.stderr


def test_it_prints_an_enabled_users_keys_one_per_line(config, bastion_account):
    keys = [public_key(comment="bob@laptop"), public_key("ecdsa", comment="bob@desk")]
    for key in keys:
        key_add(bastion_account, "bob", key)
    code, out, _ = lookup(config, "bob")
    assert code == 0
    assert out.splitlines() == keys


@pytest.mark.django_db
def test_a_disabled_account_gets_no_keys_and_enable_gives_them_back(config, bastion_account):
    key = public_key()
    key_add(bastion_account, "bob", key)
    alice = user_for(directory.BY_UID["alice"])
    account_services.account_disable(uid="bob", actor=alice, source="cli")
    assert lookup(config, "bob")[:2] == (0, "")
    account_services.account_enable(uid="bob", actor=alice, source="cli")
    assert lookup(config, "bob")[:2] == (0, key + "\n")


def test_the_lock_alone_is_enough(config, bastion_account):
    key_add(bastion_account, "bob", public_key())
    conn = bastion_account.admin()
    conn.modify_s(
        directory.BY_UID["bob"].dn,
        [(ldap.MOD_REPLACE, "pwdAccountLockedTime", [b"000001010000Z"])],
    )
    conn.unbind_s()
    assert lookup(config, "bob")[:2] == (0, "")


def test_someone_outside_the_users_group_gets_no_keys(config, bastion_account):
    key_add(bastion_account, "carol", public_key())
    assert lookup(config, "carol")[:2] == (0, "")


@pytest.mark.parametrize(
    "user",
    [
        "nobody",
        "*",
        "b*",
        "bob)(uid=*",
        "*)(uid=*))(|(uid=*",
        "BOB",
        "Bob",
        "-bob",
        "bob\n",
        "x" * 200,
    ],
)
def test_unknown_and_hostile_names_get_nothing(config, bastion_account, user):
    key_add(bastion_account, "bob", public_key())
    code, out, _ = lookup(config, user)
    assert (code, out) == (0, "")


def test_stored_values_that_are_not_plain_keys_are_left_out(config, bastion_account):
    good = public_key(comment="bob@laptop")
    blob = good.split()[1]
    for bad in (
        f'command="/bin/sh" ssh-ed25519 {blob} forced',
        f"ssh-ed25519 {blob} two\nlines",
        f"ssh-dss {blob} old",
    ):
        key_add(bastion_account, "bob", bad)
    key_add(bastion_account, "bob", good)
    assert lookup(config, "bob")[:2] == (0, good + "\n")


def test_the_bastions_account_can_read_but_not_write(bastion_account):
    conn = ldap.initialize(bastion_account.uri)
    conn.simple_bind_s(BASTION_DN, BASTION_PASSWORD)
    try:
        with pytest.raises(ldap.INSUFFICIENT_ACCESS):
            conn.modify_s(
                directory.BY_UID["bob"].dn,
                [(ldap.MOD_ADD, "sshPublicKey", [public_key().encode()])],
            )
        with pytest.raises(ldap.INSUFFICIENT_ACCESS):
            conn.modify_s(
                f"cn=users,{directory.GROUPS_DN}", [(ldap.MOD_ADD, "memberUid", [b"carol"])]
            )
    finally:
        conn.unbind_s()


# --- Every error: nothing on standard output, exit 1 ----------------------------------------------
def test_with_the_directory_down_it_prints_nothing_and_exits_1(config, bastion_account):
    key_add(bastion_account, "bob", public_key())
    bastion_account.stop()
    code, out, err = lookup(config, "bob")
    assert (code, out) == (1, "")
    assert "failed" in err


def test_a_wrong_bind_password_prints_nothing(tmp_path, config, bastion_account):
    write_private(tmp_path / "password", "wrong")
    key_add(bastion_account, "bob", public_key())
    assert lookup(config, "bob")[:2] == (1, "")


def test_a_server_that_never_answers_is_given_up_on_in_time(tmp_path, config, bastion_account):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    port = listener.getsockname()[1]
    config.write_text(config.read_text().replace(bastion_account.uri, f"ldap://127.0.0.1:{port}"))
    started = time.monotonic()
    try:
        assert lookup(config, "bob")[:2] == (1, "")
    finally:
        listener.close()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("mode", [0o666, 0o620])
def test_a_configuration_others_could_change_is_refused(config, bastion_account, mode):
    key_add(bastion_account, "bob", public_key())
    config.chmod(mode)
    code, out, err = lookup(config, "bob")
    assert (code, out) == (1, "")
    assert "writable by group or others" in err


def test_a_missing_configuration_is_an_error(tmp_path):
    assert lookup(tmp_path / "absent.conf", "bob")[:2] == (1, "")


def test_the_environment_may_configure_it_instead_of_a_file(tmp_path, bastion_account):
    key = public_key()
    key_add(bastion_account, "bob", key)
    password = write_private(tmp_path / "pw", BASTION_PASSWORD)
    code, out, _ = lookup(
        None,
        "bob",
        CLUSTERWEB_KEYS_CONFIG="",
        CLUSTERWEB_KEYS_URI=bastion_account.uri,
        CLUSTERWEB_KEYS_BIND_DN=BASTION_DN,
        CLUSTERWEB_KEYS_BIND_PASSWORD_FILE=str(password),
        CLUSTERWEB_KEYS_PEOPLE_DN=directory.PEOPLE_DN,
        CLUSTERWEB_KEYS_GROUPS_DN=directory.GROUPS_DN,
    )
    assert (code, out) == (0, key + "\n")


# --- Issue 13, finding 6: the uid number sshd resolved must be the directory entry's ------------
def test_keys_are_printed_only_when_sshds_uid_number_is_the_entrys(config, bastion_account):
    key = public_key()
    key_add(bastion_account, "bob", key)
    bob = directory.BY_UID["bob"]
    assert lookup(config, "bob", bob.uid_number)[:2] == (0, key + "\n")
    # A local account of that name (ssm-user, ec2-instance-connect, ...) resolves to a local uid
    # on the bastion: the directory's keys must not open it.
    for local in (0, 1000, 1001, 65534, bob.uid_number + 1):
        assert lookup(config, "bob", local)[:2] == (0, ""), local


@pytest.mark.parametrize("uid_number", ["", "-1", "10002x", "0x2712", " 10002", "1" * 30])
def test_a_malformed_uid_number_gets_nothing(config, bastion_account, uid_number):
    key_add(bastion_account, "bob", public_key())
    assert lookup(config, "bob", uid_number)[1] == ""


def test_without_the_uid_number_nothing_is_printed(config, bastion_account):
    key_add(bastion_account, "bob", public_key())
    args = [sys.executable, str(SCRIPT), "-c", str(config), "--", "bob"]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]}
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert "%U" in result.stderr
