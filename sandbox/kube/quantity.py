"""Resource quantities (``resource.Quantity``): parsing and the server's canonical form.

The real API server stores a quantity as a number and prints it back canonically: ``"1000m"``
comes back as ``"1"``, ``"0.5"`` as ``"500m"``, ``"1.5Gi"`` as ``"1536Mi"``, and a JSON number as a
string. A client that compares what it sent with what it reads must cope with that, so the simulator
does the same ("Kubernetes API Reference › Common Definitions › Quantity").

Deliberately independent of ``clusterweb.integrations.k8s``: the simulator must not share the code
it is there to check.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

BINARY = "BinarySI"
DECIMAL = "DecimalSI"
EXPONENT = "DecimalExponent"

_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15}
_DECIMAL_SUFFIXES["E"] = 18
_SUFFIX_FOR_EXPONENT = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_SUFFIX_FOR_BITS = {0: "", **{b: s for s, b in _BINARY_SUFFIXES.items()}}

_PATTERN = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE](?P<exp>[+-]?[0-9]+))?$"
)
_NANO = Decimal("1e-9")

MESSAGE = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


class QuantityError(ValueError):
    """Not a quantity: the real server refuses it while decoding (400 BadRequest)."""


def parse(text: str | int | float) -> tuple[Decimal, str]:
    """Return the quantity's value and format (BinarySI, DecimalSI or DecimalExponent)."""
    if isinstance(text, bool):
        raise QuantityError(MESSAGE)
    if isinstance(text, int | float):
        try:
            return Decimal(str(text)), DECIMAL
        except InvalidOperation as exc:  # NaN, inf
            raise QuantityError(MESSAGE) from exc
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match or text != text.strip():
        raise QuantityError(MESSAGE)
    number = Decimal(match["number"])
    if match["exp"] is not None:
        return number.scaleb(int(match["exp"])), EXPONENT
    suffix = match["suffix"] or ""
    if suffix in _BINARY_SUFFIXES:
        return number * (Decimal(2) ** _BINARY_SUFFIXES[suffix]), BINARY
    return number.scaleb(_DECIMAL_SUFFIXES[suffix]), DECIMAL


def canonical(text: str | int | float) -> str:
    """The string the API server returns for ``text`` (apimachinery's ``CanonicalizeBytes``)."""
    value, fmt = parse(text)
    # Precision below 10^-9 is rounded up, as resource.Quantity does.
    value = (value / _NANO).to_integral_value(rounding=ROUND_CEILING) * _NANO
    if fmt == BINARY and (abs(value) < 1024 or value != value.to_integral_value()):
        fmt = DECIMAL
    if fmt == BINARY:
        mantissa, bits = int(value), 0
        while mantissa != 0 and mantissa % 1024 == 0 and bits < 60:
            mantissa //= 1024
            bits += 10
        return f"{mantissa}{_SUFFIX_FOR_BITS[bits]}"
    mantissa, exponent = int(value / _NANO), -9
    if mantissa == 0:
        return "0"
    while mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    if fmt == EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_SUFFIX_FOR_EXPONENT[exponent]}"


def value(text: str | int | float) -> Decimal:
    """The quantity's numeric value (cores for cpu, bytes for memory)."""
    return parse(text)[0]
