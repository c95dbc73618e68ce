from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand

from billing.budgets import selectors, services
from billing.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_PERMITTED, actor_for, emit_json, fail
from billing.money import amount_str


class Command(BaseCommand):
    help = (
        "The cluster's monthly budget (the Budgets page's actions): show it against this "
        "month's spend and forecast, set it, freeze or unfreeze new launches, or run one "
        "evaluation of its thresholds now (each threshold is mailed once a month). Exit 2 for "
        "bad input, 3 when --by is not an admin."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        show = actions.add_parser("show", help="the budget, spend, forecast, alerts, freeze")
        show.add_argument("--json", action="store_true")

        setting = actions.add_parser("set", help="set the monthly budget")
        setting.add_argument("--monthly", required=True, help="USD per UTC month, e.g. 1000")
        setting.add_argument(
            "--thresholds", default=None, help="percent of actual spend, e.g. 50,80,100"
        )
        setting.add_argument(
            "--forecast", default=None, help="percent of the forecast, e.g. 100 ('' for none)"
        )
        setting.add_argument(
            "--recipients", default=None, help="extra addresses beside the admins: A,B"
        )
        setting.add_argument("--by", default="", help="the admin making the change (UID)")
        setting.add_argument("--json", action="store_true")

        freeze = actions.add_parser("freeze", help="refuse collaborators' new launches")
        freeze.add_argument("--reason", required=True)
        freeze.add_argument("--by", default="", help="the admin making the change (UID)")
        freeze.add_argument("--json", action="store_true")

        unfreeze = actions.add_parser("unfreeze", help="lift the freeze")
        unfreeze.add_argument("--by", default="", help="the admin making the change (UID)")
        unfreeze.add_argument("--json", action="store_true")

        evaluate = actions.add_parser(
            "evaluate", help="compare spend and forecast with the thresholds now; send what is due"
        )
        evaluate.add_argument("--json", action="store_true")

    def handle(self, *args, action: str, **options):
        handler = {
            "show": self._show,
            "set": self._set,
            "freeze": self._freeze,
            "unfreeze": self._unfreeze,
            "evaluate": self._evaluate,
        }[action]
        try:
            handler(**options)
        except services.BudgetInputError as exc:
            fail(self.stderr, str(exc), EXIT_BAD_INPUT)
        except PermissionDenied as exc:
            fail(self.stderr, str(exc) or "not permitted", EXIT_NOT_PERMITTED)

    def _show(self, *, json: bool, **options):
        view = selectors.budget_overview()
        if json:
            emit_json(self.stdout, {"budget": view.as_json()})
            return
        out = self.stdout.write
        if not view.set:
            out(f"No budget set for {view.month:%Y-%m}: budget set --monthly AMOUNT --by U")
        else:
            out(f"Budget {view.month:%Y-%m}: {amount_str(view.monthly)} USD ({view.state})")
            out(
                f"  actual spend {amount_str(view.spend.actual):>10}  {view.spend_percent} % "
                f"({view.spend.source})"
            )
            out(
                f"  forecast     {amount_str(view.spend.forecast):>10}  {view.forecast_percent} % "
                "(estimate, to the month's end)"
            )
            out("  thresholds: " + ", ".join(t.label for t in view.thresholds))
            for alert in view.alerts:
                when = f"{alert.sent_at:%Y-%m-%d %H:%M} UTC" if alert.sent_at else "not sent yet"
                out(f"  alert {alert.threshold}: {alert.state}, {when}")
        freeze = view.freeze
        if freeze.frozen:
            out(
                f"Launches frozen by {freeze.by} at {freeze.at:%Y-%m-%d %H:%M} UTC until "
                f"{freeze.until:%Y-%m-%d %H:%M} UTC: {freeze.reason}"
            )
        else:
            out("Launches are not frozen.")

    def _set(self, *, monthly, thresholds, forecast, recipients, by: str, json: bool, **options):
        actor = actor_for(by, self.stderr)
        services.budget_set(
            actor=actor,
            monthly=monthly,
            thresholds=thresholds,
            forecast=forecast,
            recipients=recipients,
            source="cli",
        )
        self._written(json, "budget set")

    def _freeze(self, *, reason: str, by: str, json: bool, **options):
        actor = actor_for(by, self.stderr)
        services.budget_freeze(actor=actor, reason=reason, source="cli")
        self._written(json, "new launches frozen")

    def _unfreeze(self, *, by: str, json: bool, **options):
        actor = actor_for(by, self.stderr)
        services.budget_unfreeze(actor=actor, source="cli")
        self._written(json, "freeze lifted")

    def _written(self, json: bool, message: str) -> None:
        if json:
            emit_json(self.stdout, {"budget": selectors.budget_overview().as_json()})
            return
        self.stderr.write(message)

    def _evaluate(self, *, json: bool, **options):
        result = services.budget_run()
        if json:
            emit_json(self.stdout, {"evaluation": result.as_json()})
            if result.failed:
                raise SystemExit(EXIT_FAILED)
            return
        if result.budget is None:
            self.stderr.write("no budget set: no threshold to evaluate")
        else:
            self.stdout.write(
                f"{result.month}: actual {result.actual}, forecast {result.forecast} against "
                f"{result.budget}; crossed: {', '.join(result.crossed) or 'none'}"
            )
        for sent in result.sent:
            self.stdout.write(f"sent {sent['what']} to {', '.join(sent['to'])}")
        for failed in result.failed:
            self.stderr.write(f"not sent {failed['what']}: {failed['error']}")
        if not result.sent and not result.failed:
            self.stdout.write("nothing to send")
        if result.failed:
            # Claimed and queued: the next evaluation (every 15 minutes) tries again.
            raise SystemExit(EXIT_FAILED)
