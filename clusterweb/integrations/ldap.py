"""The cluster's OpenLDAP directory, for everything that is not a login (django-auth-ldap owns
logins). Every filter and DN built here escapes its values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import ldap
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from ldap import modlist
from ldap.controls import SimplePagedResultsControl
from ldap.dn import escape_dn_chars
from ldap.filter import escape_filter_chars

from clusterweb.errors import DirectoryUnavailable, PermanentError

_UNAVAILABLE = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.UNAVAILABLE, ldap.BUSY)


def _error_text(exc: ldap.LDAPError) -> str:
    """The error's name and slapd's explanation (e.g. ``mail: value #0 invalid per syntax``)."""
    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    info = str(details.get("info", "")).strip()
    return f"directory error: {type(exc).__name__}" + (f" ({info[:200]})" if info else "")


def _initialize() -> ldap.ldapobject.LDAPObject:
    conn = ldap.initialize(settings.LDAP_URI)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, settings.LDAP_TIMEOUT)
    conn.set_option(ldap.OPT_TIMEOUT, settings.LDAP_TIMEOUT)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    return conn


@contextmanager
def connection() -> Iterator[ldap.ldapobject.LDAPObject]:
    """A connection bound as ``LDAP_BIND_DN`` (anonymous when empty), with explicit timeouts."""
    conn = _initialize()
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
        raise PermanentError(_error_text(exc), system="ldap") from None
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
        uids = _member_uids(conn, name)
        if not uids:
            return []
        wanted = "".join(f"(uid={escape_filter_chars(uid)})" for uid in uids)
        people = conn.search_s(
            settings.LDAP_PEOPLE_DN, ldap.SCOPE_ONELEVEL, f"(|{wanted})", ["mail"]
        )
    return sorted({_first(attrs, "mail") for _, attrs in people if attrs.get("mail")})


_UID_NUMBER_CEILING = 2**32  # uid_t is 32 bits: no uidNumber reaches this


def uid_number_highest() -> int:
    """The highest uidNumber of any posixAccount in the directory (0 when there is none).

    Found by bisection on ``(uidNumber>=N)`` searches that ask for one entry each (about 32 of
    them), not by reading every account: slapd answers at most 500 entries to any bind but its
    rootdn (its default ``sizelimit``), and with paged results the total is capped by the same
    limit (slapd-limits(5), ``size.prtotal``), so a directory past 500 accounts could not be
    read whole. uidNumber has ORDERING integerOrderingMatch in nis.schema. Numbers claimed but
    not yet used (``uid_number_claim``) are not counted: the allocator's claim step skips them."""
    with connection() as conn:

        def exists(number: int) -> bool:
            try:
                found = conn.search_ext_s(
                    settings.LDAP_BASE_DN,
                    ldap.SCOPE_SUBTREE,
                    f"(uidNumber>={int(number)})",
                    ["1.1"],
                    sizelimit=1,
                )
            except ldap.SIZELIMIT_EXCEEDED:
                return True  # more than one: there is one
            return any(dn for dn, _ in found)

        if not exists(0):
            return 0
        low, high = 0, _UID_NUMBER_CEILING  # exists(low), not exists(high)
        while high - low > 1:
            middle = (low + high) // 2
            if exists(middle):
                low = middle
            else:
                high = middle
        return low


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


def _modify_once(dn: str, changes: list) -> bool:
    """Apply ``changes`` to ``dn``; True when applied, False when the directory says they are
    already in effect (adding a value that is there, deleting one that is not). That makes every
    membership and key change safe to retry."""
    with connection() as conn:
        try:
            conn.modify_s(dn, changes)
            return True
        except (ldap.TYPE_OR_VALUE_EXISTS, ldap.NO_SUCH_ATTRIBUTE):
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
    return _modify_once(_group_dn(name), [(ldap.MOD_ADD, "memberUid", [uid.encode()])])


# --- People: the mirror, locks, role groups, SSH keys and passwords -------------------------------
# The service account needs, besides the above, write access to `pwdAccountLockedTime` and
# `sshPublicKey` of people and `=w` on their `userPassword` (docs/accounts.md). The lock is the
# ppolicy overlay's: with `pwdLockout TRUE` in the default policy, `pwdAccountLockedTime` set to
# 000001010000Z refuses every bind until an administrator removes it.

LOCKED_FOREVER = b"000001010000Z"
_PERSON_ATTRS = [
    "uid",
    "cn",
    "mail",
    "uidNumber",
    "objectClass",
    "sshPublicKey",
    "pwdAccountLockedTime",
]
_PAGE_SIZE = 500  # below slapd's default sizelimit, so a large directory is read in pages


class WrongPassword(PermanentError):
    """The directory refused a bind with the password the user gave."""


class PasswordRejected(PermanentError):
    """The directory refused a new password (its password policy); the message is slapd's."""


@dataclass(frozen=True)
class Person:
    uid: str
    dn: str
    uid_number: int | None
    full_name: str
    mail: str
    object_classes: tuple[str, ...]
    ssh_keys: tuple[str, ...]
    locked: bool
    groups: tuple[str, ...] = ()


def _person(dn: str, attrs: dict[str, list[bytes]], uid: str, groups: tuple[str, ...]) -> Person:
    number = _first(attrs, "uidNumber")
    return Person(
        uid=uid,
        dn=dn,
        uid_number=int(number) if number.isdigit() else None,
        full_name=_first(attrs, "cn"),
        mail=_first(attrs, "mail"),
        object_classes=tuple(v.decode() for v in attrs.get("objectClass", [])),
        ssh_keys=tuple(v.decode(errors="replace") for v in attrs.get("sshPublicKey", [])),
        locked=bool(attrs.get("pwdAccountLockedTime")),
        groups=groups,
    )


def _paged_search(
    conn: ldap.ldapobject.LDAPObject, base: str, filterstr: str, attrs: list[str]
) -> list[tuple[str, dict[str, list[bytes]]]]:
    """A one-level search read in pages (RFC 2696), so no size limit cuts it short."""
    control = SimplePagedResultsControl(True, size=_PAGE_SIZE, cookie="")
    found: list[tuple[str, dict[str, list[bytes]]]] = []
    while True:
        msgid = conn.search_ext(base, ldap.SCOPE_ONELEVEL, filterstr, attrs, serverctrls=[control])
        _, data, _, controls = conn.result3(msgid)
        found += [(dn, attrs) for dn, attrs in data if dn]
        cookie = next(
            (c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType),
            b"",
        )
        if not cookie:
            return found
        control.cookie = cookie


def people_all() -> list[Person]:
    """Every posixAccount under the people OU with its supplementary groups (memberUid)."""
    with connection() as conn:
        people = _paged_search(
            conn, settings.LDAP_PEOPLE_DN, "(&(objectClass=posixAccount)(uid=*))", _PERSON_ATTRS
        )
        groups = _paged_search(
            conn, settings.LDAP_GROUPS_DN, "(objectClass=posixGroup)", ["cn", "memberUid"]
        )
    member_of: dict[str, list[str]] = {}
    for _, attrs in groups:
        name = _first(attrs, "cn")
        for member in attrs.get("memberUid", []):
            member_of.setdefault(member.decode(), []).append(name)
    return [
        _person(dn, attrs, uid, tuple(sorted(member_of.get(uid, []))))
        for dn, attrs in people
        if (uid := _first(attrs, "uid"))
    ]


def person_read(uid: str) -> Person | None:
    """The person ``uid`` (exactly that uid; LDAP matching ignores case, we do not) with their
    supplementary groups, or None."""
    with connection() as conn:
        found = conn.search_s(
            settings.LDAP_PEOPLE_DN,
            ldap.SCOPE_ONELEVEL,
            f"(&(objectClass=posixAccount)(uid={escape_filter_chars(uid)}))",
            _PERSON_ATTRS,
        )
        found = [(dn, a) for dn, a in found if uid in (v.decode() for v in a.get("uid", []))]
        if len(found) != 1:
            return None
        groups = conn.search_s(
            settings.LDAP_GROUPS_DN,
            ldap.SCOPE_ONELEVEL,
            f"(&(objectClass=posixGroup)(memberUid={escape_filter_chars(uid)}))",
            ["cn"],
        )
    dn, attrs = found[0]
    return _person(dn, attrs, uid, tuple(sorted(_first(a, "cn") for _, a in groups)))


def group_members(name: str) -> list[str]:
    """The memberUid values of posixGroup ``name`` (empty when the group is missing)."""
    with connection() as conn:
        return sorted(_member_uids(conn, name))


def _member_uids(conn: ldap.ldapobject.LDAPObject, name: str) -> list[str]:
    found = conn.search_s(
        settings.LDAP_GROUPS_DN,
        ldap.SCOPE_ONELEVEL,
        f"(&(objectClass=posixGroup)(cn={escape_filter_chars(name)}))",
        ["memberUid"],
    )
    return [v.decode() for _, attrs in found for v in attrs.get("memberUid", [])]


def group_member_remove(name: str, uid: str) -> bool:
    """Remove ``uid`` from posixGroup ``name``. True when removed, False when not a member."""
    return _modify_once(_group_dn(name), [(ldap.MOD_DELETE, "memberUid", [uid.encode()])])


def person_lock(dn: str) -> None:
    """Lock the account for good: the ppolicy overlay refuses every bind while
    ``pwdAccountLockedTime`` is 000001010000Z, and the bastion's key lookup gives no keys."""
    with connection() as conn:
        conn.modify_s(dn, [(ldap.MOD_REPLACE, "pwdAccountLockedTime", [LOCKED_FOREVER])])


def person_unlock(dn: str) -> None:
    """Remove the ppolicy lock (nothing to do when there is none)."""
    with connection() as conn, suppress(ldap.NO_SUCH_ATTRIBUTE):
        conn.modify_s(dn, [(ldap.MOD_DELETE, "pwdAccountLockedTime", None)])


def ssh_key_add(person: Person, line: str) -> bool:
    """Add one public key line to ``sshPublicKey`` (and the ``ldapPublicKey`` class the entry
    needs for it). True when added, False when the exact line is there already."""
    changes = [(ldap.MOD_ADD, "sshPublicKey", [line.encode()])]
    if "ldappublickey" not in {c.lower() for c in person.object_classes}:
        changes.insert(0, (ldap.MOD_ADD, "objectClass", [b"ldapPublicKey"]))
    return _modify_once(person.dn, changes)


def ssh_key_remove(person: Person, line: str) -> bool:
    """Remove the exact stored key line. True when removed, False when it was not there."""
    return _modify_once(person.dn, [(ldap.MOD_DELETE, "sshPublicKey", [line.encode()])])


def _password_refused(exc: ldap.LDAPError) -> PasswordRejected:
    info = exc.args[0].get("info", "") if exc.args and isinstance(exc.args[0], dict) else ""
    return PasswordRejected(
        f"the directory refused the new password{': ' + info if info else ''}", system="ldap"
    )


@sensitive_variables()
def password_change(dn: str, old: str, new: str) -> None:
    """Change a password as its owner: bind as ``dn`` with ``old`` (WrongPassword when refused),
    then the RFC 3062 password-modify operation, so the directory hashes the new password with
    its own scheme and applies its own policy (PasswordRejected). If the ACL does not let people
    change their own password, the service account sets it once the old one has been proven."""
    if not old or not new:
        # An empty password would make a simple bind unauthenticated: never a proof.
        raise WrongPassword("no password given", system="ldap")
    conn = _initialize()
    try:
        if settings.LDAP_START_TLS:
            conn.start_tls_s()
        try:
            conn.simple_bind_s(dn, old)
        except (ldap.INVALID_CREDENTIALS, ldap.UNWILLING_TO_PERFORM):
            raise WrongPassword("the directory refused the password", system="ldap") from None
        try:
            conn.passwd_s(dn, old, new)
            return
        except (ldap.CONSTRAINT_VIOLATION, ldap.UNWILLING_TO_PERFORM) as exc:
            raise _password_refused(exc) from None
        except ldap.INSUFFICIENT_ACCESS:
            pass
    except _UNAVAILABLE as exc:
        raise DirectoryUnavailable(
            f"directory unreachable: {type(exc).__name__}", system="ldap"
        ) from None
    except ldap.LDAPError as exc:
        raise PermanentError(_error_text(exc), system="ldap") from None
    finally:
        with suppress(ldap.LDAPError):
            conn.unbind_s()
    password_set(dn, new)


@sensitive_variables()
def password_set(dn: str, new: str) -> None:
    """Set a password as the service account (a reset link): the password-modify operation, so
    the directory's own hashing and policy apply."""
    if not new:
        raise PasswordRejected("an empty password", system="ldap")
    with connection() as conn:
        try:
            conn.passwd_s(dn, None, new)
        except (ldap.CONSTRAINT_VIOLATION, ldap.UNWILLING_TO_PERFORM) as exc:
            raise _password_refused(exc) from None
