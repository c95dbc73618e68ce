"""The layer's bill: the metering (``metering.py``) priced with the layer's own table
(``price_table.py``) by AWS's rules, and Cost Explorer's ``GetCostAndUsage`` answered from it.

AWS's rules, as the layer applies them (each can be checked against the cited page):

- **Instances** are billed per second while ``running``, with a minimum of 60 seconds each time
  an instance starts (*Amazon EC2 On-Demand Pricing*, "Per Second Billing": "each instance
  ... billed in one-second increments, with a minimum of 60 seconds"). A spot instance pays the
  spot price in force, which the layer reads from its own spot price history, second by second
  (*Amazon EC2 Spot Instances Pricing*). A spot instance that **EC2 interrupts within its first
  hour** is not charged for that run (*Billing for interrupted Spot Instances*,
  <https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/billing-for-interrupted-spot-instances.html>:
  Linux, "If Amazon EC2 interrupts your Spot Instance in the first hour, before a full hour of
  running time, you're not charged for the partial hour used"). The rule is a control
  (``bill_rules_set(spot_interrupted_first_hour_free=False)``), so a test can make the layer
  disagree with the estimate on purpose.
- **Storage** (EBS, EFS, S3) is billed in GB-months, prorated by the second over the seconds of
  the month the usage falls in (*Amazon EBS pricing*: "prorated ... for the number of seconds";
  S3's and EFS's "GB-Month" the same way). S3 has one size a day; EFS the size in force at each
  moment, as EFS meters it in GB-hours (``metering.py``).
- **Public IPv4 addresses** per address-hour, prorated by the second.
- **Cost Explorer** charges $0.01 per ``GetCostAndUsage`` request.

Cost Explorer's answer (*GetCostAndUsage*, AWS Billing and Cost Management API reference;
*Understanding your Cost Explorer data*: "Cost Explorer refreshes your cost data at least once
every 24 hours", and the current month's figures are estimated until the bill is final):

- DAILY or MONTHLY, the cost metrics (UnblendedCost; BlendedCost, AmortizedCost and
  NetUnblendedCost are the same figures in an account without reservations or credits), grouped
  by the SERVICE dimension or not at all. Anything else (filters, other dimensions, usage
  metrics, HOURLY) is refused with ``ValidationException`` rather than guessed.
- ``TimePeriod`` ``Start`` inclusive, ``End`` exclusive, ``Start`` before ``End``; periods
  starting after today are not returned.
- Usage is counted up to ``lag_hours`` before now (default 12): the latest day with data is
  partial, as AWS's is.
- ``Estimated`` is true for every day of a month that is not final: a month is final
  ``final_after_days`` (default 3) days after it ends.
- Results come ``page_days`` days a page (default 100), with ``NextPageToken``; a token this API
  did not issue is ``InvalidNextTokenException``, one issued for other parameters
  ``RequestChangedException``.
- Service names as Cost Explorer spells them: ``Amazon Elastic Compute Cloud - Compute``
  (instances), ``EC2 - Other`` (EBS), ``Amazon Elastic File System``, ``Amazon Simple Storage
  Service``, ``Amazon Virtual Private Cloud`` (public IPv4 since February 2024), ``AWS Cost
  Explorer``.

A test can still queue answers of its own through moto's
``/moto-api/static/ce/cost-and-usage-results`` (to exercise malformed answers): while moto holds
queued answers, it answers instead of the metering.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

from sandbox.aws import clock, wire
from sandbox.aws.metering import Snapshot, midnight
from sandbox.aws.price_table import GP3_FREE_IOPS, GP3_FREE_THROUGHPUT, PriceTable

COMPUTE = "Amazon Elastic Compute Cloud - Compute"
EC2_OTHER = "EC2 - Other"
EFS = "Amazon Elastic File System"
S3 = "Amazon Simple Storage Service"
VPC = "Amazon Virtual Private Cloud"
COST_EXPLORER = "AWS Cost Explorer"

HOUR = Decimal(3600)
GIB = Decimal(1024**3)
FIRST_HOUR = timedelta(hours=1)
COST_METRICS = ("UnblendedCost", "BlendedCost", "AmortizedCost", "NetUnblendedCost")
PLACES = Decimal("0.0000000001")


@dataclass
class BillRules:
    """How the layer bills (controls: ``bill_rules_set``). The defaults are AWS's."""

    spot_interrupted_first_hour_free: bool = True
    minimum_seconds: int = 60
    lag_hours: float = 12.0
    final_after_days: int = 3
    page_days: int = 100

    def __post_init__(self) -> None:
        if self.minimum_seconds < 0 or self.lag_hours < 0 or self.final_after_days < 0:
            raise ValueError("bill rules cannot be negative")
        if self.page_days < 1:
            raise ValueError("page_days must be at least 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Unpriced:
    """Usage the layer's table has no price for (billed $0.00)."""

    kind: str
    item: str
    resource: str


SpotHistory = Callable[[str, str], list[tuple[datetime, Decimal]]]


class Bill:
    """Daily costs by Cost Explorer service for ``[first, end)``, counting usage before
    ``cutoff``."""

    def __init__(
        self,
        meter: Snapshot,
        prices: PriceTable,
        rules: BillRules,
        spot_history: SpotHistory,
        *,
        first: date,
        end: date,
        cutoff: datetime,
    ) -> None:
        self.first, self.end, self.cutoff = first, end, cutoff
        self.low, self.high = midnight(first), min(midnight(end), cutoff)
        self.days: dict[date, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        self.unpriced: set[Unpriced] = set()
        self._prices, self._rules, self._spot = prices, rules, spot_history
        if self.high > self.low:
            self._instances(meter)
            self._volumes(meter)
            self._addresses(meter)
            self._stored(meter)
            self._requests(meter)

    def _add(self, day: date, service: str, cost: Decimal) -> None:
        if self.first <= day < self.end and cost:
            self.days[day][service] += cost

    def _window(self, start: datetime, end: datetime | None) -> tuple[datetime, datetime]:
        return max(start, self.low), min(end or self.high, self.high)

    # --- instances --------------------------------------------------------------------------
    def _instances(self, meter: Snapshot) -> None:
        rules = self._rules
        for run in meter.runs:
            if (
                rules.spot_interrupted_first_hour_free
                and run.end is not None
                and run.spot
                and run.interrupted
                and run.end - run.start < FIRST_HOUR
            ):
                continue  # EC2 interrupted it within its first hour: not charged
            price_at = self._instance_price(run.instance_type, run.spot, run.zone)
            if price_at is None:
                self.unpriced.add(Unpriced("on-demand", run.instance_type, run.instance_id))
                continue
            marks = self._spot_marks(run.instance_type, run.zone) if run.spot else []
            low, high = self._window(run.start, run.end)
            for a, b in _cut(low, high, marks):
                self._add(a.date(), COMPUTE, _seconds(b - a) / HOUR * price_at(a))
            if run.end is not None and low == run.start < high:
                short = Decimal(rules.minimum_seconds) - _seconds(run.end - run.start)
                if short > 0:  # the 60-second minimum, charged with the run's first second
                    self._add(run.start.date(), COMPUTE, short / HOUR * price_at(run.start))

    def _instance_price(
        self, instance_type: str, spot: bool, zone: str
    ) -> Callable[[datetime], Decimal] | None:
        if not spot:
            price = self._prices.on_demand(instance_type)
            return None if price is None else (lambda at: price)
        history = self._spot(instance_type, zone)
        if not history:
            return None

        def at_moment(at: datetime) -> Decimal:
            in_force = history[0][1]
            for moment, value in history:
                if moment > at:
                    break
                in_force = value
            return in_force

        return at_moment

    def _spot_marks(self, instance_type: str, zone: str) -> list[datetime]:
        return [moment for moment, _ in self._spot(instance_type, zone)]

    # --- storage and addresses --------------------------------------------------------------
    def _volumes(self, meter: Snapshot) -> None:
        for piece in meter.pieces("volume"):
            attrs = piece.attrs
            kind = f"ebs-{attrs['type']}"
            price = self._prices.storage(kind)
            if price is None:
                self.unpriced.add(Unpriced("storage", kind, piece.key))
                continue
            units = [(Decimal(attrs["size"]), price)]
            if attrs["type"] == "gp3":
                extra_iops = max(attrs["iops"] - GP3_FREE_IOPS, 0)
                extra_throughput = max(attrs["throughput"] - GP3_FREE_THROUGHPUT, 0)
                for amount, item in (
                    (extra_iops, "ebs-gp3-iops"),
                    (extra_throughput, "ebs-gp3-throughput"),
                ):
                    if amount:
                        rate = self._prices.storage(item)
                        if rate is None:
                            self.unpriced.add(Unpriced("storage", item, piece.key))
                        else:
                            units.append((Decimal(amount), rate))
            for a, b in _cut(*self._window(piece.start, piece.end)):
                share = _seconds(b - a) / _month_seconds(a)
                for amount, rate in units:
                    self._add(a.date(), EC2_OTHER, amount * share * rate)

    def _addresses(self, meter: Snapshot) -> None:
        price = self._prices.ipv4()
        for piece in meter.pieces("address"):
            for a, b in _cut(*self._window(piece.start, piece.end)):
                self._add(a.date(), VPC, _seconds(b - a) / HOUR * price)

    def _stored(self, meter: Snapshot) -> None:
        for service, name in (("s3", S3), ("efs", EFS)):
            price = self._prices.storage(service)
            for piece in meter.pieces(service):
                if price is None:
                    self.unpriced.add(Unpriced("storage", service, piece.key))
                    continue
                if service == "s3":
                    marks: list[datetime] = []
                else:  # EFS: GB-hours, the size in force at each moment (metering.py)
                    marks = [moment for moment, _ in meter.sizes.get((service, piece.key), [])]
                for a, b in _cut(*self._window(piece.start, piece.end), marks):
                    if service == "s3":
                        # One size a day: the last one published that day (metering.py).
                        at = midnight(a.date() + timedelta(days=1)) - timedelta(microseconds=1)
                    else:
                        at = a
                    gb = Decimal(meter.size_at(service, piece.key, at)) / GIB
                    self._add(a.date(), name, gb * _seconds(b - a) / _month_seconds(a) * price)

    def _requests(self, meter: Snapshot) -> None:
        price = self._prices.ce_request()
        for at in meter.ce_requests:
            if self.low <= at < self.high:
                self._add(at.date(), COST_EXPLORER, price)


# --- GetCostAndUsage ---------------------------------------------------------------------------
def answer(
    request: wire.AwsRequest,
    *,
    bill_for: Callable[[date, date, datetime], Bill],
    rules: BillRules,
) -> wire.Reply:
    """Cost Explorer's answer to a ``GetCostAndUsage`` request, from the layer's bill."""

    def refuse(code: str, message: str) -> wire.Reply:
        return wire.error_response(request, code, message, 400)

    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return refuse("ValidationException", "the request body is not JSON")
    period = body.get("TimePeriod") or {}
    try:
        start = date.fromisoformat(str(period.get("Start", ""))[:10])
        end = date.fromisoformat(str(period.get("End", ""))[:10])
    except ValueError:
        return refuse("ValidationException", "TimePeriod Start and End must be YYYY-MM-DD dates")
    if start >= end:
        return refuse("ValidationException", "Start date should be before end date")
    granularity = body.get("Granularity")
    if granularity not in ("DAILY", "MONTHLY"):
        return refuse(
            "ValidationException",
            f"Granularity {granularity!r} is not simulated here (DAILY or MONTHLY)",
        )
    metrics = body.get("Metrics") or []
    if not metrics or any(m not in COST_METRICS for m in metrics):
        return refuse(
            "ValidationException",
            f"Metrics must be cost metrics ({', '.join(COST_METRICS)}); got {metrics}",
        )
    group_by = body.get("GroupBy") or []
    if group_by not in ([], [{"Type": "DIMENSION", "Key": "SERVICE"}]):
        return refuse("ValidationException", "only GroupBy DIMENSION SERVICE is simulated here")
    if body.get("Filter"):
        return refuse("ValidationException", "Filter is not simulated here")
    now = clock.now()
    today = now.date()
    periods = [p for p in _periods(start, end, granularity) if p[0] <= today]
    fingerprint = _fingerprint(body)
    offset = 0
    if body.get("NextPageToken"):
        try:
            token = json.loads(base64.urlsafe_b64decode(body["NextPageToken"].encode()))
            offset = int(token["offset"])
        except (ValueError, KeyError, TypeError):
            return refuse("InvalidNextTokenException", "The NextPageToken is not valid")
        if token.get("request") != fingerprint:
            return wire.error_response(
                request,
                "RequestChangedException",
                "Your request parameters changed between pages. Start a new request.",
                400,
            )
    page = periods[offset : offset + rules.page_days]
    bill = None
    if page:
        cutoff = now - timedelta(hours=rules.lag_hours)
        bill = bill_for(page[0][0], page[-1][1], cutoff)
    results = []
    for first, last in page:
        by_service: dict[str, Decimal] = defaultdict(Decimal)
        day = first
        while bill is not None and day < last:
            for service, cost in bill.days.get(day, {}).items():
                by_service[service] += cost
            day += timedelta(days=1)
        final = now >= midnight(_month_after(first)) + timedelta(days=rules.final_after_days)
        result: dict[str, Any] = {
            "TimePeriod": {"Start": first.isoformat(), "End": last.isoformat()},
            "Total": {},
            "Groups": [],
            "Estimated": not final,
        }
        if group_by:
            result["Groups"] = [
                {"Keys": [service], "Metrics": {m: _amount(cost) for m in metrics}}
                for service, cost in sorted(by_service.items())
                if cost
            ]
        else:
            total = sum(by_service.values(), Decimal(0))
            result["Total"] = {m: _amount(total) for m in metrics}
        results.append(result)
    reply: dict[str, Any] = {
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}] if group_by else [],
        "ResultsByTime": results,
        "DimensionValueAttributes": [],
    }
    if offset + rules.page_days < len(periods):
        token = {"offset": offset + rules.page_days, "request": fingerprint}
        reply["NextPageToken"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
    return wire.Reply(
        200, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(reply).encode()
    )


def _amount(cost: Decimal) -> dict[str, str]:
    return {"Amount": format(cost.quantize(PLACES), "f"), "Unit": "USD"}


def _fingerprint(body: dict[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k != "NextPageToken"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:16]


def _periods(start: date, end: date, granularity: str) -> list[tuple[date, date]]:
    found = []
    day = start
    while day < end:
        if granularity == "DAILY":
            following = day + timedelta(days=1)
        else:
            following = min(_month_after(day), end)
        found.append((day, following))
        day = following
    return found


# --- time ------------------------------------------------------------------------------------
def _month_after(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _month_seconds(at: datetime) -> Decimal:
    first = at.date().replace(day=1)
    return Decimal((_month_after(first) - first).days * 86400)


def _seconds(delta: timedelta) -> Decimal:
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000


def _cut(
    start: datetime, end: datetime, marks: list[datetime] | tuple = ()
) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` cut at every UTC midnight and every mark strictly inside it."""
    if end <= start:
        return
    edges = {m for m in marks if start < m < end}
    day = start.astimezone(UTC).date() + timedelta(days=1)
    while midnight(day) < end:
        edges.add(midnight(day))
        day += timedelta(days=1)
    points = [start, *sorted(edges), end]
    yield from pairwise(points)
