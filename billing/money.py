"""Money as Decimal, in USD (CONVENTIONS.md): amounts to the cent, rates as published.

Amounts are shown and serialized with 2 decimals; totals are sums of the rounded items. Rates keep
the precision they were published with (AWS lists some GPU prices with 5 decimals, e.g. 6.33167),
shown with at least 2 decimals and at most 6 (a computed rate, such as a volume's share of a
GB-month price, is rounded to 6); prices a person types in may have up to 6 decimals for hourly
rates and GB-month prices, as AWS lists them, and 2 for monthly amounts.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
RATE_DECIMALS = 6  # AWS lists rates with up to 6 decimals (CONVENTIONS.md)
RATE_PLACES = Decimal("0.000001")
CURRENCY = "USD"


def amount(value: Decimal) -> Decimal:
    """``value`` rounded to the cent (half up, as invoices round)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def amount_str(value: Decimal) -> str:
    """An amount as a string with exactly 2 decimals: ``"12.34"``."""
    return f"{amount(value):.2f}"


def rate_str(value: Decimal) -> str:
    """A rate as published, with at least 2 decimals and no padding beyond its own digits:
    ``0.0116`` -> ``"0.0116"``, ``0.096`` -> ``"0.096"``, ``5`` -> ``"5.00"``."""
    text = format(value.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


MAXIMUM = Decimal(1_000_000)


def positive_decimal(
    value: object, *, places: int, what: str = "value", maximum: Decimal = MAXIMUM
) -> Decimal:
    """``value`` (a Decimal, an int or a numeric string; never a float or a bool) as a positive
    Decimal of at most ``maximum`` with at most ``places`` decimals. Raises ValueError with a
    message fit for a person."""
    if isinstance(value, bool | float):
        # A float has already lost digits; a JSON plan is parsed with Decimal for this reason.
        raise ValueError(f"{what} must be a number written as decimal digits")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what} must be a number, not {value!r}") from None
    else:
        raise ValueError(f"{what} must be a number")
    if not number.is_finite():
        raise ValueError(f"{what} must be a finite number")
    if number <= 0:
        raise ValueError(f"{what} must be greater than zero")
    if number > maximum:
        raise ValueError(f"{what} must be at most {maximum:,}")
    if decimal_places(number) > places:
        raise ValueError(f"{what} may have at most {places} decimals")
    return number
