from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand

from clusterweb.accounts import cli
from clusterweb.accounts.signup import selectors, services


class Command(BaseCommand):
    help = (
        "List signups and invitations, or act on one: approve, reject, revoke (an unused "
        "invitation), resend (an invitation, with a fresh link). Writes need --by UID (an admin)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        actions = parser.add_subparsers(dest="action", metavar="ACTION")
        for name, what in (
            ("approve", "approve a signup waiting for a decision"),
            ("reject", "reject a signup waiting for a decision"),
            ("revoke", "revoke an unused invitation"),
            ("resend", "send an invitation again with a fresh link"),
        ):
            sub = actions.add_parser(name, help=what)
            sub.add_argument("id", type=int)
            sub.add_argument("--by", required=True, metavar="UID", help="the admin acting")
            # SUPPRESS: without it the subcommand's default would override `signups --json ...`.
            sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
            if name == "reject":
                sub.add_argument("--reason", default="", help="told to the applicant")
            if name == "resend":
                sub.add_argument("--days", type=int, help="days the new link stays valid")

    def handle(self, *args, action: str | None = None, json: bool = False, **options):
        if action is None:
            cli.run(self, json, self._list)
            return
        signup_id, by = options["id"], options["by"]

        def act():
            actor = cli.admin_from_directory(by)
            if action == "approve":
                signup = services.signup_approve(signup_id=signup_id, actor=actor, source="cli")
                text = f"Approved signup {signup.pk} ({signup.username}): creating the account."
            elif action == "reject":
                signup = services.signup_reject(
                    signup_id=signup_id, actor=actor, reason=options["reason"], source="cli"
                )
                text = f"Rejected signup {signup.pk} ({signup.username})."
            elif action == "revoke":
                signup = services.invitation_revoke(signup_id=signup_id, actor=actor, source="cli")
                text = f"Revoked invitation {signup.pk} for {signup.email}."
            else:
                outcome = services.invitation_resend(
                    signup_id=signup_id, actor=actor, days=options.get("days"), source="cli"
                )
                signup = outcome.signup
                text = f"Re-sent invitation {signup.pk} to {signup.email}" + (
                    "." if outcome.sent else f"; the email failed: {outcome.error}"
                )
            return {"signup": cli.signup_row(signup)}, text

        cli.run(self, json, act)

    def _list(self):
        signups = list(selectors.signup_list())
        rows = [cli.signup_row(s) for s in signups]
        lines = [f"{'ID':>5}  {'STATE':<16}  {'USERNAME':<16}  EMAIL"]
        lines += [
            f"{r['id']:>5}  {r['state']:<16}  {r['username'] or '-':<16}  {r['email']}"
            for r in rows
        ]
        return {"signups": rows}, "\n".join(lines)
