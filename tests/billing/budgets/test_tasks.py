"""The budget's job: on beat every 15 minutes, and enqueued by a cost refresh that moved the
month's figure, run by a real Celery worker on the shared clock, sending over real SMTP."""

from __future__ import annotations

import time

import pytest

from billing.costs.services import cost_rows_refresh
from billing.tasks import BUDGET_EVALUATE_SECONDS, cost_refresh
from clusterweb.celery import beat_schedule
from clusterweb.health.models import Heartbeat
from tests.billing.budgets.conftest import at, base_node, budget_for, costs_at, spark_node

pytestmark = pytest.mark.django_db(transaction=True)


def test_beat_evaluates_the_budget_every_15_minutes():
    entry = beat_schedule()["budget-evaluate"]

    assert entry == {"task": "billing.tasks.budget_evaluate", "schedule": 900.0}
    assert BUDGET_EVALUATE_SECONDS == 900


def test_a_cost_refresh_that_moved_the_figure_has_the_worker_evaluate_the_budget(
    celery_worker, clock_at, pools, people, mailbox
):
    clock_at(at(1, 15, 10))
    base_node(at(1, 1))
    spark_node(at(1, 1))
    costs_at(at(1, 15, 10))
    budget_for(people["alice"], share="0.9")
    clock_at(at(1, 15, 10, 5))  # five minutes on: the refresh extends the running rows

    refreshed = cost_refresh.apply().get()

    assert any(m["updated"] or m["created"] for m in refreshed["months"])
    mails = mailbox.wait_for(3, timeout=60)
    assert sorted(m.subject.split("Budget: ")[1].split(" reached")[0] for m in mails) == [
        "100 % of the forecast",
        "50 % of actual spend",
        "80 % of actual spend",
    ]
    deadline = time.monotonic() + 20  # the job records its success just after the last mail
    while not Heartbeat.objects.filter(name="budget-evaluate", last_ok_at__isnull=False).exists():
        assert time.monotonic() < deadline, "the budget job never recorded a success"
        time.sleep(0.1)


def test_a_refresh_that_changed_nothing_enqueues_no_evaluation(clock_at, pools, people):
    clock_at(at(1, 15, 10))
    base_node(at(1, 1), state="terminated", terminated_at=at(1, 2))
    costs_at(at(1, 15, 10))

    assert not cost_rows_refresh(now=at(1, 15, 10)).moved  # the same rows again
