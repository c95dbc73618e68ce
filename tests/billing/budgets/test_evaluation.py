"""Budget evaluation: each threshold is mailed exactly once per budget per month, over real SMTP,
on PostgreSQL (the claim is a unique constraint), whatever runs at once, crashes or fails.

Every test runs on the shared clock: the subprocesses see the same time."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from billing.budgets import services
from billing.budgets.models import BudgetAlert, DeliveryState
from billing.budgets.services import SEND_LEASE, budget_evaluate
from sandbox.services.base import free_port
from tests.billing.budgets.conftest import (
    ROOT,
    at,
    base_node,
    budget_for,
    costs_at,
    manage,
    spark_node,
)

pytestmark = pytest.mark.django_db(transaction=True)

CROSSED = ["actual-50", "actual-80", "forecast-100"]


@pytest.fixture
def mid_month(clock_at, pools, people):
    """Jan 15 10:00: the base node and bob's Spark node since the 1st; a budget of which the
    actual spend is 90 % (50 % and 80 % crossed, 100 % not) and the forecast well above."""
    now = clock_at(at(1, 15, 10))
    base_node(at(1, 1))
    spark_node(at(1, 1))
    costs_at(now)
    budget_for(people["alice"], share="0.9")
    return now


def alert_mails(mailbox):
    return [m for m in mailbox.messages if "Budget:" in m.subject]


def test_each_crossed_threshold_is_mailed_once_with_figures_drivers_and_links(mid_month, mailbox):
    result = budget_evaluate()

    assert result.crossed == CROSSED and result.claimed == CROSSED
    mails = mailbox.wait_for(3)
    assert sorted(m.subject for m in mails) == sorted(
        [
            "[Clusterweb sandbox] Budget: 50 % of actual spend reached for January 2027",
            "[Clusterweb sandbox] Budget: 80 % of actual spend reached for January 2027",
            "[Clusterweb sandbox] Budget: 100 % of the forecast reached for January 2027",
        ]
    )
    mail = next(m for m in mails if "80 %" in m.subject)
    assert mail.recipients == ["alice@example.org"]
    alert = BudgetAlert.objects.get(threshold="actual-80")
    assert (
        mail.message["Message-ID"]
        == f"<budget-alert-{alert.budget_id}-2027-01-actual-80@localhost>"
    )
    text, html = mail.text().replace("\r\n", "\n"), mail.html()
    assert (
        f"Actual spend:  ${alert.spend}" in text
        and f"Budget:        ${alert.budget_amount}" in text
    )
    assert "By owner:\n    bob: $" in text and "By pool:\n    spark: $" in text
    # The running launch, with its owner, hourly rate and what it will still cost.
    assert "launch r-1 (1 × m5.xlarge) of bob in spark: $0.214/h" in text
    for slug in ("stop-spot-spark", "stop-gpu", "freeze"):
        link = f"http://127.0.0.1:8000/billing/budgets/actions/{slug}/?alert={alert.pk}"
        assert link in text and f'href="{link}"' in html
    assert all(a.state == DeliveryState.SENT and a.attempts == 1 for a in BudgetAlert.objects.all())

    again = budget_evaluate()

    assert again.crossed == CROSSED and again.claimed == [] and again.sent == []
    assert len(alert_mails(mailbox)) == 3


def test_ten_evaluations_at_once_in_threads_send_each_threshold_once(mid_month, mailbox):
    start = threading.Barrier(10)
    errors = []

    def evaluate():
        try:
            start.wait()
            budget_evaluate()
        except Exception as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    mailbox.wait_for(3)
    assert sorted(m.message["Message-ID"] for m in alert_mails(mailbox)) == sorted(
        a.message_id("localhost") for a in BudgetAlert.objects.all()
    )
    assert BudgetAlert.objects.filter(state=DeliveryState.SENT).count() == 3


# Ten evaluation processes from one fresh Python with Django set up: it forks them (it runs no
# thread, so forking is safe), each opens its own database connection and SMTP session, and all
# wait for the go so they evaluate at the same moment. One Django start instead of ten keeps the
# test quick on a loaded machine.
FORKER = """
import json, os, sys, time
import django
django.setup()
from django.db import connections
from billing.budgets.services import budget_evaluate
connections.close_all()
ready, go = sys.argv[1], sys.argv[2]
children = []
for _ in range(10):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        while not os.path.exists(go):
            time.sleep(0.002)
        try:
            out, code = json.dumps(budget_evaluate().as_json()), 0
        except Exception as exc:
            out, code = json.dumps({"error": repr(exc)}), 1
        os.write(write, out.encode())
        connections.close_all()
        os._exit(code)
    os.close(write)
    children.append((pid, read))
open(ready, "w").close()
results = []
for pid, read in children:
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    _, status = os.waitpid(pid, 0)
    results.append({"pid": pid, "exit": os.waitstatus_to_exitcode(status), "out": json.loads(data)})
print(json.dumps(results))
"""


def test_ten_evaluation_processes_at_once_send_each_threshold_once(mid_month, mailbox, tmp_path):
    from tests.fixtures.services import _worker_env

    ready, go = tmp_path / "ready", tmp_path / "go"
    forker = subprocess.Popen(
        [sys.executable, "-c", FORKER, str(ready), str(go)],
        cwd=ROOT,
        env={**os.environ, **_worker_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    while not ready.exists():
        assert forker.poll() is None, forker.communicate()
        assert time.monotonic() < deadline, "the evaluation processes did not start"
        time.sleep(0.02)
    go.touch()
    out, err = forker.communicate(timeout=90)

    assert forker.returncode == 0, err
    children = json.loads(out)
    assert len({c["pid"] for c in children}) == 10
    assert [c["exit"] for c in children] == [0] * 10, children
    outcomes = [c["out"] for c in children]
    assert all(o["crossed"] == CROSSED for o in outcomes)
    assert sorted(k for o in outcomes for k in o["claimed"]) == CROSSED  # each claimed once
    assert sum(len(o["sent"]) for o in outcomes) == 3
    mailbox.wait_for(3)
    assert len(alert_mails(mailbox)) == 3
    assert len({m.message["Message-ID"] for m in alert_mails(mailbox)}) == 3


def test_a_worker_killed_between_claim_and_send_sends_after_the_lease_once(
    mid_month, mailbox, failpoints, shared_clock
):
    failpoints.arm("budget.before_send", "crash")
    crashed = manage("budget", "evaluate", "--json")
    crashed.communicate(timeout=120)

    assert crashed.returncode == 70  # killed at the failpoint: claimed, taken, not sent
    assert mailbox.messages == []
    taken = BudgetAlert.objects.get(threshold="actual-50")
    assert taken.state == DeliveryState.PENDING and taken.attempts == 1
    assert BudgetAlert.objects.filter(attempts=0).count() == 2  # claimed, never taken
    failpoints.clear()

    soon = budget_evaluate()  # another worker, right after

    assert [s["what"] for s in soon.sent] == ["alert actual-80", "alert forecast-100"]
    assert soon.claimed == []  # the taken one waits for its lease to end
    shared_clock.advance((SEND_LEASE + timedelta(minutes=1)).total_seconds())

    later = budget_evaluate()

    assert [s["what"] for s in later.sent] == ["alert actual-50"]
    mailbox.wait_for(3)
    assert len(alert_mails(mailbox)) == 3
    assert BudgetAlert.objects.get(threshold="actual-50").attempts == 2


def test_smtp_down_then_up_queues_and_sends_once(mid_month, mailbox, settings, shared_clock):
    settings.EMAIL_PORT = free_port()  # nothing listens: connection refused

    down = budget_evaluate()

    assert down.claimed == CROSSED and down.sent == [] and len(down.failed) == 3
    assert mailbox.messages == []
    alert = BudgetAlert.objects.get(threshold="actual-50")
    assert alert.state == DeliveryState.PENDING and "could not send" in alert.last_error
    settings.EMAIL_PORT = mailbox.port

    assert budget_evaluate().sent == []  # backing off: not due yet
    shared_clock.advance(120)
    up = budget_evaluate()

    assert sorted(s["what"] for s in up.sent) == [f"alert {k}" for k in CROSSED]
    assert budget_evaluate().sent == []
    mailbox.wait_for(3)
    assert len(alert_mails(mailbox)) == 3
    assert set(BudgetAlert.objects.values_list("attempts", flat=True)) == {2}


def test_a_lower_figure_later_sends_nothing_again_this_month(mid_month, mailbox, people):
    budget_evaluate()
    mailbox.wait_for(3)
    services.budget_set(actor=people["alice"], monthly="100000")  # nothing crossed any more

    assert budget_evaluate().crossed == []
    budget_for(people["alice"], share="0.9")  # crossed again

    again = budget_evaluate()

    assert again.crossed == CROSSED and again.claimed == [] and again.sent == []
    assert len(alert_mails(mailbox)) == 3


def test_a_new_month_re_arms_every_threshold(mid_month, mailbox, clock_at):
    budget_evaluate()
    mailbox.wait_for(3)
    now = clock_at(at(2, 20, 10))  # February: the same nodes run on
    costs_at(now)

    february = budget_evaluate()

    assert february.month == "2027-02" and february.claimed == february.crossed
    assert "actual-50" in february.claimed
    mailbox.wait_for(3 + len(february.claimed))
    assert BudgetAlert.objects.filter(month__month=2).count() == len(february.claimed)
    assert {a.month.month for a in BudgetAlert.objects.all()} == {1, 2}


def test_the_forecast_alert_fires_on_day_3_with_a_gpu_sized_launch_running(
    clock_at, pools, people, mailbox
):
    now = clock_at(at(3, 3, 1))
    base_node(at(3, 1))
    costs_at(now)
    services.budget_set(actor=people["alice"], monthly="30")

    quiet = budget_evaluate()

    assert quiet.crossed == []  # the base alone stays far below
    gpu = spark_node(
        at(3, 3, 0),
        pool="gpu",
        instance_type="g5.xlarge",
        request="r-gpu",
        tags={"clusterweb:expires-at": "2027-03-04T00:00:00Z"},  # a 24 h launch
    )
    costs_at(now)

    result = budget_evaluate()

    assert result.crossed == ["forecast-100"] and result.claimed == ["forecast-100"]
    assert Decimal(result.actual) < Decimal("15")  # actual spend is far from 50 %
    assert Decimal(result.forecast) >= Decimal("30")
    (mail,) = mailbox.wait_for(1)
    assert "100 % of the forecast" in mail.subject
    text = mail.text()
    assert f"launch {gpu.request} (1 × g5.xlarge) of bob in gpu: $1.123/h" in text
    # 23 hours left of its 24 (give or take the seconds the test takes).
    assert re.search(r"(23 h|22 h 59 min) left \(ends 2027-03-04 00:00 UTC\)", text)


def test_an_alert_with_nobody_to_mail_is_not_marked_sent_and_goes_once_somebody_has_an_address(
    mid_month, mailbox, shared_clock
):
    """No admin has an email address and the budget names no other: the alerts stay claimed
    and unsent with the reason (the page says so), rather than "sent" to nobody; once an admin
    has an address, the next due attempt mails them, once."""
    from clusterweb.accounts.models import User

    User.objects.filter(username="alice").update(email="")

    nobody = budget_evaluate()

    assert nobody.claimed == CROSSED and nobody.sent == [] and len(nobody.failed) == 3
    alert = BudgetAlert.objects.get(threshold="actual-50")
    assert alert.state == DeliveryState.PENDING and "no recipient" in alert.last_error
    User.objects.filter(username="alice").update(email="alice@example.org")
    shared_clock.advance(120)

    later = budget_evaluate()

    assert sorted(s["what"] for s in later.sent) == [f"alert {k}" for k in CROSSED]
    assert all(s["to"] == ["alice@example.org"] for s in later.sent)
    mailbox.wait_for(3)
    assert len(alert_mails(mailbox)) == 3


def test_a_slow_run_leases_and_backs_off_from_the_time_it_reaches_each_email(
    mid_month, mailbox, settings, shared_clock
):
    """A run's ``now`` is when it began; with SMTP timing out email after email it reaches a
    later one minutes after. Its lease (and its backoff) must count from then: a lease already
    over when it is taken lets a concurrent run (one follows every cost refresh) take and send
    the same email at the same moment."""
    from clusterweb import clock

    settings.EMAIL_PORT = free_port()  # nothing listens: connection refused
    budget_evaluate()  # claimed, failed once: due again a minute later
    began = clock.now() + timedelta(minutes=2)
    shared_clock.advance(timedelta(minutes=12).total_seconds())  # the run reached it only now

    assert services._take(BudgetAlert, BudgetAlert.objects.get(threshold="actual-50").pk, began)
    slow = services.deliveries_send(now=began)  # the two others, failing again

    leased = BudgetAlert.objects.get(threshold="actual-50")
    assert leased.next_attempt_at >= clock.now() + SEND_LEASE - timedelta(seconds=30)
    assert len(slow.failed) == 2
    for alert in BudgetAlert.objects.exclude(threshold="actual-50"):
        assert alert.next_attempt_at > clock.now()  # backing off, not due again at once
