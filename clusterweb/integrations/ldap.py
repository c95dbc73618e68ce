"""The cluster's OpenLDAP directory, for everything that is not a login (django-auth-ldap owns
logins). Every filter and DN built here escapes its values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import ldap
from django.conf import settings

from clusterweb.errors import DirectoryUnavailable, PermanentError

_UNAVAILABLE = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.UNAVAILABLE, ldap.BUSY)


@contextmanager
def connection() -> Iterator[ldap.ldapobject.LDAPObject]:
    """A connection bound as ``LDAP_BIND_DN`` (anonymous when empty), with explicit timeouts."""
    conn = ldap.initialize(settings.LDAP_URI)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, settings.LDAP_TIMEOUT)
    conn.set_option(ldap.OPT_TIMEOUT, settings.LDAP_TIMEOUT)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    try:
        if settings.LDAP_START_TLS:
            conn.start_tls_s()
        conn.simple_bind_s(settings.LDAP_BIND_DN, settings.LDAP_BIND_PASSWORD)
        yield conn
    except _UNAVAILABLE as exc:
        raise DirectoryUnavailable(
            f"directory unreachable: {type(exc).__name__}", system="ldap"
        ) from None
    except ldap.INVALID_CREDENTIALS:
        raise DirectoryUnavailable(
            "directory refused Clusterweb's bind (check LDAP_BIND_DN)", system="ldap"
        ) from None
    except ldap.LDAPError as exc:
        raise PermanentError(f"directory error: {type(exc).__name__}", system="ldap") from None
    finally:
        with suppress(ldap.LDAPError):
            conn.unbind_s()


def ping() -> None:
    """Bind and read the base entry; raises ``DirectoryUnavailable`` when that fails."""
    try:
        with connection() as conn:
            conn.search_s(settings.LDAP_BASE_DN, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
    except PermanentError as exc:
        raise DirectoryUnavailable(str(exc), system="ldap") from None
