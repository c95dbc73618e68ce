"""`manage.py users`: the Users page's account actions on the command line, with CONVENTIONS.md's
exit statuses and `--json` output, `--by` checked against the directory."""

import io
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from clusterweb.accounts.models import DirectoryUser, PasswordReset
from tests.fixtures.accounts import is_locked, mirror
from tests.fixtures.signup import binds, group_members

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("users", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), err.getvalue()


def test_users_json_lists_every_directory_user_as_one_object(account_directory):
    mirror()
    code, out, _ = run("--json")
    assert code == 0
    payload = json.loads(out)
    assert list(payload) == ["users"]
    rows = {row["id"]: row for row in payload["users"]}
    assert set(rows) == {"alice", "bob", "carol"}
    assert rows["alice"]["groups"] == ["admins", "users"] and rows["alice"]["admin"] is True
    assert rows["bob"]["state"] == "active" and rows["bob"]["uid_number"] == 10002
    assert rows["carol"]["state"] == "no_access"
    assert rows["bob"]["last_login"] is None and rows["bob"]["running_nodes"] == 0


def test_users_sync_reads_the_directory_into_the_database(account_directory):
    code, out, _ = run("sync", "--json")
    assert code == 0
    assert json.loads(out)["sync"]["people"] == 3
    assert DirectoryUser.objects.count() == 3


def test_disable_and_enable_by_an_admin(account_directory, bob):
    code, out, _ = run("disable", "bob", "--by", "alice", "--reason", "left", "--json")
    assert code == 0
    user = json.loads(out)["user"]
    assert user["id"] == "bob" and user["state"] == "disabled" and user["groups"] == []
    assert is_locked(account_directory, "bob")
    assert not binds(account_directory, "bob", bob.password)

    code, out, _ = run("enable", "bob", "--by", "alice", "--json")
    assert code == 0
    assert json.loads(out)["user"]["state"] == "active"
    assert binds(account_directory, "bob", bob.password)


def test_promote_and_demote(account_directory):
    code, out, _ = run("promote", "bob", "--by", "alice", "--json")
    assert code == 0 and json.loads(out)["user"]["admin"] is True
    assert "bob" in group_members(account_directory, "admins")
    code, out, _ = run("demote", "bob", "--by", "alice")
    assert code == 0 and out.strip() == "bob: active"
    assert "bob" not in group_members(account_directory, "admins")


def test_reset_link_prints_the_link_as_a_reset_object(account_directory, mailoutbox):
    code, out, _ = run("reset-link", "bob", "--by", "alice", "--json")
    assert code == 0
    reset = json.loads(out)["reset"]
    assert reset["uid"] == "bob" and reset["state"] == "open" and reset["mail_sent"] is True
    assert reset["link"].startswith("http://127.0.0.1:8001/reset/?token=")
    token = parse_qs(urlsplit(reset["link"]).query)["token"][0]
    assert PasswordReset.objects.get(pk=reset["id"]).token_hash != token
    assert reset["link"] in mailoutbox[0].body


@pytest.mark.parametrize("by", ["bob", "carol", "nobody-at-all"])
def test_only_an_admin_of_the_directory_may_act(account_directory, by):
    code, out, message = run("disable", "carol", "--by", by, "--json")
    assert code == 3 and "not permitted" in message
    assert json.loads(out)["error"]["exit"] == 3
    assert not is_locked(account_directory, "carol")


@pytest.mark.parametrize("uid", ["nobody", "*", "al*", "bob)(uid=*", ""])
def test_an_unknown_user_is_bad_input_naming_the_uid(account_directory, uid):
    code, out, message = run("disable", uid, "--by", "alice", "--json")
    assert code == 2 and message.startswith("uid: ")
    assert json.loads(out)["error"]["field"] == "uid"
    assert not is_locked(account_directory, "alice")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["disable", "alice", "--by", "alice"], "your own account"),
        (["demote", "alice", "--by", "alice"], "last active admin"),
        (["enable", "bob", "--by", "alice"], "not disabled"),
        (["promote", "alice", "--by", "alice"], "an admin already"),
    ],
)
def test_a_refused_action_fails_with_exit_1(account_directory, args, message):
    code, _, text = run(*args)
    assert code == 1 and message in text
    assert sorted(group_members(account_directory, "admins")) == ["alice"]


def test_with_the_directory_down_the_command_fails_with_exit_1(account_directory):
    account_directory.stop()
    code, _, message = run("sync")
    assert code == 1 and "failed" in message
