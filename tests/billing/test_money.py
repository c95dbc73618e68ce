"""Money is Decimal: amounts to the cent, rates as published, typed prices checked."""

from decimal import Decimal

import pytest

from billing.money import amount_str, positive_decimal, rate_str


def test_amounts_have_two_decimals_rounded_half_up():
    assert amount_str(Decimal("9.198")) == "9.20"
    assert amount_str(Decimal("0.005")) == "0.01"
    assert amount_str(Decimal("12")) == "12.00"


def test_rates_keep_their_published_digits_with_at_least_two_decimals():
    assert rate_str(Decimal("0.0116")) == "0.0116"
    assert rate_str(Decimal("0.096000")) == "0.096"
    assert rate_str(Decimal("6.33167")) == "6.33167"
    assert rate_str(Decimal("5")) == "5.00"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.1, "decimal digits"),
        (True, "decimal digits"),
        ("0", "greater than zero"),
        ("-1", "greater than zero"),
        ("1e400", "at most 1,000,000"),
        ("NaN", "finite"),
        ("abc", "must be a number"),
        ("0.12345", "at most 4 decimals"),
    ],
)
def test_a_typed_price_must_be_a_positive_decimal_with_few_decimals(value, message):
    with pytest.raises(ValueError, match=message):
        positive_decimal(value, places=4)


def test_a_typed_price_keeps_its_exact_value():
    assert positive_decimal("0.0116", places=4) == Decimal("0.0116")
    assert positive_decimal(" 3 ", places=0) == Decimal(3)
