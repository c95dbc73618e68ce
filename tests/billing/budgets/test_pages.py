"""The budget page, its forms, the alert's action links (a confirmation page: GET never acts, an
admin's POST does), and the budget state on everyone's dashboard."""

from __future__ import annotations

import re

import pytest

from billing.budgets import services
from billing.budgets.freeze import freeze_state
from billing.budgets.models import Budget, BudgetAlert
from billing.budgets.services import budget_evaluate
from tests.billing.budgets.conftest import at, base_node, budget_for, costs_at, spark_node
from tests.fixtures.personas import logged_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster(clock_at, pools, people):
    now = clock_at(at(1, 15, 10))
    base_node(at(1, 1))
    spark_node(at(1, 1))
    costs_at(now)
    return now


def test_alice_sees_spend_and_forecast_against_the_budget_alerts_and_each_collaborators_spend(
    cluster, people, alice, mailbox
):
    budget_for(people["alice"], share="0.9")
    budget_evaluate()

    page = logged_in_client(alice).get("/billing/budgets/").content.decode()

    budget = Budget.objects.get()
    assert f"${budget.monthly}" in page
    assert 'id="budget-bar"' in page and 'class="bar-spend"' in page
    assert 'class="budget"' in page and "budget $" in page  # the chart's budget line
    alerts = page[page.index('id="budget-alerts"') : page.index('id="collaborator-spend"')]
    for alert in BudgetAlert.objects.all():
        assert f'id="alert-{alert.pk}"' in alerts and alert.label in alerts
    assert alerts.count("sent") >= 3
    spend = page[page.index('id="collaborator-spend"') : page.index('id="freeze"')]
    assert "<td>bob</td>" in spend
    assert "Not frozen" in page
    # The CSP forbids inline script and style: the bar and the chart need neither.
    assert "style=" not in page and not re.search(r"<script(?![^>]*\bsrc=)", page)


def test_the_budget_is_set_from_the_page_and_bad_input_changes_nothing(cluster, alice):
    client = logged_in_client(alice)
    fields = {"monthly": "250", "thresholds": "50, 90", "forecast": "100", "recipients": ""}

    assert client.post("/billing/budgets/set", fields).status_code == 302
    budget = Budget.objects.get()
    assert (str(budget.monthly), budget.thresholds, budget.forecast_thresholds) == (
        "250.00",
        [50, 90],
        [100],
    )
    for field, value, message in (
        ("monthly", "-5", "monthly"),
        ("monthly", "lots", "monthly"),
        ("thresholds", "0,80", "outside 1–1000"),
        ("thresholds", "50,1001", "outside 1–1000"),
        ("forecast", "half", "not a whole percent"),
        ("recipients", "finance@, ops@example.org", "not an email address"),
    ):
        response = client.post("/billing/budgets/set", {**fields, field: value})
        assert response.status_code == 200, (field, value)
        assert message in response.content.decode(), (field, value)
        budget.refresh_from_db()
        assert str(budget.monthly) == "250.00" and budget.thresholds == [50, 90]
        assert budget.recipients == []


def test_a_collaborator_posting_to_any_budget_url_is_refused_and_nothing_changes(cluster, bob):
    client = logged_in_client(bob)

    for url, data in (
        ("/billing/budgets/set", {"monthly": "1"}),
        ("/billing/budgets/freeze", {"reason": "mine"}),
        ("/billing/budgets/unfreeze", {}),
        ("/billing/budgets/actions/freeze/", {"reason": "mine"}),
        ("/billing/budgets/actions/stop-gpu/", {}),
    ):
        assert client.post(url, data).status_code == 403, url
    assert not Budget.objects.exists() and not freeze_state().frozen


def test_an_action_link_asks_to_confirm_and_get_never_acts(cluster, people, alice, mailbox):
    budget_for(people["alice"], share="0.9")
    budget_evaluate()
    alert = BudgetAlert.objects.get(threshold="actual-80")
    client = logged_in_client(alice)

    page = client.get(f"/billing/budgets/actions/freeze/?alert={alert.pk}")

    assert page.status_code == 200 and not freeze_state().frozen
    html = page.content.decode()
    assert "Freeze new launches until the 1st?" in html and 'id="from-alert"' in html
    assert "Budget alert: 80 % of actual spend reached for January 2027" in html  # suggested
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html
    for slug in ("stop-spot-spark", "stop-gpu"):
        assert client.get(f"/billing/budgets/actions/{slug}/?alert={alert.pk}").status_code == 200
    assert client.get("/billing/budgets/actions/no-such-thing/").status_code == 404

    done = client.post(
        "/billing/budgets/actions/freeze/", {"alert": alert.pk, "reason": "Budget alert: 80 %"}
    )

    assert done.status_code == 302 and done["Location"] == "/billing/budgets/"
    assert freeze_state().frozen and freeze_state().reason == "Budget alert: 80 %"


def test_the_stop_links_list_what_they_would_stop(cluster, alice):
    spark_node(at(1, 15, 9), capacity_type="spot", request="r-spot")
    spark_node(at(1, 15, 9), pool="gpu", instance_type="g5.xlarge", request="r-gpu")
    client = logged_in_client(alice)

    spot = client.get("/billing/budgets/actions/stop-spot-spark/").content.decode()
    gpu = client.get("/billing/budgets/actions/stop-gpu/").content.decode()

    targets = spot[spot.index('id="action-targets"') :]
    assert "launch r-spot" in targets and "r-gpu" not in targets and "launch r-1" not in targets
    assert "launch r-gpu" in gpu[gpu.index('id="action-targets"') :]


def test_everyone_sees_the_budget_state_and_the_freeze_on_the_dashboard(cluster, people, bob):
    budget_for(people["alice"], share="0.9")
    services.budget_freeze(actor=people["alice"], reason="Over budget in January")

    page = logged_in_client(bob).get("/").content.decode()

    state = page[page.index('id="budget-state"') :]
    assert "spent of the" in state and "monthly budget (90.0 %)" in state
    assert "The forecast is above the budget." in state
    assert 'id="freeze-banner"' in state and "Over budget in January" in state
    assert "/billing/budgets/" not in state  # the page is for admins


def test_without_a_budget_the_dashboard_says_so(cluster, bob):
    page = logged_in_client(bob).get("/").content.decode()

    assert "No monthly budget is set." in page


def test_an_admins_post_without_the_csrf_token_changes_nothing(cluster, people, alice):
    """A forged form (another site posting with alice's Lax cookie is not possible, but a
    same-site page or a replayed request without the token is): refused, nothing written."""
    services.budget_set(actor=people["alice"], monthly="250")
    client = logged_in_client(alice)
    client.handler.enforce_csrf_checks = True

    for url, data in (
        ("/billing/budgets/set", {"monthly": "1"}),
        ("/billing/budgets/freeze", {"reason": "forged"}),
        ("/billing/budgets/actions/freeze/", {"reason": "forged"}),
        ("/billing/budgets/actions/stop-gpu/", {}),
    ):
        assert client.post(url, data).status_code == 403, url
    assert str(Budget.objects.get().monthly) == "250.00" and not freeze_state().frozen
