"""Password hashes in the form an OpenLDAP directory verifies on bind (RFC 2307 ``{SCHEME}``).

The signup form hashes the password at once: the clear text never reaches the database, only the
hash the directory stores as ``userPassword``. ``{ARGON2}`` needs slapd's ``argon2`` module,
``{SSHA512}`` its ``pw-sha2`` module (docs/signup.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

SCHEMES = ("ARGON2", "SSHA512")


@sensitive_variables()
def ldap_password_hash(password: str, scheme: str | None = None) -> str:
    """``{ARGON2}$argon2id$...`` (argon2-cffi's RFC 9106 low-memory profile, which slapd's
    module verifies) or ``{SSHA512}`` with a 16-byte salt. ``scheme`` defaults to the setting."""
    scheme = (scheme or settings.SIGNUP_PASSWORD_SCHEME).upper()
    if scheme == "ARGON2":
        return "{ARGON2}" + PasswordHasher().hash(password)
    if scheme == "SSHA512":
        salt = secrets.token_bytes(16)
        digest = hashlib.sha512(password.encode() + salt).digest()
        return "{SSHA512}" + base64.b64encode(digest + salt).decode()
    raise ValueError(f"unknown password scheme {scheme!r}")


@sensitive_variables()
def ldap_password_verify(password: str, hashed: str) -> bool:
    """Check ``password`` against a hash made by ``ldap_password_hash`` (used by tests and the
    sandbox; the directory does its own verification)."""
    if hashed.startswith("{ARGON2}"):
        try:
            return PasswordHasher().verify(hashed[len("{ARGON2}") :], password)
        except Argon2Error:
            return False
    if hashed.startswith("{SSHA512}"):
        raw = base64.b64decode(hashed[len("{SSHA512}") :])
        digest, salt = raw[:64], raw[64:]
        return hmac.compare_digest(hashlib.sha512(password.encode() + salt).digest(), digest)
    return False
