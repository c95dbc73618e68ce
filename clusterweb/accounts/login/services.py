"""Logging in (with the per-username lockout), logging out, re-reading a user's groups, and the
user a command line's ``--by`` names."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.hashers import make_password
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from clusterweb import clock
from clusterweb.accounts.backends import BreakGlassBackend, ClusterLDAPBackend, NoAccess
from clusterweb.accounts.directory.services import directory_user_refresh
from clusterweb.accounts.forms import uid_pattern
from clusterweb.accounts.login.selectors import local_user
from clusterweb.accounts.models import (
    DisabledAccount,
    LoginThrottle,
    User,
)
from clusterweb.audit.services import audit_record
from clusterweb.errors import DirectoryUnavailable, IntegrationError

logger = logging.getLogger(__name__)

SESSION_LOGIN_AT = "clusterweb_login_at"


SESSION_LAST_SEEN = "clusterweb_last_seen"

# Dotted paths as in settings.AUTHENTICATION_BACKENDS (stored in each session).
BREAK_GLASS_BACKEND = "clusterweb.accounts.backends.BreakGlassBackend"
LDAP_BACKEND = "clusterweb.accounts.backends.ClusterLDAPBackend"


@dataclass(frozen=True)
class LoginOutcome:
    user: User | None = None
    # One of: "invalid", "no_access", "locked", "unavailable"; None when the login succeeded.
    error: str | None = None
    retry_after_seconds: int = 0


def username_key(username: str) -> str:
    """The form a username is throttled under: LDAP's uid matching ignores case and the library
    strips spaces, so ``Bob `` and ``bob`` are one account and share one counter. Look-alike
    spellings (``ｂｏｂ``) never reach the directory (``login_name``), so they cannot dodge it."""
    return username.strip().lower()[:150]


def login_name(typed: str) -> str | None:
    """The name to ask the directory for: ``typed`` stripped and lower-cased when it matches the
    directory's uid pattern (``DIRECTORY_UID_PATTERN``), else None. slapd matches ``uid`` after
    Unicode compatibility and case folding, so full-width, mathematical or circled spellings
    would bind as the person they imitate, each under a fresh lockout counter."""
    name = typed.strip().lower()
    return name if uid_pattern().fullmatch(name) else None


@sensitive_variables()
def _password_hash_once(password: str) -> None:
    """Hash ``password`` once with the production hasher and forget it: a failed login for a name
    that is not a local account does the work a local account's failure does, so the time of
    a failure does not tell which local names exist (Django's ModelBackend does the same for
    unknown users, #20760). Successful directory logins skip it."""
    make_password(password)


@sensitive_variables()
def _authenticate(
    request: HttpRequest, typed: str, password: str
) -> tuple[AbstractBaseUser | None, str]:
    """The user ``typed`` and ``password`` name, and the backend that vouched for them. A local
    (break-glass) name is checked only against its local password, never against LDAP, so its
    failures always count even while the directory is down; any other name only against LDAP,
    after the uid pattern. Raises DirectoryUnavailable and NoAccess from the LDAP backend."""
    local = local_user(typed)
    if local is not None:
        return BreakGlassBackend().authenticate(
            request, username=local.username, password=password
        ), BREAK_GLASS_BACKEND
    name = login_name(typed)
    user = None
    if name is not None:
        user = ClusterLDAPBackend().authenticate(request, username=name, password=password)
    if user is None:
        _password_hash_once(password)
    return user, LDAP_BACKEND


@sensitive_variables()
def login_attempt(*, request: HttpRequest, username: str, password: str) -> LoginOutcome:
    """Try to log ``username`` in on ``request``. Failures caused by an unreachable directory never
    count towards the lockout; a correct password for a user in no group does not count either.
    A name outside the uid pattern is refused without asking the directory, as a wrong password,
    and counted."""
    key = username_key(username)
    now = clock.now()
    locked_until = (
        LoginThrottle.objects.filter(username=key, locked_until__gt=now)
        .values_list("locked_until", flat=True)
        .first()
    )
    if locked_until:
        audit_record(action="login.refused_locked", actor_username=key, request=request)
        return LoginOutcome(
            error="locked", retry_after_seconds=int((locked_until - now).total_seconds()) + 1
        )
    try:
        user, backend = _authenticate(request, username, password)
    except DirectoryUnavailable:
        audit_record(action="login.directory_unavailable", actor_username=key, request=request)
        return LoginOutcome(error="unavailable")
    except NoAccess as refused:
        audit_record(action="login.no_access", actor=refused.user, request=request)
        return LoginOutcome(error="no_access")
    if user is None:
        locked = _failure_record(key, now)
        audit_record(action="login.failed", actor_username=key, request=request)
        if locked:
            audit_record(
                action="login.locked",
                actor_username=key,
                request=request,
                detail={"seconds": settings.LOGIN_LOCKOUT_SECONDS},
            )
        return LoginOutcome(error="invalid")
    LoginThrottle.objects.filter(username=key).delete()
    login(request, user, backend=backend)
    request.session[SESSION_LOGIN_AT] = now.timestamp()
    request.session[SESSION_LAST_SEEN] = now.timestamp()
    if not user.is_break_glass:
        User.objects.filter(pk=user.pk).update(groups_checked_at=now)
        _directory_copy_refresh(user.username)
    audit_record(
        action="login.break_glass" if user.is_break_glass else "login.succeeded",
        actor=user,
        request=request,
    )
    return LoginOutcome(user=user)


def _directory_copy_refresh(uid: str) -> None:
    """Refresh the user's row of the directory copy (the profile page reads it) after a login;
    a failure here never fails the login: the periodic sync catches up."""
    try:
        directory_user_refresh(uid=uid)
    except IntegrationError as exc:
        logger.warning("directory copy of %s not refreshed at login: %s", uid, exc)


def _failure_record(key: str, now) -> bool:
    """Count one failure for ``key``; lock it when the count reaches the limit. True if locked."""
    window = timedelta(seconds=settings.LOGIN_LOCKOUT_WINDOW_SECONDS)
    with transaction.atomic():
        throttle, _ = LoginThrottle.objects.select_for_update().get_or_create(username=key)
        if throttle.first_failure_at is None or now - throttle.first_failure_at > window:
            throttle.failures = 0
            throttle.first_failure_at = now
        throttle.failures += 1
        locked = throttle.failures >= settings.LOGIN_LOCKOUT_FAILURES
        if locked:
            # The next failure after the cool-off starts a fresh count.
            throttle.locked_until = now + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
            throttle.failures = 0
            throttle.first_failure_at = None
        throttle.save()
    return locked


def logout_perform(*, request: HttpRequest, reason: str = "logout") -> None:
    """End the session; ``reason`` is what the audit log records (logout, idle, access_revoked)."""
    user = request.user if request.user.is_authenticated else None
    logout(request)
    if user is not None:
        audit_record(action=f"session.{reason}", actor=user, request=request)


def user_membership_refresh(*, user: User) -> User:
    """Re-read ``user``'s groups from the directory and store the role flags.

    A user no longer in the directory loses both roles. Raises ``DirectoryUnavailable`` when the
    directory cannot be asked: the caller decides (the middleware keeps the session and asks again
    at the next request).
    """
    refreshed = ClusterLDAPBackend().populate_user(user.username)
    now = clock.now()
    # A disabled account has no role, even if someone put it back in a group by hand: an admin
    # enables it on the Users page (docs/accounts.md).
    if refreshed is None or DisabledAccount.objects.filter(uid__iexact=user.username).exists():
        User.objects.filter(pk=user.pk).update(
            is_cluster_admin=False, is_collaborator=False, groups_checked_at=now
        )
    else:
        User.objects.filter(pk=user.pk).update(groups_checked_at=now)
    user.refresh_from_db()
    return user


def user_from_directory(*, uid: str) -> User:
    """The user ``uid`` as the directory has them now (groups re-read), for the command line's
    ``--by``. A user who never logged in is created from LDAP; a local break-glass superuser is
    taken as is. Raises PermissionDenied when the directory does not know ``uid``, and
    DirectoryUnavailable when it cannot be asked."""
    local = local_user(uid)
    if local is not None:
        return local
    user = ClusterLDAPBackend().populate_user(uid)
    if user is None:
        raise PermissionDenied(f"{uid} is not a user in the cluster's directory")
    User.objects.filter(pk=user.pk).update(groups_checked_at=clock.now())
    user.refresh_from_db()
    return user
