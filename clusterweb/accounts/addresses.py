"""Email addresses as the directory holds them. LDAP's ``mail`` is an IA5String (RFC 4524): ASCII
only, so slapd refuses any other address with INVALID_SYNTAX. An address that will be stored
(an invitation's) must be ASCII; one that is looked up (a self-service reset request) is first
brought to one spelling, so look-alike and case variants of an address share its counter and
never match another person's by a database's own case folding."""

from __future__ import annotations

import unicodedata


class AddressRefused(ValueError):
    """An address the directory could not hold; the message says why, for the person typing."""


def address_for_directory(email: str) -> str:
    """``email`` as the directory can store it, or AddressRefused: ASCII, with no control or
    invisible characters (the caller has validated its shape)."""
    email = email.strip()
    if not email.isascii() or not email.isprintable():
        raise AddressRefused(
            "The cluster's directory stores email addresses in ASCII only: use an address "
            "without accented, non-Latin or invisible characters (write an international "
            "domain in its xn-- form)."
        )
    return email


def address_folded(email: str) -> str:
    """One spelling of ``email`` for counting and matching: NFKC (full-width, mathematical and
    circled letters become plain ones; the long s becomes s; the Kelvin sign K) and case
    folding. The local part must then be ASCII (a dotless i stays non-ASCII and is refused:
    PostgreSQL's UPPER() would fold it into an I and match someone else's address); the domain
    is turned into its ASCII (IDNA) form. Raises AddressRefused."""
    folded = unicodedata.normalize("NFKC", email.strip()).casefold()
    local, at, domain = folded.rpartition("@")
    if not at or not local or not domain:
        raise AddressRefused("Enter a valid email address.")
    if not local.isascii() or not local.isprintable():
        raise AddressRefused(
            "Type the part before the @ in ASCII letters, as the cluster's directory has it."
        )
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise AddressRefused("Enter a valid email address.") from None
    return f"{local}@{domain}"
