"""`manage.py invite` and `manage.py signups`: the Users page's actions on the command line, with
CONVENTIONS.md's exit statuses and `--json` output, `--by` checked against the directory."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from clusterweb.accounts.models import Signup, SignupState, User
from tests.fixtures.signup import invitation, make_signup

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def run(*args) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the command, in this process."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), err.getvalue()


def test_invite_json_prints_one_object_with_the_signup_and_its_link(signup_directory, mailbox):
    assert not User.objects.filter(username="alice").exists()  # never logged in
    code, out, _ = run("invite", "dave@example.org", "--by", "alice", "--days", "5", "--json")
    assert code == 0
    payload = json.loads(out)
    assert list(payload) == ["signup"]
    row = payload["signup"]
    assert row["state"] == "invited" and row["email"] == "dave@example.org"
    assert row["invited_by"] == "alice" and row["mail_sent"] is True
    assert row["signup_url"].startswith("http://127.0.0.1:8001/invitation/?token=")
    assert len(mailbox.wait_for(1)) == 1
    # --by populated alice from the directory, with her groups.
    assert User.objects.get(username="alice").is_cluster_admin


@pytest.mark.parametrize("by", ["bob", "carol", "nobody-at-all"])
def test_only_an_admin_of_the_directory_may_invite(signup_directory, by):
    code, out, message = run("invite", "dave@example.org", "--by", by, "--json")
    assert code == 3
    assert "not permitted" in message
    assert json.loads(out)["error"]["exit"] == 3
    assert not Signup.objects.exists()


@pytest.mark.parametrize(
    ("args", "field"),
    [(["not-an-address"], "email"), (["dave@example.org", "--days", "99"], "days")],
)
def test_bad_input_exits_2_naming_the_field(signup_directory, args, field):
    code, out, message = run("invite", *args, "--by", "alice", "--json")
    assert code == 2
    assert message.startswith(f"{field}: ")
    assert json.loads(out)["error"]["field"] == field


def test_signups_lists_every_signup_as_json(db):
    invited, _ = invitation()
    pending = make_signup(username="erin")
    code, out, _ = run("signups", "--json")
    assert code == 0
    rows = json.loads(out)["signups"]
    assert {r["id"]: r["state"] for r in rows} == {
        invited.pk: "invited",
        pending.pk: "pending_approval",
    }
    assert rows[0]["fingerprints"] or rows[1]["fingerprints"]
    code, out, _ = run("signups")
    assert "erin" in out and "pending_approval" in out


def test_approve_reject_and_revoke_from_the_command_line(signup_directory, mailbox):
    dave, erin = make_signup(username="dave"), make_signup(username="erin")
    invited, _ = invitation("frank@example.org")

    code, out, _ = run("signups", "approve", str(dave.pk), "--by", "alice", "--json")
    assert code == 0 and json.loads(out)["signup"]["state"] == "provisioning"
    code, out, _ = run("signups", "reject", str(erin.pk), "--by", "alice", "--reason", "Who?")
    assert code == 0 and "Rejected" in out
    code, _, _ = run("signups", "revoke", str(invited.pk), "--by", "alice")
    assert code == 0

    assert Signup.objects.get(pk=dave.pk).state == SignupState.PROVISIONING
    erin.refresh_from_db()
    assert erin.state == SignupState.REJECTED and erin.reason == "Who?"
    assert erin.decided_by_username == "alice"
    assert Signup.objects.get(pk=invited.pk).revoked_at is not None


def test_an_action_that_cannot_be_done_exits_1_and_an_unknown_id_exits_2(signup_directory):
    active = make_signup(SignupState.ACTIVE)
    code, _, message = run("signups", "approve", str(active.pk), "--by", "alice")
    assert code == 1 and "is active" in message
    code, _, message = run("signups", "reject", "424242", "--by", "alice")
    assert code == 2 and message.startswith("id: ")
    code, _, _ = run("signups", "approve", str(active.pk), "--by", "bob")
    assert code == 3


def test_resend_gives_a_fresh_link(signup_directory, mailbox):
    signup, _old = invitation()
    code, _out, _ = run("signups", "resend", str(signup.pk), "--by", "alice", "--json")
    assert code == 0
    signup.refresh_from_db()
    assert signup.send_count == 2


@pytest.mark.django_db(transaction=True)
def test_the_process_exit_status_and_stdout_follow_the_conventions(signup_directory):
    from tests.fixtures.signup import _database_url

    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "signups", "approve", "7", "--by", "bob", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["error"]["exit"] == 3  # exactly one JSON object
    assert "not permitted" in result.stderr
    result = subprocess.run(
        [sys.executable, "manage.py", "signups", "approve", "seven", "--by", "alice"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "id" in result.stderr
