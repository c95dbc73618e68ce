from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from billing.cli import EXIT_BAD_INPUT, emit_json, fail
from billing.money import amount_str, rate_str
from billing.prices.estimates import PlanError, estimate_run


class Command(BaseCommand):
    help = (
        "What would a plan cost? Prices a JSON plan {region, items} with the catalog's current "
        "prices (spot where trustworthy) and prints each item, its price and source, and the "
        "total. Exit 2 for a bad plan, naming the item and the field."
    )

    def add_arguments(self, parser):
        parser.add_argument("--plan", required=True, help="JSON plan file, or - for stdin")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, plan: str, json: bool, **options):
        try:
            text = sys.stdin.read() if plan == "-" else Path(plan).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            fail(self.stderr, f"plan: cannot read {plan}: {exc}", EXIT_BAD_INPUT)
        try:
            estimate = estimate_run(plan_text=text)
        except PlanError as exc:
            fail(self.stderr, str(exc), EXIT_BAD_INPUT)
        for notice in estimate.notices:
            self.stderr.write(f"notice: {notice}")
        if json:
            emit_json(self.stdout, estimate.as_json())
            return
        self.stdout.write(
            f"Estimate for {estimate.region} at {estimate.at:%Y-%m-%d %H:%M} UTC "
            f"({estimate.currency}; an estimate, not a bill)"
        )
        for line in estimate.lines:
            self.stdout.write(
                f"{line.index:>3}  {line.label}: {line.description}, {line.quantity} at "
                f"{rate_str(line.price)}/{line.unit} = {amount_str(line.cost)}"
            )
            self.stdout.write(f"     source: {line.price_source}")
        self.stdout.write(
            f"Total: {amount_str(estimate.total)} {estimate.currency} (sum of the rounded items)"
        )
