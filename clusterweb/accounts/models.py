from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    COLLABORATOR = "collaborator", "Collaborator"


class User(AbstractUser):
    """A person who may log in: mirrored from the cluster's LDAP directory at each login and
    re-check, or a local break-glass superuser created with ``createsuperuser``.

    The two flags are set by django-auth-ldap from posixGroup membership
    (``AUTH_LDAP_USER_FLAGS_BY_GROUP``); nobody edits them by hand.
    """

    is_cluster_admin = models.BooleanField(default=False)
    is_collaborator = models.BooleanField(default=False)
    groups_checked_at = models.DateTimeField(null=True, blank=True)

    @property
    def role(self) -> str | None:
        if self.is_cluster_admin or (self.is_superuser and self.has_usable_password()):
            return Role.ADMIN
        if self.is_collaborator:
            return Role.COLLABORATOR
        return None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_break_glass(self) -> bool:
        return self.is_superuser and self.has_usable_password()


class LoginThrottle(models.Model):
    """Failed logins for one username. Keyed on the username, not the address: every client
    arrives through the bastion, so all share one address."""

    username = models.CharField(max_length=150, unique=True)
    failures = models.PositiveIntegerField(default=0)
    first_failure_at = models.DateTimeField(null=True)
    locked_until = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.username}: {self.failures} failures"
