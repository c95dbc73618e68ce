"""The Spark form: bounds from the pool, a live quote (htmx) that says whether an admin must
approve, a request made from it, and bad input shown beside its field with nothing lost and
nothing written."""

from __future__ import annotations

import pytest
from django.urls import reverse

from clusterweb.audit.models import AuditEvent
from provisioning.launches.models import LaunchRequest
from provisioning.models import Pool

pytestmark = pytest.mark.django_db
SPARK = reverse("launches:spark")
HTMX = {"HX-Request": "true"}
ASK = {
    "workers": "4",
    "instance_type": "m5.xlarge",
    "capacity_type": "spot",
    "hours": "10",
}


def test_the_form_offers_the_pools_types_room_and_hours_with_a_first_quote(
    pools, spot_prices, as_bob
):
    page = as_bob.get(SPARK).content.decode()

    assert 'id="id_workers" min="1" max="10" value="1"' in page
    assert 'name="hours" id="id_hours" min="1" max="48"' in page
    for instance_type in Pool.objects.get(slug="spark").instance_types:
        assert f'<option value="{instance_type}"' in page
    assert 'id="owner-self"' in page and 'name="owner"' not in page  # bob asks for himself
    assert 'id="quote-expected"' in page  # one worker for an hour, quoted at once
    assert "collaborators&#x27; spark requests always need an admin&#x27;s approval" in page


def test_the_live_quote_follows_the_fields_and_says_an_admin_must_approve(
    pools, spot_prices, as_bob
):
    response = as_bob.get(SPARK, ASK, headers=HTMX)

    fragment = response.content.decode()
    assert response.status_code == 200
    assert fragment.startswith('\n  <section id="quote"') or fragment.lstrip().startswith(
        '<section id="quote"'
    )
    assert "<h1>" not in fragment
    assert '<span class="figure" id="quote-expected">$3.20</span>' in fragment  # 0.08 x 4 x 10
    assert '<span class="figure" id="quote-max">$8.56</span>' in fragment  # 0.214 x 4 x 10
    assert "eu-west-1b" in fragment  # the highest spot zone's price
    assert 'id="approval-needed"' in fragment
    assert LaunchRequest.objects.count() == 0  # a quote writes nothing


def test_an_admin_within_the_threshold_is_told_it_is_approved_at_once(pools, spot_prices, as_alice):
    fragment = as_alice.get(SPARK, ASK, headers=HTMX).content.decode()
    assert 'id="approval-auto"' in fragment

    over = as_alice.get(SPARK, {**ASK, "workers": "10"}, headers=HTMX).content.decode()
    assert "maximum cost $21.40 is over the $10.00 threshold" in over


def test_the_live_quote_names_what_is_wrong_instead_of_a_quote(pools, spot_prices, as_bob):
    fragment = as_bob.get(
        SPARK, {**ASK, "workers": "11", "hours": "49"}, headers=HTMX
    ).content.decode()

    assert 'id="quote-problems"' in fragment and 'id="quote-expected"' not in fragment
    assert "Workers: pool spark has room for 10 more nodes now" in fragment
    assert "Hours (time limit): at most 48 hours in pool spark" in fragment


def test_bob_asks_for_workers_and_lands_on_the_request_page(pools, spot_prices, as_bob, bob_user):
    response = as_bob.post(SPARK, ASK)

    launch = LaunchRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("launches:detail", args=[launch.pk])
    assert launch.owner == bob_user and launch.requested_by == bob_user
    assert (launch.count, launch.hours, launch.instance_type) == (4, 10, "m5.xlarge")
    assert launch.state == "pending_approval"
    assert AuditEvent.objects.get(action="launch.requested").source == "web"
    page = as_bob.get(response["Location"]).content.decode()
    assert f"Request {launch.pk} is waiting for an admin" in page


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"workers": "0"}, "workers", "Ensure this value is greater than or equal to 1."),
        ({"workers": "11"}, "workers", "pool spark has room for 10 more nodes now"),
        ({"hours": "49"}, "hours", "at most 48 hours in pool spark"),
        ({"hours": "0"}, "hours", "Ensure this value is greater than or equal to 1."),
        (
            {"instance_type": "p5.48xlarge"},
            "instance_type",
            "p5.48xlarge is not allowed in pool spark: one of t2.xlarge, m5.xlarge",
        ),
        ({"capacity_type": "reserved"}, "capacity_type", "Select a valid choice."),
    ],
)
def test_bad_input_is_shown_beside_its_field_keeping_what_was_typed(
    pools, spot_prices, as_bob, change, field, message
):
    response = as_bob.post(SPARK, {**ASK, **change})

    page = response.content.decode()
    assert response.status_code == 200
    assert message in page
    after = page[page.index(f'id="id_{field}') :] if field != "capacity_type" else page
    assert message in after  # beside (after) its field
    assert 'value="m5.xlarge" selected' in page or field == "instance_type"
    if field != "workers":
        assert 'id="id_workers" min="1" max="10" value="4"' in page  # kept
    assert LaunchRequest.objects.count() == 0 and not AuditEvent.objects.exists()


def test_a_fallback_the_pool_forbids_is_refused(pools, spot_prices, as_bob):
    Pool.objects.filter(slug="spark").update(on_demand_fallback=False)

    page = as_bob.get(SPARK).content.decode()
    assert 'id="id_allow_on_demand_fallback" role="switch" disabled' in page
    assert "Pool spark does not allow a fallback to on-demand." in page
    # A forged form asking for it anyway is refused with the reason, not quietly dropped.
    response = as_bob.post(SPARK, {**ASK, "allow_on_demand_fallback": "on"})

    assert response.status_code == 200
    assert "pool spark does not allow a fallback to on-demand" in response.content.decode()
    assert LaunchRequest.objects.count() == 0


def test_the_fallback_raises_nothing_but_is_named_in_the_maximum(pools, spot_prices, as_bob):
    fragment = as_bob.get(
        SPARK, {**ASK, "allow_on_demand_fallback": "on"}, headers=HTMX
    ).content.decode()

    assert "the fallback launches on-demand" in fragment
    assert '<span class="figure" id="quote-max">$8.56</span>' in fragment


def test_a_collaborator_cannot_launch_for_someone_else(pools, spot_prices, as_bob, alice_user):
    response = as_bob.post(SPARK, {**ASK, "owner": "alice"})

    assert response.status_code == 200
    assert "Collaborators launch only for themselves." in response.content.decode()
    assert LaunchRequest.objects.count() == 0


def test_an_admin_launches_for_bob(pools, spot_prices, as_alice, alice_user, bob_user):
    page = as_alice.get(SPARK).content.decode()
    assert 'name="owner" id="id_owner" value="alice"' in page

    response = as_alice.post(SPARK, {**ASK, "owner": "bob"})

    launch = LaunchRequest.objects.get()
    assert response.status_code == 302
    assert launch.owner == bob_user and launch.requested_by == alice_user
    # An admin asking is judged by the threshold only: $8.56 is within $10.
    assert launch.state == "approved" and launch.auto_approved


def test_an_unknown_owner_is_named(pools, spot_prices, as_alice):
    response = as_alice.post(SPARK, {**ASK, "owner": "nobody"})

    assert "nobody is not a user of the cluster." in response.content.decode()
    assert LaunchRequest.objects.count() == 0


def test_without_a_spark_pool_the_page_says_so(as_bob, db):
    page = as_bob.get(SPARK).content.decode()
    assert 'id="no-pool"' in page and 'id="spark-form"' not in page
    assert as_bob.post(SPARK, ASK).status_code == 200
    assert LaunchRequest.objects.count() == 0


def test_the_form_takes_the_room_others_hold(pools, spot_prices, as_bob, alice_user):
    from tests.provisioning.launches.test_requests import spark

    spark(alice_user, count=3, hours=1)  # approved at once: 3 nodes reserved

    page = as_bob.get(SPARK).content.decode()
    assert 'id="id_workers" min="1" max="7"' in page and 'id="room">7<' in page
