"""Money on pages: ``{{ cost|usd }}`` shows an amount to the cent, ``{{ price|rate }}`` a rate as
published (at least 2 decimals), and "unknown" for a missing price."""

from __future__ import annotations

from decimal import Decimal

from django import template

from billing.money import amount_str, rate_str

register = template.Library()


@register.filter
def usd(value: Decimal | None) -> str:
    return "unknown" if value is None else amount_str(value)


@register.filter
def rate(value: Decimal | None) -> str:
    return "unknown" if value is None else rate_str(value)
