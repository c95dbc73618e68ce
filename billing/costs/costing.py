"""The cost model: how lifetimes, sizes and prices become money. Pure functions, no database: the
price of a moment comes from a callable (``billing.prices.pricebook.PriceBook`` in production).

The rules (docs/costs.md says why each one holds):

- Time is cut at every UTC midnight and at every moment a price may change (a spot price point, a
  catalog row, an override starting or ending, spot prices going stale), so each piece has one
  price, and a price change in the middle of a node's life splits its cost.
- Instances: per second, with a 60-second minimum per run (spot included). A spot instance that
  AWS interrupts within its first hour costs nothing for that run (AWS's rule for Linux spot
  instances interrupted by EC2).
- Storage: GB-months prorated by time, ``size x seconds / seconds in that month``.
- Public IPv4 addresses: per address-hour, prorated by the second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Protocol

HOUR = Decimal(3600)
PLACES = Decimal("0.0000000001")  # 10 decimals, as stored (billing.models.COST_DIGITS)
MINIMUM_SECONDS = 60
SPOT_FREE_WINDOW = timedelta(hours=1)
GIB = 1024**3

RULE_MINIMUM = "60-second minimum"
RULE_SPOT_FREE = "spot instance interrupted by AWS within its first hour: not charged"

# EC2 states in which an instance runs up cost (the inventory's BILLED_STATES) and those that end
# a run. Kept as literals: this module imports no model.
RUNNING_STATES = frozenset({"pending", "running", "stopping", "shutting_down"})
ENDED_STATES = frozenset({"stopped", "terminated"})


# --- The UTC calendar ----------------------------------------------------------------------------
def month_start(at: datetime) -> datetime:
    """Midnight UTC of the first day of ``at``'s UTC month."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def month_after(start: datetime) -> datetime:
    """The first moment of the month after the one starting at ``start``."""
    if start.month == 12:
        return datetime(start.year + 1, 1, 1, tzinfo=UTC)
    return datetime(start.year, start.month + 1, 1, tzinfo=UTC)


def month_before(start: datetime) -> datetime:
    if start.month == 1:
        return datetime(start.year - 1, 12, 1, tzinfo=UTC)
    return datetime(start.year, start.month - 1, 1, tzinfo=UTC)


def month_seconds(start: datetime) -> int:
    """Seconds in the month starting at ``start`` (2,678,400 for a 31-day month)."""
    return int((month_after(start) - start).total_seconds())


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def seconds(delta: timedelta) -> Decimal:
    """A duration in seconds, exactly (microseconds included)."""
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000


def cut(start: datetime, end: datetime, breakpoints: Iterable[datetime] = ()) -> list[tuple]:
    """``[start, end)`` cut at every UTC midnight and every breakpoint strictly inside it."""
    if end <= start:
        return []
    marks = {b for b in breakpoints if start < b < end}
    day = start.date() + timedelta(days=1)
    while midnight(day) < end:
        marks.add(midnight(day))
        day += timedelta(days=1)
    edges = [start, *sorted(marks), end]
    return list(pairwise(edges))


# --- Instance lifetimes --------------------------------------------------------------------------
@dataclass(frozen=True)
class Transition:
    """A state change of an instance, as the inventory records it (``NodeEvent``), with the
    instance type in force from then on ("" when not recorded: the node's type)."""

    at: datetime
    from_state: str
    to_state: str
    instance_type: str = ""


def node_runs(
    *,
    launched_at: datetime,
    terminated_at: datetime | None,
    state: str,
    transitions: Sequence[Transition],
    now: datetime,
) -> list[tuple[datetime, datetime]]:
    """The periods during which an instance ran up cost, oldest first (see
    :func:`node_typed_runs`, which also says each run's instance type)."""
    found = node_typed_runs(
        launched_at=launched_at,
        terminated_at=terminated_at,
        state=state,
        transitions=transitions,
        now=now,
        instance_type="",
    )
    return [(start, end) for start, end, _ in found]


def node_typed_runs(
    *,
    launched_at: datetime,
    terminated_at: datetime | None,
    state: str,
    transitions: Sequence[Transition],
    now: datetime,
    instance_type: str,
) -> list[tuple[datetime, datetime, str]]:
    """The periods during which an instance ran up cost, oldest first, each with the instance
    type it ran as.

    From its state transitions when the inventory recorded any: a run opens when the instance
    enters a running state and closes when it is stopped or terminated (at the termination time
    EC2 reported, when known); its type is the one recorded with the transition that opened it
    (EC2 changes a type only while the instance is stopped), else ``instance_type`` (the
    node's type now). Without transitions: from launch until termination, or until ``now``
    while it runs, as ``instance_type``. A run still open ends at ``now``."""
    if not transitions:
        if state in RUNNING_STATES or state == "terminated":
            end = terminated_at if terminated_at is not None else now
            return [(launched_at, end, instance_type)] if end > launched_at else []
        return []
    found: list[tuple[datetime, datetime, str]] = []
    opened: datetime | None = None
    running_as = instance_type
    for step in sorted(transitions, key=lambda t: t.at):
        if step.to_state in RUNNING_STATES:
            if opened is None:
                opened = min(step.at, launched_at) if not step.from_state else step.at
                running_as = step.instance_type or instance_type
        elif step.to_state in ENDED_STATES:
            end = step.at
            if step.to_state == "terminated" and terminated_at is not None:
                end = terminated_at
            if opened is None and not step.from_state:
                # First seen already stopped or gone: it ran from its launch until then.
                opened = launched_at
                running_as = step.instance_type or instance_type
            if opened is not None and end > opened:
                found.append((opened, end, running_as))
            opened = None
    if opened is not None:
        end = terminated_at if terminated_at is not None else now
        if end > opened:
            found.append((opened, end, running_as))
    return found


# --- Pricing pieces of time ----------------------------------------------------------------------
class Quote(Protocol):
    """What a charge needs from a price lookup (``billing.prices.selectors.PriceQuote`` has it)."""

    price: Decimal | None
    kind: str
    source: str
    notice: str | None


@dataclass(frozen=True)
class Charge:
    """One priced piece of time: ``usage`` in ``unit`` at ``price`` is ``cost`` (10 decimals).
    ``price`` None: the catalog has no price, ``cost`` is 0 and the notice says so."""

    start: datetime
    end: datetime
    usage: Decimal
    unit: str
    price: Decimal | None
    price_kind: str
    price_source: str
    price_notice: str
    cost: Decimal
    rule: str = ""

    @property
    def day(self) -> date:
        return self.start.date()


def _charge(
    start: datetime,
    end: datetime,
    usage: Decimal,
    unit: str,
    quote: Quote,
    per_unit: Decimal | None,
    rule: str = "",
) -> Charge:
    """``per_unit`` is the cost of one unit of usage (the price, or the price scaled)."""
    cost = Decimal(0) if per_unit is None else usage * per_unit
    return Charge(
        start=start,
        end=end,
        usage=usage.quantize(PLACES),
        unit=unit,
        price=quote.price,
        price_kind=quote.kind,
        price_source=quote.source,
        price_notice=quote.notice or "",
        cost=cost.quantize(PLACES),
        rule=rule,
    )


def instance_charges(
    *,
    runs: Sequence[tuple[datetime, datetime]],
    window: tuple[datetime, datetime],
    quote_at: Callable[[datetime], Quote],
    breakpoints: Iterable[datetime] = (),
    spot_interrupted_at: datetime | None = None,
    spot: bool = False,
) -> list[Charge]:
    """What an instance cost inside ``window`` (usage in hours). A run shorter than 60 seconds is
    charged 60 (the extra on the run's first piece, if that lies in the window). A spot instance
    interrupted by AWS within an hour of a run's start costs nothing for that run."""
    low, high = window
    breakpoints = sorted(breakpoints)
    charges: list[Charge] = []
    for run_start, run_end in runs:
        free = (
            spot
            and spot_interrupted_at is not None
            and run_start <= spot_interrupted_at <= run_end + timedelta(seconds=1)
            and spot_interrupted_at - run_start < SPOT_FREE_WINDOW
        )
        short = seconds(run_end - run_start)
        extra = Decimal(0) if free or short >= MINIMUM_SECONDS else MINIMUM_SECONDS - short
        for index, (a, b) in enumerate(cut(max(run_start, low), min(run_end, high), breakpoints)):
            quote = quote_at(a)
            span = seconds(b - a)
            rule = ""
            if index == 0 and a == run_start and extra:
                span += extra
                rule = RULE_MINIMUM
            hours = span / HOUR
            if free:
                charges.append(_charge(a, b, hours, "hour", quote, Decimal(0), RULE_SPOT_FREE))
            else:
                charges.append(_charge(a, b, hours, "hour", quote, quote.price, rule))
    return charges


def storage_charges(
    *,
    start: datetime,
    end: datetime,
    window: tuple[datetime, datetime],
    gb: Decimal,
    quote_at: Callable[[datetime], Quote],
    breakpoints: Iterable[datetime] = (),
    unit: str = "GB-month",
) -> list[Charge]:
    """What ``gb`` GB stored from ``start`` to ``end`` cost inside ``window``: GB-months
    prorated by the second, each piece over the seconds of its own month. Anything else priced
    per month (a volume's provisioned IOPS, ``unit`` "IOPS-month") is prorated the same way."""
    low, high = window
    charges = []
    for a, b in cut(max(start, low), min(end, high), sorted(breakpoints)):
        quote = quote_at(a)
        gb_months = gb * seconds(b - a) / Decimal(month_seconds(month_start(a)))
        charges.append(_charge(a, b, gb_months, unit, quote, quote.price))
    return charges


def hourly_charges(
    *,
    start: datetime,
    end: datetime,
    window: tuple[datetime, datetime],
    quote_at: Callable[[datetime], Quote],
    breakpoints: Iterable[datetime] = (),
    unit: str = "address-hour",
) -> list[Charge]:
    """What something priced per hour (a public IPv4 address) cost inside ``window``, prorated by
    the second."""
    low, high = window
    charges = []
    for a, b in cut(max(start, low), min(end, high), sorted(breakpoints)):
        quote = quote_at(a)
        charges.append(_charge(a, b, seconds(b - a) / HOUR, unit, quote, quote.price))
    return charges


def gb_of(size_bytes: int) -> Decimal:
    """Bytes in the GB AWS bills storage by (2^30 bytes)."""
    return Decimal(size_bytes) / Decimal(GIB)
