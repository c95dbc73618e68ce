from __future__ import annotations

from django import forms

from billing.models import PriceKind
from billing.prices.estimates import MAX_PLAN_CHARS


class PlanForm(forms.Form):
    plan = forms.CharField(
        max_length=MAX_PLAN_CHARS,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 16, "class": "plan", "spellcheck": "false"}),
    )


class OverrideAddForm(forms.Form):
    """The fields of an override; the service checks the values (one set of rules for the page and
    the command line)."""

    kind = forms.ChoiceField(choices=PriceKind.choices)
    region = forms.CharField(max_length=32)
    item = forms.CharField(max_length=64, required=False)
    price = forms.CharField(max_length=32)
    note = forms.CharField(max_length=200, required=False)


class OverrideRemoveForm(forms.Form):
    override = forms.IntegerField(min_value=1)


class BudgetForm(forms.Form):
    """The budget's fields as typed; the service checks them (one set of rules for the page and
    ``manage.py budget set``)."""

    monthly = forms.CharField(max_length=32)
    thresholds = forms.CharField(max_length=200, required=False)
    forecast = forms.CharField(max_length=200, required=False)
    recipients = forms.CharField(max_length=2000, required=False)


class FreezeForm(forms.Form):
    reason = forms.CharField(max_length=500)
