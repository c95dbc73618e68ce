"""The freeze of new launches, as the launch request service asks it (issue 17's refusal hook):
one flag with a reason, on the budget's row. In the layer every other one shares (with the
models), so the launches, below the budgets, may ask it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from billing.budgets.models import CLUSTER_KEY, Budget
from clusterweb import clock


class FreezeState(NamedTuple):
    """``frozen, reason, by, at`` (and until when)."""

    frozen: bool
    reason: str
    by: str
    at: datetime | None
    until: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "frozen": self.frozen,
            "reason": self.reason or None,
            "by": self.by or None,
            "at": self.at.isoformat() if self.at else None,
            "until": self.until.isoformat() if self.until else None,
        }


NOT_FROZEN = FreezeState(False, "", "", None, None)


def freeze_state(now: datetime | None = None, *, lock: bool = False) -> FreezeState:
    """Whether new launches are frozen now, why, by whom and since when. A freeze ends at the
    start of the next month (``frozen_until``) or when an admin lifts it. ``lock`` (inside a
    transaction): take the budget row's lock, which a freeze takes too, so a freeze being
    committed is waited for and seen."""
    now = clock.now() if now is None else now
    budgets = Budget.objects.select_for_update() if lock else Budget.objects
    budget = budgets.filter(key=CLUSTER_KEY).first()
    if budget is None or not budget.frozen_at_time(now):
        return NOT_FROZEN
    return FreezeState(
        True, budget.frozen_reason, budget.frozen_by_username, budget.frozen_at, budget.frozen_until
    )


def freeze_refusals(*, requested_by: Any, kind: str = "", lock: bool = False) -> list[str]:
    """The launch request service's refusal hook: while frozen, a collaborator's new request is
    refused with the freeze's reason; an admin's is allowed and recorded as such (an audit
    entry ``budget.freeze_bypassed``). ``lock``: see :func:`freeze_state` (the service asks in
    the transaction that writes the request)."""
    state = freeze_state(lock=lock)
    if not state.frozen:
        return []
    if getattr(requested_by, "role", None) == "admin":
        from clusterweb.audit.services import audit_record

        audit_record(
            action="budget.freeze_bypassed",
            actor=requested_by,
            target=f"{kind} launch request" if kind else "launch request",
            detail={"reason": state.reason, "frozen_by": state.by},
        )
        return []
    return [
        f"New launches are frozen until {state.until:%Y-%m-%d %H:%M} UTC by {state.by}: "
        f"{state.reason}"
    ]
