"""Directory administration: the database copy of the directory (``DirectoryUser``), the admins'
disable, enable, promote and demote (the Users page and ``manage.py users``), and password reset
links (issued by an admin here, or by the self-service form in ``selfservice``). docs/accounts.md
has the rules; every action is audited.

Each write goes to the directory at once, in the request: the person asking (an admin taking
access away) must see whether it took effect, and each step is idempotent, so a retry after a
failure finishes the job.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from clusterweb import clock
from clusterweb.accounts.models import (
    DirectoryUser,
    DisabledAccount,
    PasswordReset,
    Signup,
    SignupState,
    User,
)
from clusterweb.accounts.sessions import sessions_end
from clusterweb.accounts.tokens import token_hash
from clusterweb.accounts.tunnels import signup_tunnel_command
from clusterweb.audit.services import audit_record
from clusterweb.errors import PermanentError, TransientError
from clusterweb.integrations import jupyterhub, mail
from clusterweb.integrations import ldap as ldap_directory
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


def reset_create(
    *, uid: str, email: str, full_name: str, created_by: str, self_service: bool
) -> tuple[PasswordReset, str]:
    """A fresh link for ``uid``; the user's older open links are withdrawn. (Also used by the
    self-service request, ``selfservice.services.password_reset_self_service``.)"""
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


def reset_mail(reset: PasswordReset, token: str) -> tuple[bool, str]:
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
    reset, token = reset_create(
        uid=uid,
        email=person.mail,
        full_name=person.full_name,
        created_by=actor.username,
        self_service=False,
    )
    sent, error = reset_mail(reset, token)
    audit_record(
        action="account.reset_link_created",
        actor=actor,
        target=uid,
        detail={"reset": reset.pk, "mail_sent": sent, "expires_at": reset.expires_at.isoformat()},
        request=request,
        source=_source(request, source),
    )
    return ResetOutcome(reset, reset_link(token), sent, error)


# --- Administration: disable, enable, promote, demote ---------------------------------------------
def _other_active_admins(uid: str) -> list[str]:
    """Members of the admins group other than ``uid`` whose accounts are not locked (read from
    the directory now: this decides whether an action would leave the cluster without an
    admin)."""
    others = []
    for member in ldap_directory.group_members(settings.LDAP_ADMIN_GROUP):
        if member.lower() == uid.lower():
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
    User.objects.filter(username__iexact=uid).update(
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
    """Take every access away from ``uid`` at once. The database side first, so that a directory
    outage cannot block it: the ``DisabledAccount`` record (no role at the next re-check, and the
    groups ``account_enable`` gives back), the role flags of every Django user of that uid in any
    case, and the end of all their dashboard sessions; a task then stops their JupyterHub servers
    (after the response, through the hub's API). Then the directory: the ppolicy lock (no bind
    anywhere, no keys from the bastion's lookup) and removal from the role groups. An open SSH
    session on the bastion is not ended: deploy/bastion/README.md says how its operator ends it.

    Safe to run again after a failure part-way; when the directory is unreachable, the database
    side is done and a TransientError says the directory side is not. Nobody disables their own
    account, nor the last active admin."""
    _require_admin(actor, "disable accounts")
    if not uid or len(uid) > 150:
        raise AccountError("uid", "give the user name of a person in the directory")
    if uid.lower() == getattr(actor, "username", "").lower():
        raise AccountStateError("You cannot disable your own account: ask another admin.")
    person, unreachable = _person_or_copy(uid)
    groups = person.groups if person is not None else tuple(unreachable.copy.groups)
    locked = person.locked if person is not None else unreachable.copy.locked
    if settings.LDAP_ADMIN_GROUP in groups and not locked and not _other_admins(uid, person):
        raise AccountStateError(
            f"{uid} is the last active admin: promote someone else before disabling them."
        )
    now = clock.now()
    held = [g for g in _role_groups() if g in groups]
    with transaction.atomic():
        record = DisabledAccount.objects.select_for_update().filter(uid__iexact=uid).first()
        if record is None:
            record = DisabledAccount.objects.create(
                uid=uid,
                groups=held,
                disabled_at=now,
                disabled_by_username=actor.username,
                reason=reason[:500],
            )
        elif set(held) - set(record.groups):
            record.groups = sorted(set(record.groups) | set(held))
            record.save(update_fields=["groups"])
        _flags_set(uid, [])
        ended = sum(sessions_end(user_id=pk) for pk in _user_ids(uid))
        Signup.objects.filter(username__iexact=uid, state=SignupState.ACTIVE).update(
            state=SignupState.DISABLED, updated_at=now
        )
        enqueue_on_commit(_tasks().account_servers_stop, uid)
        # Their launch requests that run nothing yet are cancelled (``disabled``) with the rest
        # of the database side, so an admin cannot approve one for a person who is gone.
        from provisioning.launches.services import cancel_pending_for

        launches = cancel_pending_for(uid, actor=actor, source=_source(request, source))
        # Their launches that run stop (``disabled``): the stop steps run after the commit.
        from provisioning.launches.execution import launches_stop_for

        stopping = launches_stop_for(uid, actor=actor, source=_source(request, source))
    detail = {
        "groups": record.groups,
        "sessions_ended": ended,
        "launches_cancelled": launches,
        "launches_stopped": stopping,
        "reason": reason[:200],
    }
    if unreachable is not None:
        audit_record(
            action="account.disable_incomplete",
            actor=actor,
            target=uid,
            detail={**detail, "error": str(unreachable.error)},
            request=request,
            source=_source(request, source),
        )
        raise TransientError(
            f"{uid}'s dashboard sessions ended and their roles are gone, but the directory is "
            f"unreachable ({unreachable.error}), so their password and SSH keys still work: "
            "disable again once it is back",
            system="ldap",
        ) from unreachable.error
    # From here on no password and no key works, whatever fails next.
    ldap_directory.person_lock(person.dn)
    for group in held:
        ldap_directory.group_member_remove(group, person.uid)
    audit_record(
        action="account.disabled",
        actor=actor,
        target=uid,
        detail=detail,
        request=request,
        source=_source(request, source),
    )
    return directory_user_refresh(uid=person.uid)


def account_servers_stop(*, uid: str) -> list[str]:
    """Stop every server (default and named) that JupyterHub runs for ``uid``, matching the hub's
    user name without regard to case; returns the servers asked to stop. Idempotent. Does
    nothing if the account is no longer disabled (enabled again before the task ran)."""
    if not DisabledAccount.objects.filter(uid__iexact=uid).exists():
        return []
    try:
        hub = jupyterhub.client_from_settings()
    except PermanentError as exc:
        if exc.code != "config":
            raise
        logger.warning("%s's JupyterHub servers not stopped: %s", uid, exc)
        return []
    stopped = []
    for name, activity in hub.users_activity().items():
        if name.lower() != uid.lower():
            continue
        for server, status in activity.servers.items():
            if status.active:
                hub.server_stop(name, name=server, wait=False)
                stopped.append(f"{name}/{server}")
    if stopped:
        audit_record(
            action="account.servers_stopped", target=uid, detail={"servers": stopped}, source="task"
        )
    return stopped


@dataclass(frozen=True)
class _Unreachable:
    error: TransientError
    copy: DirectoryUser


def _person_or_copy(uid: str) -> tuple[ldap_directory.Person | None, _Unreachable | None]:
    """The directory's entry for ``uid``; while the directory is unreachable, its database copy
    (enough to end sessions and to apply the last-admin rule), with the error."""
    try:
        return _person_or_error(uid), None
    except TransientError as exc:
        copy = DirectoryUser.objects.filter(uid__iexact=uid).first()
        if copy is None:
            raise
        return None, _Unreachable(exc, copy)


def _other_admins(uid: str, person: ldap_directory.Person | None) -> bool:
    """Whether an active admin other than ``uid`` remains (the database copy's word while the
    directory is unreachable)."""
    if person is not None:
        return bool(_other_active_admins(uid))
    return any(
        settings.LDAP_ADMIN_GROUP in row.groups and not row.locked
        for row in DirectoryUser.objects.exclude(uid__iexact=uid)
    )


def _user_ids(uid: str) -> list[int]:
    return list(User.objects.filter(username__iexact=uid).values_list("pk", flat=True))


def _tasks():
    from clusterweb.accounts.directory import tasks

    return tasks


def account_enable(
    *, uid: str, actor: Any, request: HttpRequest | None = None, source: str = ""
) -> DirectoryUser | None:
    """Give a disabled account its access back: the role groups it had (``users`` when no record
    remains), then the lock is lifted."""
    _require_admin(actor, "enable accounts")
    person = _person_or_error(uid)
    record = DisabledAccount.objects.filter(uid__iexact=uid).first()
    if record is None and not person.locked:
        raise AccountStateError(f"{uid} is not disabled.")
    groups = list(record.groups) if record is not None else [settings.LDAP_USER_GROUP]
    for group in groups:
        ldap_directory.group_member_add(group, uid)
    ldap_directory.person_unlock(person.dn)
    DisabledAccount.objects.filter(uid__iexact=uid).delete()
    _flags_set(uid, groups)
    Signup.objects.filter(username__iexact=uid, state=SignupState.DISABLED).update(
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
