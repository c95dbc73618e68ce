"""Provisioning an approved signup: the LDAP account (a uidNumber claimed in the directory, the
person entry, the users group), the welcome mail, and the signup marked active. Run by the
``signup_provision`` task under a lease; every step is safe to run again after a crash."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings

from clusterweb import clock
from clusterweb.accounts.models import (
    Signup,
    SignupState,
)
from clusterweb.accounts.signup.services import signup_tasks
from clusterweb.accounts.tunnels import connect_instructions
from clusterweb.audit.services import audit_record
from clusterweb.errors import PermanentError, TransientError
from clusterweb.failpoints import failpoint
from clusterweb.integrations import ldap as ldap_directory
from clusterweb.integrations import mail
from clusterweb.tasking import enqueue_on_commit

# A worker holds a signup's provisioning lease this long; the LDAP steps take well under a second,
# so a lease that lapses means the worker died, and a retry or the sweeper may take over.
PROVISION_LEASE_SECONDS = 120


# Celery retries of an approval waiting for the directory: SIGNUP_RETRY_SECONDS doubling, capped
# at 30 times it (5 minutes by default, far below Redis's one-hour visibility timeout). After the
# last one the sweeper carries on every SIGNUP_SWEEP_SECONDS, so an approval is never dropped.
PROVISION_MAX_RETRIES = 10


_RETRY_CAP_FACTOR = 30


def signup_provision_claim(*, signup_id: int) -> Signup | None:
    """Claim ``signup_id``'s provisioning lease (one conditional UPDATE); None when another worker
    holds it or the signup is not in ``provisioning``."""
    now = clock.now()
    if not Signup.objects.claim_for_provisioning(
        signup_id, now=now, lease_seconds=PROVISION_LEASE_SECONDS
    ):
        return None
    return Signup.objects.get(pk=signup_id)


def signup_retry_delay(retries: int) -> int:
    base = settings.SIGNUP_RETRY_SECONDS
    return min(base * 2**retries, base * _RETRY_CAP_FACTOR)


def signup_provision_attempt(*, signup: Signup, retries: int) -> int | None:
    """Run the provisioning steps for a claimed ``signup``. Returns None when done (or refused for
    good), or the seconds to wait before the next try when the directory or mail failed for now.
    A permanent directory error ends the approval as failed (``_provisioning_fail``). Any other
    error is recorded on the row, the lease is released (the sweeper retries it) and
    the error is raised."""
    now = clock.now()
    try:
        signup_provision(signup=signup)
    except TransientError as exc:
        delay = signup_retry_delay(retries)
        last = retries >= PROVISION_MAX_RETRIES
        wait = settings.SIGNUP_SWEEP_SECONDS if last else delay + settings.SIGNUP_SWEEP_SECONDS
        signup.lease_release(
            error=f"waiting for {exc.system or 'a service'}: {exc}",
            next_attempt_at=now + timedelta(seconds=wait),
            now=now,
        )
        signup.log_step(f"attempt {signup.attempts} failed ({exc}); trying again", now=now)
        audit_record(
            action="signup.provisioning_retry",
            target=signup.username,
            detail={"signup": signup.pk, "attempt": signup.attempts, "error": str(exc)[:200]},
            source="task",
        )
        return None if last else delay
    except PermanentError as exc:
        # The directory refused the request itself (an address it cannot store, a value it
        # finds invalid): trying again cannot help, so the approval ends here, as failed.
        _provisioning_fail(signup, exc, now)
        return None
    except Exception as exc:
        signup.lease_release(
            error=f"{type(exc).__name__}: {exc}",
            next_attempt_at=now + timedelta(seconds=settings.SIGNUP_SWEEP_SECONDS),
            now=now,
        )
        raise
    return None


def _provisioning_fail(signup: Signup, exc: PermanentError, now: Any) -> None:
    """End ``signup``'s approval for good after a permanent directory error: rejected (the
    states of CONVENTIONS.md have no "failed"), with the directory's reason as its last error
    (the admins' pages show it) and a reason for the applicant, who is told."""
    error = str(exc)
    reason = (
        "The cluster's directory refused to create your account "
        f"({exc}). Ask the cluster's administrators for a new invitation."
    )
    if not Signup.objects.filter(pk=signup.pk, state=SignupState.PROVISIONING).update(
        state=SignupState.REJECTED,
        reason=reason[:1000],
        password_hash="",
        claimed_until=None,
        next_attempt_at=None,
        last_error=error[:1000],
        updated_at=now,
    ):
        return
    signup.log_step(f"attempt {signup.attempts} failed for good ({exc})", now=now)
    audit_record(
        action="signup.provisioning_failed",
        target=signup.username,
        detail={"signup": signup.pk, "attempt": signup.attempts, "error": str(exc)[:200]},
        source="task",
    )
    enqueue_on_commit(signup_tasks().signup_rejection_notify, signup.pk)


# uid numbers no account may have: nobody (65534, the NFS and user-namespace overflow id), 65535
# ((uid_t)-1 of 16-bit uids, "no change" to setreuid), and their 32-bit twins (uid_t)-2 and -1.
# (systemd, "Users, Groups, UIDs and GIDs on systemd Systems"; Linux's overflowuid.)
_UNUSABLE_UID_NUMBERS = {65534, 65535, 4294967294, 4294967295}


def uid_number_usable(number: int) -> bool:
    return number not in _UNUSABLE_UID_NUMBERS and 0 < number < 4294967294


def _uid_number_allocate(signup: Signup, dn: str, tag: str) -> int:
    """A uidNumber above the directory's highest, claimed in the directory itself (see
    ``ldap.uid_number_claim``): two approvals running at once never get the same number.
    Numbers no account may have (65534, 65535, ...) are skipped."""
    earlier = ldap_directory.uid_number_claimed_by(dn, tag)
    if earlier is not None:
        return earlier
    candidate = max(ldap_directory.uid_number_highest() + 1, settings.SIGNUP_UID_NUMBER_MIN)
    failpoint("signup.before_uid_claim")
    for number in range(candidate, candidate + 100):
        if not uid_number_usable(number):
            continue
        if ldap_directory.uid_number_claim(number, dn, tag):
            return number
    raise TransientError("no free uidNumber found in 100 tries", system="ldap")


def _conflict_reject(signup: Signup, now: Any) -> None:
    reason = (
        f"The user name {signup.username} was taken in the cluster's directory before your "
        "account could be created. Ask for a new invitation and choose another name."
    )
    Signup.objects.filter(pk=signup.pk, state=SignupState.PROVISIONING).update(
        state=SignupState.REJECTED,
        reason=reason,
        password_hash="",
        claimed_until=None,
        last_error="username taken in the directory",
        updated_at=now,
    )
    audit_record(
        action="signup.conflict",
        target=signup.username,
        detail={"signup": signup.pk},
        source="task",
    )
    enqueue_on_commit(signup_tasks().signup_rejection_notify, signup.pk)


def signup_provision(*, signup: Signup) -> None:
    """Create ``signup``'s account: claim a uidNumber, add the person entry (inetOrgPerson,
    posixAccount, shadowAccount, ldapPublicKey, with the password hash and SSH keys), add it to
    the users group, send the welcome mail, mark the signup active. Each step first looks for
    what an interrupted attempt left (the claim for this signup, an entry with our uidNumber, a
    membership), so running it again after a crash anywhere ends with exactly one account."""
    dn = ldap_directory.person_dn(signup.username)
    tag = f"clusterweb signup {signup.pk}"
    if signup.uid_number is None:
        number = _uid_number_allocate(signup, dn, tag)
        failpoint("signup.after_uid_claim")
        Signup.objects.filter(pk=signup.pk).update(uid_number=number)
        signup.uid_number = number
        signup.log_step(f"uidNumber {number} claimed", now=clock.now())
        failpoint("signup.after_uid_saved")

    existing = ldap_directory.person_uid_number(signup.username)
    if existing is None:
        gid_number = ldap_directory.group_gid_number(settings.LDAP_USER_GROUP)
        added = ldap_directory.person_add(signup.username, _person_attributes(signup, gid_number))
        if added:
            signup.log_step(f"directory entry {dn} added", now=clock.now())
            audit_record(
                action="signup.entry_added",
                target=signup.username,
                detail={"signup": signup.pk, "uid_number": signup.uid_number},
                source="task",
            )
        else:  # someone else's entry appeared between the look and the add
            existing = ldap_directory.person_uid_number(signup.username)
    if existing is not None and existing != signup.uid_number:
        _conflict_reject(signup, clock.now())
        return
    failpoint("signup.after_entry_add")

    if ldap_directory.group_member_add(settings.LDAP_USER_GROUP, signup.username):
        signup.log_step(f"added to the {settings.LDAP_USER_GROUP} group", now=clock.now())
    failpoint("signup.after_group_add")

    if signup.welcomed_at is None:
        mail.signup_welcome_send(
            to=signup.email, signup=signup, connect=connect_instructions(signup.username)
        )
        failpoint("signup.after_welcome_mail")
        now = clock.now()
        Signup.objects.filter(pk=signup.pk).update(welcomed_at=now)
        signup.log_step("welcome email sent", now=now)

    now = clock.now()
    if Signup.objects.filter(pk=signup.pk, state=SignupState.PROVISIONING).update(
        state=SignupState.ACTIVE,
        activated_at=now,
        password_hash="",
        claimed_until=None,
        next_attempt_at=None,
        last_error="",
        updated_at=now,
    ):
        signup.log_step("active", now=now)
        audit_record(
            action="signup.activated",
            target=signup.username,
            detail={"signup": signup.pk, "uid_number": signup.uid_number},
            source="task",
        )
    failpoint("signup.after_activate")


def _person_attributes(signup: Signup, gid_number: int) -> dict[str, list[str]]:
    days_since_epoch = int(clock.now().timestamp() // 86400)
    return {
        "objectClass": ["top", "inetOrgPerson", "posixAccount", "shadowAccount", "ldapPublicKey"],
        "uid": [signup.username],
        "cn": [signup.full_name or signup.username],
        "sn": [signup.surname],
        "givenName": [signup.given_name] if signup.given_name else [],
        "mail": [signup.email],
        "uidNumber": [str(signup.uid_number)],
        "gidNumber": [str(gid_number)],
        "homeDirectory": [f"{settings.SIGNUP_HOME_BASE.rstrip('/')}/{signup.username}"],
        "loginShell": [settings.SIGNUP_LOGIN_SHELL],
        "userPassword": [signup.password_hash] if signup.password_hash else [],
        "sshPublicKey": list(signup.ssh_keys),
        "shadowLastChange": [str(days_since_epoch)],
        "description": [f"Signed up through Clusterweb (signup {signup.pk})"],
    }
