from __future__ import annotations

import re
from datetime import date

from django.core.management.base import BaseCommand

from billing.cli import EXIT_BAD_INPUT, emit_json, fail
from billing.costs.selectors import NONE, cost_overview
from billing.money import amount_str
from clusterweb import clock

MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def month_parse(text: str, today: date) -> date:
    """The first day of ``YYYY-MM``; ValueError naming the field when malformed or in the
    future."""
    match = MONTH_RE.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        raise ValueError(f"--month: expected YYYY-MM (like {today:%Y-%m}), not {text!r}")
    month = date(int(match.group(1)), int(match.group(2)), 1)
    if month > today.replace(day=1):
        raise ValueError(f"--month: {text} is in the future (this month is {today:%Y-%m})")
    return month


class Command(BaseCommand):
    help = (
        "What this month (or --month YYYY-MM) has cost so far and where it will end: the "
        "estimate (base, burst, per pool and owner), the bill as Cost Explorer last reported it, "
        "and the forecast. Reads the database only (never AWS). Exit 2 for a bad --month."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", default="", help="YYYY-MM (UTC); this month by default")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, month: str, json: bool, **options):
        now = clock.now()
        chosen = None
        if month:
            try:
                chosen = month_parse(month, now.date())
            except ValueError as exc:
                fail(self.stderr, str(exc), EXIT_BAD_INPUT)
        overview = cost_overview(month=chosen, now=now)
        estimate, billed, forecast = overview.estimate, overview.billed, overview.forecast
        if not estimate.has_data:
            self.stderr.write(f"notice: no cost recorded for {overview.month:%Y-%m}")
        for unpriced in estimate.unpriced:
            what = f"{unpriced.kind} {unpriced.label}" + (
                f" ({unpriced.item})" if unpriced.item else ""
            )
            self.stderr.write(
                f"unpriced: {what} has no price for {unpriced.hours} h since "
                f"{unpriced.since:%Y-%m-%d %H:%M} UTC; not in any total"
            )
        if billed.failing:
            self.stderr.write(
                f"notice: the latest Cost Explorer read failed: {billed.last_attempt.error}"
            )
        if json:
            emit_json(self.stdout, overview.as_json())
            return
        as_of = f"{estimate.as_of:%Y-%m-%d %H:%M} UTC" if estimate.as_of else "never computed"
        out = self.stdout.write
        out(f"Cost of {overview.month:%Y-%m} (UTC month, USD)")
        out(
            f"  estimate   {amount_str(estimate.total):>10}  as of {as_of} (base "
            f"{amount_str(estimate.base)}, burst {amount_str(estimate.burst)})"
        )
        if billed.total is None:
            out("  billed            -  no Cost Explorer data for this month")
        else:
            out(
                f"  billed     {amount_str(billed.total):>10}  {billed.first_day:%m-%d}.."
                f"{billed.last_day:%m-%d}, read {billed.as_of:%Y-%m-%d %H:%M} UTC "
                f"(modelled services: billed {amount_str(billed.modelled.billed)}, estimate "
                f"{amount_str(billed.modelled.estimate)} over the "
                f"{len(billed.compared_days)} days reported in full)"
            )
        out(f"  forecast   {amount_str(forecast.total):>10}  to the month's end (estimate)")
        out(f"  Cost Explorer requests this month: {billed.requests_this_month}")
        out("By pool:")
        for key, value in estimate.by_pool().items():
            out(f"  {'no pool' if key == NONE else key:<16} {amount_str(value):>10}")
        out("By owner:")
        for key, value in estimate.by_owner().items():
            out(f"  {'no owner' if key == NONE else key:<16} {amount_str(value):>10}")
