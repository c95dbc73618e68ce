"""The directory's group membership as Clusterweb reads it: ``memberUid`` only.

django-auth-ldap's ``PosixGroupType`` also counts a person's primary group (their ``gidNumber``)
as membership. Signup gives every new account ``gidNumber`` = the ``users`` group, so removing
such a person from ``users`` (their ``memberUid``) would not revoke them. This module imports
only django-auth-ldap's configuration classes, so ``settings.py`` can use it."""

from __future__ import annotations

from typing import Any

import ldap
from django_auth_ldap.config import ALLOWED_LDAP_MEMBERSHIP_EXCEPTIONS, PosixGroupType


class MemberUidGroupType(PosixGroupType):
    """posixGroups whose members are exactly their ``memberUid`` values; the primary gid is
    ignored (the directory needs no migration)."""

    def user_groups(self, ldap_user: Any, group_search: Any) -> list:
        try:
            uid = ldap_user.attrs["uid"][0]
        except (KeyError, IndexError):
            return []
        term = f"(memberUid={ldap.filter.escape_filter_chars(uid)})"
        return group_search.search_with_additional_term_string(term).execute(ldap_user.connection)

    def is_member(self, ldap_user: Any, group_dn: str) -> bool:
        try:
            uid = ldap_user.attrs["uid"][0]
        except (KeyError, IndexError):
            return False
        try:
            return bool(ldap_user.connection.compare_s(group_dn, "memberUid", uid.encode()))
        except ALLOWED_LDAP_MEMBERSHIP_EXCEPTIONS:
            return False
