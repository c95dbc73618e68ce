from __future__ import annotations

from django.core.management.base import BaseCommand

from provisioning.launches import cli, execution, selectors


class Command(BaseCommand):
    help = (
        "Stop a launch: its workload, instances and join credentials are removed and its final "
        "cost recorded (a request that runs nothing yet is cancelled). Its owner or requester, "
        "or an admin. `stop ID --by UID`. Safe to repeat."
    )

    def add_arguments(self, parser):
        parser.add_argument("id", metavar="ID")
        parser.add_argument("--by", required=True, metavar="UID", help="who stops it")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, id: str, by: str, json: bool, **options):
        def act():
            launch = cli.request_load(id)
            actor = cli.user_for(by)
            launch = execution.launch_stop(launch.pk, by=actor, source="cli")
            return {"request": selectors.request_json(launch)}, cli.request_line(launch)

        cli.run(self, json, act)
