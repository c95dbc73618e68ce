from __future__ import annotations

from django.core.management.base import BaseCommand

from provisioning.launches import cli, selectors, services


class Command(BaseCommand):
    help = (
        "Cancel a launch request that runs nothing yet (pending, or approved and not launching): "
        "its owner or requester, or an admin. `cancel ID --by UID`."
    )

    def add_arguments(self, parser):
        parser.add_argument("id", metavar="ID")
        parser.add_argument("--by", required=True, metavar="UID", help="who cancels")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, id: str, by: str, json: bool, **options):
        def act():
            launch = cli.request_load(id)
            actor = cli.user_for(by)
            launch = services.cancel(launch.pk, by=actor, source="cli")
            return {"request": selectors.request_json(launch)}, cli.request_line(launch)

        cli.run(self, json, act)
