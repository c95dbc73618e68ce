from __future__ import annotations

from django.core.management.base import BaseCommand

from clusterweb.accounts import cli
from clusterweb.accounts.signup import services


class Command(BaseCommand):
    help = (
        "Invite EMAIL to sign up: sends the invitation email with a one-time link to the signup "
        "site. The same service and rules as the Users page."
    )

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--by", required=True, metavar="UID", help="the admin inviting")
        parser.add_argument("--days", type=int, help="days the link stays valid (1-30)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, email: str, by: str, days: int | None, json: bool, **options):
        def invite():
            actor = cli.admin_from_directory(by)
            outcome = services.invitation_create(email=email, actor=actor, days=days, source="cli")
            row = {**cli.signup_row(outcome.signup), "signup_url": outcome.link}
            row["mail_sent"] = outcome.sent
            if not outcome.sent:
                self.stderr.write(
                    f"Invitation {outcome.signup.pk} saved, but the email was not sent: "
                    f"{outcome.error}. Re-send it with `signups resend {outcome.signup.pk}`, "
                    "or give the link another way."
                )
            text = (
                f"Invitation {outcome.signup.pk} for {outcome.signup.email}, valid until "
                f"{outcome.signup.expires_at:%Y-%m-%d %H:%M} UTC"
                + ("; email sent." if outcome.sent else f"; link: {outcome.link}")
            )
            return {"signup": row}, text

        cli.run(self, json, invite)
