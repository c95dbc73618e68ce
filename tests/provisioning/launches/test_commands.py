"""CLI parity: `launch spark`, `requests`, `request`, `approve` (smaller with --workers/--hours),
`reject`, `cancel`, `approval-policy show|set`, with CONVENTIONS.md's --json (one object on
stdout), exit statuses (2 bad input naming the flag, 3 not permitted) and --by checked against
the directory; the same services, policy and audit entries as the pages."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from clusterweb.audit.models import AuditEvent
from provisioning.launches.models import ApprovalPolicy, LaunchRequest

pytestmark = pytest.mark.django_db


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        call_command(*args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


SPARK = ("launch", "spark", "--workers", "4", "--instance-type", "m5.xlarge", "--hours", "10")


def test_bob_asks_for_spark_workers_and_alice_approves_fewer(
    capsys, pools, spot_prices, directory_server
):
    code, out, err = run(capsys, *SPARK, "--user", "bob", "--json")

    assert code == 0, err
    request = json.loads(out)["request"]
    assert request["state"] == "pending_approval" and request["owner"] == "bob"
    assert request["requested_by"] == "bob" and request["max_cost"] == "8.56"
    assert f"request {request['id']} is pending_approval" in err

    code, out, err = run(
        capsys, "approve", str(request["id"]), "--by", "alice", "--workers", "2", "--json",
        "--note", "two to start",
    )  # fmt: skip
    assert code == 0, err
    approved = json.loads(out)["request"]
    assert approved["state"] == "approved"
    assert approved["approval"]["count"] == 2 and approved["approval"]["smaller"] is True
    assert approved["approval"]["max_cost"] == "4.28" and approved["approval"]["by"] == "alice"
    event = AuditEvent.objects.get(action="launch.approved")
    assert event.source == "cli" and event.actor_username == "alice"


def test_requests_and_request_print_one_json_object(capsys, pools, spot_prices, directory_server):
    run(capsys, *SPARK, "--user", "bob")
    run(capsys, *SPARK, "--user", "alice")
    bobs = LaunchRequest.objects.get(owner__username="bob")
    run(capsys, "cancel", str(bobs.pk), "--by", "bob")

    code, out, _ = run(capsys, "requests", "--json")
    assert code == 0 and [r["owner"] for r in json.loads(out)["requests"]] == ["alice"]
    code, out, _ = run(capsys, "requests", "--all", "--json")
    assert [r["state"] for r in json.loads(out)["requests"]] == ["approved", "cancelled"]
    code, out, _ = run(capsys, "request", str(bobs.pk), "--json")
    assert code == 0 and json.loads(out)["request"]["stop_reason"] == "owner"
    code, out, _ = run(capsys, "request", str(bobs.pk))
    assert f"#{bobs.pk} spark cancelled owner=bob" in out and "stop reason: owner" in out


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--workers", "0"), "--workers"),
        (("--workers", "11"), "--workers"),
        (("--hours", "0"), "--hours"),
        (("--hours", "49"), "--hours"),
        (("--instance-type", "p5.48xlarge"), "--instance-type"),
        (("--on-demand", "--allow-on-demand-fallback"), "--allow-on-demand-fallback"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(capsys, pools, spot_prices, directory_server, args,
                                           flag):  # fmt: skip
    base = dict(zip(SPARK[2::2], SPARK[3::2], strict=True))
    base.update(dict(zip(args[::2], args[1::2], strict=False)))
    argv = ["launch", "spark", "--user", "alice", "--json"]
    for key, value in base.items():
        argv += [key, value]
    if "--on-demand" in args:
        argv += ["--on-demand", "--allow-on-demand-fallback"]

    code, out, err = run(capsys, *argv)

    assert code == 2 and err.strip().startswith(f"{flag}:")
    assert json.loads(out)["error"]["exit"] == 2
    assert not LaunchRequest.objects.exists()


def test_a_collaborator_launching_for_someone_else_exits_3(
    capsys, pools, spot_prices, directory_server
):
    code, out, err = run(capsys, *SPARK, "--user", "alice", "--by", "bob", "--json")

    assert code == 3 and "Collaborators launch only for themselves" in err
    assert json.loads(out)["error"]["exit"] == 3 and not LaunchRequest.objects.exists()


def test_a_collaborator_cannot_approve_and_nobody_approves_twice(
    capsys, pools, spot_prices, directory_server
):
    run(capsys, *SPARK, "--user", "bob")
    launch = LaunchRequest.objects.get()

    code, _, err = run(capsys, "approve", str(launch.pk), "--by", "bob")
    assert code == 3 and "Only admins may approve" in err
    assert run(capsys, "reject", str(launch.pk), "--by", "alice", "--note", "no")[0] == 0
    code, _, err = run(capsys, "approve", str(launch.pk), "--by", "alice")
    assert code == 2 and err.startswith("state:") and "is rejected by alice" in err
    code, _, err = run(capsys, "approve", str(launch.pk), "--by", "alice", "--workers", "9")
    assert code == 2 and err.startswith("--workers:")
    code, _, err = run(capsys, "approve", "999999", "--by", "alice")
    assert code == 2 and "no launch request 999999" in err
    launch.refresh_from_db()
    assert launch.state == "rejected" and launch.decision_note == "no"


def test_cancelling_someone_elses_request_exits_3(capsys, pools, spot_prices, directory_server):
    run(capsys, *SPARK, "--user", "alice", "--workers", "10")  # over the threshold: pending
    launch = LaunchRequest.objects.get()

    code, _, err = run(capsys, "cancel", str(launch.pk), "--by", "bob")

    assert code == 3 and "only your own" in err
    launch.refresh_from_db()
    assert launch.state == "pending_approval"


def test_an_unknown_by_exits_3(capsys, pools, directory_server):
    code, _, err = run(capsys, *SPARK, "--user", "nobody-here")

    assert code == 3 and "not a user in the cluster's directory" in err


def test_a_nul_character_in_a_uid_exits_2_not_a_traceback(
    capsys, pools, spot_prices, directory_server
):
    run(capsys, *SPARK, "--user", "alice", "--workers", "10")  # over the threshold: pending
    launch = LaunchRequest.objects.get()

    for args in (
        (*SPARK, "--user", "b\x00ob"),
        (*SPARK, "--user", "bob", "--by", "b\x00ob"),
        ("cancel", str(launch.pk), "--by", "al\x00ice"),
        ("approve", str(launch.pk), "--by", "al\x00ice"),
        ("requests", "--user", "b\x00ob"),
    ):
        code, _, err = run(capsys, *args)
        assert code == 2 and "NUL" in err, (args, err)

    assert LaunchRequest.objects.get().state == "pending_approval"


def test_approval_policy_show_and_set(capsys, pools, directory_server):
    code, out, _ = run(capsys, "approval-policy", "show", "--json")
    assert code == 0 and json.loads(out)["policy"]["threshold"] == "10.00"

    code, out, err = run(
        capsys, "approval-policy", "set", "--threshold", "25", "--require",
        "spark=no,jupyter=yes", "--by", "alice", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["policy"]["require"] == {"spark": False, "gpu": True, "jupyter": True}
    policy = ApprovalPolicy.current()
    assert policy.threshold == Decimal("25.00") and policy.updated_by_username == "alice"
    assert AuditEvent.objects.get(action="approval_policy.updated").source == "cli"
    code, out, _ = run(capsys, "approval-policy", "show")
    assert "threshold $25.00" in out and "spark=no, gpu=yes, jupyter=yes" in out


@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (("--threshold", "-1", "--by", "alice"), 2, "--threshold:"),
        (("--threshold", "ten", "--by", "alice"), 2, "--threshold:"),
        (("--threshold", "1.234", "--by", "alice"), 2, "--threshold:"),
        (("--require", "cobol=yes", "--by", "alice"), 2, "--require:"),
        (("--require", "spark=maybe", "--by", "alice"), 2, "--require:"),
        (("--threshold", "1000", "--by", "bob"), 3, "not permitted"),
    ],
)
def test_approval_policy_set_refuses_bad_input_and_collaborators(
    capsys, pools, directory_server, args, code, start
):
    got, _, err = run(capsys, "approval-policy", "set", *args)

    assert got == code and err.strip().startswith(start)
    assert ApprovalPolicy.current().threshold == Decimal("10.00")
    assert not AuditEvent.objects.filter(action="approval_policy.updated").exists()


def test_requests_json_reads_each_requests_instances_steps_and_outcome_at_once(
    capsys, pools, spot_prices, alice_user, django_assert_max_num_queries
):
    from provisioning.launches import services
    from tests.provisioning.launches.test_requests import spark
    from tests.provisioning.launches.test_transitions import node_row

    launches = [spark(alice_user, count=1) for _ in range(5)]
    node_row("i-0a", pool="spark", request=str(launches[0].pk))
    node_row("i-0b", pool="spark", request=str(launches[0].pk))
    services.step_record(launches[1].pk, "room", detail="1 node")
    from provisioning.launches.execution_models import LaunchExecution

    LaunchExecution.objects.create(
        request=launches[3], capacity_type="on-demand", fell_back=True, actual_cost="1.25"
    )

    # The requests, their steps, their instances, their executions: four reads for any count.
    with django_assert_max_num_queries(4):
        code, out, _ = run(capsys, "requests", "--json")

    rows = {r["id"]: r for r in json.loads(out)["requests"]}
    assert code == 0 and rows[launches[0].pk]["instances"] == ["i-0a", "i-0b"]
    assert [s["name"] for s in rows[launches[1].pk]["steps"]] == ["room"]
    assert rows[launches[2].pk]["instances"] == []
    assert rows[launches[3].pk]["outcome"]["actual_cost"] == "1.25"
    assert rows[launches[3].pk]["outcome"]["fell_back_to_on_demand"] is True
    assert rows[launches[4].pk]["outcome"]["actual_cost"] is None
