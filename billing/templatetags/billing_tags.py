"""Money on pages: ``{{ cost|usd }}`` shows an amount to the cent, ``{{ price|rate }}`` a rate as
published (at least 2 decimals), and "unknown" for a missing price."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

from billing.money import amount_str, rate_str

register = template.Library()


@register.filter
def usd(value: Decimal | None) -> str:
    return "unknown" if value is None else amount_str(value)


@register.filter
def rate(value: Decimal | None) -> str:
    return "unknown" if value is None else rate_str(value)


@register.filter
def rate4(value: Decimal | None) -> str:
    """A computed hourly rate (a volume's share of a GB-month price) to at most 4 decimals."""
    if value is None:
        return "unknown"
    return rate_str(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
