"""Writes of the budget: set it, freeze and unfreeze new launches, evaluate the thresholds
(claim, then send), send the monthly statements.

Each email is claimed before it is sent (``billing.budgets.models``): the claim is an INSERT
that a unique constraint lets succeed once per (budget, month, threshold), or per (month,
person) for a statement. Delivery is at least once: a sender takes a claimed row with a
conditional UPDATE (a lease), sends, and marks it sent; a failure puts it back with backoff, a
killed sender leaves it to be taken again when the lease ends. A duplicate is possible only
between the SMTP server accepting a message and the row being marked sent, and then carries
the same Message-ID.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.urls import reverse

from billing.budgets import freeze
from billing.budgets.freeze import FreezeState
from billing.budgets.models import (
    CLUSTER_KEY,
    DEFAULT_FORECAST_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    Budget,
    BudgetAlert,
    DeliveryState,
    Statement,
    backoff,
)
from billing.budgets.selectors import (
    BudgetOverview,
    budget_overview,
    crossed,
    statement_of,
    statement_owners,
)
from billing.costs import costing
from billing.money import amount_str, positive_decimal
from clusterweb import clock
from clusterweb.audit.services import audit_record
from clusterweb.errors import IntegrationError, TransientError
from clusterweb.failpoints import failpoint
from clusterweb.integrations import mail

logger = logging.getLogger(__name__)

# A sender holds a claimed row this long (an SMTP exchange takes seconds; EMAIL_TIMEOUT bounds
# it): a sender killed mid-way delays the email by at most this.
SEND_LEASE = timedelta(minutes=5)
# Statements of last month go out during the first days of a month only: a Clusterweb first
# started mid-month never mails statements of months it did not watch.
STATEMENT_DAYS = 7
PERCENT_MIN, PERCENT_MAX = 1, 1000
MONTHLY_MAX = Decimal(10_000_000)


class BudgetInputError(ValueError):
    """Bad input, with the field it is about (the page's form field, the command's flag)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def freeze_state(now: datetime | None = None) -> FreezeState:
    """(frozen, reason, by, at, until). The launch request service asks it through
    ``billing.budgets.freeze.freeze_refusals`` (issue 17's refusal hook)."""
    return freeze.freeze_state(now)


def _require_admin(actor: Any, what: str) -> None:
    if getattr(actor, "role", None) != "admin":
        raise PermissionDenied(f"Only admins may {what}.")


def _percents(value: Any, name: str) -> list[int]:
    """``"50,80,100"`` or a list, as whole percents 1..1000, ascending, each once."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    found = []
    for item in items:
        text = str(item).strip().rstrip("%").strip()
        if not text:
            continue
        if not text.isdigit():
            raise BudgetInputError(
                f"{name}: {str(item).strip()!r} is not a whole percent", field=name
            )
        number = int(text)
        if not PERCENT_MIN <= number <= PERCENT_MAX:
            raise BudgetInputError(
                f"{name}: {number} is outside {PERCENT_MIN}–{PERCENT_MAX} %", field=name
            )
        found.append(number)
    return sorted(set(found))


def _recipients(value: Any) -> list[str]:
    if value is None:
        return []
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    found = []
    for item in items:
        address = str(item).strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise BudgetInputError(
                f"recipients: {address!r} is not an email address", field="recipients"
            ) from None
        if address not in found:
            found.append(address)
    return found


def budget_set(
    *,
    actor: Any,
    monthly: Any,
    thresholds: Any = None,
    forecast: Any = None,
    recipients: Any = None,
    request: HttpRequest | None = None,
    source: str = "",
) -> Budget:
    """Set the monthly budget in USD. ``thresholds`` (percent of actual spend) and ``forecast``
    (percent of the forecast) default to 50, 80, 100 and 100 when the budget is first set and
    are kept as they are when None; ``recipients`` are extra addresses beside the admins.
    Alerts already sent this month stay sent (a threshold fires once a month)."""
    _require_admin(actor, "set the budget")
    try:
        value = positive_decimal(monthly, places=2, what="monthly", maximum=MONTHLY_MAX)
    except ValueError as exc:
        raise BudgetInputError(f"monthly: {exc}", field="monthly") from None
    actual = _percents(thresholds, "thresholds") if thresholds is not None else None
    ahead = _percents(forecast, "forecast") if forecast is not None else None
    extra = _recipients(recipients) if recipients is not None else None
    with transaction.atomic():
        budget, _ = Budget.objects.select_for_update().get_or_create(key=CLUSTER_KEY)
        before = {
            "monthly": None if budget.monthly is None else amount_str(budget.monthly),
            "thresholds": budget.thresholds,
            "forecast_thresholds": budget.forecast_thresholds,
            "recipients": budget.recipients,
        }
        first = budget.monthly is None and not budget.thresholds and not budget.forecast_thresholds
        budget.monthly = value
        if actual is not None:
            budget.thresholds = actual
        elif first:
            budget.thresholds = list(DEFAULT_THRESHOLDS)
        if ahead is not None:
            budget.forecast_thresholds = ahead
        elif first:
            budget.forecast_thresholds = list(DEFAULT_FORECAST_THRESHOLDS)
        if extra is not None:
            budget.recipients = extra
        budget.updated_at = clock.now()
        budget.updated_by_username = actor.username
        budget.save()
        audit_record(
            action="budget.set",
            actor=actor,
            target="budget",
            detail={
                "before": before,
                "monthly": amount_str(value),
                "thresholds": budget.thresholds,
                "forecast_thresholds": budget.forecast_thresholds,
                "recipients": budget.recipients,
            },
            request=request,
            source=source,
        )
    return budget


def budget_freeze(
    *, actor: Any, reason: str, request: HttpRequest | None = None, source: str = ""
) -> Budget:
    """Freeze new launch requests of collaborators until the 1st of next month (or until an
    admin lifts it). Freezing again replaces the reason."""
    _require_admin(actor, "freeze launches")
    reason = " ".join((reason or "").split())
    if not reason:
        raise BudgetInputError("reason: say why launches are frozen", field="reason")
    if len(reason) > 500:
        raise BudgetInputError("reason: at most 500 characters", field="reason")
    now = clock.now()
    with transaction.atomic():
        budget, _ = Budget.objects.select_for_update().get_or_create(key=CLUSTER_KEY)
        budget.frozen_at = now
        budget.frozen_until = costing.month_after(costing.month_start(now))
        budget.frozen_reason = reason
        budget.frozen_by_username = actor.username
        budget.save(
            update_fields=["frozen_at", "frozen_until", "frozen_reason", "frozen_by_username"]
        )
        audit_record(
            action="budget.frozen",
            actor=actor,
            target="launches",
            detail={"reason": reason, "until": budget.frozen_until.isoformat()},
            request=request,
            source=source,
        )
    return budget


def budget_unfreeze(*, actor: Any, request: HttpRequest | None = None, source: str = "") -> Budget:
    """Lift the freeze (nothing to do when there is none: still recorded, harmless)."""
    _require_admin(actor, "lift the freeze")
    with transaction.atomic():
        budget, _ = Budget.objects.select_for_update().get_or_create(key=CLUSTER_KEY)
        was = budget.frozen_at_time(clock.now())
        budget.frozen_at = budget.frozen_until = None
        budget.frozen_reason = budget.frozen_by_username = ""
        budget.save(
            update_fields=["frozen_at", "frozen_until", "frozen_reason", "frozen_by_username"]
        )
        audit_record(
            action="budget.unfrozen",
            actor=actor,
            target="launches",
            detail={"was_frozen": was},
            request=request,
            source=source,
        )
    return budget


# --- Recipients ----------------------------------------------------------------------------------
def admin_addresses() -> list[str]:
    from clusterweb.accounts.models import User

    admins = User.objects.filter(is_active=True, is_cluster_admin=True).exclude(email="")
    return sorted(set(admins.values_list("email", flat=True)))


def alert_recipients(budget: Budget) -> list[str]:
    found = admin_addresses()
    for address in budget.recipients or []:
        if address not in found:
            found.append(address)
    return found


# --- Evaluation ----------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """What one evaluation did: the thresholds crossed, those it claimed (new this month), and
    every email it sent or failed to send (claims of earlier evaluations included)."""

    at: datetime
    month: str
    budget: str | None = None
    actual: str | None = None
    forecast: str | None = None
    crossed: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "month": self.month,
            "budget": self.budget,
            "actual": self.actual,
            "forecast": self.forecast,
            "crossed": self.crossed,
            "claimed": self.claimed,
            "sent": self.sent,
            "failed": self.failed,
        }


def budget_alert_claim(
    *, budget: Budget, threshold: Any, view: BudgetOverview, now: datetime
) -> BudgetAlert | None:
    """INSERT the claim of ``threshold`` for this month; None when it was claimed before (by
    this or any other process: the unique constraint decides)."""
    try:
        with transaction.atomic():
            return BudgetAlert.objects.create(
                budget=budget,
                month=view.month,
                threshold=threshold.key,
                kind=threshold.kind,
                percent=threshold.percent,
                budget_amount=budget.monthly,
                spend=view.spend.actual,
                forecast=view.spend.forecast,
                claimed_at=now,
                next_attempt_at=now,
                recipients=alert_recipients(budget),
            )
    except IntegrityError:
        return None


def budget_evaluate(*, now: datetime | None = None) -> Evaluation:
    """Compare this month's actual spend and forecast with each threshold, claim those crossed
    (each once a month), then send every claimed email that is due. Safe to run any number of
    times, at once too."""
    now = clock.now() if now is None else now
    view = budget_overview(now=now)
    result = Evaluation(at=now, month=f"{view.month:%Y-%m}")
    budget = view.budget
    if budget is not None and budget.monthly is not None:
        result.budget = amount_str(budget.monthly)
        result.actual = amount_str(view.spend.actual)
        result.forecast = amount_str(view.spend.forecast)
        for threshold in crossed(budget, view.spend):
            result.crossed.append(threshold.key)
            if budget_alert_claim(budget=budget, threshold=threshold, view=view, now=now):
                result.claimed.append(threshold.key)
    deliveries_send(now=now, result=result, view=view)
    return result


def _take(model: type, pk: int, now: datetime) -> bool:
    """Take a claimed row for one send attempt: a conditional UPDATE, so one sender at a time;
    the lease makes it due again if this sender dies. The lease counts from the time the run
    reaches the row (``now`` is when the run began: with SMTP timing out email after email, a
    lease counted from then could be over before this sender has sent)."""
    moment = max(now, clock.now())
    taken = model.objects.filter(
        pk=pk, state=DeliveryState.PENDING, next_attempt_at__lte=moment
    ).update(next_attempt_at=moment + SEND_LEASE, attempts=F("attempts") + 1)
    return taken == 1


def deliveries_send(
    *,
    now: datetime | None = None,
    result: Evaluation | None = None,
    view: BudgetOverview | None = None,
) -> Evaluation:
    """Send every due alert and statement (claimed, not sent, past its backoff)."""
    now = clock.now() if now is None else now
    result = result or Evaluation(at=now, month=f"{costing.month_start(now):%Y-%m}")
    due = BudgetAlert.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
    for alert in due.select_related("budget").order_by("claimed_at", "pk"):
        if not _take(BudgetAlert, alert.pk, now):
            continue
        if view is None or view.month != alert.month:
            view = budget_overview(now=now)
        _attempt(
            BudgetAlert,
            alert,
            now,
            result,
            lambda a=alert, v=view: budget_alert_send(alert=a, view=v, now=now),
            f"alert {alert.threshold}",
        )
    due_statements = Statement.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
    for statement in due_statements.order_by("claimed_at", "pk"):
        if not _take(Statement, statement.pk, now):
            continue
        _attempt(
            Statement,
            statement,
            now,
            result,
            lambda s=statement: statement_send(statement=s),
            f"statement {statement.username}",
        )
    return result


def _attempt(model: type, row: Any, now: datetime, result: Evaluation, send, what: str) -> None:
    # The failpoint for "a worker killed between claim and send": the row is claimed and taken.
    failpoint("budget.before_send")
    try:
        send()
    except Exception as exc:
        # SMTP down or refusing (TransientError), or anything else this one email raised (an
        # address the mail library refuses raises ValueError): it stays claimed with the error
        # and is tried again after its backoff, and the run goes on with the other emails (an
        # exception here would stop every later alert and statement at each run).
        attempts = row.attempts + 1
        error = str(exc) if isinstance(exc, IntegrationError) else f"{type(exc).__name__}: {exc}"
        model.objects.filter(pk=row.pk).update(
            next_attempt_at=max(now, clock.now()) + backoff(attempts), last_error=error[:500]
        )
        logger.warning(
            "budget %s not sent (attempt %d): %s",
            what,
            attempts,
            error,
            exc_info=not isinstance(exc, IntegrationError),
        )
        result.failed.append({"id": row.pk, "what": what, "error": error})
        return
    model.objects.filter(pk=row.pk).update(
        state=DeliveryState.SENT, sent_at=clock.now(), last_error=""
    )
    result.sent.append({"id": row.pk, "what": what, "to": list(row.recipients)})


def _domain() -> str:
    return (settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost").strip(">") or "localhost"


def action_url(action: str, alert: BudgetAlert | None = None) -> str:
    base = settings.DASHBOARD_BASE_URL.rstrip("/")
    url = base + reverse("billing:budget_action", kwargs={"action": action})
    return f"{url}?alert={alert.pk}" if alert is not None else url


def budget_alert_send(*, alert: BudgetAlert, view: BudgetOverview, now: datetime) -> None:
    """The alert email: the threshold, spend and forecast against the budget (as claimed), the
    top cost drivers now, and the action links."""
    from billing.budgets.actions import ACTIONS

    if not alert.recipients:
        # Claimed when nobody had an address: ask again, rather than "send" it to nobody.
        found = alert_recipients(alert.budget)
        if not found:
            raise TransientError(
                "no recipient: no admin has an email address and the budget names no other",
                system="smtp",
            )
        BudgetAlert.objects.filter(pk=alert.pk).update(recipients=found)
        alert.recipients = found
    mail.budget_alert_send(
        to=alert.recipients,
        message_id=alert.message_id(_domain()),
        context={
            "alert": alert,
            "view": view,
            "now": now,
            "cluster": settings.CLUSTER_NAME,
            "page_url": settings.DASHBOARD_BASE_URL.rstrip("/") + reverse("billing:budgets"),
            "actions": [(a.title, action_url(a.slug, alert)) for a in ACTIONS.values()],
        },
    )


# --- The monthly statement -----------------------------------------------------------------------
def statement_csv(data: Any) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in data.csv_rows():
        writer.writerow(row)
    return out.getvalue()


def statements_claim(*, now: datetime | None = None) -> list[Statement]:
    """On the 1st (and the following days, in case Clusterweb was down), once last month's cost
    rows are computed to its end: claim a statement of last month for each collaborator who
    spent something and for each admin (the whole cluster's). Each person once a month."""
    from billing.models import CostMonth
    from clusterweb.accounts.models import User

    now = clock.now() if now is None else now
    current = costing.month_start(now)
    if now - current >= timedelta(days=STATEMENT_DAYS):
        return []
    previous = costing.month_before(current)
    month = previous.date()
    if not CostMonth.objects.filter(month=month, through__gte=current).exists():
        return []  # last month is not computed to its end yet: the next run claims
    people: dict[str, tuple[Any, bool]] = {}
    for user in User.objects.filter(is_active=True, is_cluster_admin=True).exclude(email=""):
        people[user.username] = (user, True)
    owners = statement_owners(month)
    for user in User.objects.filter(is_active=True, username__in=owners).exclude(email=""):
        people.setdefault(user.username, (user, False))
    claimed = []
    for username, (user, admin) in sorted(people.items()):
        data = statement_of(month, owner=None if admin else username)
        try:
            with transaction.atomic():
                claimed.append(
                    Statement.objects.create(
                        month=month,
                        username=username,
                        admin=admin,
                        total=data.total,
                        final=data.final,
                        claimed_at=now,
                        next_attempt_at=now,
                        recipients=[user.email],
                    )
                )
        except IntegrityError:
            continue
    return claimed


def statement_send(*, statement: Statement) -> None:
    data = statement_of(statement.month, owner=None if statement.admin else statement.username)
    mail.statement_send(
        to=statement.recipients,
        message_id=statement.message_id(_domain()),
        context={
            "statement": statement,
            "data": data,
            "cluster": settings.CLUSTER_NAME,
            "page_url": settings.DASHBOARD_BASE_URL.rstrip("/") + reverse("home"),
        },
        attachment=(f"clusterweb-{statement.month:%Y-%m}.csv", statement_csv(data), "text/csv"),
    )


def budget_run(*, now: datetime | None = None) -> Evaluation:
    """The periodic job: claim any statements due, then evaluate (which sends what is due)."""
    now = clock.now() if now is None else now
    statements_claim(now=now)
    return budget_evaluate(now=now)
