"""The freeze: one flag with a reason. While frozen, collaborators' new launch requests are
refused with the reason and nothing is written; an admin's own launch is allowed and recorded as
such; lifted by an admin or at the start of the month."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction

from billing.budgets import services
from billing.budgets.freeze import freeze_state
from clusterweb.audit.models import AuditEvent
from provisioning.launches import services as launches
from provisioning.launches.models import LaunchRequest
from tests.billing.budgets.conftest import at

pytestmark = pytest.mark.django_db


def spark(user):
    return launches.request_launch(
        requested_by=user,
        owner=user,
        kind="spark",
        pool="spark",
        instance_type="m5.xlarge",
        count=2,
        hours=4,
        capacity_type="spot",
    )


def test_while_frozen_a_collaborators_request_is_refused_with_the_reason(
    pools, spot_prices, people
):
    services.budget_freeze(actor=people["alice"], reason="Jänner is spent — Ωmega 💸")

    with pytest.raises(launches.LaunchRefused) as refused:
        spark(people["bob"])

    assert "frozen" in str(refused.value) and "Jänner is spent — Ωmega 💸" in str(refused.value)
    assert "by alice" in str(refused.value)
    assert LaunchRequest.objects.count() == 0


def test_an_admins_own_launch_is_allowed_while_frozen_and_recorded_as_such(
    pools, spot_prices, people
):
    services.budget_freeze(actor=people["alice"], reason="January is spent")

    launch = spark(people["alice"])

    assert launch.pk and launch.requested_by == people["alice"]
    bypass = AuditEvent.objects.get(action="budget.freeze_bypassed")
    assert bypass.actor_username == "alice" and bypass.detail["reason"] == "January is spent"


@pytest.mark.django_db(transaction=True)
def test_a_request_written_while_a_freeze_commits_waits_for_it_and_is_refused(
    pools, spot_prices, people
):
    """The freeze is asked in the transaction that writes the request, under the budget row's
    lock: a request arriving while a freeze is being committed waits and then sees it (asked
    before that transaction, bob's request went through and was written while frozen)."""
    services.budget_set(actor=people["alice"], monthly="500")
    frozen_not_committed = threading.Event()
    commit = threading.Event()
    outcome: list[str] = []

    def freeze() -> None:
        try:
            with transaction.atomic():
                services.budget_freeze(actor=people["alice"], reason="January is spent")
                frozen_not_committed.set()
                commit.wait(10)
        finally:
            connection.close()

    def request() -> None:
        try:
            spark(people["bob"])
            outcome.append("written")
        except launches.LaunchRefused as exc:
            outcome.append(f"refused: {exc}")
        finally:
            connection.close()

    freezer = threading.Thread(target=freeze)
    freezer.start()
    assert frozen_not_committed.wait(10)
    requester = threading.Thread(target=request)
    requester.start()
    requester.join(1.0)
    waited = requester.is_alive()  # still waiting for the freeze's lock
    commit.set()
    freezer.join(10)
    requester.join(10)

    assert waited and len(outcome) == 1 and outcome[0].startswith("refused: ")
    assert "January is spent" in outcome[0]
    assert LaunchRequest.objects.count() == 0


def test_lifting_the_freeze_lets_collaborators_request_again(pools, spot_prices, people):
    services.budget_freeze(actor=people["alice"], reason="January is spent")
    services.budget_unfreeze(actor=people["alice"])

    assert spark(people["bob"]).state == "pending_approval"
    assert not freeze_state().frozen
    assert list(
        AuditEvent.objects.filter(action__startswith="budget.")
        .order_by("pk")
        .values_list("action", flat=True)
    ) == ["budget.frozen", "budget.unfrozen"]


def test_a_freeze_ends_at_the_start_of_next_month(clock_at, people):
    clock_at(at(1, 20, 12))
    services.budget_freeze(actor=people["alice"], reason="  too   much  ")

    frozen, reason, by, when, until = freeze_state()

    assert (frozen, reason, by, until) == (True, "too much", "alice", at(2, 1))
    assert when is not None
    clock_at(at(2, 1, 0, 1))
    assert freeze_state() == (False, "", "", None, None)


def test_only_an_admin_freezes_and_a_reason_is_required(people):
    with pytest.raises(PermissionDenied):
        services.budget_freeze(actor=people["bob"], reason="no")
    with pytest.raises(services.BudgetInputError) as missing:
        services.budget_freeze(actor=people["alice"], reason="   ")

    assert missing.value.field == "reason"
    with pytest.raises(PermissionDenied):
        services.budget_unfreeze(actor=people["bob"])
    assert not freeze_state().frozen


def test_the_freeze_refuses_bob_on_the_spark_page_and_on_the_command_line(
    pools, spot_prices, people, bob, directory_server, capsys
):
    """Every entry point that asks for a launch goes through the request service's refusal
    hook: the Spark page shows the reason beside the form, ``launch spark`` exits 2 with it;
    nothing is written either way. (Jupyter servers have no entry point of their own: the hub
    lets only Clusterweb start servers, deploy/jupyterhub/jupyterhub_config.py USER_ROLE.)"""
    from django.core.management import call_command

    from tests.fixtures.personas import logged_in_client

    services.budget_freeze(actor=people["alice"], reason="January is spent")
    ask = {"workers": "2", "instance_type": "m5.xlarge", "capacity_type": "spot", "hours": "4"}

    page = logged_in_client(bob).post("/launches/spark/", ask)

    assert page.status_code == 200
    assert "January is spent" in page.content.decode()
    with pytest.raises(SystemExit) as cli:
        call_command(
            "launch", "spark", "--workers", "2", "--instance-type", "m5.xlarge", "--hours", "4",
            "--user", "bob",
        )  # fmt: skip
    assert cli.value.code == 2 and "January is spent" in capsys.readouterr().err
    assert LaunchRequest.objects.count() == 0
