"""Reads of launch requests: a pool's room, what a user may see, the request JSON of
CONVENTIONS.md, and the pending count of the nav badge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from billing.money import amount_str, rate_str
from clusterweb import clock
from clusterweb.permissions import is_admin
from provisioning.launches.models import (
    RESERVING_STATES,
    LaunchRequest,
    LaunchState,
)
from provisioning.models import Node, NodeState, Pool


def pool_room(pool: Pool, *, exclude_request: int | None = None) -> int:
    """How many more nodes ``pool`` may take now: its maximum nodes minus its running nodes (any
    not terminated) minus the counts of its approved requests that run nothing yet. A node of an
    approved (launching) request is counted once, as the request. ``exclude_request``: leave
    that request out (an approval re-checks the room its own request would take)."""
    reserving = LaunchRequest.objects.filter(pool=pool, state__in=RESERVING_STATES)
    if exclude_request is not None:
        reserving = reserving.exclude(pk=exclude_request)
    reserved_ids = [str(pk) for pk in reserving.values_list("pk", flat=True)]
    reserved = sum(request.granted_count for request in reserving)
    nodes = (
        Node.objects.filter(pool=pool.slug)
        .exclude(state=NodeState.TERMINATED)
        .exclude(request__in=reserved_ids)
        .count()
    )
    return max(pool.max_nodes - nodes - reserved, 0)


def requests_visible_to(user: Any) -> QuerySet[LaunchRequest]:
    """Admins see every request; anyone else their own (owned or asked for by them)."""
    requests = LaunchRequest.objects.select_related("pool", "owner", "requested_by", "decided_by")
    if is_admin(user):
        return requests
    if not getattr(user, "is_authenticated", False):
        return requests.none()
    return requests.filter(Q(owner=user) | Q(requested_by=user))


def request_for(user: Any, request_id: int) -> LaunchRequest | None:
    """The request if ``user`` may see it, else None (a page answers 404)."""
    return requests_visible_to(user).filter(pk=request_id).first()


def _waiting() -> QuerySet[LaunchRequest]:
    """Pending requests still within their deadline (``services.approval_deadline``): one past it
    expires at the next sweep, or on an admin's click, so it no longer waits for anyone."""
    cutoff = clock.now() - timedelta(hours=settings.LAUNCH_APPROVAL_HOURS)
    return LaunchRequest.objects.filter(state=LaunchState.PENDING_APPROVAL, updated_at__gte=cutoff)


def requests_pending() -> QuerySet[LaunchRequest]:
    """What waits for an admin, oldest first (the Approvals page)."""
    return _waiting().select_related("pool", "owner", "requested_by").order_by("created_at", "pk")


def pending_count() -> int:
    """The nav badge admins see."""
    return _waiting().count()


# --- JSON ----------------------------------------------------------------------------------------
def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _amount(value: Any) -> str | None:
    return None if value is None else amount_str(value)


def _rate(value: Any) -> str | None:
    return None if value is None else rate_str(value)


def approval_json(request: LaunchRequest) -> dict[str, Any] | None:
    """CONVENTIONS.md's ``approval``: null until approved, else ``{by, at, note, self}`` (plus
    ``auto`` for a request the policy let through, and what was granted)."""
    if request.decided_at is None or request.state in (
        # Pending again (issue 18's fallback): the earlier approval no longer holds.
        LaunchState.PENDING_APPROVAL,
        LaunchState.REJECTED,
        LaunchState.CANCELLED,
        LaunchState.EXPIRED,
    ):
        return None
    return {
        "by": request.decided_by_username or None,
        "at": _iso(request.decided_at),
        "note": request.decision_note,
        "self": request.self_approved,
        "auto": request.auto_approved,
        "count": request.granted_count,
        "hours": request.granted_hours,
        "smaller": request.approved_smaller,
        "expected_cost": _amount(request.approved_expected_cost),
        "max_cost": _amount(request.granted_max_cost),
    }


def _decision_json(request: LaunchRequest) -> dict[str, Any] | None:
    if request.state not in (LaunchState.REJECTED,):
        return None
    return {
        "by": request.decided_by_username or None,
        "at": _iso(request.decided_at),
        "note": request.decision_note,
    }


def _urls(request: LaunchRequest) -> dict[str, str]:
    """What the owner opens through the tunnel: a running Spark launch's master UI on the
    tunnel's local port (CONVENTIONS: 127.0.0.1:8003)."""
    from provisioning.launches import spark

    if request.kind == "spark" and request.state == LaunchState.RUNNING:
        return {"spark_ui": f"http://127.0.0.1:{spark.UI_PORT}/"}
    return {}


def _outcome(request: LaunchRequest, executions: dict[int, Any] | None) -> dict[str, Any]:
    from provisioning.launches.outcomes import outcome_of

    if executions is None:
        return outcome_of(request).as_json()
    return outcome_of(request, executions.get(request.pk)).as_json()


def _executions_of(ids: list[int]) -> dict[int, Any]:
    from provisioning.launches.execution_models import LaunchExecution

    return {e.request_id: e for e in LaunchExecution.objects.filter(request__in=ids)}


def _instances_of(ids: list[int]) -> dict[str, list[str]]:
    """EC2 ids of the nodes each request launched (by the ``clusterweb:request`` tag)."""
    found: dict[str, list[str]] = {str(pk): [] for pk in ids}
    nodes = (
        Node.objects.filter(request__in=list(found))
        .order_by("launched_at", "instance_id")
        .values_list("request", "instance_id")
    )
    for request, instance_id in nodes:
        found[request].append(instance_id)
    return found


def requests_json(requests: list[LaunchRequest]) -> list[dict[str, Any]]:
    """``requests --json``: each request's JSON, with the instances of all read at once
    (prefetch ``steps`` on the queryset to read the step logs at once too)."""
    ids = [r.pk for r in requests]
    instances = _instances_of(ids)
    executions = _executions_of(ids)
    return [
        request_json(r, instances=instances[str(r.pk)], executions=executions) for r in requests
    ]


def request_json(
    request: LaunchRequest,
    *,
    instances: list[str] | None = None,
    executions: dict[int, Any] | None = None,
) -> dict[str, Any]:
    """A request as CONVENTIONS.md has it (``request ID --json``, every write, the pages)."""
    if instances is None:
        instances = _instances_of([request.pk])[str(request.pk)]
    return {
        "id": request.pk,
        "kind": request.kind,
        "jupyter_profile": request.jupyter_profile or None,
        "state": request.state,
        "owner": request.owner.username,
        "requested_by": request.requested_by.username,
        "pool": request.pool.slug,
        "instance_type": request.instance_type,
        "count": request.count,
        "capacity_type": request.capacity_type,
        "allow_on_demand_fallback": request.allow_on_demand_fallback,
        "hours": request.hours,
        "hourly": _rate(request.hourly),
        "hourly_source": request.hourly_source,
        "on_demand_hourly": _rate(request.on_demand_hourly),
        "expected_cost": _amount(request.expected_cost),
        "max_cost": _amount(request.max_cost),
        "quoted_at": _iso(request.quoted_at),
        "approval_reason": request.approval_reason or None,
        "approval": approval_json(request),
        "rejection": _decision_json(request),
        "created_at": _iso(request.created_at),
        "decided_at": _iso(request.decided_at),
        "running_at": _iso(request.running_at),
        "expires_at": _iso(request.expires_at),
        "ended_at": _iso(request.ended_at),
        "instances": instances,
        "urls": _urls(request),
        "steps": [
            {
                "name": step.name,
                "state": step.state,
                "started_at": _iso(step.started_at),
                "finished_at": _iso(step.finished_at),
                "detail": step.detail,
            }
            for step in request.steps.all()
        ],
        "stop_reason": request.stop_reason,
        "error": request.error or None,
        # Quote against actual (issue 18): the actual cost once the launch ended, and why.
        "outcome": _outcome(request, executions),
        "attempt": request.attempt,
    }
