"""Self-service: a user's own password and SSH keys (the profile page), and setting a new
password with a reset link (the signup site), including asking for a link by email address.
docs/accounts.md has the rules; every action is audited."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from clusterweb import clock
from clusterweb.accounts import ssh_keys as sshkeys
from clusterweb.accounts import throttle
from clusterweb.accounts.addresses import AddressRefused, address_folded
from clusterweb.accounts.directory.services import (
    AccountError,
    AccountStateError,
    directory_user_refresh,
    reset_create,
    reset_mail,
)
from clusterweb.accounts.models import (
    DirectoryUser,
    PasswordReset,
    User,
)
from clusterweb.accounts.sessions import sessions_end
from clusterweb.audit.services import audit_record
from clusterweb.integrations import ldap as ldap_directory
from clusterweb.tasking import enqueue_on_commit

logger = logging.getLogger(__name__)


class ResetRefused(Exception):
    """A reset link that sets no password: ``problem`` is forged, expired, used, withdrawn or
    disabled."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


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


@sensitive_variables()
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


# --- Password reset links: asking for one, and using one ------------------------------------------
def password_reset_request(*, email: str, request: HttpRequest | None = None) -> None:
    """Someone asks for a reset link by email address (PASSWORD_RESET_SELF_SERVICE). Nothing
    here looks the address up: a task does, after the response is sent, so neither the answer
    nor its timing says whether the address is known. Limited per address."""
    try:
        # One spelling per address, so look-alikes and case variants share one counter.
        address = address_folded(email)
    except AddressRefused as exc:
        audit_record(
            action="account.reset_requested",
            target=email.strip()[:254],
            detail={"refused": str(exc), "rate_limited": False},
            request=request,
        )
        return
    verdict = throttle.attempt((throttle.RESET_REQUEST_ADDRESS, address))
    audit_record(
        action="account.reset_requested",
        target=address,
        detail={"rate_limited": not verdict.allowed},
        request=request,
    )
    if verdict.allowed:
        from clusterweb.accounts.selfservice import tasks

        enqueue_on_commit(tasks.password_reset_self_service, address)


def password_reset_self_service(*, email: str) -> int:
    """The task behind a self-service request: a link to each active account whose directory
    address is ``email`` (from the mirror; the address never enters an LDAP filter), at most
    ACCOUNTS_ATTEMPT_LIMIT per user and window. Returns the links sent."""
    try:
        # ASCII from here on: PostgreSQL's UPPER() (behind iexact) would fold a dotless i or a
        # long s into another person's address.
        email = address_folded(email)
        validate_email(email)
    except (AddressRefused, ValidationError):
        return 0  # (the form refuses these; PostgreSQL refuses NUL in any text)
    sent = 0
    for row in DirectoryUser.objects.filter(mail__iexact=email, locked=False).order_by("uid"):
        if row.state != "active":
            continue
        if not throttle.attempt((throttle.RESET_REQUEST_USER, row.uid)).allowed:
            continue
        reset, token = reset_create(
            uid=row.uid,
            email=row.mail,
            full_name=row.full_name,
            created_by="",
            self_service=True,
        )
        ok, error = reset_mail(reset, token)
        audit_record(
            action="account.reset_link_created",
            target=row.uid,
            detail={"reset": reset.pk, "mail_sent": ok, "self_service": True, "error": error},
            source="task",
        )
        sent += ok
    return sent


def reset_refused_record(
    *, problem: str, reset: PasswordReset | None, request: HttpRequest
) -> None:
    audit_record(
        action="account.reset_link_refused",
        target=reset.uid if reset else "",
        detail={"problem": problem, "reset": reset.pk if reset else None},
        request=request,
    )


@sensitive_variables()
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
