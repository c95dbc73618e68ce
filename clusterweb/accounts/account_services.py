"""Writes on directory accounts once they exist: the database mirror of the directory, a user's
own password and SSH keys (the profile page), password reset links, and the admins' disable,
enable, promote and demote (the Users page and ``manage.py users``). docs/accounts.md has the
rules; every action is audited.

Each write goes to the directory at once, in the request: the person asking (a user changing a
key, an admin taking access away) must see whether it took effect, and each step is idempotent,
so a retry after a failure finishes the job.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from clusterweb import clock
from clusterweb.accounts import ssh_keys as sshkeys
from clusterweb.accounts import throttle
from clusterweb.accounts.models import (
    DirectoryUser,
    DisabledAccount,
    PasswordReset,
    Signup,
    SignupState,
    User,
)
from clusterweb.accounts.services import token_hash
from clusterweb.audit.services import audit_record
from clusterweb.errors import TransientError
from clusterweb.integrations import ldap as ldap_directory
from clusterweb.integrations import mail
from clusterweb.permissions import is_admin
from clusterweb.tasking import enqueue_on_commit

logger = logging.getLogger(__name__)


class AccountError(Exception):
    """Bad input to an account action; ``field`` names the field (CLI: exit 2)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AccountStateError(Exception):
    """The account is not in a state that allows the action, or a rule forbids it (the last
    admin, one's own account). CLI: exit 1."""


class ResetRefused(Exception):
    """A reset link that sets no password: ``problem`` is forged, expired, used, withdrawn or
    disabled."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _role_groups() -> tuple[str, str]:
    return (settings.LDAP_USER_GROUP, settings.LDAP_ADMIN_GROUP)


def _require_admin(actor: Any, action: str) -> None:
    if not is_admin(actor):
        raise PermissionDenied(f"Only admins may {action}.")


def _source(request: HttpRequest | None, source: str) -> str:
    return source or ("web" if request is not None else "cli")


# --- The mirror: DirectoryUser rows ---------------------------------------------------------------
def _mirror_fields(person: ldap_directory.Person, now: Any) -> dict[str, Any]:
    return {
        "uid_number": person.uid_number,
        "full_name": person.full_name[:255],
        "mail": person.mail[:254],
        "groups": list(person.groups),
        "ssh_keys": list(person.ssh_keys),
        "locked": person.locked,
        "synced_at": now,
    }


def _mirror_write(person: ldap_directory.Person) -> DirectoryUser:
    row, _ = DirectoryUser.objects.update_or_create(
        uid=person.uid, defaults=_mirror_fields(person, clock.now())
    )
    return row


def directory_users_sync() -> dict[str, int]:
    """Copy every person of the directory, with groups, keys and lock, into ``DirectoryUser``;
    rows of people gone from the directory are deleted. Raises DirectoryUnavailable."""
    people = ldap_directory.people_all()
    now = clock.now()
    existing = {row.uid: row for row in DirectoryUser.objects.all()}
    counts = {"people": len(people), "added": 0, "changed": 0, "removed": 0}
    for person in people:
        fields = _mirror_fields(person, now)
        row = existing.get(person.uid)
        if row is None:
            DirectoryUser.objects.create(uid=person.uid, **fields)
            counts["added"] += 1
        elif any(getattr(row, k) != v for k, v in fields.items() if k != "synced_at"):
            DirectoryUser.objects.filter(pk=row.pk).update(**fields)
            counts["changed"] += 1
    seen = {person.uid for person in people}
    DirectoryUser.objects.filter(uid__in=seen).update(synced_at=now)
    gone = [uid for uid in existing if uid not in seen]
    if gone:
        counts["removed"] = DirectoryUser.objects.filter(uid__in=gone).delete()[0]
    return counts


def directory_user_refresh(*, uid: str) -> DirectoryUser | None:
    """Re-read one person into the mirror (None, and no row, when the directory has no such
    person). Raises DirectoryUnavailable."""
    person = ldap_directory.person_read(uid)
    if person is None:
        DirectoryUser.objects.filter(uid=uid).delete()
        return None
    return _mirror_write(person)


def _person_or_error(uid: str) -> ldap_directory.Person:
    if not uid or len(uid) > 150:
        raise AccountError("uid", "give the user name of a person in the directory")
    person = ldap_directory.person_read(uid)
    if person is None:
        raise AccountError("uid", f"there is no user {uid!r} in the directory")
    return person


# --- Sessions ------------------------------------------------------------------------------------
def sessions_end(*, user_id: int, keep: str | None = None) -> int:
    """End every dashboard session of user ``user_id`` (except ``keep``, the caller's own) by
    deleting it from the session store. Sessions hold the user's id only inside their encoded
    data, so the live ones are read; on this platform they number in the tens."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    store = import_module(settings.SESSION_ENGINE).SessionStore
    # Session expiry is Django's own clock (the session store sets and checks it), not ours.
    live = Session.objects.filter(expire_date__gt=timezone.now()).iterator()
    ended = [
        s.session_key
        for s in live
        if s.session_key != keep and s.get_decoded().get("_auth_user_id") == str(user_id)
    ]
    for key in ended:
        store(session_key=key).delete()
    return len(ended)


# --- The profile: one's own password and SSH keys -------------------------------------------------
def _own_person(user: User) -> ldap_directory.Person:
    if user.is_break_glass:
        raise AccountStateError(
            "A local break-glass superuser has no directory entry: nothing to change here."
        )
    person = ldap_directory.person_read(user.username)
    if person is None:
        raise AccountStateError("Your account is not in the cluster's directory.")
    return person


def _lock_user_row(user: User) -> None:
    """Serialise a user's own key changes (one row lock on the user), so two tabs removing two
    keys at once cannot leave none."""
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def password_change(
    *, user: User, old_password: str, new_password: str, request: HttpRequest | None = None
) -> None:
    """Change ``user``'s directory password: the old one is proven by a bind as the user, the
    new one written with the password-modify operation (the directory hashes it and applies its
    policy). The user's other dashboard sessions end. Raises AccountError (``old_password`` when
    the directory refused it, ``new_password`` when its policy refused the new one)."""
    person = _own_person(user)
    try:
        ldap_directory.password_change(person.dn, old_password, new_password)
    except ldap_directory.WrongPassword:
        audit_record(action="account.password_change_refused", actor=user, request=request)
        raise AccountError("old_password", "This is not your current password.") from None
    except ldap_directory.PasswordRejected as exc:
        raise AccountError("new_password", f"{str(exc).capitalize()}.") from None
    keep = request.session.session_key if request is not None else None
    ended = sessions_end(user_id=user.pk, keep=keep)
    throttle.forget(throttle.PASSWORD_CHANGE, user.username)
    audit_record(
        action="account.password_changed",
        actor=user,
        target=user.username,
        detail={"other_sessions_ended": ended},
        request=request,
    )


def _blob(line: str) -> bytes | None:
    try:
        return base64.b64decode(line.split()[1], validate=True)
    except (IndexError, ValueError, binascii.Error):
        return None


def ssh_keys_add(
    *, user: User, keys: list[sshkeys.PublicKey], request: HttpRequest | None = None
) -> DirectoryUser:
    """Add ``keys`` (parsed and checked by ``ssh_keys.parse_keys``) to the user's entry. A key
    already there is refused, and so is going over ``ssh_keys.MAX_KEYS``."""
    with transaction.atomic():
        _lock_user_row(user)
        person = _own_person(user)
        have = {_blob(line) for line in person.ssh_keys}
        new = [key for key in keys if key.blob not in have]
        if not new:
            raise AccountError("ssh_keys", "This key is on your account already.")
        if len(person.ssh_keys) + len(new) > sshkeys.MAX_KEYS:
            raise AccountError(
                "ssh_keys",
                f"An account holds at most {sshkeys.MAX_KEYS} keys: remove one you no longer "
                "use first.",
            )
        for key in new:
            ldap_directory.ssh_key_add(person, key.line)
    audit_record(
        action="account.ssh_key_added",
        actor=user,
        target=user.username,
        detail={"fingerprints": [key.fingerprint for key in new]},
        request=request,
    )
    return directory_user_refresh(uid=user.username)


def ssh_key_remove(
    *, user: User, fingerprint: str, request: HttpRequest | None = None
) -> DirectoryUser:
    """Remove the key with ``fingerprint`` from the user's entry; the last key stays (the
    bastion would let nobody in)."""
    with transaction.atomic():
        _lock_user_row(user)
        person = _own_person(user)
        lines = [line for line in person.ssh_keys if sshkeys.fingerprint(line) == fingerprint]
        if not lines:
            raise AccountError("fingerprint", "Your account has no key with this fingerprint.")
        if len(person.ssh_keys) - len(lines) < 1:
            raise AccountError(
                "fingerprint",
                "This is your only SSH key: without one you cannot reach the cluster. Add the new "
                "key first, then remove this one.",
            )
        for line in lines:
            ldap_directory.ssh_key_remove(person, line)
    audit_record(
        action="account.ssh_key_removed",
        actor=user,
        target=user.username,
        detail={"fingerprint": fingerprint},
        request=request,
    )
    return directory_user_refresh(uid=user.username)


# --- Password reset links -------------------------------------------------------------------------
@dataclass(frozen=True)
class ResetOutcome:
    reset: PasswordReset
    link: str
    sent: bool
    error: str = ""


def reset_link(token: str) -> str:
    """A reset link on the signup site (reachable through the bastion's ``join`` tunnel). As
    with invitations, the token travels in the query string, which the access log never records,
    and the signup site moves it into its session at once."""
    path = reverse("password_reset", urlconf="clusterweb.urls_signup")
    return f"{settings.SIGNUP_BASE_URL.rstrip('/')}{path}?{urlencode({'token': token})}"


def _reset_create(
    *, uid: str, email: str, full_name: str, created_by: str, self_service: bool
) -> tuple[PasswordReset, str]:
    """A fresh link for ``uid``; the user's older open links are withdrawn."""
    now = clock.now()
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        PasswordReset.objects.filter(
            uid=uid, used_at__isnull=True, withdrawn_at__isnull=True
        ).update(withdrawn_at=now)
        reset = PasswordReset.objects.create(
            uid=uid,
            email=email,
            full_name=full_name[:255],
            token_hash=token_hash(token),
            created_at=now,
            created_by_username=created_by,
            self_service=self_service,
            expires_at=now + timedelta(hours=settings.PASSWORD_RESET_HOURS),
        )
    return reset, token


def _reset_mail(reset: PasswordReset, token: str) -> tuple[bool, str]:
    from clusterweb.accounts.services import signup_tunnel_command

    if not reset.email:
        return False, "the directory has no mail address for this user"
    try:
        mail.password_reset_send(
            to=reset.email,
            uid=reset.uid,
            link=reset_link(token),
            tunnel_command=signup_tunnel_command(),
            expires_at=reset.expires_at,
            self_service=reset.self_service,
        )
    except TransientError as exc:
        return False, str(exc)
    PasswordReset.objects.filter(pk=reset.pk).update(sent_at=clock.now())
    reset.refresh_from_db()
    return True, ""


def password_reset_issue(
    *, uid: str, actor: Any, request: HttpRequest | None = None, source: str = ""
) -> ResetOutcome:
    """An admin sends ``uid`` a reset link (by email to the directory's address; the command
    line also prints it, for when mail is broken). Not for a disabled account."""
    _require_admin(actor, "send password reset links")
    person = _person_or_error(uid)
    if person.locked:
        raise AccountStateError(f"{uid} is disabled: enable the account before resetting it.")
    reset, token = _reset_create(
        uid=uid,
        email=person.mail,
        full_name=person.full_name,
        created_by=actor.username,
        self_service=False,
    )
    sent, error = _reset_mail(reset, token)
    audit_record(
        action="account.reset_link_created",
        actor=actor,
        target=uid,
        detail={"reset": reset.pk, "mail_sent": sent, "expires_at": reset.expires_at.isoformat()},
        request=request,
        source=_source(request, source),
    )
    return ResetOutcome(reset, reset_link(token), sent, error)


def password_reset_request(*, email: str, request: HttpRequest | None = None) -> None:
    """Someone asks for a reset link by email address (PASSWORD_RESET_SELF_SERVICE). Nothing
    here looks the address up: a task does, after the response is sent, so neither the answer
    nor its timing says whether the address is known. Limited per address."""
    address = email.strip().lower()
    verdict = throttle.attempt((throttle.RESET_REQUEST_ADDRESS, address))
    audit_record(
        action="account.reset_requested",
        target=address,
        detail={"rate_limited": not verdict.allowed},
        request=request,
    )
    if verdict.allowed:
        from clusterweb.accounts import tasks

        enqueue_on_commit(tasks.password_reset_self_service, address)


def password_reset_self_service(*, email: str) -> int:
    """The task behind a self-service request: a link to each active account whose directory
    address is ``email`` (from the mirror; the address never enters an LDAP filter), at most
    ACCOUNTS_ATTEMPT_LIMIT per user and window. Returns the links sent."""
    try:
        validate_email(email)
    except ValidationError:
        return 0  # (the form refuses these; PostgreSQL refuses NUL in any text)
    sent = 0
    for row in DirectoryUser.objects.filter(mail__iexact=email, locked=False).order_by("uid"):
        if row.state != "active":
            continue
        if not throttle.attempt((throttle.RESET_REQUEST_USER, row.uid)).allowed:
            continue
        reset, token = _reset_create(
            uid=row.uid,
            email=row.mail,
            full_name=row.full_name,
            created_by="",
            self_service=True,
        )
        ok, error = _reset_mail(reset, token)
        audit_record(
            action="account.reset_link_created",
            target=row.uid,
            detail={"reset": reset.pk, "mail_sent": ok, "self_service": True, "error": error},
            source="task",
        )
        sent += ok
    return sent


def reset_for_token(token: str) -> tuple[PasswordReset | None, str | None]:
    """The reset a token opens: ``(reset, None)``, or ``(reset or None, problem)``."""
    if not token or len(token) > 200:
        return None, "forged"
    reset = PasswordReset.objects.filter(token_hash=token_hash(token)).first()
    if reset is None:
        return None, "forged"
    return reset, reset.problem(clock.now())


def reset_held(reset_id: Any, digest: Any) -> tuple[PasswordReset | None, str | None]:
    """The reset a signup-site session holds (its id and token digest)."""
    reset = PasswordReset.objects.filter(pk=reset_id if isinstance(reset_id, int) else 0).first()
    if reset is None or not hmac.compare_digest(reset.token_hash, str(digest or "")):
        return None, "forged"
    return reset, reset.problem(clock.now())


def reset_refused_record(
    *, problem: str, reset: PasswordReset | None, request: HttpRequest
) -> None:
    audit_record(
        action="account.reset_link_refused",
        target=reset.uid if reset else "",
        detail={"problem": problem, "reset": reset.pk if reset else None},
        request=request,
    )


def password_reset_complete(
    *, reset_id: int, token_digest: str, password: str, request: HttpRequest | None = None
) -> PasswordReset:
    """Set the new password of a reset link's user (password-modify as the service account) and
    use the link up. The link is locked for the whole step, so of two submissions one sets the
    password and the other finds the link used; a directory failure leaves it usable. The user's
    dashboard sessions end. Raises ResetRefused, AccountError (``password``: the directory's
    policy refused it) or DirectoryUnavailable."""
    now = clock.now()
    with transaction.atomic():
        reset = PasswordReset.objects.select_for_update().filter(pk=reset_id).first()
        if reset is None or not hmac.compare_digest(reset.token_hash, token_digest):
            raise ResetRefused("forged")
        problem = reset.problem(now)
        if problem:
            raise ResetRefused(problem)
        person = ldap_directory.person_read(reset.uid)
        if person is None:
            raise ResetRefused("withdrawn")
        if person.locked:
            raise ResetRefused("disabled")
        try:
            ldap_directory.password_set(person.dn, password)
        except ldap_directory.PasswordRejected as exc:
            raise AccountError("password", f"{str(exc).capitalize()}.") from None
        PasswordReset.objects.filter(pk=reset.pk).update(used_at=now)
        audit_record(
            action="account.password_reset",
            actor_username=reset.uid,
            target=reset.uid,
            detail={"reset": reset.pk},
            request=request,
        )
    user = User.objects.filter(username=reset.uid).first()
    if user is not None:
        sessions_end(user_id=user.pk)
    throttle.forget(throttle.RESET_USER, reset.uid)
    reset.refresh_from_db()
    return reset


# --- Administration: disable, enable, promote, demote ---------------------------------------------
def _other_active_admins(uid: str) -> list[str]:
    """Members of the admins group other than ``uid`` whose accounts are not locked (read from
    the directory now: this decides whether an action would leave the cluster without an
    admin)."""
    others = []
    for member in ldap_directory.group_members(settings.LDAP_ADMIN_GROUP):
        if member == uid:
            continue
        person = ldap_directory.person_read(member)
        if person is not None and not person.locked:
            others.append(member)
    return others


def _flags_set(uid: str, groups: list[str] | tuple[str, ...] | None) -> None:
    """Mirror the role flags of the Django user (if they ever logged in) at once, so the session
    re-check does not wait for its interval."""
    now = clock.now()
    groups = groups or ()
    User.objects.filter(username=uid).update(
        is_cluster_admin=settings.LDAP_ADMIN_GROUP in groups,
        is_collaborator=settings.LDAP_USER_GROUP in groups,
        groups_checked_at=now,
    )


def account_disable(
    *,
    uid: str,
    actor: Any,
    reason: str = "",
    request: HttpRequest | None = None,
    source: str = "",
) -> DirectoryUser | None:
    """Take every access away from ``uid`` at once: the ppolicy lock (no bind anywhere, no keys
    from the bastion's lookup), removal from the role groups (remembered in ``DisabledAccount``
    for ``account_enable``), and the end of their dashboard sessions. Safe to run again after a
    failure part-way. Nobody disables their own account, nor the last active admin."""
    _require_admin(actor, "disable accounts")
    person = _person_or_error(uid)
    if uid == getattr(actor, "username", None):
        raise AccountStateError("You cannot disable your own account: ask another admin.")
    if (
        settings.LDAP_ADMIN_GROUP in person.groups
        and not person.locked
        and not _other_active_admins(uid)
    ):
        raise AccountStateError(
            f"{uid} is the last active admin: promote someone else before disabling them."
        )
    now = clock.now()
    held = [g for g in _role_groups() if g in person.groups]
    with transaction.atomic():
        record, created = DisabledAccount.objects.select_for_update().get_or_create(
            uid=uid,
            defaults={
                "groups": held,
                "disabled_at": now,
                "disabled_by_username": actor.username,
                "reason": reason[:500],
            },
        )
        if not created and set(held) - set(record.groups):
            record.groups = sorted(set(record.groups) | set(held))
            record.save(update_fields=["groups"])
    # The lock first: from here on no password and no key works, whatever fails next.
    ldap_directory.person_lock(person.dn)
    for group in held:
        ldap_directory.group_member_remove(group, uid)
    _flags_set(uid, [])
    user = User.objects.filter(username=uid).first()
    ended = sessions_end(user_id=user.pk) if user is not None else 0
    Signup.objects.filter(username=uid, state=SignupState.ACTIVE).update(
        state=SignupState.DISABLED, updated_at=now
    )
    audit_record(
        action="account.disabled",
        actor=actor,
        target=uid,
        detail={"groups": record.groups, "sessions_ended": ended, "reason": reason[:200]},
        request=request,
        source=_source(request, source),
    )
    return directory_user_refresh(uid=uid)


def account_enable(
    *, uid: str, actor: Any, request: HttpRequest | None = None, source: str = ""
) -> DirectoryUser | None:
    """Give a disabled account its access back: the role groups it had (``users`` when no record
    remains), then the lock is lifted."""
    _require_admin(actor, "enable accounts")
    person = _person_or_error(uid)
    record = DisabledAccount.objects.filter(uid=uid).first()
    if record is None and not person.locked:
        raise AccountStateError(f"{uid} is not disabled.")
    groups = list(record.groups) if record is not None else [settings.LDAP_USER_GROUP]
    for group in groups:
        ldap_directory.group_member_add(group, uid)
    ldap_directory.person_unlock(person.dn)
    DisabledAccount.objects.filter(uid=uid).delete()
    _flags_set(uid, groups)
    Signup.objects.filter(username=uid, state=SignupState.DISABLED).update(
        state=SignupState.ACTIVE, updated_at=clock.now()
    )
    audit_record(
        action="account.enabled",
        actor=actor,
        target=uid,
        detail={"groups": groups},
        request=request,
        source=_source(request, source),
    )
    return directory_user_refresh(uid=uid)


def account_promote(
    *, uid: str, actor: Any, request: HttpRequest | None = None, source: str = ""
) -> DirectoryUser | None:
    """Add ``uid`` to the admins group."""
    _require_admin(actor, "promote users")
    person = _person_or_error(uid)
    if person.locked:
        raise AccountStateError(f"{uid} is disabled: enable the account first.")
    if settings.LDAP_ADMIN_GROUP in person.groups:
        raise AccountStateError(f"{uid} is an admin already.")
    ldap_directory.group_member_add(settings.LDAP_ADMIN_GROUP, uid)
    _flags_set(uid, [*person.groups, settings.LDAP_ADMIN_GROUP])
    audit_record(
        action="account.promoted",
        actor=actor,
        target=uid,
        request=request,
        source=_source(request, source),
    )
    return directory_user_refresh(uid=uid)


def account_demote(
    *, uid: str, actor: Any, request: HttpRequest | None = None, source: str = ""
) -> DirectoryUser | None:
    """Remove ``uid`` from the admins group; never the last active admin (an admin may demote
    themselves while another remains)."""
    _require_admin(actor, "demote admins")
    person = _person_or_error(uid)
    if settings.LDAP_ADMIN_GROUP not in person.groups:
        raise AccountStateError(f"{uid} is not an admin.")
    if not person.locked and not _other_active_admins(uid):
        raise AccountStateError(
            f"{uid} is the last active admin: promote someone else first, or the cluster "
            "would have no admin."
        )
    ldap_directory.group_member_remove(settings.LDAP_ADMIN_GROUP, uid)
    _flags_set(uid, [g for g in person.groups if g != settings.LDAP_ADMIN_GROUP])
    audit_record(
        action="account.demoted",
        actor=actor,
        target=uid,
        request=request,
        source=_source(request, source),
    )
    return directory_user_refresh(uid=uid)


ACTIONS = {
    "disable": account_disable,
    "enable": account_enable,
    "promote": account_promote,
    "demote": account_demote,
}
