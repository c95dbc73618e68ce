"""The admin-only Prices page: every price with its source and date, overrides highlighted with
who set them and when, add and remove forms (CSRF, audited)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import PriceGap, PriceOverride
from clusterweb import clock
from clusterweb.audit.models import AuditEvent
from tests.billing.conftest import spot_point, spot_record
from tests.fixtures.personas import logged_in_client

pytestmark = pytest.mark.django_db
PRICES = reverse("billing:prices")


def section(response, element_id: str) -> str:
    content = response.content.decode()
    start = content.index(f'id="{element_id}"')
    return content[start : content.index("</section>", start)]


def test_admins_see_every_price_with_its_source_and_effective_date(as_alice):
    page = as_alice.get(PRICES, {"region": "us-east-1"})
    assert page.status_code == 200
    catalog = section(page, "catalog")
    row = catalog[catalog.index('id="price-m5.xlarge"') :].split("</tr>")[0]
    assert "0.192" in row and "karpenter" in row and "2026-07-20" in row
    assert "Public IPv4" in catalog and "0.005" in catalog and "2024-02-01" in catalog
    assert "ebs-gp3" in catalog and "0.08" in catalog
    assert "No spot price sync for us-east-1 yet" in page.content.decode()


def test_collaborators_may_not_see_the_prices_page(as_bob):
    assert as_bob.get(PRICES).status_code == 403
    add = as_bob.post(reverse("billing:override_add"), {"kind": "ipv4", "region": "eu-west-1"})
    assert add.status_code == 403 and not PriceOverride.objects.exists()


def test_spot_prices_show_their_zone_source_and_time(as_alice):
    spot_record(spot_point("m5.xlarge", "0.0712", clock.now() - timedelta(hours=1)))
    catalog = section(as_alice.get(PRICES, {"region": "eu-west-1"}), "catalog")
    row = catalog[catalog.index('id="price-m5.xlarge"') :].split("</tr>")[0]
    assert "0.0712" in row and "spot price eu-west-1a" in row
    other = catalog[catalog.index('id="price-t2.micro"') :].split("</tr>")[0]
    assert "spot price unknown, on-demand shown" in other


def test_an_admin_adds_an_override_which_is_highlighted_named_and_audited(as_alice):
    response = as_alice.post(
        reverse("billing:override_add"),
        {"kind": "on-demand", "region": "eu-west-1", "item": "m5.xlarge", "price": "0.25",
         "note": "enterprise discount"},
    )  # fmt: skip
    assert response.status_code == 302
    override = PriceOverride.objects.get()
    assert (override.price, override.created_by_username) == (Decimal("0.25"), "alice")
    page = as_alice.get(response["Location"])
    overrides = section(page, "overrides")
    assert "alice" in overrides and "enterprise discount" in overrides and "0.25" in overrides
    catalog = section(page, "catalog")
    row_tag = catalog[catalog.index('id="price-m5.xlarge"') :].split(">")[0]
    assert 'class="overridden"' in row_tag
    event = AuditEvent.objects.get(action="price.override_added")
    assert event.actor_username == "alice" and event.target == "on-demand eu-west-1 m5.xlarge"
    assert event.detail["price"] == "0.25" and event.source == "web"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "on-demand", "item": "m5.xlarge", "price": "-1"}, "greater than zero"),
        ({"kind": "on-demand", "item": "m5.xlarge", "price": "0.1234567"}, "at most 6 decimals"),
        ({"kind": "on-demand", "item": "m5.xlarge", "price": "cheap"}, "must be a number"),
        ({"kind": "storage", "item": "tape", "price": "0.01"}, "storage service must be"),
        ({"kind": "on-demand", "item": "big box", "price": "1"}, "instance type must look like"),
        ({"kind": "on-demand", "item": "m5.xlarge", "price": "1", "region": "Mars"}, "region"),
    ],
)
def test_a_bad_override_is_refused_with_a_message_and_nothing_changes(as_alice, data, message):
    response = as_alice.post(reverse("billing:override_add"), {"region": "eu-west-1", **data})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PriceOverride.objects.exists() and not AuditEvent.objects.exists()


def test_an_admin_removes_an_override_and_the_catalog_price_applies_again(as_alice):
    as_alice.post(
        reverse("billing:override_add"),
        {"kind": "storage", "region": "eu-west-1", "item": "efs", "price": "0.3"},
    )
    override = PriceOverride.objects.get()
    response = as_alice.post(
        reverse("billing:override_remove"), {"override": override.pk, "region": "eu-west-1"}
    )
    assert response.status_code == 302
    override.refresh_from_db()
    assert override.ended_at is not None and override.ended_by_username == "alice"
    page = as_alice.get(response["Location"])
    assert "No overrides" in section(page, "overrides")
    assert AuditEvent.objects.filter(action="price.override_removed").count() == 1
    again = as_alice.post(reverse("billing:override_remove"), {"override": override.pk})
    assert "no override" in as_alice.get(again["Location"]).content.decode()


def test_the_forms_need_a_csrf_token(alice):
    client = logged_in_client(alice)
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    response = strict.post(
        reverse("billing:override_add"),
        {"kind": "ipv4", "region": "eu-west-1", "price": "0.004"},
    )
    assert response.status_code == 403 and not PriceOverride.objects.exists()
    page = strict.get(PRICES)
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()


def test_a_price_somebody_needed_is_shown_to_admins_until_it_exists(as_alice):
    now = clock.now()
    PriceGap.objects.create(
        kind="on-demand", region="eu-west-1", item="g6.xlarge", first_seen_at=now,
        last_seen_at=now, occurrences=2, context="estimate",
    )  # fmt: skip
    gaps = section(as_alice.get(PRICES), "gaps")
    assert "g6.xlarge" in gaps and "2 times" in gaps
    as_alice.post(
        reverse("billing:override_add"),
        {"kind": "on-demand", "region": "eu-west-1", "item": "g6.xlarge", "price": "0.9"},
    )
    assert 'id="gaps"' not in as_alice.get(PRICES).content.decode()


def test_an_htmx_request_gets_only_the_catalog_fragment(as_alice):
    response = as_alice.get(PRICES, {"region": "eu-west-1"}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="catalog">') and "<html" not in content
