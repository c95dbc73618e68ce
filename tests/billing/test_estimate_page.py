"""The "What would it cost?" page: every logged-in user; a plan in, items with prices, sources and
the total out."""

import json

import pytest
from django.urls import reverse

from billing.models import PriceGap

pytestmark = pytest.mark.django_db
ESTIMATE = reverse("billing:estimate")


def plan(*items, region="eu-west-1"):
    return json.dumps({"region": region, "items": list(items)})


WORKERS = {
    "label": "spark workers",
    "kind": "instance",
    "instance_type": "m5.xlarge",
    "lifecycle": "spot",
    "count": 10,
    "hours": 4,
}


def test_a_collaborator_opens_the_page_with_an_example_plan(as_bob):
    page = as_bob.get(ESTIMATE, {"example": "spark"})
    assert page.status_code == 200
    content = page.content.decode()
    assert "What would it cost?" in content and "m5.xlarge" in content and "<textarea" in content
    json.loads(page.context["form"]["plan"].value())  # the example is a valid plan


def test_a_plan_is_priced_item_by_item_with_sources_and_a_total(as_bob):
    page = as_bob.post(ESTIMATE, {"plan": plan(WORKERS, {"label": "data", "kind": "storage",
                                                        "service": "ebs-gp3", "gb": 100,
                                                        "months": 1})})  # fmt: skip
    assert page.status_code == 200
    content = page.content.decode()
    result = content[content.index('id="estimate-result"') :]
    assert "spark workers" in result and "8.56" in result and "8.80" in result
    assert 'id="estimate-total">17.36<' in result
    assert "spot price unknown, on-demand shown" in result
    assert "skypilot-catalog" in result and "2026-11-29" in result


def test_a_bad_plan_names_the_item_and_the_field(as_bob):
    page = as_bob.post(ESTIMATE, {"plan": plan({**WORKERS, "count": -2})})
    content = page.content.decode()
    assert page.status_code == 200
    assert "items[0] (&#x27;spark workers&#x27;), field &#x27;count&#x27;" in content
    assert 'id="estimate-total"' not in content
    page = as_bob.post(ESTIMATE, {"plan": "{oops"})
    assert "not valid JSON" in page.content.decode()


def test_an_unknown_type_is_refused_and_noted_for_the_admins(as_bob):
    page = as_bob.post(ESTIMATE, {"plan": plan({**WORKERS, "instance_type": "g6.xlarge"})})
    assert "price unknown" in page.content.decode()
    assert PriceGap.objects.filter(item="g6.xlarge").exists()


def test_an_htmx_post_gets_only_the_result_fragment(as_bob):
    response = as_bob.post(ESTIMATE, {"plan": plan(WORKERS)}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="estimate-result"')
    assert "<html" not in content and "8.56" in content


def test_a_list_where_a_text_belongs_or_deep_nesting_is_a_form_error_not_a_500(as_bob):
    """Issue 14 finding 3."""
    storage = {"label": "data", "kind": "storage", "service": ["s3"], "gb": 1, "months": 1}
    page = as_bob.post(ESTIMATE, {"plan": plan(storage)})
    assert page.status_code == 200
    assert "items[0] (&#x27;data&#x27;), field &#x27;service&#x27;" in page.content.decode()
    deep = '{"items": [' + "[" * 20_000 + "]" * 20_000 + "]}"
    page = as_bob.post(ESTIMATE, {"plan": deep})
    assert page.status_code == 200
    assert "items[0]: nested deeper than" in page.content.decode()
