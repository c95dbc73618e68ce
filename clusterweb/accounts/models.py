from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
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


class SignupState(models.TextChoices):
    """CONVENTIONS.md's signup states. A row is born ``invited`` by an admin's invitation."""

    INVITED = "invited", "Invited"
    SUBMITTED = "submitted", "Submitted"
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    DISABLED = "disabled", "Disabled"


# A username is held from the moment a signup is submitted until it is rejected.
USERNAME_HOLDING_STATES = (
    SignupState.SUBMITTED,
    SignupState.PENDING_APPROVAL,
    SignupState.PROVISIONING,
    SignupState.ACTIVE,
)
# An admin decides these.
UNDECIDED_STATES = (SignupState.SUBMITTED, SignupState.PENDING_APPROVAL)


class SignupQuerySet(models.QuerySet):
    def undecided(self) -> SignupQuerySet:
        return self.filter(state__in=UNDECIDED_STATES)

    def claim_for_provisioning(self, pk: int, *, now: Any, lease_seconds: int) -> int:
        """Take the provisioning lease of signup ``pk`` with one conditional UPDATE: only a row in
        ``provisioning`` whose lease is free or lapsed is claimed. Returns the rows claimed (0/1).
        A worker that dies keeps the lease until it lapses; then a retry or the sweeper may go."""
        return (
            self.filter(pk=pk, state=SignupState.PROVISIONING)
            .filter(models.Q(claimed_until__isnull=True) | models.Q(claimed_until__lt=now))
            .update(
                claimed_until=now + timedelta(seconds=lease_seconds),
                attempts=models.F("attempts") + 1,
                updated_at=now,
            )
        )


class Signup(models.Model):
    """One person's way in: the invitation, the signup form's answers, the admin's decision and
    the provisioning of the LDAP account, as one row (CONVENTIONS.md's signup states).

    The invitation token is never stored, only its SHA-256. The password is never stored either:
    ``password_hash`` holds the LDAP hash the directory will verify ({ARGON2} or {SSHA512}), and
    is emptied once the account exists or the signup is refused.
    """

    state = models.CharField(
        max_length=20, choices=SignupState.choices, default=SignupState.INVITED, db_index=True
    )
    email = models.EmailField()
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    invited_by_username = models.CharField(max_length=150, blank=True)
    invited_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    send_count = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by_username = models.CharField(max_length=150, blank=True)

    # The signup form's answers.
    username = models.CharField(max_length=32, blank=True)
    full_name = models.CharField(max_length=100, blank=True)
    ssh_keys = models.JSONField(default=list, blank=True)
    password_hash = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    admins_notified_at = models.DateTimeField(null=True, blank=True)

    # The decision.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_username = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    auto_approved = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    applicant_notified_at = models.DateTimeField(null=True, blank=True)

    # Provisioning: the lease a worker holds, retries, the step log the page shows.
    uid_number = models.PositiveIntegerField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    log = models.JSONField(default=list, blank=True)
    welcomed_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    objects = SignupQuerySet.as_manager()

    class Meta:
        ordering = ["-invited_at", "-id"]
        constraints = [
            # The database's word on "a username is taken by a pending signup": two invitations
            # submitting one name at once end with one signup and one form error.
            models.UniqueConstraint(
                fields=["username"],
                condition=models.Q(state__in=[s.value for s in USERNAME_HOLDING_STATES]),
                name="accounts_signup_username_held",
            )
        ]

    def __str__(self) -> str:
        return f"signup {self.pk} {self.username or self.email} ({self.state})"

    # --- reads -----------------------------------------------------------------------------------
    def is_expired(self, now: Any) -> bool:
        return self.state == SignupState.EXPIRED or (
            self.state == SignupState.INVITED and now >= self.expires_at
        )

    @property
    def current_state(self) -> str:
        """The state as of now: an invitation past its time is expired before the sweeper says
        so."""
        from clusterweb import clock

        return SignupState.EXPIRED if self.is_expired(clock.now()) else self.state

    @property
    def is_undecided(self) -> bool:
        return self.state in UNDECIDED_STATES

    @property
    def is_waiting(self) -> bool:
        """Provisioning that failed at least once and waits for a retry (the page says so)."""
        return self.state == SignupState.PROVISIONING and bool(self.last_error)

    @property
    def given_name(self) -> str:
        parts = self.full_name.split()
        return " ".join(parts[:-1]) if len(parts) > 1 else self.full_name

    @property
    def surname(self) -> str:
        parts = self.full_name.split()
        return parts[-1] if parts else self.username

    @property
    def fingerprints(self) -> list[str]:
        from clusterweb.accounts.ssh_keys import fingerprint

        return [fingerprint(key) for key in self.ssh_keys]

    # --- small state steps -----------------------------------------------------------------------
    def log_step(self, message: str, *, now: Any) -> None:
        """Append a line to the step log the Users page shows."""
        self.log = [*self.log, {"at": now.isoformat(), "message": message}][-50:]
        self.updated_at = now
        self.save(update_fields=["log", "updated_at"])

    def lease_release(self, *, error: str, next_attempt_at: Any, now: Any) -> None:
        """Give up the provisioning lease after a failed attempt, recording why and when to try
        again. Only a row still provisioning is touched (a failure after activation is not)."""
        Signup.objects.filter(pk=self.pk, state=SignupState.PROVISIONING).update(
            claimed_until=None,
            last_error=error[:1000],
            next_attempt_at=next_attempt_at,
            updated_at=now,
        )
        self.refresh_from_db()
