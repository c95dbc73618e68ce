"""Reads for self-service: a user's own row of the directory copy (the profile page), and the
password reset a link or a signup-site session opens."""

from __future__ import annotations

import hmac
from typing import Any

from clusterweb import clock
from clusterweb.accounts.models import (
    DirectoryUser,
    PasswordReset,
)
from clusterweb.accounts.tokens import token_hash


def directory_user_for(user: Any) -> DirectoryUser | None:
    """The mirror's row for a logged-in user (None for a break-glass superuser, or before the
    directory was first read for them)."""
    if not getattr(user, "is_authenticated", False) or user.is_break_glass:
        return None
    return DirectoryUser.objects.filter(uid__iexact=user.username).first()


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
