"""Command line plumbing of the launch commands (``launch``, ``requests``, ``request``,
``approve``, ``reject``, ``cancel``, ``approval-policy``): CONVENTIONS.md's exit statuses (0 done,
1 failed, 2 bad input naming the field, 3 not permitted), exactly one JSON object on stdout with
``--json`` (on failure ``{"error": {"message", "field", "exit"}}``), messages on stderr. The
same services, forms and policy as the pages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand

from billing.money import amount_str
from clusterweb.errors import IntegrationError
from provisioning.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_PERMITTED
from provisioning.launches import selectors
from provisioning.launches.models import LaunchRequest
from provisioning.launches.services import LaunchInputError

# The flag a form or service field is given as on the command line.
FLAGS = {
    "workers": "--workers",
    "count": "--workers",
    "hours": "--hours",
    "instance_type": "--instance-type",
    "capacity_type": "--on-demand",
    "allow_on_demand_fallback": "--allow-on-demand-fallback",
    "owner": "--user",
    "note": "--note",
    "threshold": "--threshold",
    "require": "--require",
    "id": "ID",
}


class CommandFailed(Exception):
    def __init__(self, code: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def bad_input(field: str | None, message: str) -> CommandFailed:
    flag = FLAGS.get(field or "", field)
    return CommandFailed(EXIT_BAD_INPUT, f"{flag}: {message}" if flag else message, field)


def uid_check(uid: str, *, flag: str) -> None:
    """A uid PostgreSQL can compare: a NUL character is bad input (exit 2), not a DataError."""
    if "\x00" in uid:
        raise CommandFailed(
            EXIT_BAD_INPUT, f"{flag}: a user name has no NUL character", flag.lstrip("-")
        )


def user_for(uid: str, *, flag: str = "--by") -> Any:
    """The user ``uid`` names, with groups as the directory has them now (created from LDAP if
    they never logged in)."""
    from clusterweb.accounts.login.services import user_from_directory

    if not uid:
        raise CommandFailed(EXIT_BAD_INPUT, f"{flag} UID is required", flag.lstrip("-"))
    uid_check(uid, flag=flag)
    try:
        return user_from_directory(uid=uid)
    except PermissionDenied as exc:
        raise CommandFailed(EXIT_NOT_PERMITTED, str(exc), flag.lstrip("-")) from None


def run(command: BaseCommand, as_json: bool, action: Callable[[], tuple[dict, str]]) -> None:
    """Run ``action`` (returning the JSON object and a human text) and turn our exceptions
    into the conventional exit statuses."""
    try:
        try:
            payload, text = action()
        except LaunchInputError as exc:
            raise bad_input(exc.field, exc.message) from None
        except PermissionDenied as exc:
            raise CommandFailed(EXIT_NOT_PERMITTED, f"not permitted: {exc}") from None
        except IntegrationError as exc:
            raise CommandFailed(EXIT_FAILED, f"failed: {exc}") from None
    except CommandFailed as failed:
        if as_json:
            error = {"message": failed.message, "field": failed.field, "exit": failed.code}
            command.stdout.write(json.dumps({"error": error}, indent=2))
        command.stderr.write(failed.message)
        raise SystemExit(failed.code) from None
    command.stdout.write(json.dumps(payload, indent=2) if as_json else text)


def request_load(request_id: Any) -> LaunchRequest:
    try:
        pk = int(request_id)
    except (TypeError, ValueError):
        raise bad_input("id", f"no launch request {request_id}") from None
    launch = (
        LaunchRequest.objects.select_related("pool", "owner", "requested_by").filter(pk=pk).first()
    )
    if launch is None:
        raise bad_input("id", f"no launch request {request_id}")
    return launch


def _money(value: Any) -> str:
    return "?" if value is None else f"${amount_str(value)}"


def request_line(launch: LaunchRequest) -> str:
    """One request in one line (``requests``, and after each write)."""
    size = f"{launch.count} x {launch.instance_type or '(none)'}"
    if launch.approved_smaller:
        size += f" (approved {launch.granted_count} x {launch.granted_hours} h)"
    return (
        f"#{launch.pk} {launch.kind} {launch.state} owner={launch.owner.username} "
        f"pool={launch.pool.slug} {size} {launch.capacity_type} {launch.hours} h "
        f"expected {_money(launch.expected_cost)} max {_money(launch.granted_max_cost)}"
    )


def request_text(launch: LaunchRequest) -> str:
    """A request in full (``request ID``)."""
    row = selectors.request_json(launch)
    lines = [request_line(launch)]
    lines.append(f"  requested by {row['requested_by']} at {row['created_at']}")
    lines.append(f"  hourly {row['hourly'] or 'unknown'} per instance: {row['hourly_source']}")
    if launch.approval_reason:
        lines.append(f"  needs approval: {launch.approval_reason}")
    if row["approval"]:
        approval = row["approval"]
        who = "the policy" if approval["auto"] else approval["by"]
        lines.append(
            f"  approved by {who} at {approval['at']}"
            + (" (self-approval)" if approval["self"] else "")
            + (f": {approval['note']}" if approval["note"] and not approval["auto"] else "")
        )
    if row["rejection"]:
        lines.append(f"  rejected by {row['rejection']['by']}: {row['rejection']['note'] or '-'}")
    if row["stop_reason"]:
        lines.append(f"  stop reason: {row['stop_reason']}")
    if row["error"]:
        lines.append(f"  error: {row['error']}")
    for step in row["steps"]:
        lines.append(f"  step {step['name']}: {step['state']} {step['detail']}".rstrip())
    return "\n".join(lines)
