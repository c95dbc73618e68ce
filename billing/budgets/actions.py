"""The action links of a budget alert: stop all spot Spark workers, stop all GPU launches, freeze
new launches until the 1st. A link opens a confirmation page (GET never acts); an admin's POST
runs ``action_run``, the one function the pages and tests go through.

Stopping goes through the launch stop path (issue 18's ``launch_stop``) for each launch request
concerned, so a stopped launch is a request stopped with ``stop_reason`` ``budget``, its nodes
removed by the same task as any other stop. Nothing is stopped behind the launches' back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest

from billing.budgets import services
from clusterweb.audit.services import audit_record
from provisioning.launches.execution import launch_stop
from provisioning.launches.models import (
    JupyterProfile,
    LaunchKind,
    LaunchRequest,
    LaunchState,
    StopReason,
)
from provisioning.models import BILLED_STATES, Lifecycle, Node

FREEZE, STOP_SPOT_SPARK, STOP_GPU = "freeze", "stop-spot-spark", "stop-gpu"


@dataclass(frozen=True)
class Action:
    slug: str
    title: str
    explanation: str


ACTIONS = {
    a.slug: a
    for a in (
        Action(
            STOP_SPOT_SPARK,
            "Stop all spot Spark workers",
            "Every running Spark launch's spot workers are stopped through the launch stop "
            "path (reason: budget). On-demand nodes and the always-on base pools are not "
            "touched.",
        ),
        Action(
            STOP_GPU,
            "Stop all GPU launches",
            "Every running GPU launch (and GPU Jupyter server) is stopped through the launch "
            "stop path (reason: budget).",
        ),
        Action(
            FREEZE,
            "Freeze new launches until the 1st",
            "Collaborators' new launch requests are refused with the reason below until the "
            "1st of next month or until an admin lifts the freeze. Running launches go on; an "
            "admin's own launch is still allowed (and recorded as such).",
        ),
    )
}


@dataclass
class ActionOutcome:
    action: str
    done: bool
    message: str
    stopped: list[str] = field(default_factory=list)


# A stop action stops launches that cost or are about to: approved ones not started yet are
# cancelled by the stop path, launching and running ones stopped. Pending ones wait for an
# admin's decision anyway.
STOPPABLE = (LaunchState.APPROVED, LaunchState.LAUNCHING, LaunchState.RUNNING)


def action_launches(slug: str) -> list[LaunchRequest]:
    """The launch requests a stop action stops: Spark launches on spot, or GPU launches (a GPU
    Jupyter server included)."""
    launches = LaunchRequest.objects.filter(state__in=STOPPABLE).select_related("owner")
    if slug == STOP_SPOT_SPARK:
        chosen = launches.filter(kind=LaunchKind.SPARK, capacity_type=Lifecycle.SPOT)
    elif slug == STOP_GPU:
        chosen = launches.filter(
            Q(kind=LaunchKind.GPU) | Q(kind=LaunchKind.JUPYTER, jupyter_profile=JupyterProfile.GPU)
        )
    else:
        return []
    return list(chosen.order_by("created_at", "pk"))


def action_targets(slug: str) -> list[Node]:
    """What a stop action would stop as the inventory sees it now (for the confirmation page):
    the billed nodes of the spark pool on spot, or of the gpu pool."""
    nodes = Node.objects.filter(state__in=BILLED_STATES)
    if slug == STOP_SPOT_SPARK:
        return list(nodes.filter(pool="spark", capacity_type="spot").order_by("launched_at"))
    if slug == STOP_GPU:
        return list(nodes.filter(pool="gpu").order_by("launched_at"))
    return []


def action_run(
    *,
    slug: str,
    actor: Any,
    reason: str = "",
    confirmed: Iterable[Any] | None = None,
    request: HttpRequest | None = None,
    source: str = "",
) -> ActionOutcome:
    """Run one action as ``actor`` (admins only). Raises PermissionDenied, BudgetInputError
    (a freeze without a reason) or KeyError (no such action).

    ``confirmed``: the ids of the launch requests the confirmation page listed (a stop action
    stops only those of them it would still stop; None: every one it would stop now). A
    confirmation posted again later (a resubmitted form) so stops no launch started since,
    which nobody was shown."""
    action = ACTIONS[slug]
    if getattr(actor, "role", None) != "admin":
        raise PermissionDenied("Only admins may act on a budget alert.")
    if slug == FREEZE:
        budget = services.budget_freeze(actor=actor, reason=reason, request=request, source=source)
        return ActionOutcome(
            slug,
            True,
            f"New launches are frozen until {budget.frozen_until:%Y-%m-%d %H:%M} UTC: "
            f"{budget.frozen_reason}",
        )
    chosen = action_launches(slug)
    if confirmed is not None:
        wanted = {str(value).strip() for value in confirmed}
        chosen = [launch for launch in chosen if str(launch.pk) in wanted]
    stopped = [
        launch_stop(launch.pk, by=actor, reason=StopReason.BUDGET, request=request, source=source)
        for launch in chosen
    ]
    ids = [str(getattr(item, "pk", item)) for item in stopped]
    audit_record(
        action="budget.action",
        actor=actor,
        target=slug,
        detail={"stopped": ids},
        request=request,
        source=source,
    )
    return ActionOutcome(slug, True, f"{action.title}: {len(ids)} launch(es) stopping.", ids)
