from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.base_session import AbstractBaseSession
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


# --- Accounts in the directory: the mirror, disabled accounts, password resets, throttles ---------
class AccountState(models.TextChoices):
    """A directory user's state on the Users page and in ``users --json``."""

    ACTIVE = "active", "Active"
    DISABLED = "disabled", "Disabled"
    NO_ACCESS = "no_access", "No access"


class DirectoryUser(models.Model):
    """The database's copy of one person entry of the directory (``ou=people``): what the Users
    page and the profile page show, so no page waits on LDAP. Rewritten by the directory sync
    (beat entry ``directory-sync``), after each of Clusterweb's own writes to the entry, and at
    each dashboard login. ``synced_at`` says as of when."""

    uid = models.CharField(max_length=150, unique=True)
    uid_number = models.PositiveIntegerField(null=True, blank=True)
    full_name = models.CharField(max_length=255, blank=True)
    mail = models.CharField(max_length=254, blank=True, db_index=True)
    # Supplementary groups: the posixGroups whose memberUid names this user.
    groups = models.JSONField(default=list, blank=True)
    ssh_keys = models.JSONField(default=list, blank=True)
    # The ppolicy lock (pwdAccountLockedTime present): no bind, and the bastion gives no keys.
    locked = models.BooleanField(default=False)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["uid"]

    def __str__(self) -> str:
        return self.uid

    @property
    def state(self) -> str:
        if self.locked:
            return AccountState.DISABLED
        if {settings.LDAP_USER_GROUP, settings.LDAP_ADMIN_GROUP} & set(self.groups):
            return AccountState.ACTIVE
        return AccountState.NO_ACCESS

    @property
    def is_admin(self) -> bool:
        return settings.LDAP_ADMIN_GROUP in self.groups

    @property
    def fingerprints(self) -> list[str]:
        from clusterweb.accounts.ssh_keys import fingerprint

        return [fingerprint(key) for key in self.ssh_keys]

    @property
    def keys(self) -> list[dict[str, str]]:
        """Each stored key with its type, comment and fingerprint (the profile page's list)."""
        from clusterweb.accounts.ssh_keys import fingerprint

        rows = []
        for line in self.ssh_keys:
            parts = line.split(None, 2)
            rows.append(
                {
                    "type": parts[0] if parts else "?",
                    "comment": parts[2] if len(parts) > 2 else "",
                    "fingerprint": fingerprint(line),
                }
            )
        return rows


class DisabledAccount(models.Model):
    """An account an admin disabled, and the role groups to give back when it is enabled again.

    Kept in the database rather than in an LDAP attribute: no schema of the directory has a
    place for it, and the lock itself (``pwdAccountLockedTime``) lives in the directory, so a lost
    row costs only the memory of the groups (enable then restores ``users`` alone)."""

    uid = models.CharField(max_length=150, unique=True)
    groups = models.JSONField(default=list, blank=True)
    disabled_at = models.DateTimeField()
    disabled_by_username = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"{self.uid} disabled by {self.disabled_by_username or '?'}"


class PasswordReset(models.Model):
    """One password reset link: single use, expiring, served on the signup site. Only the
    SHA-256 of the token is stored. A newer link for the same user withdraws the older ones."""

    uid = models.CharField(max_length=150, db_index=True)
    email = models.CharField(max_length=254, blank=True)
    full_name = models.CharField(max_length=255, blank=True)  # for the similarity check
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    created_by_username = models.CharField(max_length=150, blank=True)
    self_service = models.BooleanField(default=False)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"password reset {self.pk} for {self.uid}"

    def problem(self, now: Any) -> str | None:
        """Why this link sets no password (``used``, ``withdrawn``, ``expired``), or None."""
        if self.used_at is not None:
            return "used"
        if self.withdrawn_at is not None:
            return "withdrawn"
        if now >= self.expires_at:
            return "expired"
        return None

    @property
    def state(self) -> str:
        from clusterweb import clock

        return self.problem(clock.now()) or "open"


class Throttle(models.Model):
    """Attempts at one guarded action for one key: signup submissions per invitation, password
    reset submissions per link and per user, self-service reset requests per address, password
    changes per user. Keyed on what the attempt is about, never the client address (every client
    comes through the bastion). A fixed window: ``attempts`` counts from ``window_started_at``."""

    scope = models.CharField(max_length=40)
    key = models.CharField(max_length=255)
    attempts = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="accounts_throttle_scope_key")
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} {self.attempts}"


class SignupSiteSession(AbstractBaseSession):
    """The signup site's sessions (an invitation or a reset link held between pages), in a
    table of their own: a dashboard session key sent to the signup site finds nothing there, and
    a signup site's key finds nothing on the dashboard (clusterweb.accounts.site_sessions)."""

    class Meta:
        db_table = "accounts_signup_site_session"
        verbose_name = "signup site session"
