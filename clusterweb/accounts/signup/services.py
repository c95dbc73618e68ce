"""Signup of new collaborators: invitations, the signup form, the admins' approval or rejection,
and the sweeper (the LDAP account itself: ``provisioning.py``). The flow and its states are in
docs/signup.md. Every write is audited. Writes to the directory and notifications run in tasks
(``tasks.py``) after the row asking for them commits; the invitation mail is sent at once, so
the admin who invites sees whether it went."""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from clusterweb import clock
from clusterweb.accounts.addresses import AddressRefused, address_for_directory
from clusterweb.accounts.login.services import user_membership_refresh
from clusterweb.accounts.models import (
    UNDECIDED_STATES,
    USERNAME_HOLDING_STATES,
    DirectoryUser,
    Signup,
    SignupState,
    User,
)
from clusterweb.accounts.passwords import ldap_password_hash
from clusterweb.accounts.ssh_keys import PublicKey
from clusterweb.accounts.tokens import token_hash
from clusterweb.accounts.tunnels import signup_tunnel_command
from clusterweb.audit.services import audit_record
from clusterweb.errors import DirectoryUnavailable, TransientError
from clusterweb.integrations import ldap as ldap_directory
from clusterweb.integrations import mail
from clusterweb.permissions import is_admin
from clusterweb.tasking import enqueue_on_commit

logger = logging.getLogger(__name__)


class SignupError(Exception):
    """Bad input to a signup action. ``field`` names the field (CLI: exit 2)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class SignupStateError(Exception):
    """The signup is not in a state that allows the action (CLI: exit 1)."""


class InvitationRefused(Exception):
    """An invitation token that opens nothing: ``problem`` is forged, expired, used or revoked."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class InvitationOutcome:
    signup: Signup
    link: str
    sent: bool
    error: str = ""


def signup_link(token: str) -> str:
    """The one-time link of an invitation, on the signup site. The token travels in the query
    string, which the access log never records (gunicorn_conf), and the signup site moves it into
    its session at once (site_views.signup_invitation)."""
    path = reverse("signup_invitation", urlconf="clusterweb.urls_signup")
    return f"{settings.SIGNUP_BASE_URL.rstrip('/')}{path}?{urlencode({'token': token})}"


def _require_admin(actor: Any, action: str) -> None:
    if not is_admin(actor):
        raise PermissionDenied(f"Only admins may {action}.")


def _signup_for_update(signup_id: int) -> Signup:
    try:
        return Signup.objects.select_for_update().get(pk=signup_id)
    except Signup.DoesNotExist:
        raise SignupError("id", f"there is no signup {signup_id}") from None


def _hours(days: int | None) -> int:
    if days is None:
        return settings.SIGNUP_INVITATION_HOURS
    if not 1 <= days <= 30:
        raise SignupError("days", "give a number of days from 1 to 30")
    return days * 24


def _invitation_mail(signup: Signup, token: str, *, actor: Any, source: str) -> InvitationOutcome:
    link = signup_link(token)
    try:
        mail.signup_invitation_send(
            to=signup.email, signup=signup, link=link, tunnel_command=signup_tunnel_command()
        )
    except TransientError as exc:
        Signup.objects.filter(pk=signup.pk).update(last_error=f"invitation mail: {exc}"[:1000])
        audit_record(
            action="signup.invitation_mail_failed",
            actor=actor,
            target=signup.email,
            detail={"signup": signup.pk, "error": str(exc)[:200]},
            source=source,
        )
        return InvitationOutcome(signup, link, sent=False, error=str(exc))
    now = clock.now()
    Signup.objects.filter(pk=signup.pk).update(
        sent_at=now, send_count=F("send_count") + 1, last_error="", updated_at=now
    )
    signup.refresh_from_db()
    return InvitationOutcome(signup, link, sent=True)


def invitation_create(
    *,
    email: str,
    actor: Any,
    days: int | None = None,
    request: HttpRequest | None = None,
    source: str = "",
) -> InvitationOutcome:
    """Invite ``email``: a row in ``invited`` holding the SHA-256 of a fresh random token, and the
    invitation email with the one-time link. The row is kept when the mail cannot be sent
    (``outcome.sent`` is False; the admin re-sends)."""
    _require_admin(actor, "invite")
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise SignupError("email", "enter a valid email address") from None
    try:
        email = address_for_directory(email)
    except AddressRefused as exc:
        raise SignupError("email", f"{email!a}: {exc}") from None
    hours = _hours(days)
    now = clock.now()
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        open_signup = (
            Signup.objects.filter(email__iexact=email)
            .filter(
                Q(state=SignupState.INVITED, expires_at__gt=now)
                | Q(
                    state__in=[
                        SignupState.SUBMITTED,
                        SignupState.PENDING_APPROVAL,
                        SignupState.PROVISIONING,
                    ]
                )
            )
            .first()
        )
        if open_signup is not None:
            raise SignupError(
                "email",
                f"{email} already has an open invitation or signup (#{open_signup.pk}, "
                f"{open_signup.state}): re-send or revoke that one",
            )
        holder = DirectoryUser.objects.filter(mail__iexact=email).first()
        if holder is not None:
            raise SignupError(
                "email",
                f"{email} belongs to the account {holder.uid} already: send them a password "
                "reset link instead",
            )
        signup = Signup.objects.create(
            email=email,
            token_hash=token_hash(token),
            invited_by=actor if getattr(actor, "pk", None) else None,
            invited_by_username=actor.username,
            invited_at=now,
            expires_at=now + timedelta(hours=hours),
            updated_at=now,
        )
        audit_record(
            action="signup.invited",
            actor=actor,
            target=email,
            detail={"signup": signup.pk, "expires_at": signup.expires_at.isoformat()},
            request=request,
            source=source,
        )
    return _invitation_mail(signup, token, actor=actor, source=source or _source(request))


def invitation_resend(
    *,
    signup_id: int,
    actor: Any,
    days: int | None = None,
    request: HttpRequest | None = None,
    source: str = "",
) -> InvitationOutcome:
    """Send an invitation again with a fresh token and expiry: the old link stops working. Works
    for an unused invitation and for an expired or revoked one."""
    _require_admin(actor, "re-send invitations")
    hours = _hours(days)
    token = secrets.token_urlsafe(32)
    now = clock.now()
    with transaction.atomic():
        signup = _signup_for_update(signup_id)
        if signup.state not in (SignupState.INVITED, SignupState.EXPIRED) or signup.submitted_at:
            raise SignupStateError(
                f"signup {signup.pk} is {signup.state}: only an unused invitation can be re-sent"
            )
        signup.token_hash = token_hash(token)
        signup.state = SignupState.INVITED
        signup.expires_at = now + timedelta(hours=hours)
        signup.revoked_at = None
        signup.revoked_by_username = ""
        signup.updated_at = now
        signup.save(
            update_fields=[
                "token_hash",
                "state",
                "expires_at",
                "revoked_at",
                "revoked_by_username",
                "updated_at",
            ]
        )
        audit_record(
            action="signup.invitation_resent",
            actor=actor,
            target=signup.email,
            detail={"signup": signup.pk, "expires_at": signup.expires_at.isoformat()},
            request=request,
            source=source,
        )
    return _invitation_mail(signup, token, actor=actor, source=source or _source(request))


def invitation_revoke(
    *, signup_id: int, actor: Any, request: HttpRequest | None = None, source: str = ""
) -> Signup:
    """Revoke an unused invitation: its link stops working (the row becomes ``expired`` with
    ``revoked_at`` set; CONVENTIONS.md has no separate revoked state)."""
    _require_admin(actor, "revoke invitations")
    now = clock.now()
    if not Signup.objects.filter(pk=signup_id).exists():
        raise SignupError("id", f"there is no signup {signup_id}")
    revoked = Signup.objects.filter(pk=signup_id, state=SignupState.INVITED).update(
        state=SignupState.EXPIRED,
        revoked_at=now,
        revoked_by_username=actor.username,
        updated_at=now,
    )
    signup = Signup.objects.get(pk=signup_id)
    if not revoked:
        raise SignupStateError(
            f"signup {signup.pk} is {signup.state}: only an unused invitation can be revoked"
        )
    audit_record(
        action="signup.invitation_revoked",
        actor=actor,
        target=signup.email,
        detail={"signup": signup.pk},
        request=request,
        source=source,
    )
    return signup


def invitation_problem(signup: Signup, now: Any) -> str | None:
    """Why ``signup``'s invitation link opens no form (revoked, used, expired), or None."""
    if signup.revoked_at is not None:
        return "revoked"
    if signup.state == SignupState.EXPIRED:
        return "expired"
    if signup.state != SignupState.INVITED or signup.submitted_at is not None:
        return "used"
    if now >= signup.expires_at:
        return "expired"
    return None


def invitation_refused_record(*, problem: str, signup: Signup | None, request: HttpRequest) -> None:
    """Audit a refused token (never the token itself)."""
    audit_record(
        action="signup.token_refused",
        target=signup.email if signup else "",
        detail={"problem": problem, "signup": signup.pk if signup else None},
        request=request,
    )


def username_unavailable(username: str, *, exclude_pk: int | None = None) -> str | None:
    """Why ``username`` cannot be signed up with: the form's own rules, then pending signups, then
    the directory (a user or a group of that name). Raises DirectoryUnavailable when the
    directory cannot be asked."""
    from clusterweb.accounts.forms import username_problem
    from clusterweb.accounts.login.selectors import username_held_locally

    problem = username_problem(username)
    if problem:
        return problem
    pending = Signup.objects.filter(username=username, state__in=USERNAME_HOLDING_STATES)
    if exclude_pk is not None:
        pending = pending.exclude(pk=exclude_pk)
    if pending.exists() or username_held_locally(username):
        return "This user name is taken. Choose another one."
    taken = ldap_directory.username_taken(username)
    if taken == "group":
        return "This is the name of a group on the cluster. Choose another one."
    if taken:
        return "This user name is taken. Choose another one."
    return None


@sensitive_variables()
def signup_submit(
    *,
    signup_id: int,
    token_digest: str,
    username: str,
    full_name: str,
    password: str,
    keys: list[PublicKey],
    request: HttpRequest | None = None,
) -> Signup:
    """Record the signup form for the invitation ``signup_id`` (whose token hashes to
    ``token_digest``). The password is hashed for the directory before anything is written.
    One conditional UPDATE from ``invited`` consumes the invitation, so a form submitted twice
    makes one signup; a username two signups race for is decided by a unique index.

    Raises InvitationRefused, SignupError (field ``username``) or DirectoryUnavailable."""
    now = clock.now()
    signup = Signup.objects.filter(pk=signup_id).first()
    if signup is None or not hmac.compare_digest(signup.token_hash, token_digest):
        raise InvitationRefused("forged")
    problem = invitation_problem(signup, now)
    if problem:
        raise InvitationRefused(problem)
    unavailable = username_unavailable(username, exclude_pk=signup.pk)
    if unavailable:
        raise SignupError("username", unavailable)
    password_hash = ldap_password_hash(password)
    try:
        with transaction.atomic():
            submitted = Signup.objects.filter(
                pk=signup.pk,
                state=SignupState.INVITED,
                token_hash=token_digest,
                revoked_at__isnull=True,
                expires_at__gt=now,
            ).update(
                state=SignupState.SUBMITTED,
                username=username,
                full_name=full_name,
                ssh_keys=[key.line for key in keys],
                password_hash=password_hash,
                submitted_at=now,
                updated_at=now,
            )
            if not submitted:
                raise InvitationRefused("used")
            audit_record(
                action="signup.submitted",
                actor_username=username,
                target=signup.email,
                detail={"signup": signup.pk, "fingerprints": [k.fingerprint for k in keys]},
                request=request,
            )
            enqueue_on_commit(signup_tasks().signup_review, signup.pk)
    except IntegrityError:
        raise SignupError("username", "This user name was just taken. Choose another.") from None
    signup.refresh_from_db()
    return signup


def _admin_recipients() -> list[str]:
    try:
        return ldap_directory.group_member_mails(settings.LDAP_ADMIN_GROUP)
    except DirectoryUnavailable:
        admins = User.objects.filter(is_active=True, is_cluster_admin=True).exclude(email="")
        return sorted(set(admins.values_list("email", flat=True)))


def _inviter_still_admin(signup: Signup) -> User | None:
    inviter = signup.invited_by
    if inviter is None:
        return None
    if not inviter.is_break_glass:
        inviter = user_membership_refresh(user=inviter)
    return inviter if inviter.is_admin else None


def signup_review_request(*, signup_id: int) -> None:
    """After a submission: approve at once when SIGNUP_AUTO_APPROVE is on and the inviter is
    still an admin; otherwise move the signup to ``pending_approval`` and email every admin.
    Safe to run twice: each admin mail is claimed by ``admins_notified_at``. Raises
    TransientError when mail or the directory fails (the task retries)."""
    signup = Signup.objects.select_related("invited_by").filter(pk=signup_id).first()
    if signup is None:
        return
    now = clock.now()
    if signup.state == SignupState.SUBMITTED and settings.SIGNUP_AUTO_APPROVE:
        inviter = _inviter_still_admin(signup)
        if inviter is not None:
            signup_approve(signup_id=signup.pk, actor=inviter, source="task", auto=True)
            return
    if Signup.objects.filter(pk=signup.pk, state=SignupState.SUBMITTED).update(
        state=SignupState.PENDING_APPROVAL, updated_at=now
    ):
        audit_record(
            action="signup.review_requested",
            target=signup.email,
            actor_username=signup.username,
            detail={"signup": signup.pk},
            source="task",
        )
    claimed = Signup.objects.filter(
        pk=signup.pk, state=SignupState.PENDING_APPROVAL, admins_notified_at__isnull=True
    ).update(admins_notified_at=now)
    if not claimed:
        return
    signup.refresh_from_db()
    review_url = settings.DASHBOARD_BASE_URL.rstrip("/") + reverse(
        "accounts:signup_detail", kwargs={"pk": signup.pk}, urlconf="clusterweb.urls"
    )
    try:
        for address in _admin_recipients():
            mail.signup_review_request_send(to=address, signup=signup, review_url=review_url)
    except TransientError:
        Signup.objects.filter(pk=signup.pk).update(admins_notified_at=None)
        raise


def signup_approve(
    *,
    signup_id: int,
    actor: Any,
    request: HttpRequest | None = None,
    source: str = "",
    auto: bool = False,
) -> Signup:
    """Approve an undecided signup: it moves to ``provisioning`` and the account is written by
    the ``signup_provision`` task once this commits. The approval itself needs no directory, so
    it is kept while LDAP is down and carried out when it is back."""
    _require_admin(actor, "approve signups")
    now = clock.now()
    with transaction.atomic():
        signup = _signup_for_update(signup_id)
        approved = Signup.objects.filter(pk=signup.pk, state__in=UNDECIDED_STATES).update(
            state=SignupState.PROVISIONING,
            decided_by=actor if getattr(actor, "pk", None) else None,
            decided_by_username=actor.username,
            decided_at=now,
            auto_approved=auto,
            claimed_until=None,
            next_attempt_at=now,
            last_error="",
            updated_at=now,
            log=[
                *signup.log,
                {
                    "at": now.isoformat(),
                    "message": f"approved by {actor.username}"
                    + (" (automatically)" if auto else ""),
                },
            ],
        )
        if not approved:
            raise SignupStateError(
                f"signup {signup.pk} is {signup.state}: only a signup waiting for a decision "
                "can be approved"
            )
        audit_record(
            action="signup.approved",
            actor=actor,
            target=signup.username,
            detail={"signup": signup.pk, "auto": auto},
            request=request,
            source=source,
        )
        enqueue_on_commit(signup_tasks().signup_provision, signup.pk)
    signup.refresh_from_db()
    return signup


def signup_reject(
    *,
    signup_id: int,
    actor: Any,
    reason: str = "",
    request: HttpRequest | None = None,
    source: str = "",
) -> Signup:
    """Reject an undecided signup (``reason`` optional). Its password hash is discarded at once
    and the applicant is emailed by a task."""
    _require_admin(actor, "reject signups")
    now = clock.now()
    reason = (reason or "").strip()[:1000]
    with transaction.atomic():
        signup = _signup_for_update(signup_id)
        rejected = Signup.objects.filter(pk=signup.pk, state__in=UNDECIDED_STATES).update(
            state=SignupState.REJECTED,
            decided_by=actor if getattr(actor, "pk", None) else None,
            decided_by_username=actor.username,
            decided_at=now,
            reason=reason,
            password_hash="",
            updated_at=now,
        )
        if not rejected:
            raise SignupStateError(
                f"signup {signup.pk} is {signup.state}: only a signup waiting for a decision "
                "can be rejected"
            )
        audit_record(
            action="signup.rejected",
            actor=actor,
            target=signup.username,
            detail={"signup": signup.pk, "reason": reason[:200]},
            request=request,
            source=source,
        )
        enqueue_on_commit(signup_tasks().signup_rejection_notify, signup.pk)
    signup.refresh_from_db()
    return signup


def signup_rejection_notify(*, signup_id: int) -> None:
    """Tell the applicant their signup was refused. Once: claimed by ``applicant_notified_at``."""
    now = clock.now()
    if not Signup.objects.filter(
        pk=signup_id, state=SignupState.REJECTED, applicant_notified_at__isnull=True
    ).update(applicant_notified_at=now):
        return
    signup = Signup.objects.get(pk=signup_id)
    try:
        mail.signup_rejected_send(to=signup.email, signup=signup)
    except TransientError:
        Signup.objects.filter(pk=signup_id).update(applicant_notified_at=None)
        raise


def signups_sweep() -> dict[str, int]:
    """The periodic safety net: expire invitations past their time, and enqueue again whatever
    waits on a task that was lost (Redis down at enqueue, a worker killed, retries exhausted)."""
    now = clock.now()
    grace = now - timedelta(seconds=60)
    expired = list(
        Signup.objects.filter(state=SignupState.INVITED, expires_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    if expired:
        Signup.objects.filter(pk__in=expired, state=SignupState.INVITED).update(
            state=SignupState.EXPIRED, updated_at=now
        )
        audit_record(
            action="signup.invitations_expired", detail={"signups": expired[:100]}, source="task"
        )
    tasks = signup_tasks()
    review = Signup.objects.filter(
        Q(state=SignupState.SUBMITTED, submitted_at__lt=grace)
        | Q(
            state=SignupState.PENDING_APPROVAL,
            admins_notified_at__isnull=True,
            submitted_at__lt=grace,
        )
    ).values_list("pk", flat=True)
    provision = (
        Signup.objects.filter(state=SignupState.PROVISIONING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("pk", flat=True)
    )
    notify = Signup.objects.filter(
        state=SignupState.REJECTED, applicant_notified_at__isnull=True, decided_at__lt=grace
    ).values_list("pk", flat=True)
    counts = {"expired": len(expired), "review": 0, "provision": 0, "notify": 0}
    for key, task, ids in (
        ("review", tasks.signup_review, review),
        ("provision", tasks.signup_provision, provision),
        ("notify", tasks.signup_rejection_notify, notify),
    ):
        for pk in list(ids):
            enqueue_on_commit(task, pk)
            counts[key] += 1
    return counts


def signup_tasks() -> Any:
    """The tasks module, imported late (it imports this one)."""
    from clusterweb.accounts.signup import tasks

    return tasks


def _source(request: HttpRequest | None) -> str:
    return "web" if request is not None else "cli"
