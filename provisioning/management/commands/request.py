from __future__ import annotations

from django.core.management.base import BaseCommand

from provisioning.launches import cli, selectors


class Command(BaseCommand):
    help = "One launch request: parameters, quote, state, approval and step log."

    def add_arguments(self, parser):
        parser.add_argument("id", metavar="ID")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, id: str, json: bool, **options):
        def show():
            launch = cli.request_load(id)
            return {"request": selectors.request_json(launch)}, cli.request_text(launch)

        cli.run(self, json, show)
