"""Money on pages: ``{{ cost|usd }}`` shows an amount to the cent, ``{{ price|rate }}`` a rate as
published (at least 2 decimals), and "unknown" for a missing price."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

from billing.money import RATE_PLACES, amount_str, rate_str

register = template.Library()


@register.filter
def usd(value: Decimal | None) -> str:
    return "unknown" if value is None else amount_str(value)


@register.filter
def rate(value: Decimal | None) -> str:
    return "unknown" if value is None else rate_str(value)


@register.filter
def rate6(value: Decimal | None) -> str:
    """An hourly rate to at most 6 decimals, the precision AWS lists rates with (CONVENTIONS):
    a published rate (0.07976) is shown as it is, a computed one (a volume's share of a
    GB-month price) rounded to 6 decimals."""
    if value is None:
        return "unknown"
    return rate_str(value.quantize(RATE_PLACES, rounding=ROUND_HALF_UP))
