"""The Approvals page: pending requests with requester, parameters, quote and why they wait; the
quote again now and how it moved; the pool's room now; Approve (perhaps smaller) and Reject
with htmx, a note optional. A collaborator's POST gets 403, a forged one without the CSRF token
is refused, and a request somebody decided first changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from clusterweb import clock
from clusterweb.audit.models import AuditEvent
from provisioning.launches.models import LaunchRequest
from tests.billing.conftest import spot_point, spot_record
from tests.provisioning.launches.test_requests import spark

pytestmark = pytest.mark.django_db
APPROVALS = reverse("launches:approvals")
HTMX = {"HX-Request": "true"}


def approve_url(launch) -> str:
    return reverse("launches:approve", args=[launch.pk])


def reject_url(launch) -> str:
    return reverse("launches:reject", args=[launch.pk])


def article(page: str, launch) -> str:
    start = page.index(f'id="launch-{launch.pk}"')
    return page[start : page.index("</article>", start)]


def test_pending_requests_are_listed_with_requester_parameters_quote_and_why(
    pools, spot_prices, as_alice, bob_user, alice_user
):
    first = spark(bob_user)
    second = spark(alice_user, count=10, hours=10)  # over the threshold: her own, pending
    spark(alice_user, count=1, hours=1)  # approved at once: not listed

    page = as_alice.get(APPROVALS).content.decode()

    assert page.index(f'id="launch-{first.pk}"') < page.index(f'id="launch-{second.pk}"')
    assert page.count('class="pending-launch"') == 2
    row = article(page, first)
    assert "4 × <code>m5.xlarge</code> for 10 h" in row and "<code>bob</code>" in row
    assert "collaborators&#x27; spark requests always need an admin&#x27;s approval" in row
    assert f'id="quoted-max-{first.pk}">$8.56<' in row
    assert f'id="unchanged-{first.pk}"' in row  # quoted again now: the same prices
    assert "has room for 9 nodes now" in row  # 10 minus the approved one; pending hold none
    assert "maximum cost $21.40 is over the $10.00 threshold" in article(page, second)


def test_the_nav_shows_admins_the_pending_count(pools, spot_prices, as_alice, as_bob, bob_user):
    page = as_alice.get("/").content.decode()
    assert 'id="badge-approvals"' not in page  # nothing waits: no badge
    spark(bob_user)
    spark(bob_user, count=2)

    page = as_alice.get("/").content.decode()
    assert 'id="badge-approvals" title="2 waiting">2</span>' in page
    home = as_bob.get("/").content.decode()
    assert "Approvals" not in home[home.index("<nav>") : home.index("</nav>")]
    assert reverse("launches:mine") in home and reverse("launches:spark") in home


def test_a_request_past_its_deadline_no_longer_waits_on_the_page_or_the_badge(
    pools, spot_prices, as_alice, bob_user
):
    """Until the sweep expires it (every few minutes), a request past its deadline cannot be
    approved (it expires on the click): neither the Approvals page nor the badge offer it."""
    late, waiting = spark(bob_user), spark(bob_user, count=2)
    long_ago = clock.now() - timedelta(hours=25)
    LaunchRequest.objects.filter(pk=late.pk).update(created_at=long_ago, updated_at=long_ago)

    page = as_alice.get(APPROVALS).content.decode()

    assert f'id="launch-{waiting.pk}"' in page and f'id="launch-{late.pk}"' not in page
    assert 'id="badge-approvals" title="1 waiting">1</span>' in page
    assert LaunchRequest.objects.get(pk=late.pk).state == "pending_approval"  # a GET writes nothing


def test_an_admin_approves_with_htmx_and_gets_the_outcome(
    pools, spot_prices, as_alice, alice_user, bob_user
):
    launch = spark(bob_user)

    response = as_alice.post(approve_url(launch), {"note": "go ahead"}, headers=HTMX)

    fragment = response.content.decode()
    assert response.status_code == 200 and "<h1>" not in fragment
    assert f'id="outcome-{launch.pk}"' in fragment
    assert "Approved by <code>alice</code>: 4 × <code>m5.xlarge</code> for 10 h" in fragment
    launch.refresh_from_db()
    assert launch.state == "approved" and launch.decided_by == alice_user
    assert launch.decision_note == "go ahead" and not launch.self_approved
    event = AuditEvent.objects.get(action="launch.approved")
    assert event.actor_username == "alice" and event.source == "web"
    assert 'id="no-pending"' in as_alice.get(APPROVALS).content.decode()


def test_an_admin_approves_less_and_it_is_requoted_at_that_size(
    pools, spot_prices, as_alice, bob_user
):
    launch = spark(bob_user, count=8, hours=20)

    fragment = as_alice.post(
        approve_url(launch), {"workers": "2", "hours": "5", "note": "try two first"}, headers=HTMX
    ).content.decode()

    assert "for 5 h (smaller than asked), at most $2.14" in fragment
    launch.refresh_from_db()
    assert (launch.granted_count, launch.granted_hours) == (2, 5)
    assert str(launch.approved_max_cost) == "2.14" and str(launch.max_cost) == "34.24"
    page = as_alice.get(reverse("launches:detail", args=[launch.pk])).content.decode()
    assert 'id="approved-smaller"' in page and 'id="granted-max">$2.14<' in page
    assert "try two first" in page


def test_an_approval_larger_than_asked_is_a_field_error_and_changes_nothing(
    pools, spot_prices, as_alice, bob_user
):
    launch = spark(bob_user)

    fragment = as_alice.post(
        approve_url(launch), {"workers": "5", "hours": "10", "note": "typed"}, headers=HTMX
    ).content.decode()

    assert "An approval may be smaller than the request, not larger (asked: 4)." in fragment
    assert 'value="5"' in fragment and 'value="typed"' in fragment  # nothing typed is lost
    assert LaunchRequest.objects.get().state == "pending_approval"
    assert not AuditEvent.objects.filter(action="launch.approved").exists()


def test_the_quote_again_shows_what_moved_since_the_request(pools, spot_prices, as_alice, bob_user):
    launch = spark(bob_user)
    spot_record(spot_point("m5.xlarge", "0.09", clock.now() - timedelta(minutes=1), "eu-west-1b"))

    row = article(as_alice.get(APPROVALS).content.decode(), launch)

    assert f'id="changed-{launch.pk}"' in row
    assert "$0.08 → $0.09 per instance-hour" in row
    assert "<strong>$3.60</strong> expected" in row  # 0.09 x 4 x 10


def test_the_room_is_checked_again_and_an_approval_beyond_it_is_refused(
    pools, spot_prices, as_alice, alice_user, bob_user
):
    launch = spark(bob_user)  # 4 asked; pending requests hold no room
    spark(alice_user, count=8, hours=1)  # approved at once: 2 left

    row = article(as_alice.get(APPROVALS).content.decode(), launch)
    assert "has room for 2 nodes now" in row and "approve at most 2" in row
    assert f'id="id_workers_{launch.pk}" min="1" max="4" value="2"' in row  # pre-filled

    fragment = as_alice.post(
        approve_url(launch), {"workers": "4", "hours": "10"}, headers=HTMX
    ).content.decode()
    assert "pool spark has room for 2 now: approve at most 2" in fragment
    assert LaunchRequest.objects.get(pk=launch.pk).state == "pending_approval"

    as_alice.post(approve_url(launch), {"workers": "2", "hours": "10"}, headers=HTMX)
    assert LaunchRequest.objects.get(pk=launch.pk).granted_count == 2


def test_an_admin_rejects_with_an_optional_note(pools, spot_prices, as_alice, bob_user):
    launch = spark(bob_user)
    other = spark(bob_user, count=1)

    fragment = as_alice.post(
        reject_url(launch), {"note": "use the small cluster"}, headers=HTMX
    ).content.decode()
    as_alice.post(reject_url(other), {}, headers=HTMX)

    assert "Rejected by <code>alice</code>: “use the small cluster”" in fragment
    states = dict(LaunchRequest.objects.values_list("pk", "state"))
    assert states == {launch.pk: "rejected", other.pk: "rejected"}
    assert LaunchRequest.objects.get(pk=other.pk).decision_note == ""
    assert AuditEvent.objects.filter(action="launch.rejected").count() == 2


def test_a_request_decided_first_by_another_admin_changes_nothing(
    pools, spot_prices, as_alice, erin_user, bob_user
):
    from provisioning.launches import services

    launch = spark(bob_user)
    services.approve(launch.pk, by=erin_user, note="erin first")

    for url in (approve_url(launch), reject_url(launch)):
        fragment = as_alice.post(url, {"note": "late"}, headers=HTMX).content.decode()
        assert f"request {launch.pk} is approved by erin" in fragment
        assert f'id="outcome-{launch.pk}"' in fragment

    launch.refresh_from_db()
    assert launch.state == "approved" and launch.decision_note == "erin first"
    assert AuditEvent.objects.filter(action__startswith="launch.").count() == 2  # asked, approved


def test_approving_a_request_past_its_deadline_says_it_expired_and_approves_nothing(
    pools, spot_prices, as_alice, bob_user
):
    launch = spark(bob_user)
    long_ago = clock.now() - timedelta(hours=25)  # the sweep has not run yet
    LaunchRequest.objects.filter(pk=launch.pk).update(created_at=long_ago, updated_at=long_ago)

    fragment = as_alice.post(approve_url(launch), {}, headers=HTMX).content.decode()

    assert f"request {launch.pk} is expired: only a pending request can be approved" in fragment
    assert f'id="outcome-{launch.pk}"' in fragment and "Now expired." in fragment
    assert LaunchRequest.objects.get().state == "expired"
    assert not AuditEvent.objects.filter(action="launch.approved").exists()


def test_an_admins_own_request_over_the_threshold_is_a_self_approval(
    pools, spot_prices, as_alice, alice_user
):
    launch = spark(alice_user, count=10, hours=10)

    fragment = as_alice.post(approve_url(launch), {}, headers=HTMX).content.decode()

    assert "(self-approval)" in fragment
    assert LaunchRequest.objects.get().self_approved


def test_without_javascript_a_decision_comes_back_to_the_page_it_was_made_on(
    pools, spot_prices, as_alice, bob_user
):
    first, second = spark(bob_user), spark(bob_user, count=2)

    response = as_alice.post(approve_url(first), {})
    assert response.status_code == 302 and response["Location"] == APPROVALS
    page = as_alice.get(APPROVALS).content.decode()
    assert f"Approved request {first.pk}: 4 × m5.xlarge for 10 h; bob is told by email." in page

    response = as_alice.post(reject_url(second), {"next": "detail"})
    assert response["Location"] == reverse("launches:detail", args=[second.pk])


def test_a_collaborators_post_is_forbidden_and_changes_nothing(
    pools, spot_prices, as_bob, bob_user
):
    launch = spark(bob_user)

    assert as_bob.post(approve_url(launch), {"note": "self-service"}).status_code == 403
    assert as_bob.post(reject_url(launch), {}).status_code == 403
    assert as_bob.get(APPROVALS).status_code == 403

    assert LaunchRequest.objects.get().state == "pending_approval"
    assert not AuditEvent.objects.exclude(action="launch.requested").exists()


def test_a_forged_post_without_the_csrf_token_changes_nothing(
    pools, spot_prices, as_alice, bob_user
):
    launch = spark(bob_user)
    forged = Client(enforce_csrf_checks=True)
    forged.cookies = as_alice.cookies  # alice's session, but no token: another site's form

    for url in (approve_url(launch), reject_url(launch)):
        assert forged.post(url, {"note": "forged"}).status_code == 403

    assert LaunchRequest.objects.get().state == "pending_approval"
    assert not AuditEvent.objects.exclude(action="launch.requested").exists()
    # The same session with the page's token does decide: the refusal was the token's.
    page = forged.get(APPROVALS)
    token = page.context["csrf_token"]
    assert forged.post(approve_url(launch), {"csrfmiddlewaretoken": str(token)}).status_code == 302
    assert LaunchRequest.objects.get().state == "approved"
