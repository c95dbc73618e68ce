"""The request page (parameters, quote, state, approval, the step log polled with htmx, Cancel
while nothing runs), My launches and All launches, and the approval policy page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from clusterweb.audit.models import AuditEvent
from provisioning.launches import services
from provisioning.launches.models import ApprovalPolicy, LaunchRequest
from tests.fixtures.personas import logged_in_client
from tests.provisioning.launches.test_requests import spark

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}
MINE = reverse("launches:mine")
ALL = reverse("launches:all")
POLICY = reverse("launches:policy")


def detail_url(launch) -> str:
    return reverse("launches:detail", args=[launch.pk])


def cancel_url(launch) -> str:
    return reverse("launches:cancel", args=[launch.pk])


def test_the_requester_sees_parameters_quote_state_approval_and_cancel(
    pools, spot_prices, as_bob, bob_user, settings
):
    settings.LAUNCH_APPROVAL_HOURS = 24
    launch = spark(bob_user)

    page = as_bob.get(detail_url(launch)).content.decode()

    assert '<span class="state state-pending_approval" id="state">pending_approval</span>' in page
    assert "4 × <code>m5.xlarge</code>" in page and "10 h" in page
    assert f'id="quoted-expected-{launch.pk}">$3.20<' in page
    assert f'id="quoted-max-{launch.pk}">$8.56<' in page
    assert "eu-west-1b" in page  # where the price came from
    assert "Waiting for an admin's approval: collaborators&#x27; spark requests" in page
    deadline = (launch.created_at + timedelta(hours=24)).strftime("%Y-%m-%d %H:%M")
    assert f"{deadline} UTC</time>, it expires" in page
    assert 'id="cancel"' in page and 'id="decision"' not in page  # bob does not decide
    # The progress part polls the page while the request is not final.
    assert f'hx-get="{detail_url(launch)}" hx-trigger="every 3s"' in page


def test_the_progress_part_answers_htmx_and_stops_polling_once_final(
    pools, spot_prices, as_bob, alice_user, bob_user
):
    launch = spark(bob_user)
    services.step_record(launch.pk, "quote checked", detail="room for 10")

    poll = as_bob.get(detail_url(launch), headers=HTMX)
    fragment = poll.content.decode()
    assert poll.status_code == 200
    assert fragment.lstrip().startswith('<section id="progress"') and "<h1>" not in fragment
    assert "quote checked — <span" in fragment and "room for 10" in fragment

    services.reject(launch.pk, by=alice_user, note="not this week")
    final = as_bob.get(detail_url(launch), headers=HTMX)
    assert final.status_code == 286  # htmx stops polling
    text = final.content.decode()
    assert "hx-get" not in text and "Rejected by <code>alice</code>" in text
    assert "not this week" in text and 'id="cancel"' not in text


def as_dave() -> Client:
    """A second collaborator with a session (not in the test directory: his groups were just
    checked, so no request asks it)."""
    from sandbox.directory import Persona

    dave = Persona(
        uid="dave",
        given_name="Dave",
        surname="Other",
        mail="dave@example.org",
        uid_number=10099,
        groups=("users",),
        password="unused",
        role="collaborator",
    )
    return logged_in_client(dave)


def test_a_stranger_gets_404_and_cannot_cancel(pools, spot_prices, bob_user):
    launch = spark(bob_user)
    dave = as_dave()

    assert dave.get(detail_url(launch)).status_code == 404
    assert dave.post(cancel_url(launch)).status_code == 404
    assert dave.get(reverse("launches:mine")).status_code == 200
    assert LaunchRequest.objects.get().state == "pending_approval"


def test_the_requester_cancels_while_pending_and_not_twice(pools, spot_prices, as_bob, bob_user):
    launch = spark(bob_user)

    response = as_bob.post(cancel_url(launch))

    assert response.status_code == 302 and response["Location"] == detail_url(launch)
    launch.refresh_from_db()
    assert launch.state == "cancelled" and launch.stop_reason == "owner"
    page = as_bob.get(detail_url(launch)).content.decode()
    assert f"Request {launch.pk} is cancelled." in page and 'id="cancel"' not in page
    as_bob.post(cancel_url(launch))
    page = as_bob.get(detail_url(launch)).content.decode()
    assert "only a pending or approved request that runs nothing yet can be cancelled" in page
    assert AuditEvent.objects.filter(action="launch.cancelled").count() == 1


def test_an_admin_decides_on_the_request_page_and_comes_back_to_it(
    pools, spot_prices, as_alice, bob_user
):
    launch = spark(bob_user, count=8, hours=20)

    page = as_alice.get(detail_url(launch)).content.decode()
    assert 'id="decision"' in page and 'name="next" value="detail"' in page

    response = as_alice.post(
        reverse("launches:approve", args=[launch.pk]),
        {"workers": "3", "hours": "20", "note": "three will do", "next": "detail"},
    )

    assert response["Location"] == detail_url(launch)
    page = as_alice.get(detail_url(launch)).content.decode()
    assert "(smaller than asked)" in page and 'id="decision"' not in page
    assert "Approved by <code>alice</code>" in page and "three will do" in page


def test_my_launches_are_mine_and_all_launches_are_everyones(
    pools, spot_prices, as_alice, as_bob, alice_user, bob_user
):
    bobs = spark(bob_user)
    alices = spark(alice_user, count=1)
    for_bob = spark(alice_user, owner=bob_user, count=2)

    mine = as_bob.get(MINE).content.decode()
    assert f'id="launch-{bobs.pk}"' in mine and f'id="launch-{for_bob.pk}"' in mine
    assert f'id="launch-{alices.pk}"' not in mine
    assert "asked by alice" in mine
    assert as_bob.get(ALL).status_code == 403
    assert as_bob.get(detail_url(for_bob)).status_code == 200  # his, though alice asked

    everyone = as_alice.get(ALL).content.decode()
    assert all(f'id="launch-{x.pk}"' in everyone for x in (bobs, alices, for_bob))
    pending = as_alice.get(ALL, {"state": "pending_approval"}).content.decode()
    assert f'id="launch-{bobs.pk}"' in pending and f'id="launch-{alices.pk}"' not in pending
    alice_mine = as_alice.get(MINE).content.decode()
    assert f'id="launch-{bobs.pk}"' not in alice_mine and f'id="launch-{alices.pk}"' in alice_mine


def test_the_dashboard_links_the_launch_pages(as_alice, as_bob, db):
    bob_home = as_bob.get("/").content.decode()
    section = bob_home[bob_home.index('id="launches-links"') :].split("</section>")[0]
    assert MINE in section and reverse("launches:spark") in section and ALL not in section
    alice_home = as_alice.get("/").content.decode()
    section = alice_home[alice_home.index('id="launches-links"') :].split("</section>")[0]
    assert ALL in section and reverse("launches:approvals") in section


def test_an_admin_sets_the_policy_which_the_spark_form_then_applies(
    pools, spot_prices, as_alice, as_bob, bob_user
):
    page = as_alice.get(POLICY).content.decode()
    assert 'name="threshold" id="id_threshold" inputmode="decimal" value="10.00"' in page

    response = as_alice.post(POLICY, {"threshold": "25.50", "require_gpu": "on"})

    assert response.status_code == 302
    policy = ApprovalPolicy.current()
    assert str(policy.threshold) == "25.50" and policy.updated_by_username == "alice"
    assert not policy.require_spark and policy.require_gpu and not policy.require_jupyter
    event = AuditEvent.objects.get(action="approval_policy.updated")
    assert event.detail["after"]["threshold"] == "25.50" and event.source == "web"
    # bob's Spark request within $25.50 is no longer held for an admin.
    fragment = as_bob.get(
        reverse("launches:spark"),
        {"workers": "4", "instance_type": "m5.xlarge", "capacity_type": "spot", "hours": "10"},
        headers=HTMX,
    ).content.decode()
    assert 'id="approval-auto"' in fragment


@pytest.mark.parametrize("threshold", ["-1", "ten", ""])
def test_a_bad_threshold_is_a_field_error_and_changes_nothing(as_alice, threshold, db):
    response = as_alice.post(POLICY, {"threshold": threshold, "require_spark": "on"})

    page = response.content.decode()
    assert response.status_code == 200 and 'class="field-error"' in page
    assert f'value="{threshold}"' in page  # what was typed stays
    assert not ApprovalPolicy.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_collaborator_cannot_see_or_set_the_policy(as_bob, db):
    assert as_bob.get(POLICY).status_code == 403
    assert as_bob.post(POLICY, {"threshold": "1000"}).status_code == 403
    assert not ApprovalPolicy.objects.exists()
