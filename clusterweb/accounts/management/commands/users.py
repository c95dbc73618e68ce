from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand

from clusterweb.accounts import cli
from clusterweb.accounts.directory import selectors, services

ACTIONS = {
    "disable": "lock the account (no password or SSH key works), remove it from users/admins, "
    "end its dashboard sessions",
    "enable": "give a disabled account its groups back and lift the lock",
    "promote": "add the user to the admins group",
    "demote": "remove the user from the admins group (never the last active admin)",
    "reset-link": "make a one-time password reset link, email it and print it",
}


class Command(BaseCommand):
    help = (
        "List the directory's users (from the database copy; `users sync` reads the directory "
        "again), or act on one: disable, enable, promote, demote, reset-link. Writes need --by "
        "UID (an admin of the directory)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        actions = parser.add_subparsers(dest="action", metavar="ACTION")
        sync = actions.add_parser("sync", help="read the directory into the database now")
        sync.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        for name, what in ACTIONS.items():
            sub = actions.add_parser(name, help=what)
            sub.add_argument("uid", metavar="UID")
            sub.add_argument("--by", required=True, metavar="UID", help="the admin acting")
            # SUPPRESS: without it the subcommand's default would override `users --json ...`.
            sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
            if name == "disable":
                sub.add_argument("--reason", default="", help="kept in the audit log")

    def handle(self, *args, action: str | None = None, json: bool = False, **options):
        if action is None:
            cli.run(self, json, self._list)
            return
        if action == "sync":
            cli.run(self, json, self._sync)
            return
        uid, by = options["uid"], options["by"]

        def act():
            actor = cli.admin_from_directory(by)
            if action == "reset-link":
                outcome = services.password_reset_issue(uid=uid, actor=actor, source="cli")
                row = {**cli.reset_row(outcome.reset), "link": outcome.link}
                row["mail_sent"] = outcome.sent
                if not outcome.sent:
                    self.stderr.write(
                        f"The reset link for {uid} was not emailed ({outcome.error}): hand it "
                        "over another way."
                    )
                text = (
                    f"Reset link for {uid}, valid until "
                    f"{outcome.reset.expires_at:%Y-%m-%d %H:%M} UTC: {outcome.link}"
                )
                return {"reset": row}, text
            if action == "disable":
                account = services.account_disable(
                    uid=uid, actor=actor, reason=options["reason"], source="cli"
                )
            else:
                account = services.ACTIONS[action](uid=uid, actor=actor, source="cli")
            return {"user": cli.user_row(account)}, f"{uid}: {account.state}" + (
                ", admin" if account.is_admin else ""
            )

        cli.run(self, json, act)

    def _list(self):
        people = selectors.directory_people()
        rows = [
            cli.user_row(p.account, last_login=p.last_login, running_nodes=p.running_nodes)
            for p in people
        ]
        lines = [f"{'UID':<16}  {'STATE':<10}  {'GROUPS':<24}  {'LAST LOGIN':<16}  NODES"]
        lines += [
            f"{r['uid']:<16}  {r['state']:<10}  {','.join(r['groups']) or '-':<24}  "
            f"{(r['last_login'] or 'never')[:16]:<16}  "
            f"{'-' if r['running_nodes'] is None else r['running_nodes']}"
            for r in rows
        ]
        return {"users": rows}, "\n".join(lines)

    def _sync(self):
        counts = services.directory_users_sync()
        return {"sync": counts}, (
            f"Read {counts['people']} people: {counts['added']} new, {counts['changed']} "
            f"changed, {counts['removed']} gone."
        )
