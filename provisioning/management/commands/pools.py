from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand

from provisioning import selectors, services
from provisioning.cli import EXIT_BAD_INPUT, EXIT_NOT_PERMITTED, actor_for, emit_json, fail


class Command(BaseCommand):
    help = (
        "Node pools: list them (`pools [--json]`) or create and update them from a JSON or YAML "
        "file (`pools load [FILE] --by UID`; FILE defaults to POOLS_FILE)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")
        actions = parser.add_subparsers(dest="action")
        load = actions.add_parser("load", help="create or update the pools a file names")
        load.add_argument("file", nargs="?", default="", help="pool file (default: POOLS_FILE)")
        load.add_argument("--by", default="", help="the admin making the change (UID)")
        load.add_argument("--json", action="store_true")

    def handle(self, *args, action: str | None = None, json: bool = False, **options):
        if action == "load":
            self._load(file=options["file"], by=options["by"], json=json)
            return
        pools = selectors.pools_list()
        if json:
            emit_json(self.stdout, {"pools": [services.pool_json(p) for p in pools]})
            return
        self.stdout.write(
            f"{'POOL':<10} {'KIND':<6} {'CAPACITY':<10} {'FALLBACK':<9} {'MAX NODES':>9} "
            f"{'MAX HOURS':>9} {'NODES':>5}  TYPES"
        )
        for pool in pools:
            self.stdout.write(
                f"{pool.slug:<10} {pool.kind:<6} {pool.lifecycle:<10} "
                f"{'yes' if pool.on_demand_fallback else 'no':<9} {pool.max_nodes:>9} "
                f"{pool.max_hours or '-':>9} {pool.live_nodes:>5}  {', '.join(pool.instance_types)}"
            )

    def _load(self, *, file: str, by: str, json: bool) -> None:
        path = file or settings.POOLS_FILE
        if not path:
            fail(self.stderr, "file: name a pool file, or set POOLS_FILE", EXIT_BAD_INPUT)
        try:
            # Validate before asking the directory who --by is: a bad file is bad input anyway.
            services.pool_file_read(Path(path))
            actor = actor_for(by, self.stderr)
            outcome = services.pools_load(actor=actor, path=Path(path), source="cli")
        except services.PoolInputError as exc:
            field = f"{exc.field}: " if exc.field else ""
            fail(self.stderr, f"{field}{exc}", EXIT_BAD_INPUT)
        except PermissionDenied as exc:
            fail(self.stderr, str(exc) or "not permitted", EXIT_NOT_PERMITTED)
        change = {slug: key for key, slugs in outcome.items() for slug in slugs}
        if json:
            loaded = [p for p in selectors.pools_list() if p.slug in change]
            emit_json(
                self.stdout,
                {"pools": [{**services.pool_json(p), "change": change[p.slug]} for p in loaded]},
            )
        else:
            for key, slugs in outcome.items():
                self.stderr.write(f"{key}: {', '.join(slugs) or '-'}")
