from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand

from billing.cli import (
    EXIT_BAD_INPUT,
    EXIT_NOT_PERMITTED,
    actor_for,
    emit_json,
    fail,
    override_json,
    quote_json,
)
from billing.models import PriceKind
from billing.prices import selectors, services


class Command(BaseCommand):
    help = (
        "The price catalog: list prices with their sources, quote one price, import an AWS bulk "
        "price list offer file (AmazonEC2), add or remove admin overrides (the Prices page's "
        "actions)."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)

        listing = actions.add_parser("list", help="every price of a region with its source")
        listing.add_argument("--region", default="", help="region (default: every region)")
        listing.add_argument("--json", action="store_true")

        quote = actions.add_parser("quote", help="one price at a time, with its source")
        quote.add_argument("--kind", required=True, choices=PriceKind.values)
        quote.add_argument("--region", required=True)
        quote.add_argument("--item", default="", help="instance type or storage service")
        quote.add_argument("--zone", default=None, help="spot: one availability zone")
        quote.add_argument("--at", default="", help="ISO 8601 time (default: now)")
        quote.add_argument("--json", action="store_true")

        importing = actions.add_parser(
            "import", help="import an AWS bulk price list offer file for AmazonEC2 (JSON)"
        )
        importing.add_argument("file", help="offer file, e.g. a regional AmazonEC2 index.json")
        importing.add_argument("--region", action="append", default=[], help="only this region")
        importing.add_argument("--by", default="", help="the admin making the change (UID)")
        importing.add_argument("--json", action="store_true")

        override = actions.add_parser("override", help="add or remove an admin price override")
        override_actions = override.add_subparsers(dest="override_action", required=True)
        add = override_actions.add_parser("add", help="set a price from now on")
        add.add_argument("--kind", required=True, choices=PriceKind.values)
        add.add_argument("--region", required=True)
        add.add_argument("--item", default="", help="instance type or storage service")
        add.add_argument("--price", required=True, help="USD per hour, GB-month or address-hour")
        add.add_argument("--note", default="")
        add.add_argument(
            "--from",
            dest="effective_from",
            default="",
            help="ISO 8601 UTC start in the past (a correction: past days are recomputed)",
        )
        add.add_argument("--by", default="", help="the admin making the change (UID)")
        add.add_argument("--json", action="store_true")
        remove = override_actions.add_parser("remove", help="end an override now")
        remove.add_argument("id", type=int)
        remove.add_argument("--by", default="", help="the admin making the change (UID)")
        remove.add_argument("--json", action="store_true")

    def handle(self, *args, action: str, **options):
        handler = {
            "list": self._list,
            "quote": self._quote,
            "import": self._import,
            "override": self._override,
        }[action]
        try:
            handler(**options)
        except services.PriceInputError as exc:
            field = f"{exc.field}: " if exc.field else ""
            fail(self.stderr, f"{field}{exc}", EXIT_BAD_INPUT)
        except PermissionDenied as exc:
            fail(self.stderr, str(exc) or "not permitted", EXIT_NOT_PERMITTED)

    # --- reads ---------------------------------------------------------------------------------
    def _list(self, *, region: str, json: bool, **options):
        regions = [region] if region else selectors.price_regions()
        rows = []
        for name in regions:
            table = selectors.price_table(name)
            for row in table.instances:
                rows.append(("on-demand", name, row.instance_type, row.on_demand))
                rows.append(("spot", name, row.instance_type, row.spot))
            for service, _, quote in table.storage:
                rows.append(("storage", name, service, quote))
            if table.ipv4 is not None:
                rows.append(("ipv4", name, "public-ipv4", table.ipv4))
        if json:
            emit_json(
                self.stdout,
                {
                    "prices": [
                        {"kind": kind, "region": name, "item": item, **quote_json(quote)}
                        for kind, name, item, quote in rows
                    ]
                },
            )
            return
        for kind, name, item, quote in rows:
            self.stdout.write(
                f"{name:<10} {kind:<9} {item:<14} {quote.price_text:>9}/{quote.unit:<12} "
                f"{quote.described()}"
            )

    def _quote(self, *, kind: str, region: str, item: str, zone, at: str, json: bool, **options):
        moment = None
        if at:
            try:
                moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
            except ValueError:
                raise services.PriceInputError(
                    f"not an ISO 8601 time: {at!r}", field="at"
                ) from None
            if moment.tzinfo is None:
                raise services.PriceInputError("give a time zone, e.g. ...Z", field="at")
        item = services.price_item_check(kind, region, item)
        if kind == PriceKind.SPOT:
            quote = selectors.spot_quote(region, item, moment, zone=zone)
        else:
            quote = selectors.catalog_quote(kind, region, item, moment)
        if json:
            emit_json(self.stdout, {"quote": {"region": region, "item": item, **quote_json(quote)}})
            return
        self.stdout.write(f"{quote.price_text}/{quote.unit} {quote.described()}")

    # --- writes --------------------------------------------------------------------------------
    def _import(self, *, file: str, region: list[str], by: str, json: bool, **options):
        actor = actor_for(by, self.stderr)
        result = services.price_catalog_import(
            actor=actor, path=Path(file), regions=region, source="cli"
        )
        if result.conflicts:
            self.stderr.write(
                f"{result.conflicts} prices were listed twice with different figures; the "
                "higher one was kept"
            )
        if json:
            emit_json(self.stdout, {"import": result.as_json()})
            return
        self.stderr.write(
            f"imported {result.on_demand} on-demand and {result.storage} storage prices for "
            f"{', '.join(result.regions)} ({result.created} new, {result.updated} updated, "
            f"{result.skipped} products skipped)"
        )

    def _override(self, *, override_action: str, by: str, json: bool, **options):
        actor = actor_for(by, self.stderr)
        if override_action == "add":
            override = services.price_override_add(
                actor=actor,
                kind=options["kind"],
                region=options["region"],
                item=options["item"],
                price=options["price"],
                note=options["note"],
                source="cli",
                effective_from=_moment(options["effective_from"]),
            )
            message = f"override {override.pk} set"
        else:
            override = services.price_override_remove(
                actor=actor, override_id=options["id"], source="cli"
            )
            message = f"override {override.pk} removed"
        if json:
            emit_json(self.stdout, {"override": override_json(override)})
            return
        self.stderr.write(message)


def _moment(text: str) -> datetime | None:
    """``--from``: ISO 8601 with a UTC offset (``2027-03-01T00:00:00Z``), or None when empty."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise services.PriceInputError(
            f"--from {text!r} is not an ISO 8601 time", field="from"
        ) from None
    if moment.tzinfo is None:
        raise services.PriceInputError("--from needs a time zone (UTC)", field="from")
    return moment.astimezone(UTC)
