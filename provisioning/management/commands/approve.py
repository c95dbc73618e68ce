from __future__ import annotations

from django.core.management.base import BaseCommand

from provisioning.launches import cli, selectors
from provisioning.launches.forms import ApproveForm


class Command(BaseCommand):
    help = (
        "Approve a pending launch request (an admin): `approve ID --by UID [--note T]`, or "
        "smaller than asked with `--workers N` and/or `--hours H` (re-quoted at that size; the "
        "note tells the requester why)."
    )

    def add_arguments(self, parser):
        parser.add_argument("id", metavar="ID")
        parser.add_argument("--by", required=True, metavar="UID", help="the admin approving")
        parser.add_argument("--note", default="", help="for the requester (optional)")
        parser.add_argument("--workers", type=int, default=None, metavar="N")
        parser.add_argument("--hours", type=int, default=None, metavar="H")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, id: str, by: str, note: str, workers, hours, json: bool, **options):
        def act():
            launch = cli.request_load(id)
            actor = cli.user_for(by)
            form = ApproveForm({"workers": workers, "hours": hours, "note": note}, launch=launch)
            if not form.is_valid():
                field, errors = next(iter(form.errors.items()))
                raise cli.bad_input(field, errors[0])
            launch = form.save(by=actor, source="cli")
            return {"request": selectors.request_json(launch)}, cli.request_line(launch)

        cli.run(self, json, act)
