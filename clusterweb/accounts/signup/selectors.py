"""Reads for signup: signups and invitations, for admins, and the invitation a token opens."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from clusterweb import clock
from clusterweb.accounts.models import (
    Signup,
)
from clusterweb.accounts.signup.services import invitation_problem
from clusterweb.accounts.tokens import token_hash
from clusterweb.permissions import is_admin


def signups_visible_to(user: Any) -> QuerySet[Signup]:
    """Every signup for an admin; nothing for anyone else (they get 403 before asking)."""
    return Signup.objects.all() if is_admin(user) else Signup.objects.none()


def signup_list(*, states: list[str] | None = None) -> QuerySet[Signup]:
    signups = Signup.objects.order_by("-invited_at", "-id")
    return signups.filter(state__in=states) if states else signups


def invitation_for_token(token: str) -> tuple[Signup | None, str | None]:
    """The invitation a token opens: ``(signup, None)``; or ``(signup or None, problem)`` where
    problem is ``forged`` (no such token), ``revoked``, ``used`` or ``expired``."""
    if not token or len(token) > 200:
        return None, "forged"
    signup = Signup.objects.filter(token_hash=token_hash(token)).first()
    if signup is None:
        return None, "forged"
    return signup, invitation_problem(signup, clock.now())
