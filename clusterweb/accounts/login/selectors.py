"""Who a login name is: a local (break-glass) account, or a directory name."""

from __future__ import annotations

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db.models import QuerySet

from clusterweb.accounts.models import User


def _local_users() -> QuerySet[User]:
    """Rows with a usable local password: made by ``createsuperuser``, never by an LDAP login
    (django-auth-ldap gives those an unusable one)."""
    return User.objects.exclude(password="").exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX)


def local_user(name: str) -> User | None:
    """The break-glass superuser that ``name`` names (any case, spaces stripped), or None."""
    for user in _local_users().filter(username__iexact=name.strip(), is_superuser=True):
        if user.is_break_glass:
            return user
    return None


def username_held_locally(name: str) -> bool:
    """Whether a local account holds ``name`` in any case: nobody may sign up with it (an LDAP
    login never lands in a local row, so the newcomer could never log in anyway)."""
    return _local_users().filter(username__iexact=name.strip()).exists()
