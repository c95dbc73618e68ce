"""Authentication backends: the cluster's LDAP directory, and the local break-glass superuser."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables
from django_auth_ldap.backend import LDAPBackend, ldap_error

from clusterweb.errors import DirectoryUnavailable

logger = logging.getLogger(__name__)


class NoAccess(Exception):
    """The directory accepted the password, but the user is in neither role's group."""

    def __init__(self, user: Any) -> None:
        super().__init__(f"{user.username} is in no Clusterweb group")
        self.user = user


class BreakGlassBackend(ModelBackend):
    """Local superusers only (created with ``createsuperuser``): the documented way in while the
    directory is down. Users mirrored from LDAP have no usable local password and never match."""

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(
            user.is_superuser and user.has_usable_password()
        ) and super().user_can_authenticate(user)


class ClusterLDAPBackend(LDAPBackend):
    """django-auth-ldap, plus: refuse users in neither group with a distinct error, so the login
    page can say "you have no access" rather than "wrong password"."""

    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[Any, bool]:
        """The Django user for directory entry ``ldap_user``, named by the entry's own ``uid``
        (never the typed string: slapd matches look-alike spellings, issue 13). A row that
        differs only in case is the same person and takes the entry's spelling. A local row
        (one with a usable password: the break-glass superuser) is never an LDAP login's."""
        uid = entry_uid(ldap_user, username)
        model = self.get_user_model()
        rows = list(model.objects.filter(username__iexact=uid).order_by("pk"))
        if not rows:
            return model(username=uid), True
        if any(row.has_usable_password() for row in rows):
            raise ldap_user.AuthenticationFailed(f"{uid} is a local account")
        user = next((row for row in rows if row.username == uid), rows[0])
        user.username = uid
        return user, False

    @sensitive_variables()
    def authenticate_ldap_user(self, ldap_user: Any, password: str) -> Any:
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is not None and user.role is None:
            raise NoAccess(user)
        return user

    @sensitive_variables()
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is not None and len(username) > 150:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def entry_uid(ldap_user: Any, typed: str) -> str:
    """The entry's ``uid`` value that the typed name matched: an entry may hold several, and the
    directory compares them ignoring case."""
    values = (ldap_user.attrs or {}).get("uid") or []
    for value in values:
        if value.lower() == typed.lower():
            return value
    return values[0] if values else typed


def _directory_unreachable(sender: Any, context: str, exception: Exception, **kwargs: Any) -> None:
    # django-auth-ldap turns every LDAPError into "no user", so a directory outage would look like
    # a wrong password (and count towards a lockout). The user's own bad password never gets here:
    # the library handles INVALID_CREDENTIALS on the user's bind itself.
    logger.error("LDAP directory unavailable while %s: %s", context, type(exception).__name__)
    raise DirectoryUnavailable(f"directory unavailable ({type(exception).__name__})", system="ldap")


ldap_error.connect(_directory_unreachable, dispatch_uid="clusterweb.directory_unreachable")
