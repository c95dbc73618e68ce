"""`stop ID --by U [--json]` and the stop service: the owner or an admin stops a launch that
runs (it goes `stopping` and the stop steps are enqueued after the commit); a request that runs
nothing yet is cancelled instead; a second stop changes nothing; anyone else exits 3; disabling a
person stops their running launches."""

from __future__ import annotations

import json

import pytest

from clusterweb.accounts.directory import services as account_services
from clusterweb.audit.models import AuditEvent
from provisioning.launches import services
from provisioning.launches.models import LaunchRequest
from tests.provisioning.launches.test_commands import SPARK, run

pytestmark = pytest.mark.django_db


def _running(capsys) -> LaunchRequest:
    code, out, err = run(capsys, *SPARK, "--user", "bob", "--workers", "2", "--json")
    assert code == 0, err
    launch = LaunchRequest.objects.get(pk=json.loads(out)["request"]["id"])
    services.approve(launch.pk, by=services_user("alice"))
    assert services.transition(launch.pk, ["approved"], "launching", source="task")
    assert services.transition(launch.pk, ["launching"], "running", source="task")
    return launch


def services_user(uid: str):
    from provisioning.launches.cli import user_for

    return user_for(uid)


def test_the_owner_stops_a_running_launch(capsys, pools, spot_prices, directory_server):
    launch = _running(capsys)

    code, out, err = run(capsys, "stop", str(launch.pk), "--by", "bob", "--json")

    assert code == 0, err
    request = json.loads(out)["request"]
    assert request["state"] == "stopping" and request["stop_reason"] == "owner"
    event = AuditEvent.objects.get(action="launch.stopping")
    assert event.actor_username == "bob" and event.source == "cli"
    # Again: nothing changes, still done.
    code, out, _ = run(capsys, "stop", str(launch.pk), "--by", "alice", "--json")
    assert code == 0 and json.loads(out)["request"]["stop_reason"] == "owner"
    assert AuditEvent.objects.filter(action="launch.stopping").count() == 1


def test_an_admin_stop_says_admin(capsys, pools, spot_prices, directory_server):
    launch = _running(capsys)
    code, out, _ = run(capsys, "stop", str(launch.pk), "--by", "alice", "--json")
    assert code == 0 and json.loads(out)["request"]["stop_reason"] == "admin"


def test_stopping_a_pending_request_cancels_it(capsys, pools, spot_prices, directory_server):
    code, out, _ = run(capsys, *SPARK, "--user", "bob", "--json")
    launch_id = json.loads(out)["request"]["id"]

    code, out, err = run(capsys, "stop", str(launch_id), "--by", "bob", "--json")

    assert code == 0, err
    request = json.loads(out)["request"]
    assert request["state"] == "cancelled" and request["stop_reason"] == "owner"


def test_someone_else_cannot_stop_bob_s_launch(capsys, pools, spot_prices, directory_server):
    launch = _running(capsys)
    code, _, _ = run(capsys, "stop", str(launch.pk), "--by", "carol")
    assert code == 3
    launch.refresh_from_db()
    assert launch.state == "running"


def test_an_unknown_request_is_bad_input(capsys, pools, directory_server):
    code, _, err = run(capsys, "stop", "999999", "--by", "alice")
    assert code == 2 and "ID" in err


def test_disabling_bob_stops_his_running_launch(
    capsys, pools, spot_prices, directory_server, account_directory
):
    launch = _running(capsys)
    account_services.account_disable(uid="bob", actor=services_user("alice"), source="cli")
    launch.refresh_from_db()
    assert launch.state == "stopping" and launch.stop_reason == "disabled"
    assert AuditEvent.objects.get(action="account.disabled").detail["launches_stopped"] == 1


def test_another_collaborator_may_not_stop_it(
    capsys, pools, spot_prices, directory_server, dave_user
):
    from django.core.exceptions import PermissionDenied

    from provisioning.launches.execution import launch_stop

    launch = _running(capsys)
    with pytest.raises(PermissionDenied):
        launch_stop(launch.pk, by=dave_user)
    launch.refresh_from_db()
    assert launch.state == "running"
