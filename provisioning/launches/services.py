"""The only writers of launch requests. Every state change goes through ``transition``: one
conditional UPDATE from the expected states (0 rows: somebody else moved it first, nothing
changes) and one audit entry per transition. Emails go out after the commit, from tasks.

Errors: ``LaunchInputError`` (bad input, naming the field: a form error, CLI exit 2; a request
already decided is one too, ``LaunchStateError``), ``PermissionDenied`` (not permitted: 403, CLI
exit 3)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest

from billing.budgets.freeze import freeze_refusals
from billing.money import amount_str
from clusterweb import clock
from clusterweb.audit.services import audit_record
from clusterweb.permissions import is_admin
from clusterweb.tasking import enqueue_on_commit
from provisioning.launches import quotes, selectors
from provisioning.launches.models import (
    ApprovalPolicy,
    JupyterProfile,
    LaunchKind,
    LaunchRequest,
    LaunchState,
    LaunchStep,
    StepState,
    StopReason,
)
from provisioning.models import Lifecycle, Pool, PoolKind

logger = logging.getLogger(__name__)

# The states a requester (or an admin) may cancel from: nothing runs yet. Once launching, a
# launch is stopped instead (issue 18).
CANCELLABLE_STATES = (LaunchState.PENDING_APPROVAL, LaunchState.APPROVED)


class LaunchInputError(ValueError):
    """Bad input: ``field`` names what is wrong (a form field, a CLI flag's name)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class LaunchStateError(LaunchInputError):
    """The request is not in a state that allows this (already decided, already running)."""

    def __init__(self, message: str) -> None:
        super().__init__("state", message)


class LaunchNotFound(LaunchInputError):
    def __init__(self, request_id: Any) -> None:
        super().__init__("id", f"no launch request {request_id}")


class LaunchRefused(LaunchInputError):
    """A rule outside the request's own fields refuses it (``_refusals``: a budget freeze)."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


def _source(request: HttpRequest | None, source: str) -> str:
    return source or ("web" if request is not None else "task")


def _target(request_id: int) -> str:
    return f"launch {request_id}"


# --- The one transition -------------------------------------------------------------------------
def transition(
    request_id: int,
    from_states: Iterable[str],
    to_state: str,
    *,
    actor: Any = None,
    actor_username: str = "",
    request: HttpRequest | None = None,
    source: str = "",
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
    **fields: Any,
) -> bool:
    """Move request ``request_id`` from any of ``from_states`` to ``to_state``, setting
    ``fields`` (model field names; F expressions welcome, e.g. ``attempt=F("attempt") + 1``) in
    the same conditional UPDATE, and record one audit entry ``launch.<to_state>``. Returns False,
    changing nothing, when the request is not in ``from_states`` (another process moved it
    first): the caller decides whether that is an error. Runs in the caller's transaction, or in
    its own."""
    from_states = [str(s) for s in from_states]
    now = clock.now() if now is None else now
    with transaction.atomic():
        claimed = LaunchRequest.objects.filter(pk=request_id, state__in=from_states).update(
            state=to_state, updated_at=now, **fields
        )
        if not claimed:
            return False
        audit_record(
            action=f"launch.{to_state}",
            actor=actor,
            actor_username=actor_username,
            target=_target(request_id),
            detail={
                "request": request_id,
                "from": from_states[0] if len(from_states) == 1 else from_states,
                "to": str(to_state),
                **(detail or {}),
            },
            request=request,
            source=_source(request, source),
        )
    return True


# --- The step log -------------------------------------------------------------------------------
def step_start(request_id: int, name: str, *, detail: str = "") -> LaunchStep:
    """Open a line of the step log. A line of the same name still open (a task that died and
    runs again) is reused, so a rerun does not add a second line."""
    now = clock.now()
    step = (
        LaunchStep.objects.filter(request_id=request_id, name=name, state=StepState.RUNNING)
        .order_by("-started_at", "-pk")
        .first()
    )
    if step is not None:
        if detail and detail != step.detail:
            step.detail = detail
            step.save(update_fields=["detail"])
        return step
    return LaunchStep.objects.create(
        request_id=request_id, name=name, state=StepState.RUNNING, started_at=now, detail=detail
    )


def step_finish(step_id: int, *, ok: bool = True, detail: str | None = None) -> LaunchStep:
    """Close a line of the step log, done or failed (a closed line stays as it was)."""
    fields: dict[str, Any] = {
        "state": StepState.DONE if ok else StepState.FAILED,
        "finished_at": clock.now(),
    }
    if detail is not None:
        fields["detail"] = detail
    LaunchStep.objects.filter(pk=step_id, state=StepState.RUNNING).update(**fields)
    return LaunchStep.objects.get(pk=step_id)


def step_record(request_id: int, name: str, *, ok: bool = True, detail: str = "") -> LaunchStep:
    """A line that starts and ends at once (a spot interruption, a decision)."""
    step = step_start(request_id, name, detail=detail)
    return step_finish(step.pk, ok=ok, detail=detail)


# --- Validation -----------------------------------------------------------------------------------
def _role_of(user: Any) -> str | None:
    return getattr(user, "role", None) if getattr(user, "is_authenticated", False) else None


def launch_problems(
    *,
    pool: Pool | None,
    kind: str,
    instance_type: str | None,
    count: Any,
    hours: Any,
    capacity_type: str,
    allow_on_demand_fallback: bool,
    jupyter_profile: str = "",
) -> dict[str, str]:
    """What is wrong with a launch's parameters, by field (empty: nothing). The forms and
    ``request_launch`` share it. The pool's room is checked here too (without a lock: the
    service checks again under one)."""
    problems: dict[str, str] = {}
    if kind not in LaunchKind.values:
        problems["kind"] = f"unknown kind {kind!r}: one of {', '.join(LaunchKind.values)}"
        return problems
    if pool is None:
        problems["pool"] = "no such pool"
        return problems
    if pool.kind != PoolKind.BURST:
        problems["pool"] = f"pool {pool.slug} is a base pool: launches go to burst pools"
        return problems
    small = kind == LaunchKind.JUPYTER and jupyter_profile == JupyterProfile.SMALL
    if kind == LaunchKind.JUPYTER and jupyter_profile not in JupyterProfile.values:
        problems["jupyter_profile"] = (
            f"unknown Jupyter profile {jupyter_profile!r}: one of "
            f"{', '.join(JupyterProfile.values)}"
        )
    if small:
        if instance_type:
            problems["instance_type"] = "a small Jupyter server runs on the admin nodes: no type"
    elif not instance_type:
        problems["instance_type"] = f"choose an instance type of pool {pool.slug}"
    elif instance_type not in pool.instance_types:
        problems["instance_type"] = (
            f"{instance_type} is not allowed in pool {pool.slug}: one of "
            f"{', '.join(pool.instance_types)}"
        )
    if capacity_type not in Lifecycle.values:
        problems["capacity_type"] = f"capacity is {' or '.join(Lifecycle.values)}"
    elif capacity_type == Lifecycle.SPOT and pool.lifecycle != Lifecycle.SPOT:
        problems["capacity_type"] = f"pool {pool.slug} launches on-demand only"
    if allow_on_demand_fallback:
        if capacity_type != Lifecycle.SPOT:
            problems["allow_on_demand_fallback"] = "a fallback to on-demand is for spot launches"
        elif not pool.on_demand_fallback:
            problems["allow_on_demand_fallback"] = (
                f"pool {pool.slug} does not allow a fallback to on-demand"
            )
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        problems["count"] = "at least 1"
    else:
        room = selectors.pool_room(pool)
        if count > room:
            problems["count"] = (
                f"pool {pool.slug} has room for {room} more node{'s' if room != 1 else ''} now "
                f"(at most {pool.max_nodes}, minus running and approved ones)"
            )
    if not isinstance(hours, int) or isinstance(hours, bool) or hours < 1:
        problems["hours"] = "at least 1 hour"
    elif pool.max_hours is not None and hours > pool.max_hours:
        problems["hours"] = f"at most {pool.max_hours} hours in pool {pool.slug}"
    return problems


def _refusals(
    *, owner: Any, requested_by: Any, kind: str, pool: Pool, quote: quotes.Quote
) -> list[str]:
    """Reasons beyond the request's own fields to refuse it outright: a budget freeze refuses
    collaborators' requests (issue 20; an admin's own is allowed and recorded as such)."""
    return freeze_refusals(requested_by=requested_by, kind=kind, lock=True)


def approval_reason(*, policy: ApprovalPolicy, kind: str, requested_by: Any, max_cost: Any) -> str:
    """Why an admin must decide (empty: the policy approves at once). The maximum cost over the
    threshold, or unknown; or a collaborator's request of a kind the policy always holds."""
    reasons = []
    if max_cost is None:
        reasons.append("the price is unknown, so the maximum cost is too")
    elif max_cost > policy.threshold:
        reasons.append(
            f"maximum cost ${amount_str(max_cost)} is over the "
            f"${amount_str(policy.threshold)} threshold"
        )
    if not is_admin(requested_by) and policy.requires(kind):
        reasons.append(f"collaborators' {kind} requests always need an admin's approval")
    return "; ".join(reasons)


def _pool_get(pool: Pool | str | None) -> Pool | None:
    if isinstance(pool, Pool) or pool is None:
        return pool
    return Pool.objects.filter(slug=pool).first()


# --- Request ------------------------------------------------------------------------------------
def request_launch(
    *,
    requested_by: Any,
    owner: Any,
    kind: str,
    pool: Pool | str,
    instance_type: str | None,
    count: int,
    hours: int,
    capacity_type: str,
    allow_on_demand_fallback: bool = False,
    jupyter_profile: str = "",
    request: HttpRequest | None = None,
    source: str = "",
) -> LaunchRequest:
    """Ask for a launch for ``owner``. Quoted now; ``pending_approval`` when the policy says an
    admin must decide (admins are emailed after the commit), else ``approved`` at once. Raises
    PermissionDenied when ``requested_by`` may not launch (for ``owner``), LaunchInputError
    naming the field otherwise."""
    if _role_of(requested_by) is None:
        raise PermissionDenied("Only admins and collaborators may launch.")
    if owner is None or not getattr(owner, "pk", None):
        raise LaunchInputError("owner", "name the user the launch is for")
    if owner.pk != requested_by.pk and not is_admin(requested_by):
        raise PermissionDenied("Collaborators launch only for themselves.")
    if _role_of(owner) is None:
        raise LaunchInputError("owner", f"{owner.username} may not use the cluster (no role)")
    pool_row = _pool_get(pool)
    fields = {
        "kind": kind,
        "instance_type": instance_type or None,
        "count": count,
        "hours": hours,
        "capacity_type": capacity_type,
        "allow_on_demand_fallback": bool(allow_on_demand_fallback),
        "jupyter_profile": jupyter_profile if kind == LaunchKind.JUPYTER else "",
    }
    problems = launch_problems(pool=pool_row, **fields)
    if problems:
        field, message = next(iter(problems.items()))
        raise LaunchInputError(field, message)
    now = clock.now()
    quote = quotes.launch_quote(
        pool=pool_row,
        instance_type=fields["instance_type"],
        count=count,
        hours=hours,
        capacity_type=capacity_type,
        fallback=fields["allow_on_demand_fallback"],
        owner=owner.username,
        now=now,
    )
    policy = ApprovalPolicy.current()
    draft = LaunchRequest(kind=kind, jupyter_profile=fields["jupyter_profile"])
    reason = approval_reason(
        policy=policy,
        kind=draft.approval_kind,
        requested_by=requested_by,
        max_cost=quote.max_cost,
    )
    with transaction.atomic():
        # Asked in the transaction that writes the request, under the lock a freeze takes: a
        # freeze committed before this request is written always refuses it.
        for refusal in _refusals(
            owner=owner, requested_by=requested_by, kind=kind, pool=pool_row, quote=quote
        ):
            raise LaunchRefused(refusal)
        # The pool row is the lock: two requests (or approvals) for its last room take turns.
        pool_row = Pool.objects.select_for_update().get(pk=pool_row.pk)
        room = selectors.pool_room(pool_row)
        if count > room:
            raise LaunchInputError("count", f"pool {pool_row.slug} has room for {room} now")
        launch = LaunchRequest.objects.create(
            **fields,
            pool=pool_row,
            owner=owner,
            requested_by=requested_by,
            hourly=quote.hourly,
            hourly_source=quote.hourly_source[:500],
            hourly_kind=quote.hourly_kind,
            zone=quote.zone,
            on_demand_hourly=quote.on_demand_hourly,
            expected_cost=quote.expected_cost,
            max_cost=quote.max_cost,
            quoted_at=now,
            approval_reason=reason[:500],
            state=LaunchState.PENDING_APPROVAL,
            created_at=now,
            updated_at=now,
        )
        audit_record(
            action="launch.requested",
            actor=requested_by,
            target=_target(launch.pk),
            detail={
                "request": launch.pk,
                "owner": owner.username,
                "kind": kind,
                "pool": pool_row.slug,
                "instance_type": fields["instance_type"],
                "count": count,
                "hours": hours,
                "capacity_type": capacity_type,
                "max_cost": None if quote.max_cost is None else amount_str(quote.max_cost),
                "approval_reason": reason,
            },
            request=request,
            source=_source(request, source),
        )
        if reason:
            enqueue_on_commit(_tasks().launch_admins_notify, launch.pk)
        else:
            transition(
                launch.pk,
                [LaunchState.PENDING_APPROVAL],
                LaunchState.APPROVED,
                actor_username="policy",
                request=request,
                source=_source(request, source),
                detail={"auto": True, "count": count, "hours": hours},
                now=now,
                decided_at=now,
                decided_by_username="",
                decision_note="approved by the policy (maximum cost within the threshold)",
                auto_approved=True,
                approved_count=count,
                approved_hours=hours,
                approved_hourly=quote.hourly,
                approved_expected_cost=quote.expected_cost,
                approved_max_cost=quote.max_cost,
            )
            _execution_enqueue(launch.pk)
    launch.refresh_from_db()
    return launch


def _execution_enqueue(request_id: int) -> None:
    """An approved request is carried out by the execution's steps (issue 18), after the
    commit; if the broker is down, the launch sweeper starts it later."""
    from provisioning.launches import tasks

    enqueue_on_commit(tasks.launch_advance, request_id)


# --- Decisions ----------------------------------------------------------------------------------
def _require_admin(actor: Any, what: str) -> None:
    if not is_admin(actor):
        raise PermissionDenied(f"Only admins may {what}.")


def _load(request_id: Any) -> LaunchRequest:
    try:
        pk = int(request_id)
    except (TypeError, ValueError):
        raise LaunchNotFound(request_id) from None
    launch = LaunchRequest.objects.select_related("pool", "owner", "requested_by").filter(pk=pk)
    found = launch.first()
    if found is None:
        raise LaunchNotFound(request_id)
    return found


def _not_pending(launch: LaunchRequest, verb: str) -> LaunchStateError:
    launch.refresh_from_db(fields=["state", "decided_by_username", "decided_at"])
    who = f" by {launch.decided_by_username}" if launch.decided_by_username else ""
    return LaunchStateError(
        f"request {launch.pk} is {launch.state}{who if launch.decided_at else ''}: only a "
        f"pending request can be {verb}"
    )


def _granted(value: Any, asked: int, field: str, what: str) -> int:
    if value is None:
        return asked
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise LaunchInputError(field, f"approve at least 1 {what}")
    if value > asked:
        raise LaunchInputError(
            field, f"an approval may be smaller than the request, not larger (asked: {asked})"
        )
    return value


def approve(
    request_id: Any,
    *,
    by: Any,
    note: str = "",
    count: int | None = None,
    hours: int | None = None,
    request: HttpRequest | None = None,
    source: str = "",
) -> LaunchRequest:
    """Approve a pending request, perhaps smaller (fewer ``count``, fewer ``hours``). Re-quoted
    at the approved size now, and the pool's room checked again under its lock; the approved
    maximum is what the launch may cost. An admin approving their own request is recorded as a
    self-approval. Two admins at once: one approval, the other gets LaunchStateError."""
    _require_admin(by, "approve launch requests")
    launch = _load(request_id)
    now = clock.now()
    if launch.state != LaunchState.PENDING_APPROVAL or _expired_now(launch, now):
        raise _not_pending(launch, "approved")
    granted_count = _granted(count, launch.count, "count", "node")
    granted_hours = _granted(hours, launch.hours, "hours", "hour")
    note = (note or "").strip()[:2000]
    with transaction.atomic():
        pool = Pool.objects.select_for_update().get(pk=launch.pool_id)
        room = selectors.pool_room(pool, exclude_request=launch.pk)
        if granted_count > room:
            raise LaunchInputError(
                "count",
                f"pool {pool.slug} has room for {room} now: approve at most {room} "
                f"(--workers) or wait",
            )
        quote = quotes.requote(launch, count=granted_count, hours=granted_hours, now=now)
        own = by.pk in (launch.requested_by_id, launch.owner_id)
        smaller = granted_count < launch.count or granted_hours < launch.hours
        claimed = transition(
            launch.pk,
            [LaunchState.PENDING_APPROVAL],
            LaunchState.APPROVED,
            actor=by,
            request=request,
            source=_source(request, source),
            detail={
                "count": granted_count,
                "hours": granted_hours,
                "smaller": smaller,
                "self": own,
                "note": note[:200],
                "max_cost": None if quote.max_cost is None else amount_str(quote.max_cost),
                "quoted_max_cost": None if launch.max_cost is None else amount_str(launch.max_cost),
            },
            now=now,
            decided_by=by,
            decided_by_username=by.username,
            decided_at=now,
            decision_note=note,
            self_approved=own,
            auto_approved=False,  # an admin decides (even if the policy approved it once before)
            approved_count=granted_count,
            approved_hours=granted_hours,
            approved_hourly=quote.hourly,
            approved_expected_cost=quote.expected_cost,
            approved_max_cost=quote.max_cost,
            # A request approved once before (sent back to pending by issue 18's fallback) was
            # mailed "approved" then: this approval is news of its own.
            notified_state="",
        )
        if not claimed:
            raise _not_pending(launch, "approved")
        enqueue_on_commit(_tasks().launch_requester_notify, launch.pk)
        _execution_enqueue(launch.pk)
    launch.refresh_from_db()
    return launch


def reject(
    request_id: Any,
    *,
    by: Any,
    note: str = "",
    request: HttpRequest | None = None,
    source: str = "",
) -> LaunchRequest:
    """Reject a pending request (the note, optional, goes to the requester)."""
    _require_admin(by, "reject launch requests")
    launch = _load(request_id)
    note = (note or "").strip()[:2000]
    now = clock.now()
    if _expired_now(launch, now):
        raise _not_pending(launch, "rejected")
    with transaction.atomic():
        claimed = transition(
            launch.pk,
            [LaunchState.PENDING_APPROVAL],
            LaunchState.REJECTED,
            actor=by,
            request=request,
            source=_source(request, source),
            detail={"note": note[:200], "self": by.pk == launch.requested_by_id},
            now=now,
            decided_by=by,
            decided_by_username=by.username,
            decided_at=now,
            decision_note=note,
            ended_at=now,
        )
        if not claimed:
            raise _not_pending(launch, "rejected")
        enqueue_on_commit(_tasks().launch_requester_notify, launch.pk)
    launch.refresh_from_db()
    return launch


def cancel(
    request_id: Any,
    *,
    by: Any,
    note: str = "",
    request: HttpRequest | None = None,
    source: str = "",
) -> LaunchRequest:
    """Cancel a request that runs nothing yet (pending, or approved and not launching). Its
    owner or requester may; so may an admin (``stop_reason`` ``admin``); nobody else."""
    launch = _load(request_id)
    own = getattr(by, "pk", None) in (launch.requested_by_id, launch.owner_id)
    if not own and not is_admin(by):
        raise PermissionDenied("You may cancel only your own launch requests.")
    if _role_of(by) is None:
        raise PermissionDenied("Only admins and collaborators may cancel launch requests.")
    now = clock.now()
    claimed = transition(
        launch.pk,
        CANCELLABLE_STATES,
        LaunchState.CANCELLED,
        actor=by,
        request=request,
        source=_source(request, source),
        detail={"note": (note or "")[:200]},
        now=now,
        stop_reason=StopReason.OWNER if own else StopReason.ADMIN,
        ended_at=now,
    )
    if not claimed:
        launch.refresh_from_db(fields=["state"])
        raise LaunchStateError(
            f"request {launch.pk} is {launch.state}: only a pending or approved request that "
            "runs nothing yet can be cancelled"
        )
    launch.refresh_from_db()
    return launch


def _expire(request_id: int, now: datetime) -> bool:
    """One pending request expires (and its requester is told after the commit); False when it
    is no longer pending."""
    with transaction.atomic():
        if not transition(
            request_id,
            [LaunchState.PENDING_APPROVAL],
            LaunchState.EXPIRED,
            source="task",
            detail={"pending_hours": settings.LAUNCH_APPROVAL_HOURS},
            now=now,
            ended_at=now,
        ):
            return False
        enqueue_on_commit(_tasks().launch_requester_notify, request_id)
    return True


def approval_deadline(launch: LaunchRequest) -> datetime:
    """When a pending request expires: LAUNCH_APPROVAL_HOURS after it began to wait. That is its
    ``updated_at`` (only ``transition`` and the creation set it): the request's creation, or the
    moment issue 18's fallback sent an approved request back to ``pending_approval``."""
    return launch.updated_at + timedelta(hours=settings.LAUNCH_APPROVAL_HOURS)


def _expired_now(launch: LaunchRequest, now: datetime) -> bool:
    """Whether ``launch`` is pending past its deadline; if so it expires here (the sweep may not
    have run yet), so that no decision lands on what the requester was told has lapsed."""
    if launch.state != LaunchState.PENDING_APPROVAL or approval_deadline(launch) >= now:
        return False
    _expire(launch.pk, now)
    return True


def expire_pending(now: datetime | None = None) -> int:
    """Expire requests undecided for longer than LAUNCH_APPROVAL_HOURS (beat entry
    ``launch-expire``; a decision on one past its deadline expires it too); each requester is
    told. Returns how many expired. Safe to run twice."""
    now = clock.now() if now is None else now
    cutoff = now - timedelta(hours=settings.LAUNCH_APPROVAL_HOURS)
    stale = LaunchRequest.objects.filter(
        state=LaunchState.PENDING_APPROVAL,
        updated_at__lt=cutoff,  # see approval_deadline
    ).values_list("pk", flat=True)
    return sum(_expire(pk, now) for pk in list(stale))


def cancel_pending_for(user: Any, *, actor: Any = None, source: str = "") -> int:
    """Cancel every request of ``user`` (a User, or a uid matched without regard to case) that
    runs nothing yet, with ``stop_reason`` ``disabled``: called when the person is disabled.
    Returns how many were cancelled."""
    uid = user if isinstance(user, str) else user.username
    now = clock.now()
    cancelled = 0
    ids = LaunchRequest.objects.filter(
        owner__username__iexact=uid, state__in=CANCELLABLE_STATES
    ).values_list("pk", flat=True)
    for pk in list(ids):
        if transition(
            pk,
            CANCELLABLE_STATES,
            LaunchState.CANCELLED,
            actor=actor,
            source=source or "task",
            detail={"reason": f"{uid} was disabled"},
            now=now,
            stop_reason=StopReason.DISABLED,
            ended_at=now,
        ):
            cancelled += 1
    return cancelled


# --- The policy ---------------------------------------------------------------------------------
def approval_policy_set(
    *,
    by: Any,
    threshold: Decimal | None = None,
    require: dict[str, bool] | None = None,
    request: HttpRequest | None = None,
    source: str = "",
) -> ApprovalPolicy:
    """Change the threshold (USD, 2 decimals, 0 or more) and/or which kinds collaborators
    always need approval for. Admins only; audited with the values before and after."""
    _require_admin(by, "change the approval policy")
    if threshold is not None:
        if not isinstance(threshold, Decimal) or not threshold.is_finite() or threshold < 0:
            raise LaunchInputError("threshold", "a threshold is 0 or more US dollars")
        if threshold != threshold.quantize(Decimal("0.01")) or threshold >= Decimal(10**8):
            raise LaunchInputError("threshold", "a threshold in dollars and cents, below 10^8")
    for kind in require or {}:
        if kind not in LaunchKind.values:
            raise LaunchInputError(
                "require", f"unknown kind {kind!r}: one of {', '.join(LaunchKind.values)}"
            )
    with transaction.atomic():
        policy, _ = ApprovalPolicy.objects.select_for_update().get_or_create(pk=1)
        before = policy.as_json()
        if threshold is not None:
            policy.threshold = threshold
        for kind, value in (require or {}).items():
            setattr(policy, f"require_{kind}", bool(value))
        policy.updated_at = clock.now()
        policy.updated_by_username = by.username
        policy.save()
        after = policy.as_json()
        audit_record(
            action="approval_policy.updated",
            actor=by,
            target="approval policy",
            detail={
                "before": {k: before[k] for k in ("threshold", "require")},
                "after": {k: after[k] for k in ("threshold", "require")},
            },
            request=request,
            source=_source(request, source),
        )
    return policy


# --- Emails (run by tasks after the commit) ------------------------------------------------------
def _tasks():
    from provisioning.launches import tasks

    return tasks


def request_url(request_id: int) -> str:
    """The request page through the tunnel (DASHBOARD_BASE_URL)."""
    return f"{settings.DASHBOARD_BASE_URL.rstrip('/')}/launches/{request_id}/"


def approvals_url() -> str:
    return f"{settings.DASHBOARD_BASE_URL.rstrip('/')}/launches/approvals/"


def launch_admins_notify(*, request_id: int) -> int:
    """Email every admin that a request waits (once: claimed with ``admins_notified_at``).
    Returns the number of mails sent. When every send fails the claim is given back for a retry;
    when some went out it stays (no admin is mailed twice; the failures are logged)."""
    from clusterweb.integrations import mail

    now = clock.now()
    claimed = LaunchRequest.objects.filter(
        pk=request_id, state=LaunchState.PENDING_APPROVAL, admins_notified_at__isnull=True
    ).update(admins_notified_at=now)
    if not claimed:
        return 0
    launch = _load(request_id)
    recipients = admin_recipients()
    failed: list[Exception] = []
    for address in recipients:
        try:
            mail.launch_review_request_send(
                to=address,
                launch=launch,
                request_url=request_url(launch.pk),
                approvals_url=approvals_url(),
            )
        except Exception as exc:
            failed.append(exc)
    sent = len(recipients) - len(failed)
    if failed and not sent:  # nobody told: give the claim back for a retry (or the sweep)
        LaunchRequest.objects.filter(pk=request_id).update(admins_notified_at=None)
        raise failed[0]
    if failed:
        # Some admins have it: a retry would mail them again (and the sweep every few minutes).
        # The rest see the request in the nav badge and on the Approvals page.
        logger.error(
            "launch %s: review mail sent to %d of %d admins; %s",
            request_id,
            sent,
            len(recipients),
            "; ".join(f"{type(exc).__name__}: {exc}" for exc in failed),
        )
    return sent


def launch_notices_unsent(*, now: datetime | None = None) -> tuple[list[int], list[int]]:
    """The launch emails whose task never ran (the broker was down after the commit: the enqueue
    is only logged): (pending requests no admin was mailed about, requests decided or expired in
    the last day whose requester was not told). The expiry sweep enqueues them again; each task
    claims its mail, so a second enqueue sends nothing twice."""
    from django.db.models import F, Q

    since = (clock.now() if now is None else now) - timedelta(days=1)
    admins = LaunchRequest.objects.filter(
        state=LaunchState.PENDING_APPROVAL, admins_notified_at__isnull=True
    )
    approvals = LaunchRequest.objects.filter(
        state__in=APPROVAL_NEWS_STATES, auto_approved=False, decided_at__gte=since
    ).exclude(notified_state=LaunchState.APPROVED)
    others = (
        LaunchRequest.objects.filter(state__in=(LaunchState.REJECTED, LaunchState.EXPIRED))
        .filter(Q(decided_at__gte=since) | Q(state=LaunchState.EXPIRED, ended_at__gte=since))
        .exclude(notified_state=F("state"))
    )
    requesters = {*approvals.values_list("pk", flat=True), *others.values_list("pk", flat=True)}
    return list(admins.order_by("pk").values_list("pk", flat=True)), sorted(requesters)


# An approval is still news to its requester once the execution has moved the request on (the
# mail's task and the execution's first step are enqueued together; either may run first).
APPROVAL_NEWS_STATES = (LaunchState.APPROVED, LaunchState.LAUNCHING, LaunchState.RUNNING)


def launch_requester_notify(*, request_id: int) -> bool:
    """Tell the requester (and the owner, when another) the decision or the expiry, once per
    state (claimed with ``notified_state``). Returns whether a mail went out."""
    from clusterweb.integrations import mail

    launch = _load(request_id)
    if launch.auto_approved:
        return False

    def send(to: list[str]) -> None:
        mail.launch_decision_send(to=to, launch=launch, request_url=request_url(launch.pk))

    if launch.state in APPROVAL_NEWS_STATES and launch.decided_at is not None:
        return _approval_mail_once(launch, send)
    if launch.state not in (LaunchState.REJECTED, LaunchState.EXPIRED):
        return False
    return requester_mail_once(launch, send)


def _approval_mail_once(launch: LaunchRequest, send: Any) -> bool:
    """``requester_mail_once`` for an approval, whether or not the launch has begun since: the
    claim is ``notified_state`` = ``approved`` (``approve`` clears it), and the mail says
    approved."""
    claimed = (
        LaunchRequest.objects.filter(pk=launch.pk, state__in=APPROVAL_NEWS_STATES)
        .exclude(notified_state=LaunchState.APPROVED)
        .update(notified_state=LaunchState.APPROVED)
    )
    if not claimed:
        return False
    launch.state = LaunchState.APPROVED  # what the decision mail tells (the page shows the rest)
    recipients = sorted({u.email for u in (launch.requested_by, launch.owner) if u.email})
    try:
        send(recipients)
    except Exception:
        LaunchRequest.objects.filter(pk=launch.pk, notified_state=LaunchState.APPROVED).update(
            notified_state=""
        )
        raise
    return True


def requester_mail_once(launch: LaunchRequest, send: Any) -> bool:
    """Mail the requester and the owner about the launch's current state once: claim the state
    with one conditional UPDATE of ``notified_state``, call ``send(recipients)``, give the claim
    back when the send fails (a retry sends it). Returns whether this call sent it."""
    from django.db.models import Q

    claimed = (
        LaunchRequest.objects.filter(pk=launch.pk, state=launch.state)
        .filter(~Q(notified_state=launch.state))
        .update(notified_state=launch.state)
    )
    if not claimed:
        return False
    recipients = sorted({u.email for u in (launch.requested_by, launch.owner) if u.email})
    try:
        send(recipients)
    except Exception:
        LaunchRequest.objects.filter(pk=launch.pk).update(notified_state="")
        raise
    return True


def admin_recipients() -> list[str]:
    """The admins' addresses: the directory's admins group, or the database's admins when the
    directory is down."""
    from clusterweb.accounts.models import User
    from clusterweb.errors import DirectoryUnavailable
    from clusterweb.integrations import ldap as ldap_directory

    try:
        return ldap_directory.group_member_mails(settings.LDAP_ADMIN_GROUP)
    except DirectoryUnavailable:
        admins = User.objects.filter(is_active=True, is_cluster_admin=True).exclude(email="")
        return sorted(set(admins.values_list("email", flat=True)))
