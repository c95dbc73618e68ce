"""What would a plan cost? Shared by the Estimate page and ``manage.py estimate``.

A plan is JSON: ``{"region": "eu-west-1", "items": [...]}`` where an item is one of

- ``{"label", "kind": "instance", "instance_type", "lifecycle": "spot"|"on-demand", "count",
  "hours", "hourly"?}``: cost = count x hours x hourly;
- ``{"label", "kind": "storage", "service", "gb", "months", "gb_month"?}``: cost = gb x months x
  gb_month, service one of s3, ebs-gp3, ebs-gp2, ebs-st1, ebs-sc1, ebs-standard, efs;
- ``{"label", "kind": "fixed", "monthly", "months"}``: cost = monthly x months.

Optional prices override the catalog's. A spot item without ``hourly`` uses the current spot price
(highest of the region's zones), or on-demand with a notice when no spot price can be trusted.
Each item's cost is rounded to the cent; the total is the sum of the rounded items. Numbers are
read as Decimal (never float). A bad plan raises PlanError naming the item and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from billing.models import STORAGE_SERVICES, PriceKind
from billing.money import (
    CURRENCY,
    MAXIMUM,
    RATE_DECIMALS,
    amount,
    amount_str,
    positive_decimal,
    rate_str,
)
from billing.prices import selectors
from clusterweb import clock

MAX_ITEMS = 200
MAX_PLAN_CHARS = 100_000
# A plan is 3 levels deep ({plan: [items: {item}]}); JSON deeper than this is refused before it is
# parsed (Python's parser would overflow its recursion limit on a few thousand brackets).
MAX_DEPTH = 10
KINDS = ("instance", "storage", "fixed")
LIFECYCLES = ("spot", "on-demand")
FIELDS = {
    "instance": {"label", "kind", "instance_type", "lifecycle", "count", "hours", "hourly"},
    "storage": {"label", "kind", "service", "gb", "months", "gb_month"},
    "fixed": {"label", "kind", "monthly", "months"},
}
REQUIRED = {
    "instance": ("instance_type", "lifecycle", "count", "hours"),
    "storage": ("service", "gb", "months"),
    "fixed": ("monthly", "months"),
}


class PlanError(ValueError):
    """A plan that cannot be priced. The message names the item (index and label) and the field.
    ``gap`` is set when the cause is a price the catalog lacks: (kind, region, item)."""

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        label: str = "",
        field: str = "",
        gap: tuple[str, str, str] | None = None,
    ) -> None:
        self.index = index
        self.label = label
        self.field = field
        self.gap = gap
        where = []
        if index is not None:
            where.append(f"items[{index}]" + (f" ({label!r})" if label else ""))
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass(frozen=True)
class EstimateLine:
    index: int
    label: str
    kind: str
    description: str
    quantity: str
    price: Decimal
    unit: str
    quote: selectors.PriceQuote
    cost: Decimal

    @property
    def price_source(self) -> str:
        return self.quote.described()

    def as_json(self) -> dict[str, str]:
        return {
            "label": self.label,
            "cost": amount_str(self.cost),
            "price": rate_str(self.price),
            "price_source": self.price_source,
        }


@dataclass
class Estimate:
    region: str
    at: datetime
    lines: list[EstimateLine] = field(default_factory=list)
    currency: str = CURRENCY

    @property
    def total(self) -> Decimal:
        return sum((line.cost for line in self.lines), Decimal("0.00"))

    @property
    def notices(self) -> list[str]:
        return [
            f"items[{line.index}] ({line.label!r}): {line.quote.notice}"
            for line in self.lines
            if line.quote.notice
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "items": [line.as_json() for line in self.lines],
            "total": amount_str(self.total),
        }


def plan_parse(text: str) -> dict[str, Any]:
    """The plan object of a JSON text; numbers become Decimal, never float."""
    if len(text) > MAX_PLAN_CHARS:
        raise PlanError(f"plan: longer than {MAX_PLAN_CHARS} characters")
    _depth_check(text)
    try:
        plan = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as exc:
        raise PlanError(
            f"plan: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    if not isinstance(plan, dict):
        raise PlanError('plan: must be a JSON object like {"region": ..., "items": [...]}')
    return plan


def _depth_check(text: str) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH, naming the item and the field where it happens
    (a scan of brackets outside strings; the text need not be valid JSON past that point)."""
    path: list[list[Any]] = []  # per open bracket: [kind, key or index]
    in_string = escaped = False
    key_start = -1
    last_string = ""
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                last_string = text[key_start + 1 : position]
            continue
        if char == '"':
            in_string, key_start = True, position
        elif char == ":" and path and path[-1][0] == "{":
            path[-1][1] = last_string
        elif char == "," and path and path[-1][0] == "[":
            path[-1][1] += 1
        elif char in "[{":
            path.append([char, 0 if char == "[" else None])
            if len(path) > MAX_DEPTH:
                index = field = None
                if len(path) > 2 and path[0] == ["{", "items"] and path[1][0] == "[":
                    index = path[1][1]
                    if path[2][0] == "{" and len(path) > 3:
                        field = path[2][1]
                raise PlanError(
                    f"nested deeper than {MAX_DEPTH} levels of JSON arrays and objects",
                    index=index,
                    field=field or ("" if index is not None else "plan"),
                )
        elif char in "]}" and path:
            path.pop()


# Bounds that keep every product exact in Decimal's 28 digits (and plans plausible).
MAXIMA = {
    "count": Decimal(10_000),
    "hours": Decimal(100_000),
    "gb": Decimal(1_000_000_000),
    "months": Decimal(1_200),
}


def _number(item: dict, name: str, *, places: int, index: int, label: str) -> Decimal:
    try:
        return positive_decimal(
            item[name], places=places, what="value", maximum=MAXIMA.get(name, MAXIMUM)
        )
    except ValueError as exc:
        raise PlanError(str(exc), index=index, label=label, field=name) from None


def _count(item: dict, index: int, label: str) -> Decimal:
    try:
        count = positive_decimal(item["count"], places=0, what="value", maximum=MAXIMA["count"])
    except ValueError:
        raise PlanError(
            f"must be a whole number from 1 to {MAXIMA['count']:,}",
            index=index,
            label=label,
            field="count",
        ) from None
    return count.quantize(Decimal(1))


def _choice(item: dict, name: str, choices: Any, index: int, label: str) -> str:
    value = item[name]
    if not isinstance(value, str) or value not in choices:
        raise PlanError(
            f"must be one of {', '.join(choices)}", index=index, label=label, field=name
        )
    return value


def _text(item: dict, name: str, index: int, label: str) -> str:
    value = item[name]
    if not isinstance(value, str) or not value.strip():
        raise PlanError("must be a non-empty text", index=index, label=label, field=name)
    return value.strip()


def _region(plan: dict) -> str:
    region = plan.get("region", settings.AWS_REGION)
    if not isinstance(region, str) or not region.strip():
        raise PlanError("must be a region code like eu-west-1", field="region")
    region = region.strip()
    known = selectors.price_regions()
    if region not in known:
        raise PlanError(
            f"unknown region {region!r}; the catalog has prices for {', '.join(known) or 'none'}",
            field="region",
        )
    return region


def _item_check(raw: Any, index: int) -> tuple[dict, str, str]:
    if not isinstance(raw, dict):
        raise PlanError("must be a JSON object", index=index)
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        field_name = "label"
        raise PlanError(
            "missing" if "label" not in raw else "must be a non-empty text",
            index=index,
            field=field_name,
        )
    label = label.strip()
    kind = raw.get("kind")
    if kind not in KINDS:
        raise PlanError(
            "missing" if "kind" not in raw else f"must be one of {', '.join(KINDS)}",
            index=index,
            label=label,
            field="kind",
        )
    unknown = sorted(set(raw) - FIELDS[kind])
    if unknown:
        raise PlanError(
            f"unknown field for a {kind} item (allowed: {', '.join(sorted(FIELDS[kind]))})",
            index=index,
            label=label,
            field=unknown[0],
        )
    for name in REQUIRED[kind]:
        if name not in raw:
            raise PlanError("missing", index=index, label=label, field=name)
    return raw, label, kind


def _instance_line(item: dict, index: int, label: str, region: str, at: datetime) -> EstimateLine:
    instance_type = _text(item, "instance_type", index, label)
    lifecycle = _choice(item, "lifecycle", LIFECYCLES, index, label)
    count = _count(item, index, label)
    hours = _number(item, "hours", places=4, index=index, label=label)
    on_demand = selectors.on_demand_quote(region, instance_type, at)
    # A price given in the plan overrides the catalog's, so it prices a type the catalog lacks.
    if not on_demand.known and "hourly" not in item:
        raise PlanError(
            f"no price for {instance_type!r} in {region} (price unknown); an admin can add one "
            "on the Prices page",
            index=index,
            label=label,
            field="instance_type",
            gap=(PriceKind.ON_DEMAND, region, instance_type),
        )
    if "hourly" in item:
        hourly = _number(item, "hourly", places=RATE_DECIMALS, index=index, label=label)
        quote = selectors.PriceQuote(
            price=hourly,
            source="given in the plan",
            effective_from=None,
            kind=PriceKind.SPOT if lifecycle == "spot" else PriceKind.ON_DEMAND,
        )
    elif lifecycle == "spot":
        quote = selectors.spot_quote(region, instance_type, at)
    else:
        quote = on_demand
    assert quote.price is not None  # given, or on-demand is known: every branch has a price
    basis = "spot" if quote.kind == PriceKind.SPOT else "on-demand"
    return EstimateLine(
        index=index,
        label=label,
        kind="instance",
        description=f"{instance_type} {basis}",
        quantity=f"{count} x {hours} h",
        price=quote.price,
        unit="hour",
        quote=quote,
        cost=amount(count * hours * quote.price),
    )


def _storage_line(item: dict, index: int, label: str, region: str, at: datetime) -> EstimateLine:
    service = _choice(item, "service", STORAGE_SERVICES, index, label)
    gb = _number(item, "gb", places=4, index=index, label=label)
    months = _number(item, "months", places=4, index=index, label=label)
    if "gb_month" in item:
        gb_month = _number(item, "gb_month", places=RATE_DECIMALS, index=index, label=label)
        quote = selectors.PriceQuote(
            price=gb_month,
            source="given in the plan",
            effective_from=None,
            kind=PriceKind.STORAGE,
            unit="GB-month",
        )
    else:
        quote = selectors.storage_quote(region, service, at)
        if not quote.known:
            raise PlanError(
                f"no price for {service} in {region} (price unknown); an admin can add one on "
                "the Prices page",
                index=index,
                label=label,
                field="service",
                gap=(PriceKind.STORAGE, region, service),
            )
    assert quote.price is not None
    return EstimateLine(
        index=index,
        label=label,
        kind="storage",
        description=STORAGE_SERVICES[service],
        quantity=f"{gb} GB x {months} months",
        price=quote.price,
        unit="GB-month",
        quote=quote,
        cost=amount(gb * months * quote.price),
    )


def _fixed_line(item: dict, index: int, label: str) -> EstimateLine:
    monthly = _number(item, "monthly", places=2, index=index, label=label)
    months = _number(item, "months", places=4, index=index, label=label)
    quote = selectors.PriceQuote(
        price=monthly, source="given in the plan", effective_from=None, kind="fixed", unit="month"
    )
    return EstimateLine(
        index=index,
        label=label,
        kind="fixed",
        description="fixed monthly",
        quantity=f"{months} months",
        price=monthly,
        unit="month",
        quote=quote,
        cost=amount(monthly * months),
    )


def estimate_compute(*, plan: dict[str, Any], at: datetime | None = None) -> Estimate:
    """Price every item of ``plan`` at ``at`` (now by default). Reads only."""
    at = clock.now() if at is None else at
    unknown = sorted(set(plan) - {"region", "items"})
    if unknown:
        raise PlanError("unknown field (allowed: region, items)", field=unknown[0])
    region = _region(plan)
    if "items" not in plan:
        raise PlanError("missing", field="items")
    items = plan["items"]
    if not isinstance(items, list) or not items:
        raise PlanError("must be a non-empty list of items", field="items")
    if len(items) > MAX_ITEMS:
        raise PlanError(f"at most {MAX_ITEMS} items", field="items")
    estimate = Estimate(region=region, at=at)
    for index, raw in enumerate(items):
        item, label, kind = _item_check(raw, index)
        if kind == "instance":
            line = _instance_line(item, index, label, region, at)
        elif kind == "storage":
            line = _storage_line(item, index, label, region, at)
        else:
            line = _fixed_line(item, index, label)
        estimate.lines.append(line)
    return estimate


def estimate_run(*, plan_text: str, at: datetime | None = None) -> Estimate:
    """Parse and price a plan; a price the catalog lacks is noted for the admins (Prices page)
    before the PlanError goes up to the page or the command line."""
    from billing.prices.services import INSTANCE_TYPE_RE, price_gap_record

    try:
        return estimate_compute(plan=plan_parse(plan_text), at=at)
    except PlanError as exc:
        if exc.gap and (exc.gap[0] != PriceKind.ON_DEMAND or INSTANCE_TYPE_RE.match(exc.gap[2])):
            price_gap_record(
                kind=exc.gap[0], region=exc.gap[1], item=exc.gap[2], context="estimate"
            )
        raise


# --- Example plans for the Estimate page ---------------------------------------------------------
EXAMPLES = {
    "platform": (
        "The always-on platform for a month",
        [
            {
                "label": "control node",
                "kind": "instance",
                "instance_type": "t2.micro",
                "lifecycle": "on-demand",
                "count": 1,
                "hours": 730,
            },
            {
                "label": "admin nodes",
                "kind": "instance",
                "instance_type": "t2.small",
                "lifecycle": "on-demand",
                "count": 2,
                "hours": 730,
            },
            {
                "label": "root volumes",
                "kind": "storage",
                "service": "ebs-gp3",
                "gb": 60,
                "months": 1,
            },
            {
                "label": "home directories",
                "kind": "storage",
                "service": "efs",
                "gb": 20,
                "months": 1,
            },
        ],
    ),
    "spark": (
        "A Spark job: 10 spot workers for 4 hours",
        [
            {
                "label": "spark workers",
                "kind": "instance",
                "instance_type": "m5.xlarge",
                "lifecycle": "spot",
                "count": 10,
                "hours": 4,
            },
            {
                "label": "scratch volumes",
                "kind": "storage",
                "service": "ebs-gp3",
                "gb": 500,
                "months": "0.0055",
            },
        ],
    ),
    "gpu": (
        "A GPU notebook for a working day",
        [
            {
                "label": "GPU node",
                "kind": "instance",
                "instance_type": "g4dn.xlarge",
                "lifecycle": "spot",
                "count": 1,
                "hours": 8,
            },
            {"label": "datasets in S3", "kind": "storage", "service": "s3", "gb": 200, "months": 1},
        ],
    ),
}


def example_plan(name: str, region: str) -> str:
    """The JSON text of example ``name`` (the first one for an unknown name) in ``region``."""
    _, items = EXAMPLES.get(name) or EXAMPLES["platform"]
    return json.dumps({"region": region, "items": items}, indent=2)
