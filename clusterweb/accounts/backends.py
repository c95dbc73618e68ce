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


def _directory_unreachable(sender: Any, context: str, exception: Exception, **kwargs: Any) -> None:
    # django-auth-ldap turns every LDAPError into "no user", so a directory outage would look like
    # a wrong password (and count towards a lockout). The user's own bad password never gets here:
    # the library handles INVALID_CREDENTIALS on the user's bind itself.
    logger.error("LDAP directory unavailable while %s: %s", context, type(exception).__name__)
    raise DirectoryUnavailable(f"directory unavailable ({type(exception).__name__})", system="ldap")


ldap_error.connect(_directory_unreachable, dispatch_uid="clusterweb.directory_unreachable")
