from __future__ import annotations

from django.core.management.base import BaseCommand

from billing.cli import EXIT_FAILED, emit_json, fail
from billing.tasks import spot_prices_run
from provisioning import inventory


# In billing, not provisioning: it runs the inventory sync and billing's spot price sync, and the
# inventory imports nothing from billing's jobs (tests/test_layers.py).
class Command(BaseCommand):
    help = (
        "Run one inventory sync now (EC2, Kubernetes, volumes, storage sizes, public IPv4) and "
        "one spot price sync, and print what they found. Exit 1 if a part failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-spot-prices", action="store_true", help="skip the spot price sync"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, no_spot_prices: bool, json: bool, **options):
        results = {"inventory": inventory.inventory_sync()}
        if not no_spot_prices:
            results["spot_prices"] = spot_prices_run()
        if json:
            emit_json(self.stdout, {"sync": {k: r.as_json() for k, r in results.items()}})
        else:
            for kind, result in results.items():
                if not result.claimed:
                    self.stdout.write(f"{kind}: another sync is running; nothing done")
                for name, part in result.parts.items():
                    if part.ok:
                        found = ", ".join(f"{k} {v}" for k, v in part.summary.items())
                        self.stdout.write(f"{name}: ok ({found})")
                    else:
                        self.stdout.write(f"{name}: FAILED: {part.error}")
        failed = [r for r in results.values() if r.claimed and not r.ok]
        if failed:
            fail(self.stderr, "; ".join(r.errors for r in failed), EXIT_FAILED)
        skipped = [kind for kind, r in results.items() if not r.claimed]
        if skipped:
            self.stderr.write(f"another {' and '.join(skipped)} sync was running: nothing done")
