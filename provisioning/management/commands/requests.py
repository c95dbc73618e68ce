from __future__ import annotations

from django.core.management.base import BaseCommand

from provisioning.launches import cli, selectors
from provisioning.launches.models import FINAL_STATES, LaunchRequest


class Command(BaseCommand):
    help = (
        "Launch requests still open (pending, approved, launching, running, stopping), newest "
        "first; with --all, every request; with --user, only those UID owns."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="include finished requests")
        parser.add_argument("--user", default="", metavar="UID", help="only this owner's")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, all: bool, user: str, json: bool, **options):
        def listing():
            requests = LaunchRequest.objects.select_related("pool", "owner", "requested_by")
            if not all:
                requests = requests.exclude(state__in=FINAL_STATES)
            if user:
                cli.uid_check(user, flag="--user")
                requests = requests.filter(owner__username__iexact=user)
            requests = list(requests.prefetch_related("steps").order_by("-created_at", "-pk"))
            rows = selectors.requests_json(requests)
            text = "\n".join(cli.request_line(r) for r in requests) or "no launch requests"
            return {"requests": rows}, text

        cli.run(self, json, listing)
