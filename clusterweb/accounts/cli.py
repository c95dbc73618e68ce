"""What the signup commands share: ``--by`` checked against the directory, exit statuses and
``--json`` output as CONVENTIONS.md has them (0 done, 1 failed, 2 bad input naming the field,
3 not permitted; ``--json`` prints exactly one JSON object, messages go to stderr)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from clusterweb.accounts.directory.services import AccountError, AccountStateError
from clusterweb.accounts.login.services import user_from_directory
from clusterweb.accounts.models import DirectoryUser, PasswordReset, Signup, User
from clusterweb.accounts.signup.services import SignupError, SignupStateError
from clusterweb.errors import IntegrationError
from clusterweb.permissions import is_admin

DONE, FAILED, BAD_INPUT, NOT_PERMITTED = 0, 1, 2, 3


def admin_from_directory(uid: str) -> User:
    """The ``--by`` user, re-read from the directory (created there if they never logged in);
    PermissionDenied unless they are an admin now."""
    user = user_from_directory(uid=uid)
    if not is_admin(user):
        raise PermissionDenied(f"{uid} is not an admin (not in the directory's admins group)")
    return user


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def signup_row(signup: Signup) -> dict[str, Any]:
    return {
        "id": signup.pk,
        "state": signup.current_state,
        "email": signup.email,
        "username": signup.username or None,
        "full_name": signup.full_name or None,
        "invited_by": signup.invited_by_username or None,
        "invited_at": _iso(signup.invited_at),
        "expires_at": _iso(signup.expires_at),
        "sent_at": _iso(signup.sent_at),
        "revoked_at": _iso(signup.revoked_at),
        "submitted_at": _iso(signup.submitted_at),
        "fingerprints": signup.fingerprints,
        "decided_by": signup.decided_by_username or None,
        "decided_at": _iso(signup.decided_at),
        "auto_approved": signup.auto_approved,
        "reason": signup.reason or None,
        "uid_number": signup.uid_number,
        "attempts": signup.attempts,
        "last_error": signup.last_error or None,
        "activated_at": _iso(signup.activated_at),
    }


def user_row(account: DirectoryUser, *, last_login: Any = None, running_nodes: Any = None) -> dict:
    """A directory user as ``users --json`` prints it (``id`` is the uid)."""
    return {
        "id": account.uid,
        "uid": account.uid,
        "state": account.state,
        "uid_number": account.uid_number,
        "name": account.full_name or None,
        "mail": account.mail or None,
        "groups": list(account.groups),
        "admin": account.is_admin,
        "fingerprints": account.fingerprints,
        "last_login": _iso(last_login),
        "running_nodes": running_nodes,
        "synced_at": _iso(account.synced_at),
    }


def reset_row(reset: PasswordReset) -> dict[str, Any]:
    return {
        "id": reset.pk,
        "state": reset.state,
        "uid": reset.uid,
        "email": reset.email or None,
        "created_by": reset.created_by_username or None,
        "created_at": _iso(reset.created_at),
        "expires_at": _iso(reset.expires_at),
        "sent_at": _iso(reset.sent_at),
    }


def run(command: BaseCommand, as_json: bool, action: Callable[[], tuple[dict, str]]) -> None:
    """Run ``action`` (returning the JSON object and a human line) and turn our exceptions into
    the conventional exit statuses. On failure with ``--json`` stdout still gets one object:
    ``{"error": {"message", "field", "exit"}}``."""
    field = None
    try:
        payload, text = action()
    except (SignupError, AccountError) as exc:
        code, message, field = BAD_INPUT, str(exc), exc.field
    except PermissionDenied as exc:
        code, message = NOT_PERMITTED, f"not permitted: {exc}"
    except (SignupStateError, AccountStateError) as exc:
        code, message = FAILED, str(exc)
    except IntegrationError as exc:
        code, message = FAILED, f"failed: {exc}"
    else:
        if as_json:
            command.stdout.write(json.dumps(payload, sort_keys=True))
        else:
            command.stdout.write(text)
        return
    if as_json:
        error = {"message": message, "field": field, "exit": code}
        command.stdout.write(json.dumps({"error": error}, sort_keys=True))
    raise CommandError(message, returncode=code)
