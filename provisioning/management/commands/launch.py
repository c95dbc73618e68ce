from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand

from provisioning.launches import cli, selectors
from provisioning.launches.forms import SparkLaunchForm
from provisioning.models import Pool


class Command(BaseCommand):
    help = (
        "Ask for a launch, quoted now and decided by the approval policy: `launch spark "
        "--workers N --instance-type T --hours H --user U [--on-demand] "
        "[--allow-on-demand-fallback] [--by U] [--json]`. --by defaults to --user; only admins "
        "launch for someone else."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")
        kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
        spark = kinds.add_parser("spark", help="Spark workers from the spark pool")
        spark.add_argument("--workers", type=int, required=True, metavar="N")
        spark.add_argument("--instance-type", required=True, metavar="T")
        spark.add_argument("--hours", type=int, required=True, metavar="H")
        spark.add_argument("--user", required=True, metavar="UID", help="the owner")
        spark.add_argument("--on-demand", action="store_true", help="on-demand, not spot")
        spark.add_argument("--allow-on-demand-fallback", action="store_true")
        spark.add_argument("--by", default="", metavar="UID", help="who asks (default: --user)")
        spark.add_argument("--pool", default="spark", help=argparse.SUPPRESS)
        spark.add_argument("--json", action="store_true", default=argparse.SUPPRESS)

    def handle(self, *args, kind: str, json: bool = False, **options):
        cli.run(self, json, lambda: self._spark(options))

    def _spark(self, options):
        from clusterweb.accounts.login.services import user_from_directory

        cli.uid_check(options["user"], flag="--user")
        by = cli.user_for(options["by"] or options["user"])
        pool = Pool.objects.filter(slug=options["pool"]).first()
        if pool is None:
            raise cli.bad_input("pool", f"no pool {options['pool']}")
        form = SparkLaunchForm(
            {
                "workers": options["workers"],
                "instance_type": options["instance_type"],
                "hours": options["hours"],
                "capacity_type": "on-demand" if options["on_demand"] else "spot",
                "allow_on_demand_fallback": options["allow_on_demand_fallback"],
                "owner": options["user"],
            },
            user=by,
            pool=pool,
            owner_lookup=lambda uid: user_from_directory(uid=uid),
        )
        if not form.is_valid():
            field, errors = next(iter(form.errors.items()))
            if form.not_permitted:
                raise cli.CommandFailed(
                    cli.EXIT_NOT_PERMITTED, f"not permitted: {form.errors['owner'][0]}", "owner"
                )
            raise cli.bad_input(None if field == "__all__" else field, errors[0])
        launch = form.save(source="cli")
        self.stderr.write(
            f"request {launch.pk} is {launch.state}"
            + (f": {launch.approval_reason}" if launch.approval_reason else "")
        )
        return {"request": selectors.request_json(launch)}, cli.request_line(launch)
