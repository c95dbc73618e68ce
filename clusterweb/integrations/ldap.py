"""The cluster's OpenLDAP directory, for everything that is not a login (django-auth-ldap owns
logins). Every filter and DN built here escapes its values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import ldap
from django.conf import settings
from ldap import modlist
from ldap.dn import escape_dn_chars
from ldap.filter import escape_filter_chars

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


# --- Accounts and groups (the signup writes these) -----------------------------------------------
# Clusterweb's service account (LDAP_BIND_DN) needs write access to the people and groups OUs and
# to SIGNUP_UID_LOCKS_DN for these (docs/signup.md). Values are escaped into every filter
# (escape_filter_chars) and every DN (escape_dn_chars) built here.


def person_dn(uid: str) -> str:
    return f"uid={escape_dn_chars(uid)},{settings.LDAP_PEOPLE_DN}"


def _group_dn(name: str) -> str:
    return f"cn={escape_dn_chars(name)},{settings.LDAP_GROUPS_DN}"


def _lock_dn(number: int) -> str:
    return f"cn={int(number)},{settings.SIGNUP_UID_LOCKS_DN}"


def _first(attrs: dict[str, list[bytes]], name: str) -> str:
    values = attrs.get(name) or [b""]
    return values[0].decode()


def username_taken(uid: str) -> str | None:
    """Why ``uid`` cannot be a new account's name: ``"user"`` when an entry anywhere in the
    directory has that uid, ``"group"`` when a group has that name, else None."""
    with connection() as conn:
        if conn.search_s(
            settings.LDAP_BASE_DN, ldap.SCOPE_SUBTREE, f"(uid={escape_filter_chars(uid)})", ["1.1"]
        ):
            return "user"
        if conn.search_s(
            settings.LDAP_GROUPS_DN,
            ldap.SCOPE_ONELEVEL,
            f"(cn={escape_filter_chars(uid)})",
            ["1.1"],
        ):
            return "group"
    return None


def person_uid_number(uid: str) -> int | None:
    """The uidNumber of the person ``uid`` under the people OU, or None when there is none."""
    with connection() as conn:
        found = conn.search_s(
            settings.LDAP_PEOPLE_DN,
            ldap.SCOPE_ONELEVEL,
            f"(uid={escape_filter_chars(uid)})",
            ["uidNumber"],
        )
    return int(_first(found[0][1], "uidNumber") or 0) if found else None


def group_gid_number(name: str) -> int:
    """The gidNumber of the posixGroup ``name``; PermanentError when the group is missing."""
    with connection() as conn:
        found = conn.search_s(
            settings.LDAP_GROUPS_DN,
            ldap.SCOPE_ONELEVEL,
            f"(&(objectClass=posixGroup)(cn={escape_filter_chars(name)}))",
            ["gidNumber"],
        )
    if not found:
        raise PermanentError(f"the directory has no group {name!r}", system="ldap")
    return int(_first(found[0][1], "gidNumber"))


def group_member_mails(name: str) -> list[str]:
    """Mail addresses of the members of posixGroup ``name`` (members without mail are left out)."""
    with connection() as conn:
        found = conn.search_s(
            settings.LDAP_GROUPS_DN,
            ldap.SCOPE_ONELEVEL,
            f"(&(objectClass=posixGroup)(cn={escape_filter_chars(name)}))",
            ["memberUid"],
        )
        uids = [v.decode() for _, attrs in found for v in attrs.get("memberUid", [])]
        if not uids:
            return []
        wanted = "".join(f"(uid={escape_filter_chars(uid)})" for uid in uids)
        people = conn.search_s(
            settings.LDAP_PEOPLE_DN, ldap.SCOPE_ONELEVEL, f"(|{wanted})", ["mail"]
        )
    return sorted({_first(attrs, "mail") for _, attrs in people if attrs.get("mail")})


def uid_number_highest() -> int:
    """The highest uidNumber in use: every posixAccount in the directory and every claim."""
    with connection() as conn:
        accounts = conn.search_s(
            settings.LDAP_BASE_DN, ldap.SCOPE_SUBTREE, "(uidNumber=*)", ["uidNumber"]
        )
        claims = conn.search_s(
            settings.SIGNUP_UID_LOCKS_DN,
            ldap.SCOPE_ONELEVEL,
            "(objectClass=organizationalRole)",
            ["cn"],
        )
    numbers = [int(v) for _, attrs in accounts for v in attrs.get("uidNumber", []) if v.isdigit()]
    numbers += [int(v) for _, attrs in claims for v in attrs.get("cn", []) if v.isdigit()]
    return max(numbers, default=0)


def uid_number_claimed_by(owner_dn: str, tag: str) -> int | None:
    """The uidNumber an earlier, interrupted allocation claimed for ``owner_dn`` with ``tag`` (the
    signup it was for), if any."""
    with connection() as conn:
        found = conn.search_s(
            settings.SIGNUP_UID_LOCKS_DN,
            ldap.SCOPE_ONELEVEL,
            f"(&(roleOccupant={escape_filter_chars(owner_dn)})"
            f"(description={escape_filter_chars(tag)}))",
            ["cn"],
        )
    numbers = sorted(int(v) for _, attrs in found for v in attrs.get("cn", []) if v.isdigit())
    return numbers[0] if numbers else None


def uid_number_claim(number: int, owner_dn: str, tag: str) -> bool:
    """Claim ``number`` for ``owner_dn`` by adding the entry ``cn=NUMBER`` under
    SIGNUP_UID_LOCKS_DN. The directory refuses a second entry with one DN, so of two allocators
    racing for a number exactly one wins. True when the number is ours (now, or from an earlier
    attempt with the same ``tag``); False when someone else holds it."""
    entry = {
        "objectClass": [b"top", b"organizationalRole"],
        "cn": [str(int(number)).encode()],
        "roleOccupant": [owner_dn.encode()],
        "description": [tag.encode()],
    }
    with connection() as conn:
        try:
            conn.add_s(_lock_dn(number), modlist.addModlist(entry))
            return True
        except ldap.ALREADY_EXISTS:
            found = conn.search_s(
                _lock_dn(number),
                ldap.SCOPE_BASE,
                "(objectClass=*)",
                ["roleOccupant", "description"],
            )
            for _, attrs in found:
                owners = [v.decode().lower() for v in attrs.get("roleOccupant", [])]
                tags = [v.decode() for v in attrs.get("description", [])]
                if owner_dn.lower() in owners and tag in tags:
                    return True
            return False


def person_add(uid: str, attributes: dict[str, list[str]]) -> bool:
    """Add the person ``uid`` under the people OU. True when added, False when an entry with that
    DN already exists (the caller decides whether it is its own, from an earlier attempt)."""
    entry = {name: [v.encode() for v in values] for name, values in attributes.items() if values}
    with connection() as conn:
        try:
            conn.add_s(person_dn(uid), modlist.addModlist(entry))
            return True
        except ldap.ALREADY_EXISTS:
            return False


def group_member_add(name: str, uid: str) -> bool:
    """Add ``uid`` to posixGroup ``name`` (memberUid). True when added, False when already in."""
    with connection() as conn:
        try:
            conn.modify_s(_group_dn(name), [(ldap.MOD_ADD, "memberUid", [uid.encode()])])
            return True
        except ldap.TYPE_OR_VALUE_EXISTS:
            return False
