from __future__ import annotations

from django.core.management.base import BaseCommand

from provisioning.launches import cli, selectors
from provisioning.launches.forms import RejectForm


class Command(BaseCommand):
    help = "Reject a pending launch request (an admin): `reject ID --by UID [--note T]`."

    def add_arguments(self, parser):
        parser.add_argument("id", metavar="ID")
        parser.add_argument("--by", required=True, metavar="UID", help="the admin rejecting")
        parser.add_argument("--note", default="", help="why, for the requester (optional)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, id: str, by: str, note: str, json: bool, **options):
        def act():
            launch = cli.request_load(id)
            actor = cli.user_for(by)
            form = RejectForm({"note": note}, launch=launch)
            if not form.is_valid():
                field, errors = next(iter(form.errors.items()))
                raise cli.bad_input(field, errors[0])
            launch = form.save(by=actor, source="cli")
            return {"request": selectors.request_json(launch)}, cli.request_line(launch)

        cli.run(self, json, act)
