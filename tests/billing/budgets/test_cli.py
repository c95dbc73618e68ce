"""`manage.py budget show|set|freeze|unfreeze|evaluate`: the budget page's actions on the command
line, with --by checked against the directory, --json printing one object, and the exit
statuses of CONVENTIONS.md (2 bad input naming the field, 3 not permitted), nothing changed on
refusal."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from billing.budgets.freeze import freeze_state
from billing.budgets.models import Budget
from tests.billing.budgets.conftest import at, base_node, costs_at, spark_node

pytestmark = pytest.mark.django_db


def budget(*args):
    out, err = StringIO(), StringIO()
    call_command("budget", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(*args):
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("budget", *args, stdout=StringIO(), stderr=err)
    return exit_info.value.code, err.getvalue()


@pytest.fixture
def cluster(clock_at, pools, people):
    now = clock_at(at(1, 15, 10))
    base_node(at(1, 1))
    spark_node(at(1, 1))
    costs_at(now)
    return now


def test_set_then_show_as_json(cluster, directory_server):
    out, _ = budget(
        "set", "--monthly", "150", "--recipients", "finance@example.org", "--by", "alice", "--json"
    )

    written = json.loads(out)["budget"]
    assert written["id"] == Budget.objects.get().pk and written["monthly"] == "150.00"
    assert written["thresholds"] == [50, 80, 100] and written["forecast_thresholds"] == [100]
    assert written["recipients"] == ["finance@example.org"]
    assert written["updated_by"] == "alice"
    shown = json.loads(budget("show", "--json")[0])["budget"]
    assert shown["state"] in ("ok", "forecast_over", "over")
    assert shown["month"] == "2027-01" and shown["currency"] == "USD"
    assert set(shown["spend"]) == {
        "actual",
        "source",
        "estimate",
        "billed",
        "billed_through",
        "as_of",
    }
    assert shown["by_owner"] == {"bob": shown["by_owner"]["bob"]}
    assert shown["freeze"] == {
        "frozen": False,
        "reason": None,
        "by": None,
        "at": None,
        "until": None,
    }


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--monthly", "-10"], "monthly"),
        (["--monthly", "ten"], "monthly"),
        (["--monthly", "100", "--thresholds", "0,50"], "thresholds"),
        (["--monthly", "100", "--thresholds", "50,1001"], "thresholds"),
        (["--monthly", "100", "--forecast", "x"], "forecast"),
        (["--monthly", "100", "--recipients", "not an address"], "recipients"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_changes_nothing(
    cluster, directory_server, args, field
):
    budget("set", "--monthly", "150", "--by", "alice")

    code, err = refused("set", *args, "--by", "alice")

    assert code == 2 and err.startswith(f"{field}:")
    stored = Budget.objects.get()
    assert str(stored.monthly) == "150.00" and stored.thresholds == [50, 80, 100]


def test_a_collaborator_is_not_permitted_and_by_is_required(cluster, directory_server):
    assert refused("set", "--monthly", "5", "--by", "bob")[0] == 3
    assert refused("freeze", "--reason", "mine", "--by", "bob")[0] == 3
    assert refused("unfreeze", "--by", "bob")[0] == 3
    assert refused("set", "--monthly", "5")[0] == 2
    assert not Budget.objects.exists()


def test_freeze_and_unfreeze(cluster, directory_server):
    out, _ = budget("freeze", "--reason", "Over budget", "--by", "alice", "--json")

    assert json.loads(out)["budget"]["freeze"]["reason"] == "Over budget"
    assert freeze_state().frozen
    assert "Launches frozen by alice" in budget("show")[0]
    assert refused("freeze", "--reason", " ", "--by", "alice")[0] == 2
    budget("unfreeze", "--by", "alice")
    assert not freeze_state().frozen


def test_evaluate_prints_what_it_sent_and_needs_no_by(cluster, directory_server, mailbox):
    budget("set", "--monthly", "1", "--forecast", "", "--by", "alice")

    out, _ = budget("evaluate", "--json")

    evaluation = json.loads(out)["evaluation"]
    assert evaluation["crossed"] == ["actual-50", "actual-80", "actual-100"]
    assert [s["what"] for s in evaluation["sent"]] == [
        "alert actual-50",
        "alert actual-80",
        "alert actual-100",
    ]
    assert len(mailbox.wait_for(3)) == 3
    text, _ = budget("evaluate")
    assert "crossed: actual-50, actual-80, actual-100" in text and "nothing to send" in text
