"""Reads for accounts: signups and invitations, for admins, and invitation tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from clusterweb import clock
from clusterweb.accounts.models import UNDECIDED_STATES, Signup, SignupState
from clusterweb.permissions import is_admin


def signups_visible_to(user: Any) -> QuerySet[Signup]:
    """Every signup for an admin; nothing for anyone else (they get 403 before asking)."""
    return Signup.objects.all() if is_admin(user) else Signup.objects.none()


def signup_list(*, states: list[str] | None = None) -> QuerySet[Signup]:
    signups = Signup.objects.order_by("-invited_at", "-id")
    return signups.filter(state__in=states) if states else signups


@dataclass(frozen=True)
class UsersPage:
    pending: list[Signup]
    invitations: list[Signup]
    recent: list[Signup]

    @property
    def polling(self) -> bool:
        """The page refreshes itself while an approval is being carried out."""
        return any(s.state == SignupState.PROVISIONING for s in self.pending)


def users_page(*, recent: int = 20) -> UsersPage:
    """The Users page: signups waiting for a decision or being provisioned, open invitations,
    and the latest settled ones."""
    now = clock.now()
    pending = list(
        Signup.objects.filter(state__in=[*UNDECIDED_STATES, SignupState.PROVISIONING]).order_by(
            "submitted_at", "id"
        )
    )
    invitations = list(
        Signup.objects.filter(state=SignupState.INVITED, expires_at__gt=now).order_by(
            "-invited_at", "-id"
        )
    )
    settled = list(
        Signup.objects.exclude(pk__in=[s.pk for s in pending + invitations]).order_by(
            "-updated_at", "-id"
        )[:recent]
    )
    return UsersPage(pending=pending, invitations=invitations, recent=settled)


def invitation_for_token(token: str) -> tuple[Signup | None, str | None]:
    """The invitation a token opens: ``(signup, None)``; or ``(signup or None, problem)`` where
    problem is ``forged`` (no such token), ``revoked``, ``used`` or ``expired``."""
    from clusterweb.accounts.services import invitation_problem, token_hash

    if not token or len(token) > 200:
        return None, "forged"
    signup = Signup.objects.filter(token_hash=token_hash(token)).first()
    if signup is None:
        return None, "forged"
    return signup, invitation_problem(signup, clock.now())
