"""Reads of the budget: the month's actual spend and forecast against it, the alerts sent, each
collaborator's spend, the freeze; and what a statement holds. Database only (the costs layer's
selectors): no page or command calls AWS.

"Actual spend" (issue 20): the larger of the live estimate and the bill through its last day
present in full plus the estimate since then. The forecast against the budget is the actual
spend plus the forecast still to come (so a bill above the estimate raises both).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.budgets.freeze import NOT_FROZEN, FreezeState, freeze_state
from billing.budgets.models import CLUSTER_KEY, Budget, BudgetAlert
from billing.costs import costing, forecasting
from billing.costs.charts import DailyChart, daily_chart
from billing.costs.selectors import (
    NONE,
    ZERO,
    CostOverview,
    MonthEstimate,
    cost_overview,
    month_estimate,
)
from billing.models import CostExplorerRead, ResourceKind
from billing.money import amount, amount_str
from clusterweb import clock
from provisioning.launches.models import LaunchRequest
from provisioning.models import Node, PoolKind

TOP = 5  # drivers listed per kind in an alert


def budget_current() -> Budget | None:
    """The cluster's budget row, if anybody ever set one (reads never create it)."""
    return Budget.objects.filter(key=CLUSTER_KEY).first()


@dataclass(frozen=True)
class Spend:
    """The month's figures that thresholds compare with the budget."""

    estimate: Decimal  # the live estimate, month to date
    billed: Decimal | None  # the bill through ``billed_through`` (days present in full)
    billed_through: date | None
    since_bill: Decimal  # the estimate for the days after ``billed_through``
    forecast_remaining: Decimal
    as_of: datetime | None

    @property
    def bill_based(self) -> Decimal | None:
        return None if self.billed is None else self.billed + self.since_bill

    @property
    def actual(self) -> Decimal:
        """The larger of the estimate and the bill-based figure."""
        based = self.bill_based
        return self.estimate if based is None else max(self.estimate, based)

    @property
    def source(self) -> str:
        based = self.bill_based
        if based is not None and based > self.estimate:
            return f"bill through {self.billed_through:%b %d} + estimate since"
        return "estimate"

    @property
    def forecast(self) -> Decimal:
        return self.actual + self.forecast_remaining


def spend_of(overview: CostOverview) -> Spend:
    estimate, billed = overview.estimate, overview.billed
    complete = billed.compared_days
    if not complete:
        return Spend(
            estimate=estimate.total,
            billed=None,
            billed_through=None,
            since_bill=ZERO,
            forecast_remaining=overview.forecast.remaining,
            as_of=estimate.as_of,
        )
    through = max(complete)
    bill = amount(sum((billed.daily.get(day, Decimal(0)) for day in complete), Decimal(0)))
    since = amount(
        sum(
            (base + burst for day, (base, burst) in estimate.daily.items() if day > through),
            Decimal(0),
        )
    )
    return Spend(
        estimate=estimate.total,
        billed=bill,
        billed_through=through,
        since_bill=since,
        forecast_remaining=overview.forecast.remaining,
        as_of=estimate.as_of,
    )


@dataclass(frozen=True)
class Threshold:
    key: str  # actual-80, forecast-100
    kind: str
    percent: int
    amount: Decimal  # the budget's share this percent is

    @property
    def label(self) -> str:
        return f"{self.percent} % of {'actual spend' if self.kind == 'actual' else 'the forecast'}"


def thresholds_of(budget: Budget) -> list[Threshold]:
    if budget.monthly is None:
        return []
    found = []
    for kind, percents in (("actual", budget.thresholds), ("forecast", budget.forecast_thresholds)):
        for percent in sorted(set(percents or [])):
            found.append(
                Threshold(
                    key=f"{kind}-{percent}",
                    kind=kind,
                    percent=int(percent),
                    amount=amount(budget.monthly * Decimal(percent) / 100),
                )
            )
    return found


def crossed(budget: Budget, spend: Spend) -> list[Threshold]:
    """The thresholds the figures are at or above now, actual first, lowest first."""
    return [
        t
        for t in thresholds_of(budget)
        if (spend.actual if t.kind == "actual" else spend.forecast) >= t.amount
    ]


@dataclass(frozen=True)
class Driver:
    label: str
    amount: Decimal
    detail: str = ""


@dataclass(frozen=True)
class RunningLaunch:
    label: str
    pool: str
    owner: str
    hourly: Decimal | None
    to_come: Decimal
    ends_at: datetime
    remaining: timedelta
    limited: bool  # ends at its time limit (else: runs to the month's end as far as we know)


def running_launches(overview: CostOverview, now: datetime) -> list[RunningLaunch]:
    """The most expensive launches running now, from the forecast (which knows each node's time
    limit): its burst node lines grouped by the launch they carry (``clusterweb:request``; a node
    without one stands alone), with their owner and what they will still cost."""
    lines = [
        line
        for line in overview.forecast.lines
        if line.group == forecasting.BURST and line.key.startswith("node:") and not line.node
    ]
    nodes = {
        n.instance_id: n
        for n in Node.objects.filter(instance_id__in=[line.key[5:] for line in lines])
    }
    groups: dict[str, list] = defaultdict(list)
    for line in lines:
        node = nodes.get(line.key[5:])
        groups[(node.request if node and node.request else line.key)].append((line, node))
    found = []
    for key, members in groups.items():
        node = members[0][1]
        types = sorted({n.instance_type for _, n in members if n is not None})
        hourly = [line.hourly for line, _ in members]
        ends_at = max(line.end for line, _ in members)
        label = (
            f"launch {key} ({len(members)} × {', '.join(types)})"
            if node is not None and node.request
            else members[0][0].label
        )
        found.append(
            RunningLaunch(
                label=label,
                pool=node.pool if node else "",
                owner=node.owner if node else "",
                hourly=None if None in hourly else sum(hourly, Decimal(0)),
                to_come=sum((line.cost for line, _ in members), ZERO),
                ends_at=ends_at,
                remaining=max(ends_at - now, timedelta(0)),
                limited=all(line.limit is not None and not line.overdue for line, _ in members),
            )
        )
    found.sort(key=lambda r: (-(r.hourly or Decimal(0)), r.label))
    return found[:TOP]


def _top(sums: dict[str, Decimal], none_label: str) -> list[Driver]:
    return [Driver(none_label if k == NONE else k, v) for k, v in list(sums.items())[:TOP] if v]


@dataclass
class BudgetOverview:
    """Everything the budget page, the dashboard's budget card, ``budget show`` and an alert
    email show."""

    budget: Budget | None
    overview: CostOverview
    spend: Spend
    now: datetime
    alerts: list[BudgetAlert] = field(default_factory=list)
    freeze: FreezeState = NOT_FROZEN

    @property
    def month(self) -> date:
        return self.overview.month

    @property
    def monthly(self) -> Decimal | None:
        return None if self.budget is None else self.budget.monthly

    @property
    def set(self) -> bool:
        return self.monthly is not None

    def percent(self, value: Decimal) -> Decimal | None:
        if not self.monthly:
            return None
        return (value / self.monthly * 100).quantize(Decimal("0.1"))

    @property
    def spend_percent(self) -> Decimal | None:
        return self.percent(self.spend.actual)

    @property
    def forecast_percent(self) -> Decimal | None:
        return self.percent(self.spend.forecast)

    @property
    def state(self) -> str:
        """``unset``, ``ok``, ``forecast_over`` (the forecast is above the budget) or ``over``."""
        if not self.set:
            return "unset"
        if self.spend.actual >= self.monthly:
            return "over"
        if self.spend.forecast >= self.monthly:
            return "forecast_over"
        return "ok"

    @property
    def thresholds(self) -> list[Threshold]:
        return [] if self.budget is None else thresholds_of(self.budget)

    @property
    def by_pool(self) -> list[Driver]:
        return _top(self.overview.estimate.by_pool(), "no pool")

    @property
    def by_owner(self) -> list[Driver]:
        return _top(self.overview.estimate.by_owner(), "no owner")

    @property
    def collaborators(self) -> list[tuple[str, Decimal]]:
        """Each owner's spend this month (everything with an owner), highest first."""
        return [(k, v) for k, v in self.overview.estimate.by_owner().items() if k != NONE]

    @property
    def running(self) -> list[RunningLaunch]:
        return running_launches(self.overview, self.now)

    def bar(self) -> dict[str, Any]:
        """A horizontal bar (SVG geometry, like the chart: no style attribute): spend and
        forecast against the budget, the budget at 100 %."""
        width, height = 600, 28
        scale_top = max(
            [self.monthly or Decimal(0), self.spend.forecast, self.spend.actual, Decimal(1)]
        )
        scale_top = scale_top * Decimal("1.05")

        def x(value: Decimal) -> float:
            return round(float(value / scale_top) * width, 1)

        return {
            "width": width,
            "height": height,
            "spend_w": x(self.spend.actual),
            "forecast_w": x(self.spend.forecast),
            "budget_x": x(self.monthly) if self.monthly else None,
            "ticks": [(x(t.amount), t.label) for t in self.thresholds if t.kind == "actual"],
        }

    def chart(self) -> DailyChart:
        estimate = self.overview.estimate
        days = (estimate.end - estimate.start).days
        return daily_chart(
            first_day=estimate.month,
            days=days,
            estimate=estimate.daily,
            forecast=self.overview.forecast.daily,
            billed=self.overview.billed.daily,
            today=self.now.date() if self.overview.current else None,
            budget_daily=(self.monthly / days) if self.monthly else None,
        )

    def as_json(self) -> dict[str, Any]:
        budget = self.budget
        return {
            "id": budget.pk if budget else None,
            "state": self.state,
            "month": f"{self.month:%Y-%m}",
            "currency": "USD",
            "monthly": amount_str(self.monthly) if self.monthly is not None else None,
            "thresholds": list(budget.thresholds) if budget else [],
            "forecast_thresholds": list(budget.forecast_thresholds) if budget else [],
            "recipients": list(budget.recipients) if budget else [],
            "spend": {
                "actual": amount_str(self.spend.actual),
                "source": self.spend.source,
                "estimate": amount_str(self.spend.estimate),
                "billed": None if self.spend.billed is None else amount_str(self.spend.billed),
                "billed_through": self.spend.billed_through.isoformat()
                if self.spend.billed_through
                else None,
                "as_of": self.spend.as_of.isoformat() if self.spend.as_of else None,
            },
            "forecast": amount_str(self.spend.forecast),
            "alerts": [alert_json(a) for a in self.alerts],
            "by_owner": {k: amount_str(v) for k, v in self.collaborators},
            "freeze": self.freeze.as_json(),
            "updated_by": budget.updated_by_username or None if budget else None,
            "updated_at": budget.updated_at.isoformat() if budget and budget.updated_at else None,
        }


def alert_json(alert: BudgetAlert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "state": alert.state,
        "threshold": alert.threshold,
        "month": f"{alert.month:%Y-%m}",
        "budget": amount_str(alert.budget_amount),
        "spend": amount_str(alert.spend),
        "forecast": amount_str(alert.forecast),
        "recipients": list(alert.recipients),
        "claimed_at": alert.claimed_at.isoformat(),
        "sent_at": alert.sent_at.isoformat() if alert.sent_at else None,
        "attempts": alert.attempts,
        "error": alert.last_error or None,
    }


def budget_overview(
    *, now: datetime | None = None, overview: CostOverview | None = None
) -> BudgetOverview:
    """This month's budget view; ``overview``: the cost overview already read (the dashboard
    passes its own, so the month is read once)."""
    if overview is None:
        now = clock.now() if now is None else now
        overview = cost_overview(now=now)
    now = overview.now
    budget = budget_current()
    alerts = (
        list(BudgetAlert.objects.filter(budget=budget, month=overview.month))
        if budget is not None
        else []
    )
    return BudgetOverview(
        budget=budget,
        overview=overview,
        spend=spend_of(overview),
        now=now,
        alerts=alerts,
        freeze=freeze_state(now),
    )


# --- The monthly statement ---------------------------------------------------------------------
SHARED_BASE = "shared base"
UNALLOCATED = "unallocated"


@dataclass(frozen=True)
class StatementLine:
    """One line of a statement: a launch of an owner (``launch``: its request id, or the node
    when it has none), or one of the cluster-wide lines (shared base, unallocated)."""

    owner: str
    launch: str
    kind: str  # the pool (spark, gpu, jupyter...), or the cluster-wide line's name
    description: str
    amount: Decimal


@dataclass
class StatementData:
    month: date
    final: bool  # the bill for the month is final (else: an estimate)
    lines: list[StatementLine]
    total: Decimal

    def by_kind(self) -> list[tuple[str, Decimal]]:
        sums: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for line in self.lines:
            sums[line.kind] += line.amount
        return sorted(sums.items())

    def csv_rows(self) -> list[list[str]]:
        rows = [["month", "owner", "launch", "kind", "description", "amount_usd"]]
        for line in self.lines:
            rows.append(
                [
                    f"{self.month:%Y-%m}",
                    line.owner,
                    line.launch,
                    line.kind,
                    line.description,
                    amount_str(line.amount),
                ]
            )
        rows.append([f"{self.month:%Y-%m}", "", "", "total", "", amount_str(self.total)])
        return rows


def launch_kinds(estimate: MonthEstimate) -> dict[str, str]:
    """The kind (spark, gpu, jupyter) of each launch request the month's cost rows name."""
    ids = {i.request for i in estimate.items if i.request.isdigit()}
    if not ids:
        return {}
    rows = LaunchRequest.objects.filter(pk__in=[int(i) for i in ids]).values_list("pk", "kind")
    return {str(pk): kind for pk, kind in rows}


def _owner_lines(estimate: MonthEstimate, owner: str, kinds: dict[str, str]) -> list[StatementLine]:
    """Per launch: the items of one owner grouped by the launch request their nodes carry
    (``clusterweb:request``, on the cost rows); a node without one is its own line. The kind
    is the launch request's, else the pool's."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for item in estimate.items:
        if item.owner != owner:
            continue
        launch = item.request or item.resource_id
        groups[(launch, kinds.get(item.request) or item.pool or "no pool")].append(item)
    lines = []
    for (launch, kind), items in sorted(groups.items()):
        described = ", ".join(sorted({i.label for i in items}))[:300]
        lines.append(
            StatementLine(
                owner=owner,
                launch=launch,
                kind=kind,
                description=described,
                amount=sum((i.amount for i in items), ZERO),
            )
        )
    return lines


def statement_of(month: date, *, owner: str | None) -> StatementData:
    """``owner``'s statement of ``month``; ``owner`` None: the whole cluster's, in which every
    owner's launch lines, the shared base (always-on nodes nobody owns) and the unallocated
    line (storage, addresses and anything else without an owner) add up to the month's total
    (the estimate's)."""
    estimate = month_estimate(costing.midnight(month))
    final = CostExplorerRead.objects.filter(month=month, final=True).exists()
    owners = [owner] if owner else sorted({i.owner for i in estimate.items if i.owner})
    kinds = launch_kinds(estimate)
    lines = [line for uid in owners for line in _owner_lines(estimate, uid, kinds)]
    if owner is None:
        unowned = [i for i in estimate.items if not i.owner]
        base = [i for i in unowned if i.kind == ResourceKind.NODE and i.pool_kind == PoolKind.BASE]
        rest = [i for i in unowned if i not in base]
        lines.append(
            StatementLine(
                "",
                "",
                SHARED_BASE,
                "always-on nodes of the base pools",
                sum((i.amount for i in base), ZERO),
            )
        )
        lines.append(
            StatementLine(
                "",
                "",
                UNALLOCATED,
                "storage, addresses and anything without an owner",
                sum((i.amount for i in rest), ZERO),
            )
        )
    return StatementData(
        month=month,
        final=final,
        lines=lines,
        total=sum((line.amount for line in lines), ZERO),
    )


def statement_owners(month: date) -> list[str]:
    """Who owned something that cost money in ``month``."""
    estimate = month_estimate(costing.midnight(month))
    return sorted({i.owner for i in estimate.items if i.owner and i.amount > 0})


def alert_for_link(value: Any) -> BudgetAlert | None:
    """The alert an action link came from (``?alert=ID``), or None for anything else."""
    try:
        pk = int(str(value or ""))
    except ValueError:
        return None
    return BudgetAlert.objects.filter(pk=pk).first() if pk > 0 else None


def freeze_reason_suggested(alert: BudgetAlert | None) -> str:
    if alert is None:
        return ""
    return (
        f"Budget alert: {alert.label} reached for {alert.month:%B %Y} "
        f"(${amount_str(alert.spend)} spent of ${amount_str(alert.budget_amount)})"
    )
