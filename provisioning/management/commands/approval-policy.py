from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand

from billing.money import amount_str
from provisioning.launches import cli
from provisioning.launches.forms import ApprovalPolicyForm
from provisioning.launches.models import ApprovalPolicy, LaunchKind

YES, NO = {"yes", "y", "true", "1", "on"}, {"no", "n", "false", "0", "off"}


def require_parse(text: str) -> dict[str, bool]:
    """``spark=yes,gpu=yes,jupyter=no`` (any of the kinds, yes/no)."""
    found: dict[str, bool] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, value = part.partition("=")
        kind, value = kind.strip().lower(), value.strip().lower()
        if not sep or kind not in LaunchKind.values or value not in YES | NO:
            raise cli.bad_input(
                "require",
                f"{part!r}: give KIND=yes|no for kinds {', '.join(LaunchKind.values)}, "
                "e.g. spark=yes,gpu=yes,jupyter=no",
            )
        found[kind] = value in YES
    return found


def policy_text(policy: ApprovalPolicy) -> str:
    require = ", ".join(
        f"{kind}={'yes' if policy.requires(kind) else 'no'}" for kind in LaunchKind.values
    )
    text = (
        f"threshold ${amount_str(policy.threshold)} of maximum cost; collaborators always need "
        f"approval: {require}"
    )
    if policy.updated_by_username:
        text += f" (set by {policy.updated_by_username} at {policy.updated_at:%Y-%m-%d %H:%M} UTC)"
    return text


class Command(BaseCommand):
    help = (
        "The approval policy: `approval-policy show [--json]`, or `approval-policy set "
        "[--threshold USD] [--require spark=yes,gpu=yes,jupyter=no] --by UID` (an admin)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        show = actions.add_parser("show", help="print the policy")
        show.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        change = actions.add_parser("set", help="change the threshold and/or the requirements")
        change.add_argument("--threshold", default=None, metavar="USD")
        change.add_argument("--require", default=None, metavar="KIND=yes|no,...")
        change.add_argument("--by", required=True, metavar="UID", help="the admin")
        change.add_argument("--json", action="store_true", default=argparse.SUPPRESS)

    def handle(self, *args, action: str, json: bool = False, **options):
        if action == "show":
            cli.run(self, json, self._show)
        else:
            cli.run(self, json, lambda: self._set(options))

    def _show(self):
        policy = ApprovalPolicy.current()
        return {"policy": policy.as_json()}, policy_text(policy)

    def _set(self, options):
        threshold, require = options["threshold"], options["require"]
        if threshold is None and require is None:
            raise cli.bad_input("threshold", "give --threshold and/or --require")
        actor = cli.user_for(options["by"])
        current = ApprovalPolicy.current()
        data = ApprovalPolicyForm.initial_from(current)
        if threshold is not None:
            data["threshold"] = threshold.strip().lstrip("$")
        for kind, value in require_parse(require or "").items():
            data[f"require_{kind}"] = value
        form = ApprovalPolicyForm({k: v for k, v in data.items() if v is not False})
        if not form.is_valid():
            field, errors = next(iter(form.errors.items()))
            raise cli.bad_input(field, errors[0])
        policy = form.save(by=actor, source="cli")
        return {"policy": policy.as_json()}, policy_text(policy)
